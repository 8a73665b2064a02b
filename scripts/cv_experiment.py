"""Cross-validate one model with overridden params, without touching models/, MLflow or DVC.

For choosing training params before a full `dvc repro`: prints the OOF figures
(the same procedure and metrics as the train stages) and writes them as JSON.

    python scripts/cv_experiment.py transformer epochs=5 learning_rate=5e-5 --out exp.json
    python scripts/cv_experiment.py transformer --seeds 20161211,1    # mean over two seeds
    python scripts/cv_experiment.py transformer --without-authored    # what authored data buys
    python scripts/cv_experiment.py transformer --extra-authored labels/trial/FILE.jsonl

One training seed is one draw: on 9,136 labels the transformer scored macro-F1 0.842 with
seed 20161211 and 0.824 with seed 1 (heritage F1 0.644 and 0.578), so compare settings on
the mean over two or more seeds. Choosing params on the OOF figures that are then reported
makes those figures slightly optimistic; the note of the run that uses the result should say so.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from pipeline.config import load_params
from pipeline.dataset import AUTHORED, Example, authored_example, load_examples
from pipeline.evaluate import oof_metrics
from pipeline.labels import check_file
from pipeline.schema import atomic_open, write_jsonl
from pipeline.segment import normalize_text
from pipeline.training import cross_validate, oof_rows

log = logging.getLogger("cv_experiment")


def parse_override(text: str, allowed: set[str], section: str) -> tuple[str, object]:
    """`key=value` of the model's params section; the value is read as JSON when it parses."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"override {text!r}: expected key=value")
    if key not in allowed:
        raise SystemExit(
            f"override {text!r}: {section} has no param {key!r}; expected one of "
            + ", ".join(sorted(allowed))
        )
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["tfidf", "embed", "transformer"])
    parser.add_argument("overrides", nargs="*", help="key=value of the model's params section")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, help="write the figures and settings here (JSON)")
    parser.add_argument("--oof", type=Path, help="write the OOF rows here (JSONL, first seed)")
    parser.add_argument(
        "--seeds", help="comma-separated training seeds: one run each, and the mean"
    )
    parser.add_argument(
        "--without-authored", action="store_true", help="train on the real sentences only"
    )
    parser.add_argument(
        "--extra-authored",
        type=Path,
        action="append",
        default=[],
        help="also train on the authored label records in this JSONL file (repeatable)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    params = load_params(args.params)
    base = getattr(params, args.model)
    allowed = {f.name for f in fields(base)}
    cfg = replace(base, **dict(parse_override(o, allowed, args.model) for o in args.overrides))
    seeds = parse_seeds(args.seeds, cfg, args.model)
    examples = load_examples(params.path("dataset_dir"))
    if args.without_authored:
        examples = [e for e in examples if e.source != AUTHORED]
    for path in args.extra_authored:
        examples += extra_authored(path, examples)
    runs = [
        run_once(args.model, replace(params, **{args.model: with_seed(cfg, seed)}), examples)
        for seed in seeds
    ]
    for run in runs:
        print(summary_line(args, run))
    if len(runs) > 1:
        print(mean_line(runs))
    first = runs[0]
    if args.out:
        result = {
            "settings": first["settings"],
            "seconds": first["seconds"],
            "figures": first["figures"],
            "authored_in_training": sum(e.source == AUTHORED for e in examples),
        }
        if len(runs) > 1:
            result["seeds"] = [seed_figures(run) for run in runs]
            result["mean"] = mean_figures(runs)
        with atomic_open(args.out) as out:
            json.dump(result, out)
    if args.oof:
        write_jsonl(args.oof, first["rows"])


def parse_seeds(text: str | None, cfg: Any, model: str) -> list[int | None]:
    """`--seeds 1,2,3` as ints; [None] (the params' own seed, if any) when not given."""
    if not text:
        return [None]
    if not hasattr(cfg, "seed"):
        raise SystemExit(f"--seeds: {model} has no training seed (it is deterministic)")
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds {text!r}: expected comma-separated integers") from None
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds {text!r}: each seed once")
    return seeds


def extra_authored(path: Path, examples: list[Example]) -> list[Example]:
    """Authored label records from a trial file, as training-only examples.

    Checked like `labels/authored.jsonl`; a sentence already in the training data is skipped.
    """
    records, problems = check_file(path, None, allowed_sources=(AUTHORED,))
    if problems:
        raise SystemExit(
            f"--extra-authored {path}: {len(problems)} problem(s), first: "
            + "; ".join(f"line {p.line}: {p.message}" for p in problems[:3])
        )
    texts = {normalize_text(e.text) for e in examples}
    ids = {e.sentence_id for e in examples}
    extra = [
        authored_example(rec)
        for rec in records
        if rec.sentence_id not in ids and normalize_text(rec.text) not in texts
    ]
    log.info("%s: %d extra authored sentences for training", path, len(extra))
    return extra


def with_seed(cfg: Any, seed: int | None) -> Any:
    return cfg if seed is None else replace(cfg, seed=seed)


def run_once(model: str, params: Any, examples: list[Example]) -> dict[str, Any]:
    """Cross-validate one model under these params: OOF rows, figures, seconds."""
    trainer = importlib.import_module(f"pipeline.train_{model}")
    learner = trainer.make_learner(params, examples)
    start = time.perf_counter()
    result = cross_validate(examples, learner)
    rows = oof_rows(examples, result)
    figures = oof_metrics(rows, params.evaluate.ece_bins, params.dataset.seed_prefix)
    return {
        "settings": learner.settings(),
        "seed": getattr(getattr(params, model), "seed", None),
        "seconds": time.perf_counter() - start,
        "figures": figures,
        "rows": rows,
    }


def summary_line(args: argparse.Namespace, run: dict[str, Any]) -> str:
    figures = run["figures"]
    setting = " ".join(args.overrides)
    if args.without_authored:
        setting += " (without authored)"
    for path in args.extra_authored:
        setting += f" (+ {path.name})"
    if args.seeds:
        setting += f" seed={run['seed']}"
    return (
        f"{' '.join(filter(None, [args.model, setting.strip()]))}: "
        f"macro-F1 {figures['macro_f1']:.3f} "
        + " ".join(f"{k} {v['f1']:.3f}" for k, v in figures["per_label"].items())
        + f" | seeds {figures['leave_seeds_out']['macro_f1']:.3f} | {run['seconds']:.0f} s"
    )


def seed_figures(run: dict[str, Any]) -> dict[str, Any]:
    figures = run["figures"]
    return {
        "seed": run["seed"],
        "macro_f1": figures["macro_f1"],
        "f1": {k: v["f1"] for k, v in figures["per_label"].items()},
        "leave_seeds_out_macro_f1": figures["leave_seeds_out"]["macro_f1"],
        "seconds": run["seconds"],
    }


def mean_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and range over seeds of macro-F1, per-label F1 and leave-seeds-out macro-F1."""
    per = [seed_figures(run) for run in runs]

    def spread(values: list[float]) -> dict[str, float]:
        return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}

    return {
        "macro_f1": spread([p["macro_f1"] for p in per]),
        "f1": {k: spread([p["f1"][k] for p in per]) for k in per[0]["f1"]},
        "leave_seeds_out_macro_f1": spread([p["leave_seeds_out_macro_f1"] for p in per]),
    }


def mean_line(runs: list[dict[str, Any]]) -> str:
    mean = mean_figures(runs)
    macro = mean["macro_f1"]
    return (
        f"mean over {len(runs)} seeds: macro-F1 {macro['mean']:.3f} "
        f"(range {macro['min']:.3f}-{macro['max']:.3f}) "
        + " ".join(f"{k} {v['mean']:.3f}" for k, v in mean["f1"].items())
        + f" | seeds {mean['leave_seeds_out_macro_f1']['mean']:.3f}"
    )


if __name__ == "__main__":
    main()
