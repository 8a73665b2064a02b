"""Stage `evaluate`: figures of every model from its out-of-fold predictions; the champion.

Only real sentences are scored: authored ones were training-only and are not
in the OOF files at all (the trainers never test them; this stage checks).
Every figure is computed from cross-fitted OOF predictions: each sentence was
scored by a model that never saw its article group, with calibration and
thresholds fitted on the other folds. The seed articles form one group in one
fold, so their figures are a leave-seeds-out test.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import ALL_LABELS, LABELS, UNRELATED, Params
from pipeline.dataset import AUTHORED, AUTHORED_NOTE
from pipeline.models import expected_calibration_error, read_meta, reliability
from pipeline.schema import RecordError, atomic_open, iter_jsonl, write_jsonl

log = logging.getLogger(__name__)

OOF_FIELDS = (
    "sentence_id",
    "article_id",
    "fold",
    "source",
    "text",
    "labels",
    "raw",
    "calibrated",
    "predicted",
)
SUMMARY_KEYS = ("macro_f1", "micro_f1", "subset_accuracy", "hamming_loss")


class EvaluationError(RecordError):
    """OOF predictions missing, malformed, or holding sentences they must not hold."""


# --- OOF files ----------------------------------------------------------------------


def oof_path(params: Params, model: str) -> Path:
    return params.path("oof_dir") / f"{model}.jsonl"


def write_oof(path: Path, rows: list[dict[str, Any]]) -> int:
    return write_jsonl(path, rows)


def read_oof(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no OOF predictions; train that model first")
    rows = []
    for lineno, row in iter_jsonl(path):
        missing = [f for f in OOF_FIELDS if not isinstance(row, dict) or f not in row]
        if missing:
            raise EvaluationError(f"{path}:{lineno}: missing field(s): {', '.join(missing)}")
        if row["source"] == AUTHORED:
            raise EvaluationError(
                f"{path}:{lineno}: authored sentence {row['sentence_id']} in OOF predictions; "
                "authored sentences are training-only"
            )
        rows.append(row)
    return rows


def arrays(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True multi-hot, calibrated scores and decisions, shape (n, 3) each."""
    y = np.array([[n in r["labels"] for n in LABELS] for r in rows], dtype=bool).reshape(-1, 3)
    scores = np.array([[r["calibrated"][n] for n in LABELS] for r in rows], dtype=float)
    decided = np.array([[n in r["predicted"] for n in LABELS] for r in rows], dtype=bool)
    return y, scores.reshape(-1, 3), decided.reshape(-1, 3)


# --- figures ----------------------------------------------------------------------------


