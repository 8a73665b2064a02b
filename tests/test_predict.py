"""`claims predict`: every input kind, every bad input, atomic outputs, the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import joblib
import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import LABELS, TfidfConfig
from pipeline.models import fit_postprocess, write_meta
from pipeline.predict import Scorer
from pipeline.train_tfidf import build_pipeline
from tests.fixture_project import TEMPLATES

TOWNS = ["Palmyra", "Aleppo", "Homs", "Raqqa"]
ARTICLE = (
    "Rebels captured Homs after three days of fighting.\n\n"
    "At least 40 civilians were killed in Aleppo on Monday. "
    "Militants blew up the ancient temple of Palmyra. "
    "Talks on the future of Raqqa resumed in Geneva on Friday."
)


def _training_data() -> tuple[list[str], np.ndarray]:
    texts, rows = [], []
    for labels, templates in TEMPLATES.items():
        for template in templates:
            for k, town in enumerate(TOWNS):
                texts.append(template.format(town=town, n=10 + k, day="Monday"))
                rows.append([label in labels for label in LABELS])
    return texts, np.array(rows, dtype=int)


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with a real (tiny) TF-IDF model as its champion."""
    root = tmp_path_factory.mktemp("project")
    folder = root / "models" / "tfidf"
    folder.mkdir(parents=True)
    texts, y = _training_data()
    pipeline = build_pipeline(TfidfConfig())
    pipeline.fit(texts, y)
    post = fit_postprocess(np.asarray(pipeline.predict_proba(texts)), y)
    joblib.dump(pipeline, folder / "model.joblib")
    calibration = post.to_dict()
    write_meta(
        folder,
        {
            "name": "tfidf",
            "kind": "tfidf",
            "labels": list(LABELS),
            "thresholds": calibration.pop("thresholds"),
            "calibration": calibration,
            "version": "7",
            "max_length": 0,
        },
    )
    (root / "models" / "champion.json").write_text('{"model": "tfidf"}', encoding="utf-8")
    (root / "params.yaml").write_text("paths: {}\n", encoding="utf-8")
    return root


