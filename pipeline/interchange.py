"""Labeling elsewhere: tasks out to Label Studio, Prodigy or CSV; annotations back in.

Export writes the queue of a strategy (by default the unlabeled sentences,
most uncertain first) with the model's labels as pre-annotations:

- Label Studio: one JSON array of tasks, `data.text` (+ `sentence_id`,
  `article_id`, `title`) and `predictions` for a multiple-choice `Choices`
  control named `claims` (the labeling config is `LABEL_STUDIO_CONFIG`).
  Sentences that already have a label (audit) carry it as an annotation.
- Prodigy: JSONL in the `choice` interface's textcat-multilabel form:
  `text`, `meta`, `options` (the four labels) and `accept` (pre-selected).
- CSV: one row per sentence with the suggestion and the scores.

Import reads a Label Studio JSON export (full, or JSON-MIN) or a Prodigy
JSONL export (`prodigy db-out`) and maps every choice onto the four labels.
Anything it cannot map (an unknown choice, `unrelated` with another label,
no label, conflicting annotations, an unknown sentence id, a text that no
longer matches its id) is refused with its item or line number, and nothing
is written. Otherwise new labels are appended and changed ones replaced, all
with source `imported`, in one atomic rewrite that `claims labels check`
must accept first. Labels equal to the stored ones are left untouched, so
importing the same file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pipeline.config import ALL_LABELS, LABELS, Params
from pipeline.label_queue import Queue, QueueItem, QueueOptions, build_queue
from pipeline.label_store import LabelStore, default_annotator, utc_now
from pipeline.labels import label_problems, load_sentences
from pipeline.schema import LabeledSentence, atomic_open

EXPORT_FORMATS = ("label-studio", "prodigy", "csv")
IMPORT_FORMATS = ("label-studio", "prodigy")
CONTROL = "claims"
"""Name of the Label Studio Choices control (from_name)."""
TEXT = "text"
"""Name of the Label Studio Text object (to_name)."""
SOURCE = "imported"
LABEL_STUDIO_CONFIG = f"""<View>
  <Header value="$title"/>
  <Text name="{TEXT}" value="$text"/>
  <Choices name="{CONTROL}" toName="{TEXT}" choice="multiple" showInLine="true">
{chr(10).join(f'    <Choice value="{k}"/>' for k in ALL_LABELS)}
  </Choices>
