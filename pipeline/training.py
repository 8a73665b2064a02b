"""The procedure every trainer shares: CV over the dataset folds, OOF, post-processing, final fit.

A trainer supplies a `Learner` (how to fit on some examples, score others and
save a fitted model); this module does the rest the same way for all of them:

1. cross-validation: for each fold, fit on every other fold plus all authored
   sentences, score the fold's real sentences (raw probabilities);
2. calibration and thresholds cross-fitted on those OOF scores (see
   `models.cross_fit`), written to the OOF file with the raw scores;
3. figures from the OOF predictions (`evaluate.oof_metrics`);
4. a final fit on all labeled sentences, authored included, post-processing
   fitted on all OOF scores, saved as a self-describing model folder;
5. MLflow: a parent run (params, tags, figures, the model, registered),
   with one nested run per fold.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.config import LABELS, Params
from pipeline.dataset import AUTHORED_FOLD, AUTHORED_NOTE, Example, load_examples
from pipeline.models import (
    CARD,
    PostProcess,
    cross_fit,
    fit_postprocess,
    names_from_decisions,
    write_meta,
)

log = logging.getLogger(__name__)


class Learner(Protocol):
    """What a trainer supplies. Examples are addressed by index into the list it was given."""

    kind: str

    def settings(self) -> dict[str, Any]:
        """Training params recorded in model.json and logged to MLflow."""

    def cv_fold(self, fold: int) -> int:
        """The CV fold a dataset fold belongs to (the transformer merges folds)."""

    def fit(self, idx: np.ndarray, tag: str) -> Any:
        """Fit on these examples; return the fitted model."""

    def raw_scores(self, fitted: Any, idx: np.ndarray) -> np.ndarray:
        """Raw probability per label of these examples, shape (len(idx), 3)."""

    def save(self, fitted: Any, folder: Path) -> dict[str, Any]:
        """Write the weights into `folder`; return extra model.json fields."""


@dataclass
class CVResult:
    """Out-of-fold predictions of the real examples, in the order of `real_idx`."""

    real_idx: np.ndarray
    cv_folds: np.ndarray
    raw: np.ndarray
    calibrated: np.ndarray
    decided: np.ndarray
    fold_seconds: dict[int, float] = field(default_factory=dict)


def label_matrix(examples: list[Example]) -> np.ndarray:
    return np.array([e.labels for e in examples], dtype=np.float64).reshape(-1, len(LABELS))


def cross_validate(
    examples: list[Example],
    learner: Learner,
    on_fold: Callable[[int, dict[str, Any]], None] | None = None,
) -> CVResult:
    """Fit per CV fold, score the held-out real examples, cross-fit the post-processing."""
    folds = np.array([e.fold for e in examples])
    real = folds != AUTHORED_FOLD
    cv = np.array([learner.cv_fold(int(f)) if f != AUTHORED_FOLD else AUTHORED_FOLD for f in folds])
    y = label_matrix(examples)
    raw = np.zeros((len(examples), len(LABELS)))
    seconds: dict[int, float] = {}
    for fold in sorted(set(cv[real].tolist())):
        test = np.flatnonzero(cv == fold)
        train = np.flatnonzero(cv != fold)  # authored (-1) are always training data
        start = time.perf_counter()
        fitted = learner.fit(train, tag=f"fold {fold}")
        raw[test] = learner.raw_scores(fitted, test)
        seconds[fold] = time.perf_counter() - start
        log.info(
            "%s fold %d: trained on %d, scored %d in %.1f s",
            learner.kind,
            fold,
            len(train),
            len(test),
            seconds[fold],
        )
        if on_fold:
            on_fold(fold, {"n_train": len(train), "n_test": len(test), "seconds": seconds[fold]})
    real_idx = np.flatnonzero(real)
    calibrated, decided = cross_fit(raw[real_idx], y[real_idx], cv[real_idx])
    return CVResult(real_idx, cv[real_idx], raw[real_idx], calibrated, decided, seconds)


def oof_rows(examples: list[Example], result: CVResult) -> list[dict[str, Any]]:
    """The OOF contract read by evaluation, active learning and label audits."""
    predicted = names_from_decisions(result.decided)
    rows = []
    for k, i in enumerate(result.real_idx):
        e = examples[i]
        rows.append(
            {
                "sentence_id": e.sentence_id,
                "article_id": e.article_id,
                "fold": e.fold,
                "cv_fold": int(result.cv_folds[k]),
                "source": e.source,
                "text": e.text,
                "labels": list(e.label_names),
                "raw": {n: float(result.raw[k, j]) for j, n in enumerate(LABELS)},
                "calibrated": {n: float(result.calibrated[k, j]) for j, n in enumerate(LABELS)},
                "predicted": predicted[k],
            }
        )
    return rows


# --- model folder ------------------------------------------------------------------------


def model_card(meta: dict[str, Any]) -> str:
    """README.md of a model folder, from its model.json."""
    ev = meta["evaluation"]
    seeds = ev["leave_seeds_out"]
    lines = [
        f"# claims model `{meta['name']}` ({meta['kind']})",
        "",
        f"Tags each sentence with the claims it makes: {', '.join(meta['labels'])}; "
        "a sentence with none of them is `unrelated`.",
        "",
        f"- created: {meta['created_at']}",
        f"- registry: `{meta.get('registered_model')}` version {meta.get('version')}, "
        f"MLflow run `{meta.get('mlflow_run_id')}`",
        f"- trained on {meta['data']['real_sentences']} real and "
        f"{meta['data']['authored_sentences']} authored sentences",
        f"- weights: `{meta['weights']}`; load with `pipeline.models.load_model(path)`",
        "",
        "## Evaluation (out-of-fold, real sentences only)",
        "",
        f"**{AUTHORED_NOTE}**",
        "",
        f"Cross-validated over {meta['data']['cv_folds']} grouped folds (articles sharing a "
        "sentence stay together); calibration and thresholds for each fold were fitted on the "
        "other folds.",
        "",
        "| label | precision | recall | F1 | ROC-AUC | AP | ECE | support |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in ev["per_label"].items():

        def fmt(x: Any) -> str:
            return "-" if x is None else f"{x:.3f}"

        lines.append(
            f"| {name} | {fmt(v['precision'])} | {fmt(v['recall'])} | {fmt(v['f1'])} | "
            f"{fmt(v.get('roc_auc'))} | {fmt(v.get('average_precision'))} | "
            f"{fmt(v.get('ece'))} | {v['support']} |"
        )
    lines += [
        "",
        f"macro-F1 (4 labels) **{ev['macro_f1']:.3f}**, micro-F1 {ev['micro_f1']:.3f}, "
        f"subset accuracy {ev['subset_accuracy']:.3f}, Hamming loss {ev['hamming_loss']:.3f} "
        f"on {ev['sentences']} sentences.",
        "",
        f"Leave-seeds-out ({seeds['sentences']} sentences of the seed articles): macro-F1 "
        f"{seeds['macro_f1']:.3f}, micro-F1 {seeds['micro_f1']:.3f}.",
        "",
        "## Decision rule",
        "",
        "Scores are Platt-calibrated per label; a label is predicted when its calibrated "
        "score reaches its threshold:",
        "",
        *[f"- {n}: {t:.3f}" for n, t in meta["thresholds"].items()],
        "",
        "## Training params",
        "",
        "```",
        *[f"{k}: {v}" for k, v in meta["training"].items()],
        "```",
        "",
    ]
    return "\n".join(lines)


def save_folder(
    learner: Learner, fitted: Any, folder: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write weights, model.json and README.md into a fresh folder, then swap it in."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    meta = {**meta, **learner.save(fitted, tmp)}
    write_meta(tmp, meta)
    (tmp / CARD).write_text(model_card(meta), encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return meta


# --- the stage -------------------------------------------------------------------------------


def run_training(
    params: Params, name: str, make_learner: Callable[[Params, list[Example]], Learner]
) -> dict[str, Any]:
    """Cross-validate, write OOF, fit the final model, save its folder and log it to MLflow."""
    from pipeline import tracking
    from pipeline.evaluate import flat_metrics, oof_metrics, oof_path, write_oof

    stage_start = time.perf_counter()
    examples = load_examples(params.path("dataset_dir"))
    learner = make_learner(params, examples)
    n_real = sum(e.fold != AUTHORED_FOLD for e in examples)
    hashes = tracking.input_hashes(params)
    tags = tracking.run_tags(params, len(examples), hashes)
    settings = learner.settings()
    with tracking.parent_run(params, name, tags) as run:
        tracking.mlflow.log_params(
            {
                **{f"{name}.{k}": v for k, v in settings.items()},
                **tracking.flat_params("dataset", params.dataset),
            }
        )
        fold_runs: dict[int, str] = {}

        def on_fold(fold: int, info: dict[str, Any]) -> None:
            with tracking.mlflow.start_run(
                run_name=f"{name}-fold{fold}", nested=True, tags={"fold": str(fold)}
            ) as child:
                tracking.mlflow.log_params(
                    {"fold": fold, "n_train": info["n_train"], "n_test": info["n_test"]}
                )
                tracking.mlflow.log_metric("fit_and_score_seconds", info["seconds"])
                fold_runs[fold] = child.info.run_id

        result = cross_validate(examples, learner, on_fold)
        rows = oof_rows(examples, result)
        write_oof(oof_path(params, name), rows)
        figures = oof_metrics(rows, params.evaluate.ece_bins, params.dataset.seed_prefix)
        tracking.log_metrics(flat_metrics(figures))
        for fold, run_id in fold_runs.items():
            fold_rows = [r for r in rows if r["cv_fold"] == fold]
            fold_figures = oof_metrics(
                fold_rows, params.evaluate.ece_bins, params.dataset.seed_prefix
            )
            fold_figures.pop("leave_seeds_out")
            tracking.log_metrics(flat_metrics(fold_figures), run_id=run_id)

        start = time.perf_counter()
        fitted = learner.fit(np.arange(len(examples)), tag="final")
        final_seconds = time.perf_counter() - start
        post: PostProcess = fit_postprocess(result.raw, label_matrix(examples)[result.real_idx])
        calibration = post.to_dict()
        thresholds = calibration.pop("thresholds")
        meta = {
            "name": name,
            "kind": learner.kind,
            "labels": list(LABELS),
            "thresholds": thresholds,
            "calibration": calibration,
            "version": None,
            "registered_model": params.tracking.registered_model,
            "max_length": 0,
            "weights": "",
            "training": settings,
            "data": {
                "real_sentences": n_real,
                "authored_sentences": len(examples) - n_real,
                "cv_folds": len(result.fold_seconds),
                "note": AUTHORED_NOTE,
            },
            "inputs_sha256": hashes,
            "git_commit": tags["git_commit"],
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mlflow_run_id": run.info.run_id,
            "timing_seconds": {
                "folds": {str(k): round(v, 1) for k, v in result.fold_seconds.items()},
                "final_fit": round(final_seconds, 1),
            },
            "evaluation": figures,
        }
        folder = params.path("models_dir") / name
        meta = save_folder(learner, fitted, folder, meta)
        tracking.mlflow.log_metric("final_fit_seconds", final_seconds)
        _, version = tracking.log_model(folder, params)
        meta["version"] = int(version)
        meta["timing_seconds"]["stage"] = round(time.perf_counter() - stage_start, 1)
        write_meta(folder, meta)
        (folder / CARD).write_text(model_card(meta), encoding="utf-8")
        tracking.mlflow.log_metric("stage_seconds", meta["timing_seconds"]["stage"])
    log.info(
        "train %s: OOF macro-F1 %.3f (seeds %.3f), version %s, %.0f s",
        name,
        figures["macro_f1"],
        figures["leave_seeds_out"]["macro_f1"],
        version,
        meta["timing_seconds"]["stage"],
    )
    return meta
