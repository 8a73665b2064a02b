"""Simulate the labeling strategies on labels we already have, and print the figures.

Every labeled real sentence has an out-of-fold (OOF) prediction from each
model: a score made by a model that never saw that sentence's label, just as
the model scores an unlabeled sentence. So hide the labels, let a strategy
pick sentences in its order, reveal the labels of the first k picks, and count
how many of them the model got wrong (OOF predicted label set != human
label): the errors a labeler would find, and fix, per labeled sentence.

The thresholds are those that made each OOF prediction (tuned on the other
folds, as in training), so `uncertain` ranks by exactly the decisions that are
counted. `random` is the mean over many seeds, with its 5th-95th percentile
range. `disagree` (TF-IDF vs transformer) can only pick the sentences on which
the two models differ, so its figures stop there.

    .venv/bin/python scripts/simulate_strategies.py [--params params.yaml] [--k 100 200 500]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline import strategies
from pipeline.config import LABELS, load_params
from pipeline.label_store import LabelStore
from pipeline.models import fit_postprocess

MODELS = ("tfidf", "embed", "transformer")


def load_oof(path: Path, truth: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """OOF rows of labeled sentences (current human labels as the truth), as arrays."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["sentence_id"] in truth]
    rows.sort(key=lambda r: r["sentence_id"])
    return {
        "ids": np.array([r["sentence_id"] for r in rows]),
        "raw": np.array([[r["raw"][k] for k in LABELS] for r in rows]),
        "calibrated": np.array([[r["calibrated"][k] for k in LABELS] for r in rows]),
        "trained_on": strategies.label_matrix([r["labels"] for r in rows]),
        "truth": strategies.label_matrix([truth[r["sentence_id"]] for r in rows]),
        "predicted": strategies.label_matrix([r["predicted"] for r in rows]),
        "fold": np.array([r.get("cv_fold", r["fold"]) for r in rows]),
    }


def fold_thresholds(oof: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 3): each sentence's thresholds, tuned on the other folds as `cross_fit` does."""
    out = np.zeros_like(oof["calibrated"])
    for fold in np.unique(oof["fold"]):
        test = oof["fold"] == fold
        post = fit_postprocess(oof["raw"][~test], oof["trained_on"][~test])
        out[test] = np.asarray(post.thresholds)
    return out


def found(order: np.ndarray, errors: np.ndarray, ks: list[int]) -> list[int | None]:
    """Errors among the first k picks (None when the strategy has fewer than k picks)."""
    return [int(errors[order[:k]].sum()) if len(order) >= k else None for k in ks]


def cell(n: int | None, k: int) -> str:
    return "        -" if n is None else f"{n:4d} {n / k:4.0%}"


def simulate(params_path: str, ks: list[int], seeds: int) -> None:
    params = load_params(params_path)
    truth = {r.sentence_id: r.labels for r in LabelStore(params.path("labels")).load()}
    oofs = {}
    for name in MODELS:
        path = params.path("oof_dir") / f"{name}.jsonl"
        if path.exists():
            oofs[name] = load_oof(path, truth)
    print(f"{len(truth)} labeled sentences; OOF predictions of {', '.join(oofs)}")
    header = "".join(f"   first {k:>4}" for k in ks)
    for name, oof in oofs.items():
        thresholds = fold_thresholds(oof)
        decided = oof["calibrated"] >= thresholds
        agree = float((decided == oof["predicted"]).all(axis=1).mean())
        errors = (oof["predicted"] != oof["truth"]).any(axis=1)
        n = len(errors)
        margin = np.abs(oof["calibrated"] - thresholds).min(axis=1)
        uncertain = np.argsort(margin, kind="stable")
        randoms = np.array(
            [found(strategies.random_order(n, seed), errors, ks) for seed in range(seeds)],
            dtype=float,
        )
        print(
            f"\n{name}: {int(errors.sum())} of {n} OOF predictions wrong "
            f"({errors.mean():.1%}); thresholds reproduce {agree:.1%} of its decisions"
        )
        print(f"  {'errors found in the':<32}{header}")
        print(
            f"  {'uncertain':<32}"
            + "".join(
                f"  {cell(v, k)}" for v, k in zip(found(uncertain, errors, ks), ks, strict=True)
            )
        )
        mean = randoms.mean(axis=0)
        low, high = np.percentile(randoms, [5, 95], axis=0)
        print(
            f"  {f'random (mean of {seeds} seeds)':<32}"
            + "".join(f"  {m:4.0f} {m / k:4.0%}" for m, k in zip(mean, ks, strict=True))
        )
        print(
            f"  {'random 5th-95th percentile':<32}"
            + "".join(f"  {lo:4.0f}-{hi:<4.0f}" for lo, hi in zip(low, high, strict=True))
        )
        if {"tfidf", "transformer"} <= set(oofs) and np.array_equal(
            oofs["tfidf"]["ids"], oof["ids"]
        ):
            a, b = oofs["tfidf"], oofs["transformer"]
            ta, tb = fold_thresholds(a), fold_thresholds(b)
            # Per-sentence thresholds: compare score - threshold against 0.
            zero = np.zeros(len(LABELS))
            disputed = strategies.disagree(a["calibrated"] - ta, zero, b["calibrated"] - tb, zero)
            print(
                f"  {f'disagree ({len(disputed)} disputed)':<32}"
                + "".join(
                    f"  {cell(v, k)}" for v, k in zip(found(disputed, errors, ks), ks, strict=True)
                )
            )
        for k in ks:
            picked = uncertain[:k]
            print(
                f"  uncertain, first {k}: label counts "
                + ", ".join(
                    f"{lab} {int(oof['truth'][picked, j].sum())}" for j, lab in enumerate(LABELS)
                )
                + "  (random expects "
                + ", ".join(f"{oof['truth'][:, j].mean() * k:.0f}" for j in range(len(LABELS)))
                + ")"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--k", type=int, nargs="+", default=[100, 200, 500])
    parser.add_argument("--seeds", type=int, default=1000, help="random orders to average")
    args = parser.parse_args()
    simulate(args.params, args.k, args.seeds)


if __name__ == "__main__":
    main()
