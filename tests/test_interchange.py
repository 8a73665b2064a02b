"""`claims labels export` / `import`: Label Studio and Prodigy round trips, and every refusal."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_params
from pipeline.label_queue import QueueOptions, build_queue
from pipeline.labels import check_all
from pipeline.models import load_model
from pipeline.schema import write_jsonl
from tests.label_project import copy_project, file_lines, fit_tiny_tfidf, template_project

CHOICES = [
    ["control"],
    ["casualty", "heritage"],
    ["unrelated"],
    ["control", "casualty", "heritage"],
]


@pytest.fixture
def project(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return copy_project(template_project(tmp_path_factory), tmp_path / "project")


def claims(project: Path, *args: str):  # noqa: ANN201
    return CliRunner().invoke(app, [*args, "--params", str(project / "params.yaml")])


def export(project: Path, fmt: str, *args: str) -> str:
    result = claims(project, "labels", "export", "--format", fmt, "--output", "-", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def labels_text(project: Path) -> str:
    return (project / "labels" / "sentences.jsonl").read_text(encoding="utf-8")


def annotate_ls(tasks: list[dict], choices: list[list[str]]) -> list[dict]:
    """What Label Studio exports after an annotator chose these labels (one per task)."""
    done = copy.deepcopy(tasks)
    for n, (task, labels) in enumerate(zip(done, choices, strict=False)):
        task["id"] = n + 1
        task["annotations"] = [
            {
                "id": 100 + n,
                "completed_by": {"id": 1, "email": "ann@example.org"},
                "result": [
                    {
                        "id": f"r{n}",
                        "from_name": "claims",
                        "to_name": "text",
                        "type": "choices",
                        "value": {"choices": labels},
                        "origin": "manual",
                    }
                ],
                "was_cancelled": False,
                "created_at": "2026-03-01T10:00:00.123456Z",
                "updated_at": "2026-03-01T12:30:05.654321+02:00",
            }
        ]
    return done


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_label_studio_export_is_tasks_with_choices_predictions(project: Path) -> None:
    params = load_params(project / "params.yaml")
    tasks = json.loads(export(project, "label-studio", "--limit", "6"))
    queue = build_queue(params, QueueOptions(limit=6))
    assert [t["data"]["sentence_id"] for t in tasks] == [
        i.sentence.sentence_id for i in queue.items
    ]
    for task, item in zip(tasks, queue.items, strict=True):
        assert task["data"]["text"] == item.sentence.text
        assert task["data"]["article_id"] == item.sentence.article_id
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "tfidf 1"
        assert 0 <= prediction["score"] <= 1
        assert prediction["result"] == [
            {
                "from_name": "claims",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": item.suggestion},
            }
        ]
        assert "annotations" not in task


def test_label_studio_round_trip_is_lossless(project: Path, tmp_path: Path) -> None:
    params = load_params(project / "params.yaml")
    before = file_lines(params.path("labels"))
    tasks = json.loads(export(project, "label-studio", "--limit", "4"))
    done = write(tmp_path / "export.json", annotate_ls(tasks, CHOICES))
    result = claims(project, "labels", "import", str(done), "--format", "label-studio")
    assert result.exit_code == 0, result.output
    assert "add 4, update 0, unchanged 0, skipped 0" in result.stdout
    rows = file_lines(params.path("labels"))
    assert rows[: len(before)] == before
    new = {r["sentence_id"]: r for r in rows[len(before) :]}
    for task, labels in zip(tasks, CHOICES, strict=True):
        row = new[task["data"]["sentence_id"]]
        assert row["labels"] == labels
        assert row["text"] == task["data"]["text"]
        assert row["article_id"] == task["data"]["article_id"]
        assert row["source"] == "imported" and row["annotator"] == "ann@example.org"
        assert row["labeled_at"] == "2026-03-01T10:30:05Z" and row["note"] == ""
    assert check_all(params)[2] == []

    text = labels_text(project)
    again = claims(project, "labels", "import", str(done), "--format", "label-studio")
    assert again.exit_code == 0 and "add 0, update 0, unchanged 4" in again.stdout
    assert labels_text(project) == text
    remaining = json.loads(export(project, "label-studio", "--limit", "0"))
    assert not {t["data"]["sentence_id"] for t in remaining} & set(new)


def test_label_studio_min_export_and_changed_labels(project: Path, tmp_path: Path) -> None:
    params = load_params(project / "params.yaml")
    first = file_lines(params.path("labels"))[0]
    other_lines = labels_text(project).splitlines()[1:]
    flat = [
        {
            "id": 9,
            "text": first["text"],
            "sentence_id": first["sentence_id"],
            "article_id": first["article_id"],
            "claims": {"choices": ["Heritage", "casualty"]},
            "annotator": "min@example.org",
            "updated_at": "2026-04-02T08:00:00Z",
        }
    ]
    path = write(tmp_path / "min.json", flat)
    dry = claims(project, "labels", "import", str(path), "--format", "label-studio", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would update {first['sentence_id']}: " in dry.stdout
    assert file_lines(params.path("labels"))[0] == first
    done = claims(project, "labels", "import", str(path), "--format", "label-studio")
    assert done.exit_code == 0 and "add 0, update 1" in done.stdout
    lines = labels_text(project).splitlines()
    assert lines[1:] == other_lines  # every other line keeps its bytes
    row = json.loads(lines[0])
    assert row["labels"] == ["casualty", "heritage"] and row["source"] == "imported"
    assert row["annotator"] == "min@example.org" and row["labeled_at"] == "2026-04-02T08:00:00Z"


def test_prodigy_round_trip_is_lossless(project: Path, tmp_path: Path) -> None:
    params = load_params(project / "params.yaml")
    lines = export(project, "prodigy", "--limit", "5").splitlines()
    tasks = [json.loads(line) for line in lines]
    assert len(tasks) == 5
    for task in tasks:
        assert [o["id"] for o in task["options"]] == [
            "control",
            "casualty",
            "heritage",
            "unrelated",
        ]
        assert task["accept"] and task["meta"]["sentence_id"]
    answered = []
    for n, task in enumerate(tasks):
        row = dict(task, answer="accept", _annotator_id="claims-pat", _timestamp=1767225600 + n)
        if n < len(CHOICES):
            row["accept"] = CHOICES[n]
        answered.append(row)
    answered[-1]["answer"] = "ignore"
    path = tmp_path / "db-out.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in answered) + "\n", encoding="utf-8")
    result = claims(project, "labels", "import", str(path), "--format", "prodigy")
    assert result.exit_code == 0, result.output
    assert "add 4, update 0, unchanged 0, skipped 1" in result.stdout
    stored = {r["sentence_id"]: r for r in file_lines(params.path("labels"))}
    for n, task in enumerate(tasks[:4]):
        row = stored[task["meta"]["sentence_id"]]
        assert row["labels"] == CHOICES[n] and row["text"] == task["text"]
        assert row["annotator"] == "claims-pat" and row["source"] == "imported"
        assert row["labeled_at"] == f"2026-01-01T00:00:0{n}Z"
    assert tasks[4]["meta"]["sentence_id"] not in stored
    assert check_all(params)[2] == []
    text = labels_text(project)
    again = claims(
        project, "labels", "import", str(path), "--format", "prodigy", "--annotator", "x"
    )
    assert again.exit_code == 0 and "unchanged 4" in again.stdout
    assert labels_text(project) == text


def test_csv_export_has_suggestions_and_scores(project: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(export(project, "csv", "--strategy", "random"))))
    assert rows and rows[0]["rank"] == "1"
    assert {"sentence_id", "text", "suggested", "score_control", "score_heritage"} <= set(rows[0])
    assert all(0 <= float(r["score_casualty"]) <= 1 for r in rows)


def test_audit_export_carries_the_current_label_as_an_annotation(project: Path) -> None:
    params = load_params(project / "params.yaml")
    stored = file_lines(params.path("labels"))
    oof = [
        {
            "sentence_id": r["sentence_id"],
            "text": r["text"],
            # The model contradicts the first label strongly; it agrees with the others.
            "calibrated": {
                k: (0.0 if k in r["labels"] else 1.0) if i == 0 else float(k in r["labels"])
                for k in ("control", "casualty", "heritage")
            },
        }
        for i, r in enumerate(stored)
    ]
    write_jsonl(params.path("oof_dir") / "tfidf.jsonl", oof)
    settings = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    settings["label"]["audit_method"] = "margin"  # four labels are too few for cleanlab
    (project / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    tasks = json.loads(export(project, "label-studio", "--strategy", "audit"))
    assert [t["data"]["sentence_id"] for t in tasks] == [stored[0]["sentence_id"]]
    assert tasks[0]["annotations"][0]["result"][0]["value"]["choices"] == stored[0]["labels"]


def test_disagree_exports_only_sentences_the_two_models_label_differently(project: Path) -> None:
    params = load_params(project / "params.yaml")
    # A second real model under the transformer's name, trained with rotated labels.
    fit_tiny_tfidf(params.path("models_dir") / "transformer", shift=1)
    tasks = json.loads(export(project, "label-studio", "--strategy", "disagree", "--limit", "0"))
    tfidf = load_model(params.path("models_dir") / "tfidf")
    other = load_model(params.path("models_dir") / "transformer")
    texts = [t["data"]["text"] for t in tasks]
    assert texts
    for task, a, b in zip(tasks, tfidf.predict(texts), other.predict(texts), strict=True):
        assert a != b
        assert task["meta"]["why"] == f"tfidf says {', '.join(a)}; transformer says {', '.join(b)}"
    unlabeled = json.loads(export(project, "label-studio", "--strategy", "random", "--limit", "0"))
    agreed = [t["data"]["text"] for t in unlabeled if t["data"]["text"] not in texts]
    assert tfidf.predict(agreed) == other.predict(agreed)


# --- refusals: one test per kind, nothing written ---------------------------------------------


def _ls_item(project: Path, **change: object) -> list[dict]:
    tasks = json.loads(export(project, "label-studio", "--limit", "2"))
    done = annotate_ls(tasks, [["control"], ["casualty"]])
    item = done[1]
    if "choices" in change:
        item["annotations"][0]["result"][0]["value"]["choices"] = change["choices"]
    if "text" in change:
        item["data"]["text"] = change["text"]
    if "sentence_id" in change:
        item["data"]["sentence_id"] = change["sentence_id"]
    if "second" in change:
        item["annotations"].append(copy.deepcopy(item["annotations"][0]))
        item["annotations"][1]["result"][0]["value"]["choices"] = change["second"]
    return done


LS_REFUSALS = {
    "unknown choice": ({"choices": ["control", "ceasefire"]}, "item 2: unknown choice 'ceasefire'"),
    "unrelated combined": (
        {"choices": ["unrelated", "casualty"]},
        "item 2: 'unrelated' combined with another label",
    ),
    "nothing chosen": ({"choices": []}, "item 2: empty label list"),
    "text changed": ({"text": "A different sentence."}, "item 2: text no longer matches"),
    "unknown id": ({"sentence_id": "fakes-0:000000000000"}, "item 2: unknown sentence id"),
    "conflicting annotations": ({"second": ["heritage"]}, "item 2: conflicting annotations"),
}


@pytest.mark.parametrize("kind", list(LS_REFUSALS))
def test_label_studio_import_refuses(project: Path, tmp_path: Path, kind: str) -> None:
    change, message = LS_REFUSALS[kind]
    path = write(tmp_path / "bad.json", _ls_item(project, **change))
    text = labels_text(project)
    result = claims(project, "labels", "import", str(path), "--format", "label-studio")
    assert result.exit_code == 1
    assert message in result.stderr
    assert "import refused: 1 problem(s); nothing written" in result.stderr
    assert labels_text(project) == text


def test_label_studio_import_refuses_a_file_that_is_not_an_export(
    project: Path, tmp_path: Path
) -> None:
    for content, message in (
        ("[{", "not valid JSON"),
        ('{"data": {}}', "expected a JSON array of tasks"),
    ):
        path = tmp_path / "bad.json"
        path.write_text(content, encoding="utf-8")
        result = claims(project, "labels", "import", str(path), "--format", "label-studio")
        assert result.exit_code == 1 and message in result.stderr


PRODIGY_REFUSALS = {
    "unknown option": ({"accept": ["ceasefire"]}, "line 2: unknown choice 'ceasefire'"),
    "unrelated combined": (
        {"accept": ["control", "unrelated"]},
        "line 2: 'unrelated' combined with another label",
    ),
    "text changed": ({"text": "Edited."}, "line 2: text no longer matches"),
    "unknown id": ({"meta": {"sentence_id": "nope:1"}}, "line 2: unknown sentence id nope:1"),
    "tasks, not annotations": ({"answer": None}, "line 2: answer must be accept"),
}


@pytest.mark.parametrize("kind", list(PRODIGY_REFUSALS))
def test_prodigy_import_refuses(project: Path, tmp_path: Path, kind: str) -> None:
    change, message = PRODIGY_REFUSALS[kind]
    rows = [
        dict(json.loads(line), answer="accept")
        for line in export(project, "prodigy", "--limit", "2").splitlines()
    ]
    rows[1].update(change)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    text = labels_text(project)
    result = claims(project, "labels", "import", str(path), "--format", "prodigy")
    assert result.exit_code == 1
    assert message in result.stderr
    assert labels_text(project) == text


def test_prodigy_import_refuses_a_broken_line(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "x"\n', encoding="utf-8")
    result = claims(project, "labels", "import", str(path), "--format", "prodigy")
    assert result.exit_code == 1 and "line 1: not valid JSON" in result.stderr


def test_import_is_validated_as_labels_check_does(project: Path, tmp_path: Path) -> None:
    """Changing an adjudicated label would break `labels check`: refused, with the item named."""
    params = load_params(project / "params.yaml")
    first = file_lines(params.path("labels"))[0]
    second = {
        "sentence_id": first["sentence_id"],
        "text": first["text"],
        "first_labels": first["labels"],
        "first_annotator": "a",
        "second_labels": first["labels"],
        "second_annotator": "b",
        "final_labels": first["labels"],
        "note": "",
    }
    write_jsonl(params.path("second_annotation"), [second])
    assert check_all(params)[2] == []
    other = ["heritage"] if first["labels"] != ["heritage"] else ["control"]
    flat = [{"text": first["text"], "sentence_id": first["sentence_id"], "claims": other}]
    path = write(tmp_path / "min.json", flat)
    text = labels_text(project)
    result = claims(project, "labels", "import", str(path), "--format", "label-studio")
    assert result.exit_code == 1
    assert "item 1: " in result.stderr and "differ from the label file's" in result.stderr
    assert labels_text(project) == text
