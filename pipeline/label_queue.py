"""The labeling queue: candidate sentences, their model scores, and the strategy's order.

Scores are computed once per queue. A model's calibrated scores come, in this
order, from its out-of-fold predictions (`data/oof/<model>.jsonl`, the only
honest scores of labeled sentences), from the predict stage's output when it
was made by the same model version, from the score cache in
`paths.label_work` (keyed by the model folder's model.json), and only then
from the model itself, whose new scores are added to the cache. A second
start on the same model is therefore instant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import strategies
from pipeline.config import LABELS, UNRELATED, LabelConfig, Params
from pipeline.label_store import LabelStore, utc_now
from pipeline.labels import SecondAnnotation, load_sentences
from pipeline.schema import Article, LabeledSentence, Sentence, read_records

log = logging.getLogger(__name__)

SKIPPED_FILE = "skipped.jsonl"
SCORES_DIR = "scores"
SCORE_BATCH = 256


@dataclass(frozen=True)
class QueueOptions:
    """What to queue and how to order it."""

    # Defaults are params.yaml's `label:` section's, declared once in LabelConfig.
    strategy: str = LabelConfig.strategy
    limit: int = LabelConfig.limit
    seed: int = LabelConfig.seed
    model: str = "champion"
    audit_method: str = LabelConfig.audit_method
    audit_margin: float = LabelConfig.audit_margin
    articles: frozenset[str] | None = None
    """Only sentences of these articles (a `--from` batch); None = all."""

    def __post_init__(self) -> None:
        strategies.check_strategy(self.strategy)
        if self.limit < 0:
            raise strategies.StrategyError(f"--limit must be >= 0, got {self.limit}")

    @classmethod
    def from_params(cls, params: Params, **overrides: Any) -> QueueOptions:
        cfg = params.label
        base = cls(
            strategy=cfg.strategy,
            limit=cfg.limit,
            seed=cfg.seed,
            audit_method=cfg.audit_method,
            audit_margin=cfg.audit_margin,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class QueueItem:
    """One sentence to label, with what the labeler needs to see."""

    sentence: Sentence
    title: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    scores: dict[str, float]
    suggestion: list[str]
    labeled: LabeledSentence | None = None
    """Its current human label (audit)."""
    why: str = ""
    """Why the strategy picked it, in a few words."""


@dataclass
class Queue:
    items: list[QueueItem]
    strategy: str
    model: str
    model_version: str
    thresholds: dict[str, float]
    candidates: int
    sources: dict[str, int] = field(default_factory=dict)
    """How many scores came from oof, predictions, cache and model."""


# --- scores ----------------------------------------------------------------------------


def _scores_of(row: dict[str, Any]) -> list[float] | None:
    scores = row.get("calibrated", row.get("scores"))
    if not isinstance(scores, dict) or not all(k in scores for k in LABELS):
        return None
    return [float(scores[k]) for k in LABELS]


class ModelScores:
    """Calibrated scores of one model for any sentence, computed at most once."""

    def __init__(self, params: Params, spec: str) -> None:
        from pipeline.models import read_meta
        from pipeline.predict import resolve_model

        self.params = params
        self.folder = resolve_model(spec, params)
        self.meta = read_meta(self.folder)
        self.name: str = self.meta["name"]
        version = self.meta.get("version")
        self.version = str(version) if version is not None else "unregistered"
        self.thresholds = np.array([float(self.meta["thresholds"][k]) for k in LABELS])
        digest = hashlib.sha1((self.folder / "model.json").read_bytes()).hexdigest()[:12]
        self.cache = params.path("label_work") / SCORES_DIR / f"{self.name}-{digest}.jsonl"
        self.counts: dict[str, int] = defaultdict(int)

    @property
    def threshold_dict(self) -> dict[str, float]:
        return dict(zip(LABELS, map(float, self.thresholds), strict=True))

    def _known(self) -> list[tuple[str, dict[str, tuple[str, list[float]]]]]:
        """(source name, sentence id -> (text, scores)) for every stored source."""
        oof = self.params.path("oof_dir") / f"{self.name}.jsonl"
        predictions = self.params.path("predictions_dir") / "predictions.jsonl"
        same_model = {"model": self.name, "model_version": self.version}
        return [
            ("oof", _read_scores(oof)),
            ("predictions", _read_scores(predictions, same_model)),
            ("cache", _read_scores(self.cache)),
        ]

    def scores(self, sentences: Sequence[Sentence]) -> np.ndarray:
        """(n, 3) calibrated scores, from stored sources where the text still matches."""
        out = np.full((len(sentences), len(LABELS)), np.nan)
        todo = list(range(len(sentences)))
        for name, known in self._known():
            rest = []
            for i in todo:
                hit = known.get(sentences[i].sentence_id)
                if hit is not None and hit[0] == sentences[i].text:
                    out[i] = hit[1]
                    self.counts[name] += 1
                else:
                    rest.append(i)
            todo = rest
        if todo:
            out[todo] = self._compute([sentences[i] for i in todo])
            self.counts["model"] += len(todo)
        return out

    def _compute(self, sentences: list[Sentence]) -> np.ndarray:
        from rich.console import Console
        from rich.progress import track

        from pipeline.models import load_model

        log.info("scoring %d sentences with %s %s", len(sentences), self.name, self.version)
        model = load_model(self.folder)
        parts = []
        batches = range(0, len(sentences), SCORE_BATCH)
        progress = Console(stderr=True)  # stdout may be the export itself
        description = f"scoring with {self.name}"
        for start in track(batches, description, console=progress, transient=True):
            batch = sentences[start : start + SCORE_BATCH]
            parts.append(model.scores([s.text for s in batch]))
        scores = np.vstack(parts)
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache, "a", encoding="utf-8") as fh:
            for s, row in zip(sentences, scores, strict=True):
                rounded = {k: round(float(v), 6) for k, v in zip(LABELS, row, strict=True)}
                record = {"sentence_id": s.sentence_id, "text": s.text, "scores": rounded}
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        return scores


def _read_scores(
    path: Path, require: dict[str, str] | None = None
) -> dict[str, tuple[str, list[float]]]:
    """sentence id -> (text, scores) of a JSONL file with per-label scores; missing file: {}."""
    if not path.exists():
        return {}
    out: dict[str, tuple[str, list[float]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a cache line cut short by a crash
                continue
            if not isinstance(row, dict) or "sentence_id" not in row:
                continue
            if require and any(row.get(k) != v for k, v in require.items()):
                continue
            scores = _scores_of(row)
            if scores is not None:
                out[row["sentence_id"]] = (row.get("text", ""), scores)
    return out


def suggestion(row: np.ndarray, thresholds: np.ndarray) -> list[str]:
    """The model's labels for one score row: claims over threshold, else `unrelated`."""
    return [k for k, s, t in zip(LABELS, row, thresholds, strict=True) if s >= t] or [UNRELATED]


