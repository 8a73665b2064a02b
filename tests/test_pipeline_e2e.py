"""The whole pipeline, for real, on a tiny synthetic project: `dvc repro` in a temporary copy.

Tiny params: 2 folds, a transformer that trains one step at max_length 16.
The copy has its own git repo, DVC repo and MLflow store (SQLite in tmp).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import LABELS, load_params
from tests.fixture_project import tiny_params, write_articles, write_labels

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODELS = ("tfidf", "embed", "transformer")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    )
    return done


def _fails(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, f"{' '.join(cmd)} should have failed:\n{done.stdout[-3000:]}"
    return done


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("project")
    shutil.copytree(
        ROOT / "pipeline", work / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("dvc.yaml", "pyproject.toml", ".dvcignore"):
        shutil.copy(ROOT / name, work / name)
    params = tiny_params(ROOT / "params.yaml", work / "params.yaml")
    truth = write_articles(work, n_seeds=5, n_pool=10, per_article=5, seed=3)
    new = work / params["paths"]["new_dir"]
    new.mkdir(parents=True)
    (new / "a.txt").write_text(
        "Rebels captured Homs after 3 days of fighting.\n\nAt least 12 civilians were killed.",
        encoding="utf-8",
    )
    (new / "broken.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    uri = f"sqlite:///{work / 'mlruns.db'}"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(work),  # the copy's code, not the editable install's
        "MLFLOW_TRACKING_URI": uri,
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }
    # Labels refer to sentence ids, so segment first, then label what it produced.
    _run([str(BIN / "claims"), "segment"], work, env)
    write_labels(work, params["paths"], truth, n_authored=6, seed=3)
    for out in ("articles", "sentences"):  # outputs of the segment stage: DVC's, not git's
        (work / params["paths"][out]).unlink()
    _run(["git", "init", "-q"], work, env)
    _run([str(BIN / "dvc"), "init", "-q"], work, env)
    _run([str(BIN / "dvc"), "config", "core.analytics", "false"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "fixture"], work, env)
    _run([str(BIN / "dvc"), "repro"], work, env)
    return work, uri


def test_repro_writes_metrics_for_every_model(repro: tuple[Path, str]) -> None:
    work, _ = repro
    params = load_params(work / "params.yaml")
    summary = json.loads((params.path("metrics_dir") / "summary.json").read_text())
    assert set(summary["models"]) == set(MODELS)
    assert "training-only" in summary["note"]
    for model in MODELS:
        metrics = json.loads((params.path("metrics_dir") / f"{model}.json").read_text())
        assert "training-only" in metrics["note"]
        assert set(metrics["per_label"]) == {*LABELS, "unrelated"}
        assert 0.0 <= metrics["macro_f1"] <= 1.0
        assert metrics["leave_seeds_out"]["sentences"] > 0
        assert len(metrics["leave_seeds_out"]["folds"]) == 1  # the seeds sit in one fold
        oof = [json.loads(line) for line in (params.path("oof_dir") / f"{model}.jsonl").open()]
        assert oof and all(r["source"] != "authored" for r in oof)
        assert metrics["sentences"] == len(oof)


def test_repro_writes_plots_data_and_images(repro: tuple[Path, str]) -> None:
    work, _ = repro
    plots = load_params(work / "params.yaml").path("plots_dir")
    for model in MODELS:
        assert (plots / "png" / f"{model}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for label in LABELS:
            for kind in ("pr", "confusion", "reliability"):
                assert (plots / kind / f"{model}_{label}.csv").exists()
        header = (plots / "confusion" / f"{model}_control.csv").read_text().splitlines()[0]
        assert header == "actual,predicted"


def test_repro_writes_loadable_model_folders(repro: tuple[Path, str]) -> None:
    from pipeline.models import load_model

    work, _ = repro
    models_dir = load_params(work / "params.yaml").path("models_dir")
    texts = ["Rebels captured Homs after 3 days of fighting.", "Bread prices rose."]
    for model in MODELS:
        folder = models_dir / model
        meta = json.loads((folder / "model.json").read_text())
        assert meta["name"] == model and meta["labels"] == list(LABELS)
        assert set(meta["inputs_sha256"]) == {"labels", "authored", "sentences", "params"}
        assert meta["mlflow_run_id"] and meta["version"] >= 1
        assert "training-only" in (folder / "README.md").read_text()
        loaded = load_model(folder)
        assert loaded.scores(texts).shape == (2, 3)
        assert all(labels for labels in loaded.predict(texts))
    config = json.loads((models_dir / "transformer" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {str(i): n for i, n in enumerate(LABELS)}


def test_repro_chooses_a_champion_and_tracks_runs(repro: tuple[Path, str]) -> None:
    import mlflow

    work, uri = repro
    params = load_params(work / "params.yaml")
    champion = json.loads(params.path("champion").read_text())
    summary = json.loads((params.path("metrics_dir") / "summary.json").read_text())
    best = max(summary["models"].values(), key=lambda m: m["macro_f1"])
    assert champion["macro_f1"] == best["macro_f1"]
    assert champion["registered_model"] == "claims"

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("claims", "champion").version
    assert str(version) == str(champion["version"])
    experiment = client.get_experiment_by_name("claims")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["model"] for r in parents) == sorted(MODELS)
    assert len(children) == 2 * len(MODELS)  # one nested run per fold
    keys = None
    for run in parents:
        assert run.data.tags["git_commit"] not in ("", "none", "unknown")
        assert run.data.tags["label_count"].isdigit()
        assert {"macro_f1", "micro_f1", "control_f1", "heritage_ece", "seeds_macro_f1"} <= set(
            run.data.metrics
        )
        names = {k for k in run.data.metrics if not k.endswith("_seconds")}
        keys = names if keys is None else keys
        assert names == keys  # the same metric names for every model
    assert not (work / "mlruns").exists()
    assert yaml.safe_load((work / "dvc.lock").read_text())["stages"]["evaluate"]


def test_repro_tags_the_new_articles_and_exports_onnx(repro: tuple[Path, str]) -> None:
    work, _ = repro
    params = load_params(work / "params.yaml")
    out = params.path("predictions_dir")
    preds = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert [p["text"] for p in preds] == [
        "Rebels captured Homs after 3 days of fighting.",
        "At least 12 civilians were killed.",
    ]
    champion = json.loads(params.path("champion").read_text())["model"]
    assert {p["model"] for p in preds} == {champion}
    (error,) = [json.loads(line) for line in (out / "errors.jsonl").open()]
    assert error["source"].endswith("broken.txt") and "binary" in error["reason"]
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    summary = [json.loads(line) for line in (out / "summary.jsonl").open()]
    assert [s["article_id"] for s in summary] == ["a"]
    onnx = json.loads((params.path("metrics_dir") / "onnx.json").read_text())
    assert set(onnx["variants"]) == {"fp32", "int8", "int8-ffn", "int8-mixed"}
    assert onnx["variants"]["fp32"]["label_agreement"] == 1.0
    meta = json.loads((params.path("models_dir") / "transformer-onnx" / "model.json").read_text())
    assert meta["kind"] == "onnx" and meta["weights"] == onnx["variants"][onnx["default"]]["file"]


def test_cv_experiment_overrides_params_and_leaves_models_alone(
    repro: tuple[Path, str], tmp_path: Path
) -> None:
    work, uri = repro
    env = {**os.environ, "PYTHONPATH": str(work), "MLFLOW_TRACKING_URI": uri}
    model_file = work / "models" / "tfidf" / "model.joblib"
    before = model_file.stat().st_mtime_ns
    out, oof = tmp_path / "exp.json", tmp_path / "exp.oof.jsonl"
    script = str(ROOT / "scripts" / "cv_experiment.py")
    done = _run(
        [sys.executable, script, "tfidf", "C=0.5", "--out", str(out), "--oof", str(oof)],
        work,
        env,
    )
    result = json.loads(out.read_text())
    assert result["settings"]["C"] == 0.5
    assert f"macro-F1 {result['figures']['macro_f1']:.3f}" in done.stdout
    rows = [json.loads(line) for line in oof.open()]
    committed = json.loads((work / "metrics" / "tfidf.json").read_text())
    assert len(rows) == committed["sentences"] == result["figures"]["sentences"]
    assert model_file.stat().st_mtime_ns == before  # no model folder is rewritten

    bad = _fails([sys.executable, script, "tfidf", "epochs=2"], work, env)
    assert "tfidf has no param 'epochs'" in bad.stderr


def test_cv_experiment_averages_over_seeds_and_can_drop_authored(
    repro: tuple[Path, str], tmp_path: Path
) -> None:
    work, uri = repro
    env = {**os.environ, "PYTHONPATH": str(work), "MLFLOW_TRACKING_URI": uri}
    script = str(ROOT / "scripts" / "cv_experiment.py")
    out = tmp_path / "seeds.json"
    done = _run(
        [sys.executable, script, "transformer", "--seeds", "3,4", "--without-authored"]
        + ["--out", str(out)],
        work,
        env,
    )
    result = json.loads(out.read_text())
    assert [run["seed"] for run in result["seeds"]] == [3, 4]
    assert result["settings"]["seed"] == 3
    assert result["authored_in_training"] == 0
    macros = [run["macro_f1"] for run in result["seeds"]]
    assert result["mean"]["macro_f1"]["mean"] == pytest.approx(sum(macros) / 2)
    assert result["mean"]["macro_f1"]["min"] == min(macros)
    assert "mean over 2 seeds" in done.stdout and "(without authored) seed=4" in done.stdout

    trial = tmp_path / "trial.jsonl"
    records = [
        {
            "sentence_id": f"authored:trial{i}",
            "article_id": "authored/trial",
            "text": text,
            "labels": labels,
            "source": "authored",
            "annotator": "test",
            "labeled_at": "2026-12-01T00:00:00Z",
            "note": "",
        }
        for i, (text, labels) in enumerate(
            [("Shells hit the old city of Homs.", ["heritage"]), ("Talks resume.", ["unrelated"])]
        )
    ]
    trial.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    plain, extra = tmp_path / "plain.json", tmp_path / "extra.json"
    _run([sys.executable, script, "tfidf", "--out", str(plain)], work, env)
    _run(
        [sys.executable, script, "tfidf", "--extra-authored", str(trial), "--out", str(extra)],
        work,
        env,
    )
    before = json.loads(plain.read_text())["authored_in_training"]
    assert before > 0
    assert json.loads(extra.read_text())["authored_in_training"] == before + 2

    records[1]["labels"] = ["heritage", "unrelated"]
    trial.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    broken = _fails([sys.executable, script, "tfidf", "--extra-authored", str(trial)], work, env)
    assert f"--extra-authored {trial}: 1 problem(s), first: line 2:" in broken.stderr

    bad = _fails([sys.executable, script, "tfidf", "--seeds", "1,2"], work, env)
    assert "tfidf has no training seed" in bad.stderr
