"""The hand-labeled set: validation (`claims labels check`) and statistics (`claims labels stats`).

`labels check` is the gate in front of everything that learns from labels: it
reports every problem of the label files with its line number and fails the
pipeline before any training starts.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.config import ALL_LABELS, LABELS, UNRELATED, Params
from pipeline.schema import (
    LabeledSentence,
    Record,
    RecordError,
    Sentence,
    atomic_open,
    read_records,
)

log = logging.getLogger(__name__)

REAL_SOURCES = ("seed", "pool", "imported")
AUTHORED_SOURCE = "authored"
LABEL_FIELDS = tuple(f.name for f in fields(LabeledSentence))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a label file."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class SecondAnnotation(Record):
    """A double-annotated sentence: both annotators' labels and the adjudicated final one."""

    sentence_id: str
    text: str
    first_labels: list[str]
    first_annotator: str
    second_labels: list[str]
    second_annotator: str
    final_labels: list[str]
    note: str


def label_problems(labels: Any) -> list[str]:
    """What is wrong with one label list (empty when it is valid)."""
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return ["'labels' must be a list of strings"]
    problems = []
    if not labels:
        problems.append('empty label list; use ["unrelated"] for a sentence with no claim')
    unknown = [x for x in labels if x not in ALL_LABELS]
    if unknown:
        problems.append(
            f"unknown label(s) {', '.join(map(repr, unknown))}; expected {', '.join(ALL_LABELS)}"
        )
    if UNRELATED in labels and len(labels) > 1:
        problems.append("'unrelated' combined with another label; it must stand alone")
    if len(set(labels)) != len(labels):
        problems.append("a label is repeated")
    return problems


def check_file(
    path: Path,
    sentences: dict[str, Sentence] | None,
    *,
    allowed_sources: Iterable[str],
    seen: dict[str, str] | None = None,
) -> tuple[list[LabeledSentence], list[Problem]]:
    """Validate one label file; `sentences` (when given) must hold every labeled id."""
    allowed = tuple(allowed_sources)
    seen = {} if seen is None else seen
    records: list[LabeledSentence] = []
    problems: list[Problem] = []
    p = str(path)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            found = _check_line(line, allowed, sentences, seen, f"{p}:{lineno}")
            problems += [Problem(p, lineno, m) for m in found]
            if not found:
                obj = json.loads(line)
                records.append(LabeledSentence(**{k: obj[k] for k in LABEL_FIELDS}))
    return records, problems


