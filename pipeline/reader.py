"""Read articles from any source: text, markdown and HTML files, folders, JSONL and CSV.

`read_articles` yields `Article` records and `ReadError` records in input order,
so that one bad file never stops a batch. Encodings are judged by content,
not by file extension.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.schema import Article, ReadError

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
CSV_SUFFIXES = {".csv", ".tsv"}
STDIN = "-"

TEXT_COLUMNS = ("text", "article_content", "content", "body", "article", "sentence")
ID_COLUMNS = ("article_id", "id", "unit_id", "doc_id")
TITLE_COLUMNS = ("title", "article_title", "headline")
OUTLET_COLUMNS = ("outlet", "source", "publisher")
DATE_COLUMNS = ("date", "published", "published_at")
URL_COLUMNS = ("url", "link")

# Magic numbers of common binary formats: such a file is binary whatever it is named.
_MAGIC = (
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"%PDF",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\x7fELF",
    b"BZh",
    b"\xfd7zXZ",
    b"SQLite format 3",
)


class InputError(ValueError):
    """A source that cannot be turned into articles; the message names it and says why."""


@dataclass(frozen=True)
class ReadOptions:
    """How to read tabular sources and how much to accept."""

    text_column: str | None = None
    id_column: str | None = None
    max_bytes: int = 20_000_000


# --- bytes to text -------------------------------------------------------------


def _looks_utf16(data: bytes) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    sample = data[:4000]
    if len(sample) < 4:
        return None
    even_nuls = sample[0::2].count(0) / max(1, len(sample[0::2]))
    odd_nuls = sample[1::2].count(0) / max(1, len(sample[1::2]))
    if odd_nuls > 0.3 and even_nuls < 0.05:
        return "utf-16-le"
    if even_nuls > 0.3 and odd_nuls < 0.05:
        return "utf-16-be"
    return None


def decode_bytes(data: bytes, name: str) -> str:
    """Decode file content, detecting the encoding; raise InputError if it is not text."""
    if not data.strip():
        raise InputError(f"{name}: empty file")
    if data.startswith(_MAGIC):
        raise InputError(f"{name}: binary file, not text")
    if data.startswith(b"\xef\xbb\xbf"):
        return _check_text(data[3:].decode("utf-8", errors="strict"), name)
    utf16 = _looks_utf16(data)
    if utf16:
        try:
            return _check_text(data.decode(utf16).lstrip("\ufeff"), name)
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}: looks like UTF-16 but does not decode: {exc}") from exc
    if b"\x00" in data:
        raise InputError(f"{name}: binary file (contains NUL bytes), not text")
    try:
        return _check_text(data.decode("utf-8"), name)
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise InputError(f"{name}: undecodable: no text encoding fits its bytes")
    return _check_text(str(best), name)


def _check_text(text: str, name: str) -> str:
    if not text.strip():
        raise InputError(f"{name}: empty or whitespace-only text")
    controls = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    if controls > max(5, len(text[:20000]) // 50):
        raise InputError(f"{name}: binary file (control characters), not text")
    return text


# --- language ------------------------------------------------------------------


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language ('' when there is too little text)."""
    sample = text[:3000].strip()
    if len(sample) < 20:
        return ""
    import py3langid

    lang, _score = py3langid.classify(sample)
    return str(lang)


# --- record builders -----------------------------------------------------------


def make_article(
    article_id: str,
    text: str,
    *,
    title: str = "",
    outlet: str = "",
    date: str = "",
    url: str = "",
    language: str | None = None,
) -> Article:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Article(
        article_id=article_id,
        outlet=outlet,
        date=date,
        url=url,
        title=title,
        text=text,
        language=detect_language(text) if language is None else language,
    )


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:300]
    return ""


def article_from_html(html: str, article_id: str, name: str) -> Article:
    import trafilatura

    extracted = trafilatura.bare_extraction(
        html, include_comments=False, include_tables=False, with_metadata=True
    )
    text = ""
    meta: dict[str, str] = {}
    if extracted is not None:
        data = extracted.as_dict() if hasattr(extracted, "as_dict") else dict(extracted)
        text = data.get("text") or ""
        meta = {k: str(data.get(k) or "") for k in ("title", "sitename", "date", "url")}
    if not text.strip():
        raise InputError(f"{name}: HTML page with no extractable article text")
    title = meta.get("title", "")
    if title and not text.lstrip().startswith(title):
        text = f"{title}\n\n{text}"
    return make_article(
        article_id,
        text,
        title=title,
        outlet=meta.get("sitename", ""),
        date=meta.get("date", ""),
        url=meta.get("url", ""),
    )


