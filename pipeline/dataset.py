"""Stage `dataset`: labels joined to sentences, with grouped cross-validation folds.

Folds are dealt by article group, never by sentence: articles that share any
sentence (after `normalize_text`) are one group (union-find), so the same
text is never on both sides of a split. The seed articles form one group of
their own making, which gives a leave-seeds-out figure for free. Authored
sentences get fold -1: they are training data in every fold and never tested.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.config import ALL_LABELS, LABELS, UNRELATED, DatasetConfig, Params
from pipeline.schema import LabeledSentence, RecordError, Sentence, atomic_open, read_records
from pipeline.segment import normalize_text

log = logging.getLogger(__name__)

AUTHORED = "authored"
AUTHORED_FOLD = -1
REAL_SPLIT = "real"
AUTHORED_SPLIT = "authored"
AUTHORED_NOTE = (
    "Authored sentences (source 'authored', written by the team) are training-only: "
    "they are in no test fold and in no evaluation figure."
)


class DatasetError(RecordError):
    """Labels that cannot be joined to the sentences they claim to label."""


@dataclass(frozen=True)
class Example:
    """One labeled sentence ready for training: multi-hot labels over LABELS and its fold."""

    sentence_id: str
    article_id: str
    text: str
    labels: list[float]
    label_names: list[str]
    source: str
    fold: int


def multi_hot(label_names: list[str], where: str) -> list[float]:
    """[control, casualty, heritage] as 0/1 floats; `unrelated` is all zeros."""
    unknown = [n for n in label_names if n not in ALL_LABELS]
    if not label_names or unknown:
        raise DatasetError(
            f"{where}: labels must be one or more of {', '.join(ALL_LABELS)}, got {label_names}"
        )
    if UNRELATED in label_names and len(set(label_names)) > 1:
        raise DatasetError(f"{where}: '{UNRELATED}' cannot go with other labels, got {label_names}")
    return [1.0 if name in label_names else 0.0 for name in LABELS]


def claim_names(hot: Iterable[float]) -> list[str]:
    """Label names of a multi-hot vector; `[unrelated]` when no claim is set."""
    names = [name for name, v in zip(LABELS, hot, strict=True) if v >= 0.5]
    return names or [UNRELATED]


# --- grouping and folds -------------------------------------------------------


def group_articles(texts_by_article: dict[str, list[str]], seed_prefix: str) -> dict[str, str]:
    """Map each article to its group: articles sharing a normalised sentence are joined.

    All articles whose id starts with `seed_prefix` are joined into one group too.
    A group is named by its smallest article id, so names do not depend on order.
    """
    parent = {a: a for a in texts_by_article}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first_seen: dict[str, str] = {}
    for article in sorted(texts_by_article):
        for text in texts_by_article[article]:
            key = normalize_text(text)
            if key in first_seen:
                union(first_seen[key], article)
            else:
                first_seen[key] = article
    seeds = sorted(a for a in texts_by_article if a.startswith(seed_prefix))
    for other in seeds[1:]:
        union(seeds[0], other)
    return {a: find(a) for a in texts_by_article}


def assign_folds(group_sizes: dict[str, int], n_folds: int, seed: int) -> dict[str, int]:
    """Deal groups to folds, largest first, each to the currently smallest fold.

    Ties (equal group sizes, equally full folds) are broken by a seeded shuffle,
    so the same seed always gives the same folds.
    """
    rng = random.Random(seed)
    groups = sorted(group_sizes)
    rng.shuffle(groups)
    groups.sort(key=lambda g: -group_sizes[g])  # stable: equal sizes keep the shuffled order
    fold_order = list(range(n_folds))
    rng.shuffle(fold_order)
    rank = {fold: i for i, fold in enumerate(fold_order)}
    load = [0] * n_folds
    folds: dict[str, int] = {}
    for group in groups:
        fold = min(range(n_folds), key=lambda f: (load[f], rank[f]))
        folds[group] = fold
        load[fold] += group_sizes[group]
    return folds


# --- joining ------------------------------------------------------------------


def join_real(
    sentences: dict[str, Sentence], labeled: list[LabeledSentence]
) -> list[tuple[LabeledSentence, Sentence]]:
    """Pair each real label with its sentence; ids must exist and texts must match."""
    seen: set[str] = set()
    missing: list[str] = []
    pairs = []
    for rec in labeled:
        if rec.source == AUTHORED:
            raise DatasetError(
                f"{rec.sentence_id}: source 'authored' belongs in the authored file, "
                "not among the real labels"
            )
        if rec.sentence_id in seen:
            raise DatasetError(f"{rec.sentence_id}: labeled twice")
        seen.add(rec.sentence_id)
        sentence = sentences.get(rec.sentence_id)
        if sentence is None:
            missing.append(rec.sentence_id)
            continue
        if rec.text != sentence.text:
            raise DatasetError(
                f"{rec.sentence_id}: label text no longer matches the sentence text "
                f"(label: {rec.text[:60]!r}, sentence: {sentence.text[:60]!r})"
            )
        if rec.article_id != sentence.article_id:
            raise DatasetError(
                f"{rec.sentence_id}: label says article {rec.article_id!r}, "
                f"the sentence is in {sentence.article_id!r}"
            )
        pairs.append((rec, sentence))
    if missing:
        raise DatasetError(
            f"{len(missing)} labeled sentence id(s) not in the sentences: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    return pairs


def authored_example(rec: LabeledSentence) -> Example:
    """An authored label as a training-only example (fold -1)."""
    return Example(
        sentence_id=rec.sentence_id,
        article_id=rec.article_id,
        text=rec.text,
        labels=multi_hot(rec.labels, rec.sentence_id),
        label_names=list(rec.labels),
        source=AUTHORED,
        fold=AUTHORED_FOLD,
    )


def build_examples(
    sentences: list[Sentence],
    labeled: list[LabeledSentence],
    authored: list[LabeledSentence],
    cfg: DatasetConfig,
) -> list[Example]:
    """Real examples with grouped folds, then authored examples with fold -1.

    An authored sentence whose text equals a real labeled sentence is dropped:
    training on it would put a test sentence in the training data.
    """
    by_id = {s.sentence_id: s for s in sentences}
    pairs = join_real(by_id, labeled)
    labeled_articles = {s.article_id for _, s in pairs}
    texts_by_article: dict[str, list[str]] = defaultdict(list)
    for s in sentences:
        if s.article_id in labeled_articles:
            texts_by_article[s.article_id].append(s.text)
    group_of = group_articles(dict(texts_by_article), cfg.seed_prefix)
    sizes = Counter(group_of[s.article_id] for _, s in pairs)
    fold_of = assign_folds(dict(sizes), cfg.n_folds, cfg.seed)

    examples = [
        Example(
            sentence_id=s.sentence_id,
            article_id=s.article_id,
            text=s.text,
            labels=multi_hot(rec.labels, rec.sentence_id),
            label_names=list(rec.labels),
            source=rec.source,
            fold=fold_of[group_of[s.article_id]],
        )
        for rec, s in pairs
    ]
    real_texts = {normalize_text(e.text) for e in examples}
    seen_ids = set(by_id) | {e.sentence_id for e in examples}
    dropped = 0
    for rec in authored:
        if rec.source != AUTHORED:
            raise DatasetError(
                f"{rec.sentence_id}: the authored file holds source 'authored' only, "
                f"got {rec.source!r}"
            )
        if rec.sentence_id in seen_ids:
            raise DatasetError(f"{rec.sentence_id}: authored id is already used")
        seen_ids.add(rec.sentence_id)
        if normalize_text(rec.text) in real_texts:
            dropped += 1
            log.warning("authored %s repeats a real labeled sentence; dropped", rec.sentence_id)
            continue
        examples.append(authored_example(rec))
    if dropped:
        log.warning("dataset: %d authored sentence(s) dropped as repeats of real ones", dropped)
    return examples


def summarize(examples: list[Example], cfg: DatasetConfig) -> dict[str, Any]:
    """Fold sizes and label counts per fold, for a reader and for the trainers' logs."""
    folds: dict[str, dict[str, Any]] = {}
    for fold in sorted({e.fold for e in examples}):
        rows = [e for e in examples if e.fold == fold]
        counts = Counter(n for e in rows for n in claim_names(e.labels))
        folds[str(fold)] = {
            "role": "train only (authored)" if fold == AUTHORED_FOLD else "cv fold",
            "sentences": len(rows),
            "articles": len({e.article_id for e in rows}),
            "labels": {name: counts.get(name, 0) for name in ALL_LABELS},
        }
    seed_folds = sorted({e.fold for e in examples if e.article_id.startswith(cfg.seed_prefix)})
    return {
        "n_folds": cfg.n_folds,
        "seed": cfg.seed,
        "real_sentences": sum(e.fold != AUTHORED_FOLD for e in examples),
        "authored_sentences": sum(e.fold == AUTHORED_FOLD for e in examples),
        "seed_fold": seed_folds[0] if len(seed_folds) == 1 else None,
        "folds": folds,
        "note": AUTHORED_NOTE,
    }


