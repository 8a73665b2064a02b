"""Stage `predict`: tag new articles in batch.

Articles stream in from the reader, are segmented, and are scored a chunk at a
time (identical sentence texts in a chunk are scored once), so memory stays
flat however many articles come in. Every output is written to a temporary
file and renamed when complete; an unreadable input is reported and skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from pipeline.config import ALL_LABELS, LABELS, Params
from pipeline.reader import ReadOptions, read_articles
from pipeline.schema import Article, ReadError, Record, atomic_open, dumps

log = logging.getLogger(__name__)

MODEL_NAMES = ("tfidf", "embed", "transformer")
FORMATS = ("jsonl", "csv", "html")
STDOUT = "-"
CSV_COLUMNS = (
    "article_id",
    "sentence_id",
    "start",
    "end",
    "text",
    "labels",
    *(f"score_{label}" for label in LABELS),
    "language",
    "truncated",
    "model",
    "model_version",
)


class UsageError(ValueError):
    """The command line asks for something that cannot be done (exit code 2)."""


@dataclass(frozen=True)
class Prediction(Record):
    """One tagged sentence."""

    article_id: str
    sentence_id: str
    start: int
    end: int
    text: str
    labels: list[str]
    scores: dict[str, float]
    language: str
    truncated: bool
    model: str
    model_version: str


@dataclass(frozen=True)
class ArticleSummary(Record):
    """Per-article counts and the strongest claim sentences per label."""

    article_id: str
    title: str
    language: str
    sentences: int
    counts: dict[str, int]
    strongest: dict[str, list[dict[str, Any]]]
    model: str
    model_version: str


@dataclass(frozen=True)
class PredictOptions:
    """What `claims predict` was asked to do."""

    model: str = "champion"
    sentences: bool = False
    output: str = STDOUT
    fmt: str = "jsonl"
    summary: Path | None = None
    errors: Path | None = None
    report: Path | None = None
    batch_size: int = 64
    chunk_sentences: int = 2048
    text_column: str | None = None
    id_column: str | None = None
    max_bytes: int = 20_000_000
    top_k: int = 3

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.max_bytes < 1:
            raise UsageError(f"--max-bytes must be >= 1, got {self.max_bytes}")


@dataclass
class RunStats:
    articles: int = 0
    sentences: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ALL_LABELS, 0))


# --- the model ---------------------------------------------------------------------


def resolve_model(spec: str, params: Params) -> Path:
    """`champion`, a model name, or a model folder -> the folder to load."""
    models_dir = params.path("models_dir")
    if spec == "champion":
        champion = params.path("champion")
        if not champion.exists():
            raise UsageError(
                f"{champion} not found: run `dvc repro` to train and choose a champion, "
                f"or pass --model {'|'.join(MODEL_NAMES)}"
            )
        try:
            spec = json.loads(champion.read_text(encoding="utf-8"))["model"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise UsageError(f"{champion}: expected a JSON object with a 'model' field") from exc
    folder = models_dir / spec if spec in MODEL_NAMES else Path(spec)
    fast = models_dir / f"{spec}-onnx"
    if spec == "transformer" and (fast / "model.json").exists():
        folder = fast  # the ONNX export: same labels, checked against fp32, no torch
    if not (folder / "model.json").exists():
        raise UsageError(f"model {spec!r}: no model folder at {folder} (train it with `dvc repro`)")
    return folder


class Scorer:
    """Scores sentence texts with a loaded model; each distinct text once."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.thresholds = np.array([model.thresholds[label] for label in LABELS])

    def score(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        unique: dict[str, int] = {}
        index = [unique.setdefault(t, len(unique)) for t in texts]
        distinct = list(unique)
        scores = self.model.scores(distinct) if distinct else np.zeros((0, len(LABELS)))
        flags = self._truncated(distinct)
        return scores[index], [flags[i] for i in index]

    def _truncated(self, texts: list[str]) -> list[bool]:
        if hasattr(self.model, "truncation_flags"):
            return list(self.model.truncation_flags(texts))
        limit = int(getattr(self.model, "max_length", 0) or 0)
        if not limit or not texts:
            return [False] * len(texts)
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return [False] * len(texts)
        ids = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(x) > limit for x in ids]

    def labels_of(self, row: np.ndarray) -> list[str]:
        claims = [label for label, s, t in zip(LABELS, row, self.thresholds, strict=True) if s >= t]
        return claims or ["unrelated"]


# --- inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One article with the sentences to score (or one input row in --sentences mode)."""

    article: Article
    spans: list[tuple[str, int, int, str]]  # sentence_id, start, end, text
    article_id: str  # empty for input rows that are sentences, not articles


def units(
    sources: list[str], opts: PredictOptions, params: Params, stats: RunStats
) -> Iterator[Unit]:
    from pipeline.segment import segment_article

    read_opts = ReadOptions(
        text_column=opts.text_column,
        id_column=opts.id_column or ("id" if opts.sentences else None),
        max_bytes=opts.max_bytes,
    )
    for item in read_articles(sources, read_opts):
        if isinstance(item, ReadError):
            report_error(item, stats)
            continue
        if opts.sentences:
            text = item.text
            yield Unit(item, [(item.article_id, 0, len(text), text)], "")
            continue
        if item.language and item.language != "en":
            print(
                f"warning: {item.article_id}: language {item.language!r}, not English; "
                "the models were trained on English and may be unreliable",
                file=sys.stderr,
            )
        sentences = segment_article(item, params.segment)
        if not sentences:
            report_error(ReadError(item.article_id, "no sentences found in the text"), stats)
            continue
        yield Unit(
            item, [(s.sentence_id, s.start, s.end, s.text) for s in sentences], item.article_id
        )


