"""Stage `segment`: articles in, sentence records out.

Paragraph breaks (any line break) always end a sentence, so a headline
without a full stop stands alone; inside a paragraph pysbd finds the
boundaries. Every sentence keeps its character offsets into the article text.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from pipeline.config import Params, SegmentConfig
from pipeline.reader import ReadOptions, read_articles
from pipeline.schema import Article, ReadError, Sentence, write_jsonl

log = logging.getLogger(__name__)

_PARAGRAPH = re.compile(r"[^\n]+")
_WORD = re.compile(r"\w")
# Double quotation marks. pysbd never splits inside a quotation and splits wrongly
# after one that an attribution follows (FA-KES lost its commas: `agents" WHO said`),
# so boundaries are found on a shadow copy with these marks blanked out.
_QUOTES = str.maketrans({q: " " for q in '"\u201c\u201d\u201e\u00ab\u00bb'})


def normalize_text(text: str) -> str:
    """Case- and space-folded text: the key for ids and for duplicate detection."""
    return " ".join(text.split()).lower()


def sentence_id(article_id: str, text: str, occurrence: int = 1) -> str:
    """Stable id: article id + hash of the sentence text (+ a counter for repeats)."""
    digest = hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:12]
    return f"{article_id}:{digest}" if occurrence == 1 else f"{article_id}:{digest}-{occurrence}"


@lru_cache(maxsize=4)
def _segmenter(language: str):  # noqa: ANN202 - pysbd has no types
    import pysbd

    return pysbd.Segmenter(language=language, clean=False)


def split_spans(text: str, cfg: SegmentConfig) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text`, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    for para in _PARAGRAPH.finditer(text):
        if para.group().strip():
            para_spans = _paragraph_spans(text, para.start(), para.end(), cfg)
            spans.extend(_merge_fragments(text, para_spans, cfg.min_chars))
    return [(s, e) for s, e in (_trim(text, s, e) for s, e in spans) if e > s]


def _paragraph_spans(text: str, start: int, end: int, cfg: SegmentConfig) -> list[tuple[int, int]]:
    """Sentence spans of one paragraph, found on its quote-blanked shadow (same length)."""
    shadow = text[start:end].translate(_QUOTES)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in _segmenter(cfg.language).segment(shadow):
        stripped = piece.strip()
        if not stripped:
            continue
        pos = shadow.find(stripped, cursor)
        if pos < 0:  # pysbd altered the text; keep the rest of the paragraph whole
            log.debug("segment text not found verbatim: %r", stripped[:60])
            spans.append((start + cursor, end))
            return spans
        s, e = pos, pos + len(stripped)
        # Give the quotation marks blanked in the shadow back to their sentence.
        while s > cursor and shadow[s - 1] == " " and text[start + s - 1] != " ":
            s -= 1
        while e < len(shadow) and shadow[e] == " " and text[start + e] != " ":
            e += 1
        spans.append((start + s, start + e))
        cursor = e
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _merge_fragments(
    text: str, spans: list[tuple[int, int]], min_chars: int
) -> list[tuple[int, int]]:
    """Glue stray pieces (a lone quote mark, a bracket) onto the sentence before."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        piece = text[start:end]
        if merged and (len(piece) < min_chars or not _WORD.search(piece)):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def segment_article(article: Article, cfg: SegmentConfig) -> list[Sentence]:
    """The sentence records of one article, in order."""
    seen: Counter[str] = Counter()
    sentences = []
    for index, (start, end) in enumerate(split_spans(article.text, cfg)):
        text = article.text[start:end]
        key = " ".join(text.split())
        seen[key] += 1
        sentences.append(
            Sentence(
                sentence_id=sentence_id(article.article_id, text, seen[key]),
                article_id=article.article_id,
                index=index,
                start=start,
                end=end,
                text=text,
            )
        )
    return sentences


def segment_articles(
    articles: Iterable[Article], cfg: SegmentConfig
) -> Iterator[tuple[Article, list[Sentence]]]:
    for article in articles:
        yield article, segment_article(article, cfg)


def run_segment(
    params: Params, sources: list[Path] | None = None
) -> tuple[int, int, list[ReadError]]:
    """Read the project's articles and write articles.jsonl and sentences.jsonl."""
    from rich.progress import track

    sources = sources or [params.path("articles_dir"), params.path("corpus_csv")]
    opts = ReadOptions(max_bytes=params.reader.max_bytes)
    articles: list[Article] = []
    errors: list[ReadError] = []
    ids: set[str] = set()
    for item in read_articles(sources, opts):
        if isinstance(item, ReadError):
            errors.append(item)
            log.error("%s: %s", item.source, item.reason)
        elif item.article_id in ids:
            errors.append(ReadError(item.article_id, "duplicate article id; later copy skipped"))
            log.error("duplicate article id %s; later copy skipped", item.article_id)
        else:
            ids.add(item.article_id)
            articles.append(item)
    sentences: list[Sentence] = []
    for article in track(articles, description="segmenting", transient=True):
        sentences.extend(segment_article(article, params.segment))
    write_jsonl(params.path("articles"), articles)
    write_jsonl(params.path("sentences"), sentences)
    log.info(
        "segment: %d articles -> %d sentences (%d errors)",
        len(articles),
        len(sentences),
        len(errors),
    )
    return len(articles), len(sentences), errors