def _prf(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    tp = int((y & pred).sum())
    fp = int((~y & pred).sum())
    fn = int((y & ~pred).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": int(y.sum()),
        "predicted": int(pred.sum()),
    }


def _ranking(y: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC and average precision; None when a class is absent (undefined, not 0)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if y.all() or not y.any():
        return {"roc_auc": None, "average_precision": None}
    return {
        "roc_auc": float(roc_auc_score(y, score)),
        "average_precision": float(average_precision_score(y, score)),
    }


def compute_metrics(
    y: np.ndarray, scores: np.ndarray, decided: np.ndarray, ece_bins: int
) -> dict[str, Any]:
    """Per-label and overall figures of one set of sentences.

    macro-F1 averages control, casualty, heritage and unrelated (no claim
    predicted); micro-F1, subset accuracy and Hamming loss are over the three
    claim labels.
    """
    y, decided = np.asarray(y, dtype=bool), np.asarray(decided, dtype=bool)
    per_label: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(LABELS):
        per_label[name] = {
            **_prf(y[:, j], decided[:, j]),
            **_ranking(y[:, j], scores[:, j]),
            "ece": expected_calibration_error(scores[:, j], y[:, j], ece_bins) if len(y) else None,
        }
    per_label[UNRELATED] = _prf(~y.any(axis=1), ~decided.any(axis=1))
    tp, fp, fn = (y & decided).sum(), (~y & decided).sum(), (y & ~decided).sum()
    n = len(y)
    return {
        "sentences": n,
        "macro_f1": float(np.mean([per_label[name]["f1"] for name in ALL_LABELS])),
        "micro_f1": float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0,
        "subset_accuracy": float((y == decided).all(axis=1).mean()) if n else 0.0,
        "hamming_loss": float((y != decided).mean()) if n else 0.0,
        "per_label": per_label,
    }


def oof_metrics(rows: Sequence[dict[str, Any]], ece_bins: int, seed_prefix: str) -> dict[str, Any]:
    """Figures of all real OOF sentences, and of the seed articles alone (leave-seeds-out)."""
    figures = compute_metrics(*arrays(rows), ece_bins)
    seeds = [r for r in rows if r["article_id"].startswith(seed_prefix)]
    figures["leave_seeds_out"] = {
        "note": "seed articles only; they form one group in one fold, so no model that "
        "scored them saw any seed sentence",
        "folds": sorted({r["fold"] for r in seeds}),
        **compute_metrics(*arrays(seeds), ece_bins),
    }
    return figures


def flat_metrics(figures: dict[str, Any]) -> dict[str, float | None]:
    """The MLflow names, the same for every model: macro_f1, control_f1, seeds_macro_f1, ..."""
    flat: dict[str, float | None] = {}
    for prefix, part in (("", figures), ("seeds_", figures.get("leave_seeds_out"))):
        if not part:
            continue
        for key in SUMMARY_KEYS:
            flat[f"{prefix}{key}"] = part[key]
        for name, values in part["per_label"].items():
            for key, value in values.items():
                if key not in ("support", "predicted"):
                    flat[f"{prefix}{name}_{key}"] = value
    return flat


# --- plots ---------------------------------------------------------------------------------


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with atomic_open(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def plot_data(rows: Sequence[dict[str, Any]], ece_bins: int) -> dict[str, dict[str, Any]]:
    """Per label: PR curve points, per-sentence confusion pairs, reliability bins."""
    from sklearn.metrics import precision_recall_curve

    y, scores, decided = arrays(rows)
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(LABELS):
        if y[:, j].any():
            precision, recall, thresholds = precision_recall_curve(y[:, j], scores[:, j])
            pr = [
                [float(r), float(p), float(t)]
                for p, r, t in zip(precision[:-1], recall[:-1], thresholds, strict=True)
            ]
        else:
            pr = []
        other = f"not {name}"
        confusion = [
            [name if a else other, name if p else other]
            for a, p in zip(y[:, j], decided[:, j], strict=True)
        ]
        out[name] = {
            "pr": pr,
            "confusion": confusion,
            "reliability": reliability(scores[:, j], y[:, j], ece_bins),
        }
    return out


def write_plot_data(plots_dir: Path, model: str, data: dict[str, dict[str, Any]]) -> None:
    for name, parts in data.items():
        _write_csv(
            plots_dir / "pr" / f"{model}_{name}.csv",
            ["recall", "precision", "threshold"],
            parts["pr"],
        )
        _write_csv(
            plots_dir / "confusion" / f"{model}_{name}.csv",
            ["actual", "predicted"],
            parts["confusion"],
        )
        bins = [
            [
                b["bin"],
                b["lower"],
                b["upper"],
                b["count"],
                b["mean_predicted"],
                b["fraction_positive"],
            ]
            for b in parts["reliability"]
            if b["count"]
        ]
        _write_csv(
            plots_dir / "reliability" / f"{model}_{name}.csv",
            ["bin", "lower", "upper", "count", "mean_predicted", "fraction_positive"],
            bins,
        )


def render_png(
    path: Path, model: str, data: dict[str, dict[str, Any]], figures: dict[str, Any]
) -> None:
    """One offline image per model: confusion, precision-recall and reliability per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(LABELS), figsize=(4.2 * len(LABELS), 12), squeeze=False)
    for j, name in enumerate(LABELS):
        part, stats = data[name], figures["per_label"][name]
        other = f"not {name}"
        matrix = np.zeros((2, 2), dtype=int)
        for actual, predicted in part["confusion"]:
            matrix[int(actual == other), int(predicted == other)] += 1
        ax = axes[0][j]
        ax.imshow(matrix, cmap="Blues")
        for (r, c), v in np.ndenumerate(matrix):
            dark = v > matrix.max() / 2
            ax.text(c, r, str(v), ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks([0, 1], [name, other])
        ax.set_yticks([0, 1], [name, other])
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title(f"{name}: F1 {stats['f1']:.3f}")
        ax = axes[1][j]
        if part["pr"]:
            recall, precision = zip(*[(r, p) for r, p, _ in part["pr"]], strict=True)
            ax.step(recall, precision, where="post")
        ap = stats["average_precision"]
        ax.set_title(f"{name}: precision-recall (AP {ap:.3f})" if ap is not None else name)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax = axes[2][j]
        bins = [b for b in part["reliability"] if b["count"]]
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.plot(
            [b["mean_predicted"] for b in bins], [b["fraction_positive"] for b in bins], marker="o"
        )
        ax.set_title(f"{name}: reliability (ECE {stats['ece']:.3f})")
        ax.set_xlabel("mean calibrated score")
        ax.set_ylabel("share positive")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.suptitle(
        f"{model}: out-of-fold, {figures['sentences']} real sentences, "
        f"macro-F1 {figures['macro_f1']:.3f} (authored sentences training-only)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- the stage ----------------------------------------------------------------------------------


def choose_champion(summary: dict[str, dict[str, Any]]) -> str:
    """Best OOF macro-F1; ties go to the model listed first."""
    return max(summary, key=lambda m: summary[m]["macro_f1"])


def _dump(path: Path, data: dict[str, Any]) -> None:
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def run_evaluate(params: Params) -> dict[str, Any]:
    """Metrics, plots and the champion for every model in `evaluate.models`."""
    cfg = params.evaluate
    plots_dir, metrics_dir = params.path("plots_dir"), params.path("metrics_dir")
    summary: dict[str, dict[str, Any]] = {}
    metas: dict[str, dict[str, Any]] = {}
    for model in cfg.models:
        rows = read_oof(oof_path(params, model))
        metas[model] = read_meta(params.path("models_dir") / model)
        figures = oof_metrics(rows, cfg.ece_bins, params.dataset.seed_prefix)
        data = plot_data(rows, cfg.ece_bins)
        write_plot_data(plots_dir, model, data)
        render_png(plots_dir / "png" / f"{model}.png", model, data, figures)
        _dump(metrics_dir / f"{model}.json", {"model": model, "note": AUTHORED_NOTE, **figures})
        seeds = figures["leave_seeds_out"]
        summary[model] = {
            **{k: figures[k] for k in SUMMARY_KEYS},
            **{f"{n}_f1": figures["per_label"][n]["f1"] for n in ALL_LABELS},
            "seeds_macro_f1": seeds["macro_f1"],
            "sentences": figures["sentences"],
            "version": metas[model].get("version"),
        }
        log.info(
            "evaluate: %s macro-F1 %.3f (seeds %.3f)", model, figures["macro_f1"], seeds["macro_f1"]
        )
    best = choose_champion(summary)
    champion = {
        "model": best,
        "registered_model": params.tracking.registered_model,
        "version": metas[best].get("version"),
        "macro_f1": summary[best]["macro_f1"],
        "alias": params.tracking.champion_alias,
        "chosen_by": "best out-of-fold macro-F1 over control, casualty, heritage, unrelated",
    }
    _dump(
        metrics_dir / "summary.json", {"note": AUTHORED_NOTE, "champion": best, "models": summary}
    )
    _dump(params.path("champion"), champion)
    _update_registry(params, best, champion, metas, plots_dir, metrics_dir)
    log.info("evaluate: champion %s (macro-F1 %.3f)", best, champion["macro_f1"])
    return champion


def _update_registry(
    params: Params,
    best: str,
    champion: dict[str, Any],
    metas: dict[str, dict[str, Any]],
    plots_dir: Path,
    metrics_dir: Path,
) -> None:
    from pipeline import tracking

    tracking.setup(params)
    for model, meta in metas.items():
        run_id = meta.get("mlflow_run_id")
        if run_id:
            tracking.log_artifacts(
                run_id,
                [metrics_dir / f"{model}.json", plots_dir / "png" / f"{model}.png"],
                "evaluation",
            )
    if champion["version"] is None:
        log.warning("evaluate: %s has no registry version; champion alias not set", best)
        return
    tracking.set_champion(params, str(champion["version"]), champion["macro_f1"])