# --- skipped sentences ------------------------------------------------------------------


def skipped_path(params: Params) -> Path:
    return params.path("label_work") / SKIPPED_FILE


def read_skipped(params: Params) -> list[str]:
    """Skipped sentence ids, least recently skipped first."""
    path = skipped_path(params)
    if not path.exists():
        return []
    order: dict[str, None] = {}  # insertion order: a second skip moves an id to the end
    for _, row in _safe_jsonl(path):
        if isinstance(row, dict) and isinstance(row.get("sentence_id"), str):
            order.pop(row["sentence_id"], None)
            order[row["sentence_id"]] = None
    return list(order)


def _safe_jsonl(path: Path) -> Iterable[tuple[int, Any]]:
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError:
                continue


def record_skip(params: Params, sentence_id: str, annotator: str) -> None:
    path = skipped_path(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"sentence_id": sentence_id, "annotator": annotator, "skipped_at": utc_now()}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()


# --- the queue -------------------------------------------------------------------------


def adjudicated_ids(params: Params) -> set[str]:
    """Double-annotated sentences: their label is the adjudicated one and is not re-opened."""
    path = params.path("second_annotation")
    if not path.exists():
        return set()
    return {r.sentence_id for r in read_records(path, SecondAnnotation)}


def load_titles(params: Params) -> dict[str, str]:
    path = params.path("articles")
    if not path.exists():
        return {}
    return {a.article_id: a.title for a in read_records(path, Article)}


