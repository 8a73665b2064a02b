"""`claims label`: the real program in a pseudo-terminal, its session logic, and the label store."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import sys
from pathlib import Path

import pexpect
import pytest

from pipeline.config import load_params
from pipeline.label_queue import (
    QueueItem,
    QueueOptions,
    add_articles,
    build_queue,
    read_skipped,
)
from pipeline.label_store import LabelStore, source_for
from pipeline.label_tui import Session, guide_definitions
from pipeline.labels import check_all
from pipeline.schema import LabeledSentence, RecordError, Sentence, read_records
from pipeline.segment import run_segment
from tests.label_project import copy_project, file_lines, template_project

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def project(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return copy_project(template_project(tmp_path_factory), tmp_path / "project")


def spawn(project: Path, *args: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160", "LINES": "40"}
    return pexpect.spawn(
        sys.executable,
        ["-m", "pipeline", "label", "--annotator", "tester", *args],
        cwd=str(project),
        env=env,
        dimensions=(40, 160),
        encoding="utf-8",
        timeout=30,
    )


def title(text: str) -> str:
    """The terminal-title sequence the program sets after each key (exact, bell-terminated)."""
    return re.escape(f"claims label: {text}") + "\x07"


def test_label_go_back_change_quit_resume(project: Path) -> None:
    params = load_params(project / "params.yaml")
    labels = params.path("labels")
    before = file_lines(labels)
    queue = build_queue(params, QueueOptions(limit=5))
    items = queue.items
    assert len(items) == 5

    child = spawn(project, "--limit", "5")
    child.expect(title("0/5 done, 0 skipped"))
    first = items[0]
    for shown in (first.title, first.sentence.text, "suggested:", "[1] control"):
        child.expect_exact(shown)
    child.send("1")
    child.send("\r")  # control
    child.expect(title("1/5 done, 0 skipped"))
    child.send("\r")  # nothing toggled: the model's suggestion
    child.expect(title("2/5 done, 0 skipped"))
    child.send("23\r")  # casualty + heritage
    child.expect(title("3/5 done, 0 skipped"))
    child.send("b")  # back to the third: its labels are toggled again
    child.expect(title("3/5 done, 0 skipped, reviewing 3"))
    child.send("0\r")  # unrelated clears casualty + heritage
    child.expect(title("3/5 done, 0 skipped"))
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before

    rows = file_lines(labels)
    assert rows[: len(before)] == before
    new = rows[len(before) :]
    assert [r["sentence_id"] for r in new] == [i.sentence.sentence_id for i in items[:3]]
    assert [r["labels"] for r in new] == [["control"], items[1].suggestion, ["unrelated"]]
    for row, item in zip(new, items, strict=False):
        assert row["text"] == item.sentence.text
        assert row["article_id"] == item.sentence.article_id
        assert row["annotator"] == "tester" and row["note"] == ""
        assert row["source"] == source_for(item.sentence.article_id, "seeds/")
        assert ISO_UTC.match(row["labeled_at"])
    assert check_all(params)[2] == []

    # Resume: the three labeled sentences are never queued again; skip one, label one, crash.
    resumed = build_queue(params, QueueOptions(limit=5)).items
    assert [i.sentence.sentence_id for i in resumed[:2]] == [
        i.sentence.sentence_id for i in items[3:5]
    ]
    child = spawn(project, "--limit", "5")
    child.expect(title("0/5 done, 0 skipped"))
    child.expect_exact(resumed[0].sentence.text)
    child.send("s")
    child.expect(title("0/5 done, 1 skipped"))
    child.send("3\r")
    child.expect(title("1/5 done, 1 skipped"))
    child.kill(signal.SIGKILL)  # a crash right after a decision loses nothing
    child.close()
    rows = file_lines(labels)
    assert len(rows) == len(before) + 4
    assert rows[-1]["sentence_id"] == resumed[1].sentence.sentence_id
    assert rows[-1]["labels"] == ["heritage"]
    assert check_all(params)[2] == []
    assert read_skipped(params) == [resumed[0].sentence.sentence_id]
    everything = build_queue(params, QueueOptions(limit=0)).items
    assert everything[-1].sentence.sentence_id == resumed[0].sentence.sentence_id


def test_from_without_a_readable_article_exits_1(project: Path) -> None:
    child = spawn(project, "--strategy", "random", "--from", str(project / "nowhere.txt"))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "no readable article" in child.before


# --- the session, key by key --------------------------------------------------------------


def _item(n: int, suggestion: list[str], labeled: LabeledSentence | None = None) -> QueueItem:
    sentence = Sentence(f"a:{n}", "a", n, 0, 5, f"text {n}")
    scores = {"control": 0.9, "casualty": 0.1, "heritage": 0.1}
    return QueueItem(sentence, "A title", (), (), scores, suggestion, labeled)


def _session(tmp_path: Path, items: list[QueueItem]) -> tuple[Session, LabelStore]:
    from pipeline.label_queue import Queue

    queue = Queue(
        items,
        "uncertain",
        "tfidf",
        "1",
        dict.fromkeys(("control", "casualty", "heritage"), 0.5),
        len(items),
    )
    store = LabelStore(tmp_path / "labels.jsonl")
    session = Session(
        queue, store, annotator="a", seed_prefix="seeds/", clock=lambda: "2026-01-01T00:00:00Z"
    )
    return session, store


def test_unrelated_stands_alone_both_ways(tmp_path: Path) -> None:
    session, _ = _session(tmp_path, [_item(0, ["control"])])
    session.toggle("control")
    session.toggle("heritage")
    assert session.chosen() == ["control", "heritage"]
    session.toggle("unrelated")
    assert session.chosen() == ["unrelated"]
    session.toggle("casualty")
    assert session.chosen() == ["casualty"]
    session.toggle("casualty")
    assert session.chosen() == ["control"]  # nothing toggled: the suggestion


def test_back_change_rewrites_one_line_and_keeps_the_rest(tmp_path: Path) -> None:
    session, store = _session(tmp_path, [_item(0, ["control"]), _item(1, ["unrelated"])])
    session.accept()
    session.accept()
    assert [r.labels for r in store.load()] == [["control"], ["unrelated"]]
    session.back()
    assert session.current.sentence.sentence_id == "a:1" and session.toggled == {"unrelated"}
    session.toggle("casualty")
    session.accept()
    assert [r.labels for r in store.load()] == [["control"], ["casualty"]]
    assert session.counts() == {"control": 1, "casualty": 1, "heritage": 0, "unrelated": 0}
    assert session.current is None


def test_audit_starts_from_the_human_label_and_enter_keeps_it(tmp_path: Path) -> None:
    old = LabeledSentence("a:0", "a", "text 0", ["casualty"], "seed", "lead", "t", "rule 6")
    store = LabelStore(tmp_path / "labels.jsonl")
    store.save(old)
    session, store = _session(tmp_path, [_item(0, ["control"], old), _item(1, ["control"], None)])
    assert session.toggled == {"casualty"}
    session.accept()
    assert store.load() == [old]  # confirmed: nothing rewritten
    session.back()
    session.toggle("control")
    session.accept()
    (changed,) = store.load()
    assert changed.labels == ["control", "casualty"] and changed.source == "seed"


def test_skip_moves_the_sentence_to_the_end(tmp_path: Path) -> None:
    skipped = []
    session, _ = _session(tmp_path, [_item(0, ["control"]), _item(1, ["control"])])
    session.on_skip = skipped.append
    session.skip()
    assert session.current.sentence.sentence_id == "a:1"
    session.accept()
    assert session.current.sentence.sentence_id == "a:0" and skipped == ["a:0"]


def test_guide_definitions_come_from_the_guidelines() -> None:
    root = Path(__file__).resolve().parents[1]
    guide = dict(guide_definitions(root / "labels" / "GUIDELINES.md"))
    assert list(guide) == ["control", "casualty", "heritage", "unrelated"]
    assert guide["control"].startswith("Who holds ground")
    assert guide["casualty"].startswith("People killed")


# --- the label store -----------------------------------------------------------------------


def _record(sid: str, labels: list[str]) -> LabeledSentence:
    return LabeledSentence(sid, "a", f"text of {sid}", labels, "pool", "a", "t", "")


def test_store_appends_after_a_line_without_newline_and_replaces_in_place(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    odd = '{"sentence_id": "x:1",  "article_id": "a", "text": "é", "labels": ["unrelated"], "source": "pool", "annotator": "a", "labeled_at": "t", "note": ""}'
    path.write_text(odd, encoding="utf-8")
    path.chmod(0o644)
    store = LabelStore(path)
    assert store.save(_record("x:2", ["control"])) == "appended"
    assert store.save(_record("x:2", ["heritage"])) == "replaced"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == odd  # other lines keep their exact bytes
    assert [json.loads(line)["labels"] for line in lines] == [["unrelated"], ["heritage"]]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    with pytest.raises(RecordError, match="'unrelated' combined with another label"):
        store.save(_record("x:3", ["unrelated", "control"]))


# --- new articles -------------------------------------------------------------------------


def test_from_inputs_get_the_ids_claims_segment_gives(project: Path, tmp_path: Path) -> None:
    params = load_params(project / "params.yaml")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "report one.txt").write_text(
        "Rebels seized Homs.\n\nAt least 12 civilians were killed in Aleppo on Friday.",
        encoding="utf-8",
    )
    (tmp_path / "in" / "rows.csv").write_text(
        'id,title,text\n7,Ruins hit,"Militants blew up the ancient temple of Palmyra."\n',
        encoding="utf-8",
    )
    articles, sentences, errors = add_articles(params, [str(tmp_path / "in")], "batch1")
    assert errors == []
    assert sorted(a.article_id for a in articles) == ["batch1/7", "batch1/report_one"]
    assert (params.path("articles_dir") / "batch1" / "7.txt").read_text().startswith("Ruins hit\n")
    added = {s.sentence_id: s for s in sentences}
    assert check_all(params)[2] == []
    queue = build_queue(
        params, QueueOptions(strategy="random", articles=frozenset(a.article_id for a in articles))
    )
    assert {i.sentence.sentence_id for i in queue.items} == set(added)
    run_segment(params)  # the stage itself, from the files: the same ids
    again = {s.sentence_id: s for s in read_records(params.path("sentences"), Sentence)}
    assert all(again[sid] == s for sid, s in added.items())
    assert source_for("batch1/7", "seeds/") == "imported"
