"""The `claims` entry point, run as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

CLAIMS = [sys.executable, "-m", "pipeline"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLAIMS, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_and_version(root: Path) -> None:
    result = run(["--help"], root)
    assert result.returncode == 0
    for command in ("segment", "labels", "version"):
        assert command in result.stdout
    version = run(["version"], root)
    assert version.returncode == 0 and version.stdout.startswith("claims ")


def test_help_does_not_import_torch_or_mlflow(root: Path) -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from pipeline.cli import app; "
        "CliRunner().invoke(app, ['--help']); "
        "print(sorted(m for m in ('torch', 'mlflow', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_segment_end_to_end_on_the_seeds(tmp_path: Path, seeds_dir: Path) -> None:
    shutil.copytree(seeds_dir, tmp_path / "data" / "articles" / "seeds")
    (tmp_path / "data" / "corpus").mkdir()
    (tmp_path / "data" / "corpus" / "pool.csv").write_text(
        "unit_id,article_title,article_content,source,date,location,labels\n"
        "5,Army advances,Army advances. The army advanced on Palmyra on Monday a monitor said.,"
        "sana,4/5/2016,homs,1\n",
        encoding="utf-8",
    )
    (tmp_path / "params.yaml").write_text(
        "paths:\n  corpus_csv: data/corpus/pool.csv\n", encoding="utf-8"
    )
    result = run(["segment"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 articles" in result.stdout
    sentences = [
        json.loads(line)
        for line in (tmp_path / "data" / "sentences.jsonl").read_text().splitlines()
    ]
    articles = {
        a["article_id"]: a
        for a in map(json.loads, (tmp_path / "data" / "articles.jsonl").read_text().splitlines())
    }
    assert set(articles) == {
        "fakes-5",
        *(f"seeds/{p.stem}" for p in seeds_dir.glob("*.txt")),
    }
    assert all(a["language"] == "en" for a in articles.values())
    for s in sentences:
        assert articles[s["article_id"]]["text"][s["start"] : s["end"]] == s["text"]
    seed0 = [s["text"] for s in sentences if s["article_id"] == "seeds/000_d28a21aab89cc98c"]
    assert seed0[0] == "Islamic State 'recaptures' ancient Syrian city Palmyra"
    assert len(seed0) == 22


def test_segment_reports_a_bad_input_by_name_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "arts").mkdir()
    (tmp_path / "arts" / "ok.txt").write_text("Troops entered the town.", encoding="utf-8")
    (tmp_path / "arts" / "bad.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "params.yaml").write_text("paths: {}\n", encoding="utf-8")
    result = run(["segment", "arts"], tmp_path)
    assert result.returncode == 1
    assert "bad.txt: binary file" in result.stderr
    assert "1 articles" in result.stdout


def test_bad_params_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("segment:\n  min_charz: 3\n", encoding="utf-8")
    result = run(["segment"], tmp_path)
    assert result.returncode == 1
    assert "unknown key(s) in 'segment': min_charz" in result.stderr
    assert "Traceback" not in result.stderr