def rank(
    opts: QueueOptions,
    params: Params,
    candidates: list[Sentence],
    main: ModelScores,
    labeled: dict[str, LabeledSentence],
) -> tuple[list[int], np.ndarray | None, dict[int, str]]:
    """Positions in strategy order, the main model's scores if computed, and notes per position."""
    if opts.strategy == "random":
        return [int(i) for i in strategies.random_order(len(candidates), opts.seed)], None, {}
    scores = main.scores(candidates)
    notes: dict[int, str] = {}
    if opts.strategy == "uncertain":
        order = strategies.uncertain(scores, main.thresholds)
        for i, m in enumerate(strategies.margins(scores, main.thresholds)):
            notes[i] = f"margin {m:.3f}"
    elif opts.strategy == "disagree":
        a, b = ModelScores(params, "tfidf"), ModelScores(params, "transformer")
        sa = scores if a.folder == main.folder else a.scores(candidates)
        sb = scores if b.folder == main.folder else b.scores(candidates)
        order = strategies.disagree(sa, a.thresholds, sb, b.thresholds)
        for i in order:
            notes[int(i)] = (
                f"tfidf says {', '.join(suggestion(sa[i], a.thresholds))}; "
                f"transformer says {', '.join(suggestion(sb[i], b.thresholds))}"
            )
    else:
        y = strategies.label_matrix([labeled[s.sentence_id].labels for s in candidates])
        order = strategies.audit(
            y,
            scores,
            main.thresholds,
            method=opts.audit_method,
            margin=opts.audit_margin,
        )
        for i in order:
            notes[int(i)] = f"audit ({opts.audit_method}): the model contradicts this label"
    return [int(i) for i in order], scores, notes


def build_queue(params: Params, opts: QueueOptions) -> Queue:
    """Candidates (unlabeled, or labeled for audit), scored once and ordered by the strategy."""
    strategies.check_strategy(opts.strategy)
    sentences = load_sentences(params.path("sentences"))
    labeled = {r.sentence_id: r for r in LabelStore(params.path("labels")).load()}
    if opts.strategy == "audit":
        candidates = [
            sentences[sid]
            for sid, r in labeled.items()
            if sid in sentences and sentences[sid].text == r.text
        ]
    else:
        candidates = [s for s in sentences.values() if s.sentence_id not in labeled]
    if opts.articles is not None:
        candidates = [s for s in candidates if s.article_id in opts.articles]
    main = ModelScores(params, opts.model)
    order, scores, notes = rank(opts, params, candidates, main, labeled)
    if opts.strategy == "audit":  # cleanlab needed all labels; adjudicated ones stay closed
        closed = adjudicated_ids(params)
        order = [i for i in order if candidates[i].sentence_id not in closed]
    position = {s.sentence_id: i for i, s in enumerate(candidates)}
    skipped = [position[sid] for sid in read_skipped(params) if sid in position]
    order = strategies.skipped_last(order, skipped)
    if opts.limit:
        order = order[: opts.limit]
    chosen = [candidates[i] for i in order]
    chosen_scores = scores[order] if scores is not None else main.scores(chosen)
    items = make_items(params, sentences, chosen, chosen_scores, main.thresholds, labeled)
    items = [replace(item, why=notes.get(i, "")) for item, i in zip(items, order, strict=True)]
    log.info(
        "queue: %d of %d candidates by %s; scores from %s",
        len(items),
        len(candidates),
        opts.strategy,
        dict(main.counts),
    )
    return Queue(
        items=items,
        strategy=opts.strategy,
        model=main.name,
        model_version=main.version,
        thresholds=main.threshold_dict,
        candidates=len(candidates),
        sources=dict(main.counts),
    )


