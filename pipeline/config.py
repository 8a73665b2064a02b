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
    oof_dir: str = "data/oof"
    models_dir: str = "models"
    metrics_dir: str = "metrics"
    plots_dir: str = "plots"
    new_dir: str = "data/new"
    predictions_dir: str = "predictions"


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
class Params:
    """All of params.yaml."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
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