# --- storage ------------------------------------------------------------------


def _features():  # noqa: ANN202 - datasets is imported lazily
    from datasets import Features, List, Value

    return Features(
        {
            "text": Value("string"),
            "labels": List(Value("float32"), length=len(LABELS)),
            "label_names": List(Value("string")),
            "sentence_id": Value("string"),
            "article_id": Value("string"),
            "source": Value("string"),
            "fold": Value("int32"),
        }
    )


def save_dataset(examples: list[Example], path: Path) -> None:
    """A DatasetDict with splits `real` (folds >= 0) and `authored` (fold -1)."""
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    features = _features()

    def split(rows: list[Example]) -> Dataset:
        cols = {name: [asdict(e)[name] for e in rows] for name in features}
        return Dataset.from_dict(cols, features=features)

    dd = DatasetDict(
        {
            REAL_SPLIT: split([e for e in examples if e.fold != AUTHORED_FOLD]),
            AUTHORED_SPLIT: split([e for e in examples if e.fold == AUTHORED_FOLD]),
        }
    )
    if path.exists():
        shutil.rmtree(path)
    dd.save_to_disk(str(path))


def load_examples(path: Path) -> list[Example]:
    """Read back what `save_dataset` wrote (real first, then authored)."""
    from datasets import load_from_disk

    if not path.exists():
        raise FileNotFoundError(f"{path}: no dataset; run `claims dataset` first")
    dd = load_from_disk(str(path))
    examples: list[Example] = []
    for split in (REAL_SPLIT, AUTHORED_SPLIT):
        for row in dd[split]:
            examples.append(
                Example(
                    sentence_id=row["sentence_id"],
                    article_id=row["article_id"],
                    text=row["text"],
                    labels=[float(v) for v in row["labels"]],
                    label_names=list(row["label_names"]),
                    source=row["source"],
                    fold=int(row["fold"]),
                )
            )
    return examples


def run_dataset(params: Params) -> dict[str, Any]:
    """Read sentences and label files, write the dataset and its summary."""
    sentences = read_records(params.path("sentences"), Sentence)
    labeled = read_records(params.path("labels"), LabeledSentence)
    authored_path = params.path("authored")
    authored = read_records(authored_path, LabeledSentence) if authored_path.exists() else []
    examples = build_examples(sentences, labeled, authored, params.dataset)
    save_dataset(examples, params.path("dataset_dir"))
    summary = summarize(examples, params.dataset)
    with atomic_open(params.path("dataset_summary")) as fh:
        json.dump(summary, fh, indent=2)
        fh.write("\n")
    sizes = ", ".join(
        f"{k}: {v['sentences']}" for k, v in summary["folds"].items() if k != str(AUTHORED_FOLD)
    )
    log.info(
        "dataset: %d real sentences in folds (%s), %d authored (train only), seeds in fold %s",
        summary["real_sentences"],
        sizes,
        summary["authored_sentences"],
        summary["seed_fold"],
    )
    return summary