def make_items(
    params: Params,
    sentences: dict[str, Sentence],
    chosen: list[Sentence],
    scores: np.ndarray,
    thresholds: np.ndarray,
    labeled: dict[str, LabeledSentence],
    context: int = 1,
) -> list[QueueItem]:
    titles = load_titles(params)
    wanted = {s.article_id for s in chosen}
    by_article: dict[str, list[Sentence]] = defaultdict(list)
    for s in sentences.values():
        if s.article_id in wanted:
            by_article[s.article_id].append(s)
    for rows in by_article.values():
        rows.sort(key=lambda s: s.index)
    items = []
    for s, row in zip(chosen, scores, strict=True):
        rows = by_article[s.article_id]
        at = next(i for i, r in enumerate(rows) if r.sentence_id == s.sentence_id)
        items.append(
            QueueItem(
                sentence=s,
                title=titles.get(s.article_id, ""),
                before=tuple(r.text for r in rows[max(0, at - context) : at]),
                after=tuple(r.text for r in rows[at + 1 : at + 1 + context]),
                scores={k: float(v) for k, v in zip(LABELS, row, strict=True)},
                suggestion=suggestion(row, thresholds),
                labeled=labeled.get(s.sentence_id),
            )
        )
    return items


# --- new articles (`claims label --from`) --------------------------------------------------


def batch_name(now: datetime | None = None) -> str:
    """The default batch folder name: a UTC timestamp."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _file_stem(article_id: str) -> str:
    """A path below the batch folder for an article id (folders kept, odd characters replaced)."""
    parts = [_UNSAFE.sub("_", p).lstrip(".") or "_" for p in article_id.split("/") if p]
    return "/".join(parts) or "article"


def add_articles(
    params: Params, inputs: Sequence[str], batch: str
) -> tuple[list[Article], list[Sentence], list[str]]:
    """Copy the inputs' articles into `articles_dir/<batch>/` and add their sentences.

    Each article is written as a UTF-8 text file (its title first when the text
    does not start with it, as the reader does for HTML); the file is then read
    back and segmented with the project's reader and segmenter, so the ids are
    exactly those a later `claims segment` gives. Their article and sentence
    records are added to the articles and sentences files at once, so that
    `claims labels check` accepts their labels immediately. Returns the new
    articles, their sentences, and the inputs that could not be read.
    """
    from pipeline.reader import InputError, ReadOptions, read_articles
    from pipeline.schema import ReadError, write_jsonl
    from pipeline.segment import segment_article

    if not batch or _file_stem(batch) != batch or "/" in batch:
        raise InputError(f"--batch: expected a plain folder name, got {batch!r}")
    folder = params.path("articles_dir") / batch
    opts = ReadOptions(max_bytes=params.reader.max_bytes)
    errors, planned = [], {}
    for item in read_articles(inputs, opts):
        if isinstance(item, ReadError):
            errors.append(f"{item.source}: {item.reason}")
            continue
        stem = _file_stem(item.article_id)
        name, n = stem, 1
        while name in planned or (folder / f"{name}.txt").exists():
            n += 1
            name = f"{stem}-{n}"
        text = item.text
        if item.title and not text.lstrip().startswith(item.title):
            text = f"{item.title}\n\n{text}"
        planned[name] = text
    if not planned:
        raise InputError(f"--from: no readable article in {', '.join(inputs)}")
    articles, sentences = [], []
    for name, text in planned.items():
        path = folder / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        read = [a for a in read_articles([path], opts) if isinstance(a, Article)]
        article = replace(read[0], article_id=f"{batch}/{name}")
        articles.append(article)
        sentences.extend(segment_article(article, params.segment))
    for key, new in (("articles", articles), ("sentences", sentences)):
        path = params.path(key)
        cls = Article if key == "articles" else Sentence
        old = read_records(path, cls) if path.exists() else []
        write_jsonl(path, [*old, *new])
    log.info("added %d articles (%d sentences) in %s", len(articles), len(sentences), folder)
    return articles, sentences, errors