def _check_line(
    line: str,
    allowed: tuple[str, ...],
    sentences: dict[str, Sentence] | None,
    seen: dict[str, str],
    where: str,
) -> list[str]:
    """Every problem of one label line, as messages."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON: {exc.msg}"]
    if not isinstance(obj, dict):
        return ["expected a JSON object"]
    missing = [f for f in LABEL_FIELDS if f not in obj]
    if missing:
        return [f"missing field(s): {', '.join(missing)}"]
    found = []
    extra = sorted(set(obj) - set(LABEL_FIELDS))
    if extra:
        found.append(f"unknown field(s): {', '.join(extra)}")
    for name in ("sentence_id", "article_id", "text", "source", "annotator", "labeled_at", "note"):
        if not isinstance(obj[name], str):
            found.append(f"field '{name}' must be a string")
    if found:
        return found
    found += label_problems(obj["labels"])
    if obj["source"] not in allowed:
        found.append(f"source {obj['source']!r} not allowed here; expected {' or '.join(allowed)}")
    sid = obj["sentence_id"]
    if not sid:
        return [*found, "empty sentence_id"]
    if sid in seen:
        return [*found, f"duplicate sentence id {sid} (first at {seen[sid]})"]
    seen[sid] = where
    if sentences is not None:
        sent = sentences.get(sid)
        if sent is None:
            found.append(f"sentence id {sid} no longer exists in the sentences file")
        elif sent.text != obj["text"]:
            found.append(
                f"text of {sid} changed: labeled {obj['text'][:60]!r}, now {sent.text[:60]!r}"
            )
    return found


def load_sentences(path: Path) -> dict[str, Sentence]:
    return {s.sentence_id: s for s in read_records(path, Sentence)}


def check_all(params: Params) -> tuple[list[LabeledSentence], list[LabeledSentence], list[Problem]]:
    """Check the real labels against the sentences, the authored set, and the second annotation."""
    sentences = load_sentences(params.path("sentences"))
    seen: dict[str, str] = {}
    real, problems = check_file(
        params.path("labels"), sentences, allowed_sources=REAL_SOURCES, seen=seen
    )
    authored: list[LabeledSentence] = []
    if params.path("authored").exists():
        authored, more = check_file(
            params.path("authored"), None, allowed_sources=(AUTHORED_SOURCE,), seen=seen
        )
        problems += more
    if params.path("second_annotation").exists():
        problems += check_second(params.path("second_annotation"), {r.sentence_id: r for r in real})
    return real, authored, problems


def check_second(path: Path, final: dict[str, LabeledSentence]) -> list[Problem]:
    """The adjudicated label of each double-annotated sentence must be the one in the label file."""
    problems = []
    try:
        rows = [(n, SecondAnnotation.from_dict(o, f"{path}:{n}")) for n, o in _lines(path)]
    except RecordError as exc:
        return [Problem(str(path), 0, str(exc))]
    for n, row in rows:
        for name in ("first_labels", "second_labels", "final_labels"):
            problems += [
                Problem(str(path), n, f"{name}: {m}") for m in label_problems(getattr(row, name))
            ]
        labeled = final.get(row.sentence_id)
        if labeled is None:
            problems.append(Problem(str(path), n, f"{row.sentence_id} is not in the label file"))
        elif sorted(labeled.labels) != sorted(row.final_labels):
            problems.append(
                Problem(
                    str(path),
                    n,
                    f"{row.sentence_id}: final labels {row.final_labels} differ from the label file's {labeled.labels}",
                )
            )
    return problems


def _lines(path: Path) -> Iterable[tuple[int, Any]]:
    from pipeline.schema import iter_jsonl

    return iter_jsonl(path)


# --- statistics ----------------------------------------------------------------


def cohen_kappa(a: list[bool], b: list[bool]) -> float:
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def pair_f1(a: list[bool], b: list[bool]) -> float:
    """F1 of one annotator against the other (symmetric)."""
    both = sum(x and y for x, y in zip(a, b, strict=True))
    total = sum(a) + sum(b)
    return 1.0 if total == 0 else 2 * both / total


def agreement(rows: list[SecondAnnotation]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows), "per_label": {}}
    for label in ALL_LABELS:
        a = [label in r.first_labels for r in rows]
        b = [label in r.second_labels for r in rows]
        out["per_label"][label] = {
            "first": sum(a),
            "second": sum(b),
            "f1": round(pair_f1(a, b), 4),
            "kappa": round(cohen_kappa(a, b), 4),
        }
    f1s = [v["f1"] for v in out["per_label"].values()]
    out["macro_f1"] = round(sum(f1s) / len(f1s), 4)
    out["exact_match"] = round(
        sum(sorted(r.first_labels) == sorted(r.second_labels) for r in rows) / max(1, len(rows)), 4
    )
    out["first_vs_final_exact"] = round(
        sum(sorted(r.first_labels) == sorted(r.final_labels) for r in rows) / max(1, len(rows)), 4
    )
    return out


def label_counts(records: list[LabeledSentence]) -> dict[str, Any]:
    counts = Counter(label for r in records for label in r.labels)
    per_article = Counter(r.article_id for r in records)
    return {
        "sentences": len(records),
        "articles": len(per_article),
        "per_label": {label: counts.get(label, 0) for label in ALL_LABELS},
        "multi_label": sum(1 for r in records if len(r.labels) > 1),
        "sentences_per_article": round(len(records) / max(1, len(per_article)), 2),
    }


def compute_stats(params: Params) -> dict[str, Any]:
    real, authored, problems = check_all(params)
    by_source: dict[str, list[LabeledSentence]] = {}
    for r in real:
        by_source.setdefault(r.source, []).append(r)
    stats: dict[str, Any] = {
        "note": "authored sentences are counted apart: training only, never in any evaluation figure",
        "problems": len(problems),
        "real": label_counts(real),
        "by_source": {src: label_counts(rs) for src, rs in sorted(by_source.items())},
        "authored": label_counts(authored),
        "annotators": dict(Counter(r.annotator for r in real + authored)),
    }
    second = params.path("second_annotation")
    if second.exists():
        rows = read_records(second, SecondAnnotation)
        stats["agreement"] = agreement(rows)
    return stats


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")


def run_check(params: Params) -> list[Problem]:
    """Check everything; on success write the gate file that the dataset stage depends on."""
    real, authored, problems = check_all(params)
    if not problems:
        summary = {"ok": True, "real": label_counts(real), "authored": label_counts(authored)}
        write_json(params.path("labels_check"), summary)
        log.info(
            "labels check: %d real and %d authored labels, no problems", len(real), len(authored)
        )
    return problems


def claim_labels(labels: list[str]) -> list[str]:
    """The claim labels of a label list (unrelated dropped), in canonical order."""
    return [label for label in LABELS if label in labels]


def print_stats(stats: dict[str, Any]) -> None:
    """The stats as tables a person can read."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(110, Console().width))
    table = Table(title="Labeled sentences (authored counted apart: training only)")
    table.add_column("set")
    for col in ("sentences", "articles", *ALL_LABELS, "multi-label"):
        table.add_column(col, justify="right")
    rows = [("real (all)", stats["real"])]
    rows += [(f"  {src}", c) for src, c in stats["by_source"].items()]
    rows.append(("authored", stats["authored"]))
    for name, c in rows:
        table.add_row(
            name,
            str(c["sentences"]),
            str(c["articles"]),
            *(str(c["per_label"][label]) for label in ALL_LABELS),
            str(c["multi_label"]),
        )
    console.print(table)
    console.print(f"annotators: {stats['annotators']}")
    agree = stats.get("agreement")
    if agree:
        t = Table(title=f"Agreement of two annotators on {agree['n']} sentences")
        for col in ("label", "first", "second", "F1", "Cohen's kappa"):
            t.add_column(col, justify="right")
        for label, v in agree["per_label"].items():
            t.add_row(
                label, str(v["first"]), str(v["second"]), f"{v['f1']:.3f}", f"{v['kappa']:.3f}"
            )
        console.print(t)
        console.print(f"macro-F1 {agree['macro_f1']:.3f}, exact match {agree['exact_match']:.3f}")
    if stats["problems"]:
        console.print(f"[red]{stats['problems']} problem(s): run `claims labels check`[/red]")