def report_error(error: ReadError, stats: RunStats) -> None:
    where = f"{error.source}:{error.line}" if error.line else error.source
    print(f"error: {where}: {error.reason}", file=sys.stderr)
    stats.errors.append(error.to_dict())


def chunks(items: Iterable[Unit], max_sentences: int) -> Iterator[list[Unit]]:
    """Group units so that a chunk holds about `max_sentences` sentences."""
    chunk: list[Unit] = []
    size = 0
    for unit in items:
        chunk.append(unit)
        size += len(unit.spans)
        if size >= max_sentences:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


# --- outputs -------------------------------------------------------------------------


class Sink:
    """Where predictions go, in one of the formats."""

    def __init__(self, out: IO[str], fmt: str, scorer: Scorer, model: str, version: str):
        self.out = out
        self.fmt = fmt
        self.csv: Any = None
        self.html: Any = None
        if fmt == "csv":
            self.csv = csv.writer(out)
            self.csv.writerow(CSV_COLUMNS)
        elif fmt == "html":
            from pipeline.report import HtmlReport

            thresholds = dict(zip(LABELS, map(float, scorer.thresholds), strict=True))
            self.html = HtmlReport(out, model, version, thresholds)
            self.html.begin()

    def write(self, article: Article, preds: list[Prediction]) -> None:
        if self.fmt == "jsonl":
            for p in preds:
                self.out.write(dumps(p) + "\n")
        elif self.fmt == "csv":
            for p in preds:
                self.csv.writerow(
                    [
                        p.article_id,
                        p.sentence_id,
                        p.start,
                        p.end,
                        p.text,
                        ";".join(p.labels),
                        *(f"{p.scores[label]:.4f}" for label in LABELS),
                        p.language,
                        p.truncated,
                        p.model,
                        p.model_version,
                    ]
                )
        else:
            self.html.article(article.to_dict(), [p.to_dict() for p in preds])

    def close(self, stats: RunStats) -> None:
        if self.html is not None:
            self.html.end(stats.errors)


def summarise(article: Article, preds: list[Prediction], top_k: int) -> ArticleSummary:
    counts = dict.fromkeys(ALL_LABELS, 0)
    for p in preds:
        for label in p.labels:
            counts[label] += 1
    strongest = {}
    for label in LABELS:
        tagged = [p for p in preds if label in p.labels]
        tagged.sort(key=lambda p: -p.scores[label])
        strongest[label] = [
            {"sentence_id": p.sentence_id, "text": p.text, "score": p.scores[label]}
            for p in tagged[:top_k]
        ]
    first = preds[0] if preds else None
    return ArticleSummary(
        article_id=article.article_id,
        title=article.title,
        language=article.language,
        sentences=len(preds),
        counts=counts,
        strongest=strongest,
        model=first.model if first else "",
        model_version=first.model_version if first else "",
    )


def predict_chunk(
    chunk: list[Unit], scorer: Scorer, model: str, version: str
) -> list[tuple[Article, list[Prediction]]]:
    texts = [text for unit in chunk for *_, text in unit.spans]
    scores, truncated = scorer.score(texts)
    out = []
    k = 0
    for unit in chunk:
        preds = []
        for sentence_id, start, end, text in unit.spans:
            row = scores[k]
            preds.append(
                Prediction(
                    article_id=unit.article_id,
                    sentence_id=sentence_id,
                    start=start,
                    end=end,
                    text=text,
                    labels=scorer.labels_of(row),
                    scores={
                        label: round(float(s), 4) for label, s in zip(LABELS, row, strict=True)
                    },
                    language=unit.article.language,
                    truncated=bool(truncated[k]),
                    model=model,
                    model_version=version,
                )
            )
            k += 1
        out.append((unit.article, preds))
    return out


def _open(stack: ExitStack, target: str | Path) -> IO[str]:
    if str(target) == STDOUT:
        return sys.stdout
    return stack.enter_context(atomic_open(target))


def run_predict(sources: list[str], opts: PredictOptions, params: Params) -> RunStats:
    """Tag every readable input; returns counts and the inputs that failed."""
    from pipeline.models import load_model

    folder = resolve_model(opts.model, params)
    model = load_model(folder)
    if hasattr(model, "batch_size"):
        model.batch_size = opts.batch_size
    scorer = Scorer(model)
    stats = RunStats()
    with ExitStack() as stack:
        out = _open(stack, opts.output)
        sinks = [Sink(out, opts.fmt, scorer, model.name, model.version)]
        if opts.report is not None:
            sinks.append(Sink(_open(stack, opts.report), "html", scorer, model.name, model.version))
        summary_out = _open(stack, opts.summary) if opts.summary else None
        for chunk in chunks(units(sources, opts, params, stats), opts.chunk_sentences):
            for article, preds in predict_chunk(chunk, scorer, model.name, model.version):
                for sink in sinks:
                    sink.write(article, preds)
                stats.articles += 1
                stats.sentences += len(preds)
                for p in preds:
                    for label in p.labels:
                        stats.counts[label] += 1
                if summary_out is not None:
                    summary_out.write(dumps(summarise(article, preds, opts.top_k)) + "\n")
        for sink in sinks:
            sink.close(stats)
        if opts.errors is not None:
            errors_out = _open(stack, opts.errors)
            for error in stats.errors:
                errors_out.write(json.dumps(error, ensure_ascii=False) + "\n")
        if out is sys.stdout:
            out.flush()
    log.info(
        "predict: %d articles, %d sentences, %d unreadable inputs (model %s %s)",
        stats.articles,
        stats.sentences,
        len(stats.errors),
        model.name,
        model.version,
    )
    return stats
