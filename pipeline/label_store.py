"""Writing hand labels into labels/sentences.jsonl without ever losing or corrupting one.

A new decision is appended, flushed and fsynced before the labeler sees the
next sentence; a changed decision rewrites the file through a temporary file
and a rename. Other lines keep their exact bytes. Writers hold an exclusive
lock on the labels folder, so `claims label` and `claims labels import` never
interleave, and a sentence labeled meanwhile by another writer is replaced,
never duplicated.
"""

from __future__ import annotations

import dataclasses
import fcntl
import getpass
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import Params
from pipeline.labels import Problem, check_all, label_problems
from pipeline.schema import LabeledSentence, RecordError, atomic_open, dumps, read_records


def utc_now() -> str:
    """The current time as UTC ISO 8601 (seconds, `Z`), as in the label files."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_annotator() -> str:
    """The OS user name (the default `--annotator`)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def source_for(article_id: str, seed_prefix: str) -> str:
    """`seed` for the seed articles, `imported` for labeling batches, `pool` for the corpus.

    Labeling batches are folders below `paths.articles_dir` other than the
    seeds, so their article ids hold a `/`; corpus rows have flat ids.
    """
    if article_id.startswith(seed_prefix):
        return "seed"
    return "imported" if "/" in article_id else "pool"


def check_record(record: LabeledSentence) -> None:
    """Refuse a record that `labels check` would refuse for its labels."""
    problems = label_problems(record.labels)
    if problems:
        raise RecordError(f"{record.sentence_id}: {'; '.join(problems)}")


@contextmanager
def _locked(folder: Path) -> Iterator[int]:
    """An exclusive lock on the folder (a rename replaces the file, so lock its parent)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _sentence_id(line: str) -> str | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj.get("sentence_id") if isinstance(obj, dict) else None


class LabelStore:
    """The real-sentence label file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[LabeledSentence]:
        """Every record, validated (missing file: none)."""
        if not self.path.exists():
            return []
        return read_records(self.path, LabeledSentence)

    def _lines(self) -> list[str]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(True)]

    def save(self, record: LabeledSentence) -> str:
        """Store one decision durably; returns `appended` or `replaced`."""
        check_record(record)
        with _locked(self.path.parent) as folder_fd:
            ids = {_sentence_id(line) for line in self._lines()}
            if record.sentence_id in ids:
                self._rewrite({record.sentence_id: record}, [], folder_fd)
                return "replaced"
            self._append(record)
            return "appended"

    def _append(self, record: LabeledSentence) -> None:
        with open(self.path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            prefix = b""
            if fh.tell() > 0:  # a last line without its newline must not swallow ours
                fh.seek(-1, os.SEEK_END)
                prefix = b"" if fh.read(1) == b"\n" else b"\n"
            fh.write(prefix + (dumps(record) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

    def render(self, replace: dict[str, LabeledSentence], append: Sequence[LabeledSentence]) -> str:
        """The file's text with these records replaced (by id) or appended; other lines as they are."""
        pending = dict(replace)
        out = []
        for line in self._lines():
            sid = _sentence_id(line) if line.strip() else None
            if sid is not None and sid in pending:
                line = dumps(pending.pop(sid)) + "\n"
            out.append(line)
        out += [dumps(r) + "\n" for r in [*pending.values(), *append]]
        return "".join(out)

    def _rewrite(
        self,
        replace: dict[str, LabeledSentence],
        append: Sequence[LabeledSentence],
        folder_fd: int,
        text: str | None = None,
    ) -> None:
        text = self.render(replace, append) if text is None else text
        mode = stat.S_IMODE(self.path.stat().st_mode) if self.path.exists() else 0o644
        with atomic_open(self.path) as fh:
            os.fchmod(fh.fileno(), mode)  # the temporary file is 0600; keep the file's mode
            fh.write(text)
        os.fsync(folder_fd)  # make the rename itself durable

    def merge(
        self,
        replace: dict[str, LabeledSentence],
        append: Sequence[LabeledSentence],
        params: Params,
        *,
        dry_run: bool = False,
    ) -> tuple[str, list[Problem]]:
        """Apply many changes at once, only if `labels check` passes on the result.

        Returns the merged text and the problems found (nothing is written when
        there are any, or on a dry run).
        """
        for record in [*replace.values(), *append]:
            check_record(record)
        with _locked(self.path.parent) as folder_fd:
            text = self.render(replace, append)
            problems = check_text(text, params)
            if not problems and not dry_run:
                self._rewrite(replace, append, folder_fd, text)
        return text, problems


def check_text(text: str, params: Params) -> list[Problem]:
    """`labels check` on this text in place of the label file (problems name the real file)."""
    with tempfile.TemporaryDirectory(prefix="claims-labels-") as tmp:
        candidate = Path(tmp) / "sentences.jsonl"
        candidate.write_text(text, encoding="utf-8")
        paths = dataclasses.replace(params.paths, labels=str(candidate))
        _, _, problems = check_all(dataclasses.replace(params, paths=paths))
    real = str(params.path("labels"))
    return [dataclasses.replace(p, path=real) if p.path == str(candidate) else p for p in problems]
