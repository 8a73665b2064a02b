"""`claims labels check`: one fixture file per kind of error, each reported with its line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_params
from pipeline.labels import (
    REAL_SOURCES,
    SecondAnnotation,
    agreement,
    check_file,
    cohen_kappa,
    load_sentences,
)

FIXTURES = Path(__file__).parent / "fixtures" / "labels"


def problems_of(name: str) -> list[tuple[int, str]]:
    sentences = load_sentences(FIXTURES / "sentences.jsonl")
    _, problems = check_file(FIXTURES / f"{name}.jsonl", sentences, allowed_sources=REAL_SOURCES)
    return [(p.line, p.message) for p in problems]


def test_valid_file_has_no_problems() -> None:
    assert problems_of("valid") == []


@pytest.mark.parametrize(
    "name,line,message",
    [
        ("bad_json", 2, "not valid JSON"),
        ("missing_field", 2, "missing field(s): annotator"),
        ("unknown_label", 2, "unknown label(s) 'casualties'"),
        ("unrelated_combined", 2, "'unrelated' combined with another label"),
        ("empty_labels", 2, "empty label list"),
        ("duplicate_id", 3, "duplicate sentence id"),
        ("unknown_id", 2, "no longer exists in the sentences file"),
        ("text_changed", 2, "changed: labeled 'Five civilians were killed.'"),
        ("bad_source", 2, "source 'authored' not allowed here"),
    ],
)
def test_each_error_kind_is_reported_with_its_line(name: str, line: int, message: str) -> None:
    found = problems_of(name)
    assert len(found) == 1, found
    assert found[0][0] == line
    assert message in found[0][1]


def project(tmp_path: Path, label_file: str) -> Path:
    """A tiny project: params.yaml pointing at fixture sentences and one label file."""
    (tmp_path / "data").mkdir()
    (tmp_path / "labels").mkdir()
    shutil.copy(FIXTURES / "sentences.jsonl", tmp_path / "data" / "sentences.jsonl")
    shutil.copy(FIXTURES / f"{label_file}.jsonl", tmp_path / "labels" / "sentences.jsonl")
    params = tmp_path / "params.yaml"
    params.write_text("paths: {}\n", encoding="utf-8")
    return params


def test_cli_check_fails_with_line_numbers(tmp_path: Path) -> None:
    params = project(tmp_path, "unrelated_combined")
    result = CliRunner().invoke(app, ["labels", "check", "--params", str(params)])
    assert result.exit_code == 1
    assert "labels/sentences.jsonl:2: 'unrelated' combined" in result.output
    assert not (tmp_path / "data" / "labels_check.json").exists()


def test_cli_check_passes_and_writes_the_gate_file(tmp_path: Path) -> None:
    params = project(tmp_path, "valid")
    result = CliRunner().invoke(app, ["labels", "check", "--params", str(params)])
    assert result.exit_code == 0, result.output
    gate = json.loads((tmp_path / "data" / "labels_check.json").read_text())
    assert gate["ok"] is True and gate["real"]["sentences"] == 3


def test_stats_json_counts_and_agreement(tmp_path: Path) -> None:
    params = project(tmp_path, "valid")
    valid = [json.loads(x) for x in (FIXTURES / "valid.jsonl").read_text().splitlines()]
    rows = [
        SecondAnnotation(v["sentence_id"], v["text"], v["labels"], "a", lab, "b", v["labels"], "")
        for v, lab in zip(valid, [["control"], ["unrelated"], ["unrelated"]], strict=True)
    ]
    (tmp_path / "labels" / "second_annotation.jsonl").write_text(
        "".join(json.dumps(r.to_dict()) + "\n" for r in rows), encoding="utf-8"
    )
    out = tmp_path / "stats.json"
    result = CliRunner().invoke(
        app, ["labels", "stats", "--params", str(params), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(out.read_text())
    assert stats["real"]["per_label"] == {
        "control": 1,
        "casualty": 1,
        "heritage": 0,
        "unrelated": 1,
    }
    assert stats["agreement"]["per_label"]["casualty"]["f1"] == 0.0
    assert stats["agreement"]["per_label"]["control"]["kappa"] == 1.0
    assert load_params(params).path("labels").exists()


def test_kappa_and_agreement_figures() -> None:
    assert cohen_kappa([True, False, True, False], [True, False, False, False]) == pytest.approx(
        0.5
    )
    rows = [
        SecondAnnotation(
            "s1", "t", ["control"], "a", ["control", "casualty"], "b", ["control"], ""
        ),
        SecondAnnotation("s2", "t", ["unrelated"], "a", ["unrelated"], "b", ["unrelated"], ""),
    ]
    agree = agreement(rows)
    assert agree["per_label"]["control"]["f1"] == 1.0
    assert agree["per_label"]["casualty"]["f1"] == 0.0
    assert agree["exact_match"] == 0.5
