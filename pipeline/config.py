"""Typed configuration, loaded once from params.yaml.

Every path the pipeline uses is declared in params.yaml (and templated from
there into dvc.yaml); code reads it from here and never spells it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = "params.yaml"
LABELS: tuple[str, ...] = ("control", "casualty", "heritage")
UNRELATED = "unrelated"
ALL_LABELS: tuple[str, ...] = (*LABELS, UNRELATED)
MODEL_KINDS: tuple[str, ...] = ("tfidf", "embed", "transformer")
POS_WEIGHTS: tuple[str, ...] = ("none", "sqrt", "balanced")


class ConfigError(ValueError):
    """params.yaml is missing a key or holds a value of the wrong kind."""


@dataclass(frozen=True)
class PathsConfig:
    """Where every input and output lives, relative to the project root."""

    articles_dir: str = "data/articles"
    """Folders of article files (seeds and labeling batches); ids are relative to it."""
    corpus_csv: str = "data/corpus/fakes-pool.csv"
    """The FA-KES pool (CC BY 4.0, see data/corpus/README.md)."""
    articles: str = "data/articles.jsonl"
    """Article records written by the segment stage."""
    sentences: str = "data/sentences.jsonl"
    """Sentence records written by the segment stage."""
    labels: str = "labels/sentences.jsonl"
    """Hand labels of real sentences (seed, pool, imported)."""
    authored: str = "labels/authored.jsonl"
    """Sentences written by the team for training only, never for evaluation."""
    second_annotation: str = "labels/second_annotation.jsonl"
    """Both annotators' labels on the double-annotated sentences."""
    labels_check: str = "data/labels_check.json"
    """Written by `labels check` when the label files are clean; gates the dataset stage."""
    labels_stats: str = "metrics/labels.json"
    """Label counts and agreement, a DVC metric."""
    dataset_dir: str = "data/dataset"
    """The labeled dataset with folds (a Hugging Face DatasetDict saved to disk)."""
    dataset_summary: str = "data/dataset_summary.json"
    """Fold sizes and label counts per fold."""
    oof_dir: str = "data/oof"
    """Out-of-fold predictions, `<model>.jsonl`, read by evaluation and label audits."""
    models_dir: str = "models"
    """Self-describing model folders, `<model>/`."""
    champion: str = "models/champion.json"
    """Which model won (best OOF macro-F1) and its registry version."""
    metrics_dir: str = "metrics"
    """DVC metrics: `<model>.json` and `summary.json`."""
    plots_dir: str = "plots"
    """DVC plot data (CSV) and their offline renderings (PNG)."""
    mlflow_db: str = "mlflow.db"
    """SQLite store of MLflow when MLFLOW_TRACKING_URI is unset."""
    mlflow_artifacts: str = "mlartifacts"
    """MLflow artifact root for that store."""
    new_dir: str = "data/new"
    predictions_dir: str = "predictions"
    guidelines: str = "labels/GUIDELINES.md"
    """The labeling guidelines; `claims label` shows their definitions on `?`."""
    label_work: str = "labels/work"
    """Labeling session state (skipped sentences, cached model scores); not versioned."""


@dataclass(frozen=True)
class SegmentConfig:
    """Sentence segmentation."""

    language: str = "en"
    """pysbd language code."""
    min_chars: int = 2
    """Fragments shorter than this (stray punctuation) are merged into a neighbour."""

    def __post_init__(self) -> None:
        if self.min_chars < 1:
            raise ConfigError(f"segment.min_chars must be >= 1, got {self.min_chars}")


@dataclass(frozen=True)
class ReaderConfig:
    """Reading article sources."""

    max_bytes: int = 20_000_000
    """Files larger than this are refused, not read."""

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ConfigError(f"reader.max_bytes must be > 0, got {self.max_bytes}")


@dataclass(frozen=True)
class DatasetConfig:
    """Joining labels to sentences and assigning cross-validation folds."""

    n_folds: int = 3
    """Folds of the real sentences; every model is cross-validated on the same ones."""
    seed: int = 20161211
    """Seeds the order in which article groups are dealt to folds."""
    seed_prefix: str = "seeds/"
    """Article ids starting with this are the seed articles: one group, one fold."""

    def __post_init__(self) -> None:
        if self.n_folds < 2:
            raise ConfigError(f"dataset.n_folds must be >= 2, got {self.n_folds}")
        if not self.seed_prefix:
            raise ConfigError("dataset.seed_prefix must not be empty")


