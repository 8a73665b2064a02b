"""Reader: every format, every encoding, and the inputs it must refuse by name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.reader import InputError, ReadOptions, decode_bytes, read_articles
from pipeline.schema import Article, ReadError

TEXT = "Rebels captured the town of Kafr Nubl on Sunday, a monitor said.\n\nNo one was hurt."


def read(*paths: Path | str, **kw: object) -> tuple[list[Article], list[ReadError]]:
    items = list(read_articles([str(p) for p in paths], ReadOptions(**kw)))  # type: ignore[arg-type]
    return (
        [i for i in items if isinstance(i, Article)],
        [i for i in items if isinstance(i, ReadError)],
    )


@pytest.mark.parametrize(
    "encoding,prefix",
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16", b""), ("cp1252", b"")],
)
def test_encodings_are_detected_by_content(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    text = "Caf\u00e9 owners in Homs said the \u201cold souk\u201d was shelled \u2013 again."
    path = tmp_path / "a.txt"
    path.write_bytes(prefix + text.encode(encoding))
    articles, errors = read(path)
    assert errors == []
    assert articles[0].text == text
    assert articles[0].article_id == "a"


def test_utf16_without_bom_is_text_not_binary() -> None:
    text = "Government forces retook the airport, state media said."
    assert decode_bytes(text.encode("utf-16-le"), "x") == text


def test_png_renamed_txt_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "photo.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    articles, errors = read(path)
    assert articles == []
    assert errors[0].source == str(path)
    assert "binary" in errors[0].reason


@pytest.mark.parametrize("content", [b"", b"   \n\t\n  "])
def test_empty_and_whitespace_files_are_reported(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.md"
    path.write_bytes(content)
    articles, errors = read(path)
    assert articles == []
    assert errors[0].source == str(path) and "empty" in errors[0].reason


def test_random_bytes_are_refused_and_the_batch_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "noise.txt"
    bad.write_bytes(bytes([0, 159, 146, 150, 0, 255, 254, 0, 1, 2]) * 50)
    good = tmp_path / "good.txt"
    good.write_text(TEXT, encoding="utf-8")
    articles, errors = read(bad, good)
    assert [a.article_id for a in articles] == ["good"]
    assert errors[0].source == str(bad)


def test_folder_ids_are_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "001_x.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "b.md").write_text("# Headline\n\n" + TEXT, encoding="utf-8")
    articles, errors = read(tmp_path)
    assert errors == []
    assert sorted(a.article_id for a in articles) == ["b", "seeds/001_x"]
    assert {a.title for a in articles} >= {"Headline"}


def test_directory_loop_is_reported_not_followed_forever(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text(TEXT, encoding="utf-8")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    articles, errors = read(tmp_path)
    assert [a.article_id for a in articles] == ["a/x"]
    assert any("loop" in e.reason for e in errors)


def test_missing_path_and_oversized_file(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text(TEXT * 10, encoding="utf-8")
    articles, errors = read(tmp_path / "nope.txt", big, max_bytes=100)
    assert articles == []
    assert "no such file" in errors[0].reason
    assert "too large" in errors[1].reason and errors[1].source == str(big)


@pytest.mark.usefixtures("locked_files")
def test_permission_denied_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "locked.txt"
    path.write_text(TEXT, encoding="utf-8")
    articles, errors = read(path)
    assert articles == [] and errors[0].reason == "permission denied"


def test_html_main_text_is_extracted(tmp_path: Path) -> None:
    body = " ".join(["Syrian troops recaptured the ancient city after weeks of fighting."] * 3)
    html = (
        "<html><head><title>Army retakes Palmyra</title></head><body>"
        "<nav>Home | World | Sport</nav><article><h1>Army retakes Palmyra</h1>"
        f"<p>{body}</p><p>Officials said the museum had been looted.</p></article>"
        "<footer>Copyright 2016</footer></body></html>"
    )
    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    articles, errors = read(path)
    assert errors == []
    assert "museum had been looted" in articles[0].text
    assert "Copyright" not in articles[0].text
    assert articles[0].title == "Army retakes Palmyra"


def test_html_without_text_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "blank.html"
    path.write_text("<html><body><script>var x=1;</script></body></html>", encoding="utf-8")
    articles, errors = read(path)
    assert articles == [] and "no extractable" in errors[0].reason


def test_fakes_csv_maps_columns(tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    path.write_text(
        "unit_id,article_title,article_content,source,date,location,labels\n"
        '7,Rebels advance,"Rebels advance. Rebels seized two villages on Monday said activists.",'
        "sana,4/5/2017,idlib,1\n"
        "7,Second copy,Another text about shelling in Idlib killing four.,sana,4/6/2017,idlib,0\n",
        encoding="utf-8",
    )
    articles, errors = read(path)
    assert errors == []
    first, second = articles
    assert (first.article_id, first.title, first.outlet, first.date) == (
        "fakes-7",
        "Rebels advance",
        "sana",
        "4/5/2017",
    )
    assert first.text.startswith("Rebels advance.")
    assert second.article_id == "fakes-7-2"


def test_csv_unterminated_quote_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text('id,text\n1,"fine text here\n2,more\n', encoding="utf-8")
    articles, errors = read(path)
    assert articles == []
    assert errors[0].source == str(path) and "never closed" in errors[0].reason


def test_csv_ragged_row_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("id,text\n1,Troops entered Raqqa.\n2,too,many,fields\n", encoding="utf-8")
    articles, errors = read(path)
    assert [a.article_id for a in articles] == ["1"]
    assert errors[0].line == 3 and "expected 2 fields" in errors[0].reason


def test_csv_without_text_column(tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("id,headline_only\n1,x\n", encoding="utf-8")
    _, errors = read(path)
    assert "no text column" in errors[0].reason and "headline_only" in errors[0].reason


def test_jsonl_rows_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": "a1", "text": "Four civilians were killed in Douma.", "url": "http://x"}),
        "{not json",
        json.dumps({"id": "a3", "text": "   "}),
        json.dumps({"id": "a4", "text": 5}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    articles, errors = read(path)
    assert [(a.article_id, a.url) for a in articles] == [("a1", "http://x")]
    assert [e.line for e in errors] == [2, 3, 4]
    assert "not valid JSON" in errors[0].reason
    assert "empty" in errors[1].reason
    assert "must be a string" in errors[2].reason


def test_text_and_id_columns_can_be_named(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("key,body_text\nk9,Shelling hit the old market.\n", encoding="utf-8")
    articles, errors = read(path, text_column="body_text", id_column="key")
    assert errors == [] and articles[0].article_id == "k9"


def test_language_is_detected(tmp_path: Path) -> None:
    (tmp_path / "en.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "fr.txt").write_text(
        "Les forces gouvernementales ont repris la ville apr\u00e8s des combats intenses, "
        "selon l'Observatoire syrien des droits de l'homme.",
        encoding="utf-8",
    )
    articles, _ = read(tmp_path)
    assert {a.article_id: a.language for a in articles} == {"en": "en", "fr": "fr"}


def test_utf16_file_with_decode_error_is_reported() -> None:
    with pytest.raises(InputError, match="UTF-16"):
        decode_bytes(b"\xff\xfe" + b"\x00\xd8", "odd.txt")