def _sniff_html(text: str) -> bool:
    head = text[:2000].lstrip().lower()
    return head.startswith(("<!doctype html", "<html")) or ("<body" in head and "</" in head)


# --- tabular sources -----------------------------------------------------------


def _pick(columns: Iterable[str], wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    cols = list(columns)
    if wanted:
        return wanted if wanted in cols else None
    lower = {c.lower(): c for c in cols}
    for cand in candidates:
        if cand in lower:
            return lower[cand]
    return None


class RowReader:
    """Turns the rows of one JSONL or CSV file into articles."""

    def __init__(self, name: str, columns: Iterable[str], opts: ReadOptions, stem: str) -> None:
        cols = list(columns)
        self.name = name
        self.stem = stem
        self.text_col = _pick(cols, opts.text_column, TEXT_COLUMNS)
        if self.text_col is None:
            wanted = opts.text_column or " or ".join(TEXT_COLUMNS)
            raise InputError(
                f"{name}: no text column: expected {wanted}, found {', '.join(cols) or 'none'}"
            )
        self.id_col = _pick(cols, opts.id_column, ID_COLUMNS)
        if opts.id_column and self.id_col is None:
            raise InputError(f"{name}: no id column '{opts.id_column}'; found {', '.join(cols)}")
        # The FA-KES pool: ids are fakes-<unit_id>, as everywhere in this project.
        self.id_prefix = "fakes-" if self.id_col == "unit_id" and "article_content" in cols else ""
        self.title_col = _pick(cols, None, TITLE_COLUMNS)
        self.outlet_col = _pick(cols, None, OUTLET_COLUMNS)
        self.date_col = _pick(cols, None, DATE_COLUMNS)
        self.url_col = _pick(cols, None, URL_COLUMNS)
        self.seen_ids: dict[str, int] = {}

    def _get(self, row: dict, col: str | None) -> str:
        value = row.get(col) if col else None
        return "" if value is None else str(value).strip()

    def article(self, row: dict, lineno: int) -> Article:
        text = row.get(self.text_col)
        where = f"{self.name}:{lineno}"
        if text is None:
            raise InputError(f"{where}: field '{self.text_col}' is missing")
        if not isinstance(text, str):
            raise InputError(
                f"{where}: field '{self.text_col}' must be a string, got {type(text).__name__}"
            )
        if not text.strip():
            raise InputError(f"{where}: field '{self.text_col}' is empty")
        raw_id = self._get(row, self.id_col)
        article_id = f"{self.id_prefix}{raw_id}" if raw_id else f"{self.stem}-{lineno}"
        # A repeated id (FA-KES has one, with two different texts) gets a counter.
        self.seen_ids[article_id] = self.seen_ids.get(article_id, 0) + 1
        if self.seen_ids[article_id] > 1:
            log.warning(
                "%s: id %s repeats; this row is %s",
                where,
                article_id,
                f"{article_id}-{self.seen_ids[article_id]}",
            )
            article_id = f"{article_id}-{self.seen_ids[article_id]}"
        return make_article(
            article_id,
            text,
            title=self._get(row, self.title_col),
            outlet=self._get(row, self.outlet_col),
            date=self._get(row, self.date_col),
            url=self._get(row, self.url_col),
        )


def read_jsonl_articles(
    text: str, name: str, opts: ReadOptions, stem: str
) -> Iterator[Article | ReadError]:
    reader: RowReader | None = None
    for lineno, line in enumerate(io.StringIO(text), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield ReadError(name, f"line {lineno}: not valid JSON: {exc.msg}", lineno)
            continue
        if not isinstance(row, dict):
            yield ReadError(name, f"line {lineno}: expected a JSON object", lineno)
            continue
        try:
            if reader is None:
                reader = RowReader(name, row.keys(), opts, stem)
            yield reader.article(row, lineno)
        except InputError as exc:
            yield ReadError(name, str(exc).removeprefix(f"{name}: "), lineno)
            if reader is None:
                return


def read_csv_articles(
    text: str, name: str, opts: ReadOptions, stem: str, delimiter: str = ","
) -> Iterator[Article | ReadError]:
    """Strict CSV: an unterminated quote or a ragged row is an error with its line."""
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(rows)
    except (StopIteration, csv.Error) as exc:
        yield ReadError(name, f"no CSV header: {exc}", 1)
        return
    try:
        reader = RowReader(name, header, opts, stem)
    except InputError as exc:
        yield ReadError(name, str(exc).removeprefix(f"{name}: "), 1)
        return
    while True:
        start = rows.line_num + 1
        try:
            values = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            yield ReadError(
                name, f"line {start}: malformed CSV ({exc}); rest of file skipped", start
            )
            return
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield ReadError(
                name, f"line {start}: expected {len(header)} fields, found {len(values)}", start
            )
            continue
        try:
            yield reader.article(dict(zip(header, values, strict=True)), start)
        except InputError as exc:
            yield ReadError(name, str(exc).removeprefix(f"{name}: "), start)


def _check_unterminated(text: str) -> bool:
    """csv in strict mode still accepts a quote left open at end of file; detect it."""
    in_quote = False
    for ch in text:
        if ch == '"':
            in_quote = not in_quote
    return in_quote


# --- files and folders ---------------------------------------------------------


def read_file(path: Path, article_id: str, opts: ReadOptions) -> Iterator[Article | ReadError]:
    """All articles of one file (one for text and HTML, one per row for JSONL/CSV)."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > opts.max_bytes:
            raise InputError(
                f"{name}: file too large ({size} bytes > --max-bytes {opts.max_bytes})"
            )
        data = path.read_bytes()
        yield from read_bytes(data, name, article_id, path.suffix.lower(), opts)
    except InputError as exc:
        yield ReadError(name, str(exc).removeprefix(f"{name}: "))
    except PermissionError:
        yield ReadError(name, "permission denied")
    except IsADirectoryError:
        yield ReadError(name, "is a directory, expected a file")
    except OSError as exc:
        yield ReadError(name, f"cannot read: {exc.strerror or exc}")


def read_bytes(
    data: bytes, name: str, article_id: str, suffix: str, opts: ReadOptions
) -> Iterator[Article | ReadError]:
    text = decode_bytes(data, name)
    stem = Path(article_id).name
    if suffix in JSONL_SUFFIXES:
        yield from read_jsonl_articles(text, name, opts, stem)
    elif suffix in CSV_SUFFIXES:
        if _check_unterminated(text):
            raise InputError(f"{name}: malformed CSV: a quoted field is never closed")
        yield from read_csv_articles(text, name, opts, stem, "\t" if suffix == ".tsv" else ",")
    elif suffix in HTML_SUFFIXES or (suffix not in TEXT_SUFFIXES and _sniff_html(text)):
        yield article_from_html(text, article_id, name)
    else:
        yield make_article(article_id, text, title=_first_line_title(text))


def _walk(root: Path) -> Iterator[Path | ReadError]:
    """Files below root in sorted order, following links but never around a loop."""
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path) -> Iterator[Path | ReadError]:
        try:
            st = folder.stat()
        except OSError as exc:
            yield ReadError(str(folder), f"cannot open folder: {exc.strerror or exc}")
            return
        key = (st.st_dev, st.st_ino)
        if key in seen:
            yield ReadError(str(folder), "directory loop (a link back to a folder already read)")
            return
        seen.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            yield ReadError(str(folder), "permission denied")
            return
        except OSError as exc:
            yield ReadError(str(folder), f"cannot list folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError as exc:
                yield ReadError(str(path), f"cannot stat: {exc.strerror or exc}")
                continue
            if is_dir:
                yield from visit(path)
            else:
                yield path

    yield from visit(root)


def _file_id(path: Path, root: Path | None) -> str:
    if root is None:
        return path.stem
    rel = path.relative_to(root)
    return str(rel.with_suffix("")).replace(os.sep, "/")


def read_articles(
    sources: Iterable[str | Path], opts: ReadOptions | None = None
) -> Iterator[Article | ReadError]:
    """Read every source (`-` is stdin); yield articles and errors in order."""
    opts = opts or ReadOptions()
    for source in sources:
        if str(source) == STDIN:
            yield from _read_stdin(opts)
            continue
        path = Path(source)
        if path.is_dir():
            for item in _walk(path):
                if isinstance(item, ReadError):
                    yield item
                else:
                    yield from read_file(item, _file_id(item, path), opts)
        elif path.exists() or path.is_symlink():
            yield from read_file(path, _file_id(path, None), opts)
        else:
            yield ReadError(str(path), "no such file or folder")


def _read_stdin(opts: ReadOptions) -> Iterator[Article | ReadError]:
    data = sys.stdin.buffer.read()
    name = "<stdin>"
    try:
        text = decode_bytes(data, name)
        first = text.lstrip()[:1]
        suffix = ".jsonl" if first == "{" else ".txt"
        yield from read_bytes(data, name, "stdin", suffix, opts)
    except InputError as exc:
        yield ReadError(name, str(exc).removeprefix(f"{name}: "))