@dataclass(frozen=True)
class TfidfConfig:
    """TF-IDF (word and character n-grams) + one-vs-rest logistic regression."""

    word_ngram_max: int = 2
    """Word n-grams from 1 to this."""
    char_ngram_min: int = 3
    """Shortest character n-gram (char_wb analyzer)."""
    char_ngram_max: int = 5
    """Longest character n-gram (char_wb analyzer)."""
    min_df: int = 1
    """Ignore n-grams seen in fewer training sentences than this."""
    sublinear_tf: bool = True
    """Use 1 + log(tf) instead of raw term counts."""
    C: float = 4.0
    """Inverse regularisation strength of each logistic regression."""
    max_iter: int = 2000
    """Solver iteration cap."""

    def __post_init__(self) -> None:
        if self.word_ngram_max < 1:
            raise ConfigError(f"tfidf.word_ngram_max must be >= 1, got {self.word_ngram_max}")
        if not 1 <= self.char_ngram_min <= self.char_ngram_max:
            raise ConfigError(
                "tfidf: expected 1 <= char_ngram_min <= char_ngram_max, got "
                f"{self.char_ngram_min} and {self.char_ngram_max}"
            )
        if self.min_df < 1:
            raise ConfigError(f"tfidf.min_df must be >= 1, got {self.min_df}")
        if self.C <= 0 or self.max_iter < 1:
            raise ConfigError(
                f"tfidf: C must be > 0 and max_iter >= 1, got {self.C}, {self.max_iter}"
            )


@dataclass(frozen=True)
class EmbedConfig:
    """Frozen MiniLM sentence embeddings + one-vs-rest logistic regression."""

    max_length: int = 128
    """Tokens per sentence fed to the encoder (longer sentences are truncated)."""
    batch_size: int = 64
    """Sentences per encoder batch."""
    C: float = 1.0
    """Inverse regularisation strength of each logistic regression."""
    max_iter: int = 2000
    """Solver iteration cap."""

    def __post_init__(self) -> None:
        if self.max_length < 8 or self.batch_size < 1:
            raise ConfigError(
                "embed: max_length must be >= 8 and batch_size >= 1, got "
                f"{self.max_length}, {self.batch_size}"
            )
        if self.C <= 0 or self.max_iter < 1:
            raise ConfigError(
                f"embed: C must be > 0 and max_iter >= 1, got {self.C}, {self.max_iter}"
            )


@dataclass(frozen=True)
class TransformerConfig:
    """Fine-tuning MiniLM with a 3-label multi-label head (BCE loss)."""

    max_length: int = 64
    """Tokens per sentence (about 2% of sentences are longer and get truncated)."""
    epochs: int = 3
    """Passes over the training sentences, in every CV fold and in the final fit."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate (5e-5 learned heritage far worse in a one-fold trial)."""
    batch_size: int = 16
    """Training sentences per step."""
    eval_batch_size: int = 64
    """Sentences per inference batch."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_ratio: float = 0.1
    """Share of steps with a linearly rising learning rate; it then decays linearly to 0."""
    seed: int = 20161211
    """Seeds the head's initialisation, dropout and the batch order."""
    cv_folds: int = 3
    """CV folds for the transformer: must divide dataset.n_folds (fold f -> f % cv_folds)."""
    max_steps: int = 0
    """Stop each fit after this many steps; 0 = no cap (smoke tests set 1)."""
    pos_weight: str = "sqrt"
    """BCE weight of positives per label from the training labels: none, sqrt (sqrt(neg/pos)) or
    balanced (neg/pos). Heritage is rare (about 1.5% of real sentences) and is barely learned
    without it."""
    freeze_word_embeddings: bool = False
    """Keep MiniLM's 30,522 x 384 word-embedding matrix (half the weights) fixed while fine-tuning:
    about a tenth less time per step, but it scored 0.811 OOF macro-F1 against 0.826 on the 6,482
    labels (scripts/cv_experiment.py), so it is off."""
    bf16: bool = True
    """Train the forward pass under bfloat16 autocast on CPU (weights, optimizer and inference stay
    float32): about a third less time per step on CPUs with AVX512-BF16, as this machine has."""
    dedupe: bool = True
    """Train on each distinct (normalised sentence, labels) pair once: wire copy repeats about 7%
    of the labeled sentences verbatim, and repeating them only reweights them."""

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ConfigError(f"transformer.max_length must be >= 8, got {self.max_length}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(
                "transformer: epochs, batch_size and eval_batch_size must be >= 1, got "
                f"{self.epochs}, {self.batch_size}, {self.eval_batch_size}"
            )
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ConfigError(
                "transformer: expected learning_rate > 0 and weight_decay >= 0, got "
                f"{self.learning_rate}, {self.weight_decay}"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(
                f"transformer.warmup_ratio must be in [0, 1), got {self.warmup_ratio}"
            )
        if self.pos_weight not in POS_WEIGHTS:
            raise ConfigError(
                f"transformer.pos_weight must be one of {', '.join(POS_WEIGHTS)}, "
                f"got {self.pos_weight!r}"
            )
        if self.cv_folds < 2 or self.max_steps < 0:
            raise ConfigError(
                "transformer: cv_folds must be >= 2 and max_steps >= 0, got "
                f"{self.cv_folds}, {self.max_steps}"
            )


@dataclass(frozen=True)
class EvaluateConfig:
    """Scoring the out-of-fold predictions and choosing the champion."""

    models: list[str] = field(default_factory=lambda: ["tfidf", "embed", "transformer"])
    """Models to evaluate; each needs its OOF file and model folder."""
    ece_bins: int = 10
    """Equal-width bins of the expected calibration error and the reliability diagram."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(MODEL_KINDS))
        if not self.models or unknown:
            raise ConfigError(
                f"evaluate.models: expected a non-empty list of {', '.join(MODEL_KINDS)}, "
                f"got {self.models}"
            )
        if self.ece_bins < 2:
            raise ConfigError(f"evaluate.ece_bins must be >= 2, got {self.ece_bins}")


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow experiment and model registry names."""

    experiment: str = "claims"
    """MLflow experiment holding every training run."""
    registered_model: str = "claims"
    """Registry name; each final model becomes a version of it."""
    champion_alias: str = "champion"
    """Registry alias set on the version with the best OOF macro-F1."""

    def __post_init__(self) -> None:
        for name in ("experiment", "registered_model", "champion_alias"):
            if not getattr(self, name):
                raise ConfigError(f"tracking.{name} must not be empty")


STRATEGIES: tuple[str, ...] = ("uncertain", "disagree", "random", "audit")
AUDIT_METHODS: tuple[str, ...] = ("cleanlab", "margin")


@dataclass(frozen=True)
class LabelConfig:
    """The labeling loop: `claims label` and `claims labels export`."""

    strategy: str = "uncertain"
    """Which sentence next: uncertain, disagree, random or audit (see pipeline/strategies.py)."""
    limit: int = 200
    """Sentences per session or export; 0 = every candidate."""
    seed: int = 20161211
    """Seeds the random strategy."""
    audit_method: str = "cleanlab"
    """How `audit` finds likely label errors: cleanlab (multilabel find_label_issues) or margin."""
    audit_margin: float = 0.3
    """margin method: flag a label whose OOF score lies at least this far across its threshold."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"label.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.audit_method not in AUDIT_METHODS:
            raise ConfigError(
                f"label.audit_method must be one of {', '.join(AUDIT_METHODS)}, "
                f"got {self.audit_method!r}"
            )
        if self.limit < 0 or not 0 < self.audit_margin < 1:
            raise ConfigError(
                "label: expected limit >= 0 and 0 < audit_margin < 1, got "
                f"{self.limit}, {self.audit_margin}"
            )


@dataclass(frozen=True)
class OnnxConfig:
    """Stage `export_onnx`: the transformer as ONNX for fast prediction without torch."""

    opset: int = 17
    """ONNX opset of the TorchScript exporter."""
    min_agreement: float = 0.995
    """A variant becomes the default only if its labels equal fp32's on this share of sentences."""
    check_sentences: int = 3000
    """How many distinct unlabeled pool sentences to compare the variants on; 0 = all."""

    def __post_init__(self) -> None:
        if not 0 < self.min_agreement <= 1 or self.check_sentences < 0 or self.opset < 11:
            raise ConfigError(
                "onnx: expected 0 < min_agreement <= 1, check_sentences >= 0, opset >= 11; got "
                f"{self.min_agreement}, {self.check_sentences}, {self.opset}"
            )


@dataclass(frozen=True)
class Params:
    """All of params.yaml."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    onnx: OnnxConfig = field(default_factory=OnnxConfig)
    root: Path = Path(".")
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def path(self, name: str) -> Path:
        """Absolute path of a declared path key (`paths.<name>` in params.yaml)."""
        return self.root / getattr(self.paths, name)


def _build(cls: type, section: str, data: Any) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"params.yaml: '{section}' must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown key(s) in '{section}': {', '.join(unknown)}; "
            f"expected some of: {', '.join(known)}"
        )
    return cls(**data)


SECTIONS: dict[str, type] = {
    "paths": PathsConfig,
    "segment": SegmentConfig,
    "reader": ReaderConfig,
    "dataset": DatasetConfig,
    "tfidf": TfidfConfig,
    "embed": EmbedConfig,
    "transformer": TransformerConfig,
    "evaluate": EvaluateConfig,
    "tracking": TrackingConfig,
    "label": LabelConfig,
    "onnx": OnnxConfig,
}


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Load and validate params.yaml; sections not typed here are kept in `raw`."""
    path = Path(path)
    if not path.exists():
        return Params(root=path.parent.resolve())
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    built = {name: _build(cls, name, data.get(name)) for name, cls in SECTIONS.items()}
    return Params(**built, root=path.parent.resolve(), raw=data)


@lru_cache(maxsize=8)
def cached_params(path: str = PARAMS_FILE) -> Params:
    """The params of one run, loaded once."""
    return load_params(path)