</View>
"""
CSV_COLUMNS = (
    "rank",
    "sentence_id",
    "article_id",
    "title",
    "text",
    "suggested",
    *(f"score_{k}" for k in LABELS),
    "labels",
    "why",
)


class ImportFileError(ValueError):
    """The import file cannot be read at all."""


# --- export ----------------------------------------------------------------------------


def confidence(item: QueueItem, thresholds: dict[str, float]) -> float:
    """How sure the model is of its whole suggestion: the least sure label decision."""
    return min(
        s if s >= thresholds[k] else 1.0 - s for k, s in ((k, item.scores[k]) for k in LABELS)
    )


def _choices(labels: list[str]) -> dict[str, Any]:
    return {"from_name": CONTROL, "to_name": TEXT, "type": "choices", "value": {"choices": labels}}


def label_studio_task(item: QueueItem, queue: Queue) -> dict[str, Any]:
    s = item.sentence
    task: dict[str, Any] = {
        "data": {
            "text": s.text,
            "sentence_id": s.sentence_id,
            "article_id": s.article_id,
            "title": item.title,
        },
        "predictions": [
            {
                "model_version": f"{queue.model} {queue.model_version}",
                "score": round(confidence(item, queue.thresholds), 4),
                "result": [_choices(list(item.suggestion))],
            }
        ],
        "meta": {
            "scores": {k: round(v, 4) for k, v in item.scores.items()},
            "strategy": queue.strategy,
            "why": item.why,
        },
    }
    if item.labeled:
        task["annotations"] = [{"result": [_choices(list(item.labeled.labels))]}]
    return task


def prodigy_task(item: QueueItem, queue: Queue) -> dict[str, Any]:
    s = item.sentence
    meta: dict[str, Any] = {
        "sentence_id": s.sentence_id,
        "article_id": s.article_id,
        "model": f"{queue.model} {queue.model_version}",
        **{k: round(v, 4) for k, v in item.scores.items()},
    }
    if item.labeled:
        meta["labeled"] = ", ".join(item.labeled.labels)
    return {
        "text": s.text,
        "meta": meta,
        "options": [{"id": k, "text": k} for k in ALL_LABELS],
        "accept": list(item.suggestion),
        "config": {"choice_style": "multiple"},
    }


def csv_row(rank: int, item: QueueItem) -> list[Any]:
    s = item.sentence
    return [
        rank,
        s.sentence_id,
        s.article_id,
        item.title,
        s.text,
        ";".join(item.suggestion),
        *(f"{item.scores[k]:.4f}" for k in LABELS),
        ";".join(item.labeled.labels) if item.labeled else "",
        item.why,
    ]


def write_tasks(queue: Queue, fmt: str, out: IO[str]) -> int:
    """Write the queue's tasks in `fmt`; returns how many."""
    if fmt == "label-studio":
        tasks = [label_studio_task(item, queue) for item in queue.items]
        json.dump(tasks, out, ensure_ascii=False, indent=1)
        out.write("\n")
    elif fmt == "prodigy":
        for item in queue.items:
            out.write(json.dumps(prodigy_task(item, queue), ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for rank, item in enumerate(queue.items, start=1):
            writer.writerow(csv_row(rank, item))
    else:
        raise ValueError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    return len(queue.items)


@contextmanager
def _output(target: str) -> Iterator[IO[str]]:
    if target == "-":
        yield sys.stdout
        sys.stdout.flush()
    else:
        with atomic_open(target) as fh:
            yield fh


def run_export(params: Params, opts: QueueOptions, fmt: str, output: str) -> int:
    """Build the strategy's queue and write it as tasks to `output` (`-`: stdout)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    queue = build_queue(params, opts)
    with _output(output) as out:
        return write_tasks(queue, fmt, out)


# --- import ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Annotation:
    """One annotated sentence read from an export file."""

    where: str
    sentence_id: str
    text: str
    labels: list[str]
    annotator: str
    labeled_at: str


@dataclass
class ImportResult:
    added: list[LabeledSentence] = field(default_factory=list)
    updated: list[tuple[LabeledSentence, LabeledSentence]] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    written: bool = False


def map_choices(values: Any, where: str) -> tuple[list[str], list[str]]:
    """Choices -> labels in canonical order, and what could not be mapped."""
    if not isinstance(values, list):
        return [], [f"{where}: choices must be a list, got {type(values).__name__}"]
    problems, mapped = [], []
    for value in values:
        key = value.strip().lower() if isinstance(value, str) else None
        if key not in ALL_LABELS:
            problems.append(
                f"{where}: unknown choice {value!r}; expected one of {', '.join(ALL_LABELS)}"
            )
        else:
            mapped.append(key)
    if problems:
        return [], problems
    problems = [f"{where}: {p}" for p in label_problems(mapped)]
    return [k for k in ALL_LABELS if k in mapped], problems


def utc_iso(value: Any) -> str:
    """An ISO 8601 string or a Unix time as UTC ISO 8601 (seconds, Z); now when absent."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and value:
            moment = datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
        else:
            return utc_now()
    except (ValueError, OverflowError, OSError):
        return utc_now()
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ls_annotator(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("id") or "")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"label-studio-user-{value}"
    return value if isinstance(value, str) else ""


def read_label_studio(text: str) -> tuple[list[Annotation], list[str], list[str]]:
    """Annotations, skipped items and problems of a Label Studio JSON or JSON-MIN export."""
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    if not isinstance(tasks, list):
        raise ImportFileError("expected a JSON array of tasks (a Label Studio JSON export)")
    found: list[Annotation] = []
    skipped: list[str] = []
    problems: list[str] = []
    for n, task in enumerate(tasks, start=1):
        where = f"item {n}"
        if not isinstance(task, dict):
            problems.append(f"{where}: expected a task object, got {type(task).__name__}")
            continue
        data = task.get("data", task)  # JSON-MIN puts the data fields at the top
        if not isinstance(data, dict):
            problems.append(f"{where}: 'data' must be an object")
            continue
        sid, sent_text = data.get("sentence_id"), data.get("text")
        if not isinstance(sid, str) or not isinstance(sent_text, str):
            problems.append(f"{where}: expected data.sentence_id and data.text (strings)")
            continue
        picked = _ls_labels(task, where)
        if isinstance(picked, str):
            skipped.append(f"{where} ({sid}): {picked}")
            continue
        labels, who, when, more = picked
        problems += more
        if not more:
            found.append(Annotation(where, sid, sent_text, labels, who, when))
    return found, skipped, problems


def _ls_labels(task: dict[str, Any], where: str) -> str | tuple[list[str], str, str, list[str]]:
    """(labels, annotator, time, problems) of one task, or why it holds no annotation."""
    if "data" not in task:  # JSON-MIN: the control's value is a key of the item
        if CONTROL not in task:
            return f"no '{CONTROL}' choices (not annotated)"
        value = task[CONTROL]
        values = value.get("choices") if isinstance(value, dict) else value
        values = [values] if isinstance(values, str) else values
        labels, problems = map_choices(values, where)
        when = utc_iso(task.get("updated_at") or task.get("created_at"))
        return labels, _ls_annotator(task.get("annotator")), when, problems
    annotations = task.get("annotations") or task.get("completions") or []
    if not isinstance(annotations, list):
        return [], "", "", [f"{where}: 'annotations' must be a list"]
    live = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not live:
        return "cancelled" if annotations else "no annotation"
    decided = []
    for k, annotation in enumerate(live, start=1):
        at = f"{where}, annotation {k}" if len(live) > 1 else where
        values = [
            choice
            for result in annotation.get("result") or []
            if isinstance(result, dict) and result.get("type") == "choices"
            for choice in (result.get("value") or {}).get("choices") or []
        ]
        labels, problems = map_choices(values, at)
        if problems:
            return [], "", "", problems
        decided.append((labels, annotation))
    if len({tuple(labels) for labels, _ in decided}) > 1:
        found = " vs ".join("+".join(labels) for labels, _ in decided)
        return [], "", "", [f"{where}: conflicting annotations ({found}); adjudicate first"]
    labels, last = decided[-1]
    when = utc_iso(last.get("updated_at") or last.get("created_at"))
    return labels, _ls_annotator(last.get("completed_by")), when, []


def read_prodigy(text: str) -> tuple[list[Annotation], list[str], list[str]]:
    """Annotations, skipped lines and problems of a Prodigy JSONL export."""
    found: list[Annotation] = []
    skipped: list[str] = []
    problems: list[str] = []
    for n, line in enumerate(io.StringIO(text), start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON: {exc.msg}")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a JSON object")
            continue
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        sid, sent_text = meta.get("sentence_id", row.get("sentence_id")), row.get("text")
        if not isinstance(sid, str) or not isinstance(sent_text, str):
            problems.append(f"{where}: expected text and meta.sentence_id (strings)")
            continue
        answer = row.get("answer")
        if answer in ("ignore", "reject"):
            skipped.append(f"{where} ({sid}): answer {answer!r}")
            continue
        if answer != "accept":
            problems.append(
                f"{where}: answer must be accept, reject or ignore, got {answer!r} "
                "(import annotations from `prodigy db-out`, not the exported tasks)"
            )
            continue
        labels, more = map_choices(row.get("accept", []), where)
        problems += more
        if not more:
            who = str(row.get("_annotator_id") or row.get("_session_id") or "")
            found.append(
                Annotation(where, sid, sent_text, labels, who, utc_iso(row.get("_timestamp")))
            )
    return found, skipped, problems


def plan_import(
    annotations: list[Annotation],
    params: Params,
    annotator: str | None,
    result: ImportResult,
) -> dict[str, str]:
    """Check each annotation against the sentences and the stored labels; fill `result`.

    Returns sentence id -> where it was read, for locating later problems.
    """
    sentences = load_sentences(params.path("sentences"))
    stored = {r.sentence_id: r for r in LabelStore(params.path("labels")).load()}
    first: dict[str, Annotation] = {}
    for a in annotations:
        sent = sentences.get(a.sentence_id)
        if sent is None:
            result.problems.append(
                f"{a.where}: unknown sentence id {a.sentence_id} (not in {params.path('sentences')})"
            )
            continue
        if sent.text != a.text:
            result.problems.append(
                f"{a.where}: text no longer matches {a.sentence_id}: "
                f"file has {a.text[:60]!r}, the sentence is {sent.text[:60]!r}"
            )
            continue
        if a.sentence_id in first:
            if first[a.sentence_id].labels != a.labels:
                result.problems.append(
                    f"{a.where}: {a.sentence_id} was also annotated at "
                    f"{first[a.sentence_id].where} with other labels"
                )
            continue
        first[a.sentence_id] = a
        old = stored.get(a.sentence_id)
        if old is not None and sorted(old.labels) == sorted(a.labels):
            result.unchanged += 1
            continue
        record = LabeledSentence(
            sentence_id=a.sentence_id,
            article_id=sent.article_id,
            text=sent.text,
            labels=a.labels,
            source=SOURCE,
            annotator=annotator or a.annotator or default_annotator(),
            labeled_at=a.labeled_at,
            note="",
        )
        if old is None:
            result.added.append(record)
        else:
            result.updated.append((old, record))
    return {sid: a.where for sid, a in first.items()}


def run_import(
    params: Params,
    fmt: str,
    path: Path,
    *,
    annotator: str | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Read, map and validate an export file; write the labels unless anything is wrong."""
    if fmt not in IMPORT_FORMATS:
        raise ValueError(f"--format must be one of {', '.join(IMPORT_FORMATS)}, got {fmt!r}")
    text = Path(path).read_text(encoding="utf-8-sig")
    reader = read_label_studio if fmt == "label-studio" else read_prodigy
    result = ImportResult()
    try:
        annotations, result.skipped, result.problems = reader(text)
    except ImportFileError as exc:
        result.problems.append(f"{path}: {exc}")
        return result
    where = plan_import(annotations, params, annotator, result)
    if result.problems or not (result.added or result.updated):
        return result
    store = LabelStore(params.path("labels"))
    replace = {new.sentence_id: new for _, new in result.updated}
    merged, problems = store.merge(replace, result.added, params, dry_run=dry_run)
    result.problems += _locate(problems, merged, where)
    result.written = not result.problems and not dry_run
    return result


def _locate(problems: list[Any], merged: str, where: dict[str, str]) -> list[str]:
    """`labels check` problems, with the import item that caused each one named."""
    by_line = {}
    for n, line in enumerate(merged.splitlines(), start=1):
        try:
            sid = json.loads(line).get("sentence_id")
        except (json.JSONDecodeError, AttributeError):
            continue
        if sid in where:
            by_line[n] = where[sid]
    out = []
    for p in problems:
        origin = by_line.get(p.line) or next(
            (w for sid, w in where.items() if sid in p.message), None
        )
        out.append(f"{origin}: {p}" if origin else f"labels check: {p}")
    return out
