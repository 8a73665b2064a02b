"""Named records passed between stages, and their JSONL storage.

Each record is a frozen dataclass; `from_dict` validates what it reads and
says which field of which line was wrong.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any, TypeVar


class RecordError(ValueError):
    """A stored record does not have the expected fields or types."""


T = TypeVar("T", bound="Record")


@dataclass(frozen=True)
class Record:
    """Base: dict round trip with field and type checks."""

    @classmethod
    def from_dict(cls: type[T], data: Any, where: str = "") -> T:
        prefix = f"{where}: " if where else ""
        if not isinstance(data, dict):
            raise RecordError(f"{prefix}expected a JSON object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise RecordError(f"{prefix}missing field(s): {', '.join(missing)}")
        record = cls(**{n: data[n] for n in names})
        record.validate(prefix)
        return record

    def validate(self, prefix: str = "") -> None:
        for f in fields(self):
            expected = _TYPES.get(str(f.type))
            value = getattr(self, f.name)
            if expected and not isinstance(value, expected):
                raise RecordError(
                    f"{prefix}field '{f.name}' must be {f.type}, got {type(value).__name__}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "list[str]": (list,),
    "bool": (bool,),
}


@dataclass(frozen=True)
class Article(Record):
    """One news article as read from any source."""

    article_id: str
    outlet: str
    date: str
    url: str
    title: str
    text: str
    language: str


@dataclass(frozen=True)
class Sentence(Record):
    """One sentence of an article; `text == article.text[start:end]`."""

    sentence_id: str
    article_id: str
    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ReadError(Record):
    """An input that could not be read: which one, and why."""

    source: str
    reason: str
    line: int = 0


# --- JSONL -------------------------------------------------------------------


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line; bad JSON raises."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from exc


def read_records(path: str | Path, cls: type[T]) -> list[T]:
    """Read and validate every record of a JSONL file."""
    return [cls.from_dict(obj, f"{path}:{n}") for n, obj in iter_jsonl(path)]


def dumps(record: Record | dict[str, Any]) -> str:
    data = record.to_dict() if isinstance(record, Record) else record
    return json.dumps(data, ensure_ascii=False)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[str]]:
    """Write to a temporary file beside `path`, fsync, then rename over it.

    A run killed half-way leaves the previous file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, records: Iterable[Record | dict[str, Any]]) -> int:
    """Atomically write records as JSONL; returns how many were written."""
    n = 0
    with atomic_open(path) as fh:
        for record in records:
            fh.write(dumps(record) + "\n")
            n += 1
    return n


@dataclass(frozen=True)
class LabeledSentence(Record):
    """A hand label: which claims a sentence makes, who decided and when.

    `text` is stored so that a label survives re-segmentation: joining labels to
    sentences uses the id and checks the text still matches.
    """

    sentence_id: str
    article_id: str
    text: str
    labels: list[str]
    source: str  # seed | pool | authored | imported
    annotator: str
    labeled_at: str  # ISO 8601
    note: str