def run(project: Path, *args: str, stdin: str | None = None):  # noqa: ANN201
    cwd = Path.cwd()
    os.chdir(project)
    try:
        return CliRunner().invoke(app, ["predict", *args], input=stdin)
    finally:
        os.chdir(cwd)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_folder_of_articles_to_jsonl(project: Path, tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.txt").write_text(ARTICLE, encoding="utf-8")
    (tmp_path / "in" / "b.md").write_text("# Headline\n\n" + ARTICLE, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run(project, str(tmp_path / "in"), "-o", str(out))
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert {r["article_id"] for r in recs} == {"sub/a", "b"}
    a = [r for r in recs if r["article_id"] == "sub/a"]
    assert [r["text"] for r in a] == [
        "Rebels captured Homs after three days of fighting.",
        "At least 40 civilians were killed in Aleppo on Monday.",
        "Militants blew up the ancient temple of Palmyra.",
        "Talks on the future of Raqqa resumed in Geneva on Friday.",
    ]
    for r in a:
        assert ARTICLE[r["start"] : r["end"]] == r["text"]
        assert set(r["scores"]) == set(LABELS)
        assert r["model"] == "tfidf" and r["model_version"] == "7"
        assert r["language"] == "en" and r["truncated"] is False
    assert [r["labels"] for r in a] == [["control"], ["casualty"], ["heritage"], ["unrelated"]]


def test_labels_follow_the_thresholds(project: Path, tmp_path: Path) -> None:
    meta = json.loads((project / "models" / "tfidf" / "model.json").read_text())
    path = tmp_path / "a.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert run(project, str(path), "-o", str(out)).exit_code == 0
    for r in records(out):
        expected = [k for k in LABELS if r["scores"][k] >= meta["thresholds"][k]]
        assert r["labels"] == (expected or ["unrelated"]) or any(
            abs(r["scores"][k] - meta["thresholds"][k]) < 1e-4 for k in LABELS
        )


def test_sentences_mode_keeps_ids_order_and_scores_repeats_once(
    project: Path, tmp_path: Path
) -> None:
    rows = [
        {"id": "s3", "text": "Troops retook the airport of Homs."},
        {"id": "s1", "text": "Five soldiers were wounded in the shelling of Raqqa."},
        {"id": "s2", "text": "Troops retook the airport of Homs."},
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run(project, "--sentences", str(path), "-o", str(out))
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert [r["sentence_id"] for r in recs] == ["s3", "s1", "s2"]
    assert [r["text"] for r in recs] == [r["text"] for r in rows]
    assert recs[0]["scores"] == recs[2]["scores"]
    assert all(r["article_id"] == "" and r["start"] == 0 for r in recs)


def test_sentences_mode_csv_and_repeat_scored_once(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        'id,text\na,"Rebels seized the air base, a monitor said."\nb,Bread prices rose.\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    result = run(project, "--sentences", str(path), "--format", "csv", "-o", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("article_id,sentence_id,start,end,text,labels,score_control")
    assert lines[1].split(",")[1] == "a" and len(lines) == 3


def test_scorer_scores_each_distinct_text_once(project: Path) -> None:
    from pipeline.models import load_model

    model = load_model(project / "models" / "tfidf")
    seen: list[list[str]] = []
    real = model.scores

    def spy(texts: list[str]) -> np.ndarray:
        seen.append(list(texts))
        return real(texts)

    model.scores = spy  # type: ignore[method-assign]
    scores, _ = Scorer(model).score(["x is here", "y is here", "x is here"])
    assert seen == [["x is here", "y is here"]]
    assert np.array_equal(scores[0], scores[2])


def test_csv_articles_with_named_columns_and_stdin(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "articles.csv"
    path.write_text(f'key,body\nk1,"{ARTICLE}"\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run(project, str(path), "--text-column", "body", "--id-column", "key", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert {r["article_id"] for r in records(out)} == {"k1"}
    piped = run(project, "-", stdin=ARTICLE)
    assert piped.exit_code == 0, piped.output
    lines = [json.loads(x) for x in piped.stdout.splitlines()]
    assert len(lines) == 4 and lines[0]["article_id"] == "stdin"


def bad_inputs(root: Path) -> dict[str, str]:
    """name -> expected reason fragment; every kind of unreadable input."""
    root.mkdir()
    (root / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / "undecodable.txt").write_bytes(bytes([0, 159, 146, 150, 0, 255, 254, 0, 1]) * 40)
    (root / "empty.txt").write_bytes(b"")
    (root / "blank.txt").write_text("  \n\t \n", encoding="utf-8")
    (root / "notext.html").write_text("<html><body><script>1</script></body></html>")
    (root / "broken.csv").write_text('id,text\n1,"never closed\n', encoding="utf-8")
    (root / "huge.txt").write_text("Rebels advanced. " * 200, encoding="utf-8")
    (root / "locked.txt").write_text("Rebels advanced on Homs.", encoding="utf-8")
    (root / "loop").mkdir()
    os.symlink(root, root / "loop" / "back")
    (root / "good.txt").write_text(ARTICLE, encoding="utf-8")
    return {
        "binary.txt": "binary",
        "undecodable.txt": "binary",
        "empty.txt": "empty",
        "blank.txt": "empty",
        "notext.html": "no extractable",
        "broken.csv": "never closed",
        "huge.txt": "too large",
        "locked.txt": "permission denied",
        "back": "directory loop",
    }


@pytest.mark.usefixtures("locked_files")
def test_bad_inputs_are_named_recorded_and_the_batch_goes_on(project: Path, tmp_path: Path) -> None:
    expected = bad_inputs(tmp_path / "in")
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    result = run(
        project, str(tmp_path / "in"), "-o", str(out), "--errors", str(errors),
        "--max-bytes", "2000",
    )  # fmt: skip
    assert result.exit_code == 1
    recorded = records(errors)
    for name, reason in expected.items():
        hits = [e for e in recorded if Path(e["source"]).name == name]
        assert hits and reason in hits[0]["reason"], (name, recorded)
        assert f"{name}: " in result.stderr or f"{name}:" in result.stderr
    assert {r["article_id"] for r in records(out)} == {"good"}


def test_a_killed_run_leaves_no_partial_file(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import predict

    for k in range(3):
        (tmp_path / f"a{k}.txt").write_text(ARTICLE, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("previous run\n", encoding="utf-8")
    calls = {"n": 0}
    real = predict.Sink.write

    def dying(self, article, preds):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, article, preds)

    monkeypatch.setattr(predict.Sink, "write", dying)
    run(project, str(tmp_path), "-o", str(out))
    assert out.read_text(encoding="utf-8") == "previous run\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.jsonl")]


def test_summary_counts_and_strongest(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(ARTICLE + " Fighters stormed Homs and killed 12 soldiers.", encoding="utf-8")
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.jsonl"
    assert run(project, str(path), "-o", str(out), "--summary", str(summary)).exit_code == 0
    (s,) = records(summary)
    preds = records(out)
    assert s["sentences"] == len(preds) == 5
    for label in [*LABELS, "unrelated"]:
        assert s["counts"][label] == sum(label in p["labels"] for p in preds)
    scores = [x["score"] for x in s["strongest"]["casualty"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == s["counts"]["casualty"]


class ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sentences: list[dict[str, str]] = []
        self.sections = 0
        self.filters: list[str] = []
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "span" and "data-labels" in a:
            self.sentences.append(a)
        if tag == "section":
            self.sections += 1
        if tag == "input" and "data-label" in a:
            self.filters.append(a["data-label"])
        if tag in ("script", "link", "img") and (a.get("src") or a.get("href")):
            self.external.append(a.get("src") or a.get("href"))
        if tag == "script":
            self.scripts += 1


def test_html_report_is_self_contained_with_legend_filters_and_scores(
    project: Path, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(ARTICLE, encoding="utf-8")
    (tmp_path / "in" / "b.txt").write_text("Bread <b>prices</b> & rents rose.", encoding="utf-8")
    out = tmp_path / "report.html"
    assert run(project, str(tmp_path / "in"), "--format", "html", "-o", str(out)).exit_code == 0
    html = out.read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(html)
    assert parser.sections == 2
    assert parser.filters == ["control", "casualty", "heritage", "unrelated"]
    assert parser.external == [] and parser.scripts == 1
    assert len(parser.sentences) == 5
    first = parser.sentences[0]
    assert "control" in first["class"] and "control 0." in first["title"]
    assert "threshold" in first["title"]
    assert "Bread &lt;b&gt;prices&lt;/b&gt; &amp; rents rose." in html
    assert "legend" in html and "cultural heritage damaged" in html


def test_non_english_article_is_flagged(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "fr.txt"
    path.write_text(
        "Les forces gouvernementales ont repris la ville apr\u00e8s des combats intenses, "
        "selon l'Observatoire syrien des droits de l'homme.",
        encoding="utf-8",
    )
    result = run(project, str(path))
    assert result.exit_code == 0
    assert "language 'fr', not English" in result.stderr
    assert json.loads(result.stdout.splitlines()[0])["language"] == "fr"


def test_usage_errors_exit_2(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    bad_format = run(project, str(path), "--format", "pdf")
    assert bad_format.exit_code == 2 and "--format must be one of" in bad_format.stderr
    bad_model = run(project, str(path), "--model", "nonesuch")
    assert bad_model.exit_code == 2 and "no model folder" in bad_model.stderr


def test_truncation_is_flagged_by_the_model_limit() -> None:
    from transformers import AutoTokenizer

    from pipeline.models import encoder_path

    class Limited:
        max_length = 8
        thresholds = dict.fromkeys(LABELS, 0.5)
        tokenizer = AutoTokenizer.from_pretrained(encoder_path())

        def scores(self, texts: list[str]) -> np.ndarray:
            return np.full((len(texts), 3), 0.1)

    _, flags = Scorer(Limited()).score(
        ["Short one.", "This sentence is far longer than eight tokens of the model limit."]
    )
    assert flags == [False, True]


def test_tfidf_prediction_never_imports_torch_or_mlflow(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    code = (
        "import sys; from typer.testing import CliRunner; from pipeline.cli import app; "
        f"r = CliRunner().invoke(app, ['predict', {str(path)!r}, '--model', 'tfidf']); "
        "assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'mlflow', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr
