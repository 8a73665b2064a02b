"""A tiny project for the labeling loop: real segmented articles, a few labels, a tiny TF-IDF model.

The articles come from `fixture_project` (template sentences with known
labels), are segmented by the real `claims segment` stage, and a handful of
sentences are labeled; the champion is a real TF-IDF model folder fitted on
the templates in well under a second.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import numpy as np

from pipeline.config import LABELS, TfidfConfig, load_params
from pipeline.models import fit_postprocess, write_meta
from pipeline.schema import LabeledSentence, Sentence, read_records, write_jsonl
from pipeline.segment import run_segment
from pipeline.train_tfidf import build_pipeline
from tests.fixture_project import TEMPLATES, TOWNS, tiny_params, write_articles

ROOT = Path(__file__).resolve().parents[1]
LABELED = 4


def fit_tiny_tfidf(folder: Path, version: str = "1", shift: int = 0) -> None:
    """A real TF-IDF model folder trained on the template sentences.

    `shift` rotates the label columns, for a second model that disagrees with the first.
    """
    texts, rows = [], []
    for labels, templates in TEMPLATES.items():
        for template in templates:
            for k, town in enumerate(TOWNS[:4]):
                texts.append(template.format(town=town, n=10 + k, day="Monday"))
                rows.append([label in labels for label in LABELS])
    y = np.roll(np.array(rows, dtype=int), shift, axis=1)
    pipeline = build_pipeline(TfidfConfig(max_iter=300))
    pipeline.fit(texts, y)
    post = fit_postprocess(np.asarray(pipeline.predict_proba(texts)), y).to_dict()
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, folder / "model.joblib")
    write_meta(
        folder,
        {
            "name": folder.name,
            "kind": "tfidf",
            "labels": list(LABELS),
            "thresholds": post.pop("thresholds"),
            "calibration": post,
            "version": version,
            "max_length": 0,
        },
    )


def build_project(root: Path) -> dict[str, list[str]]:
    """Write the project under root; returns sentence text -> its true labels."""
    truth = write_articles(root, n_seeds=1, n_pool=3, per_article=4, seed=11)
    tiny_params(ROOT / "params.yaml", root / "params.yaml")
    params = load_params(root / "params.yaml")
    run_segment(params)
    sentences = read_records(params.path("sentences"), Sentence)
    labeled = [
        LabeledSentence(
            sentence_id=s.sentence_id,
            article_id=s.article_id,
            text=s.text,
            labels=truth[s.text],
            source="seed" if s.article_id.startswith("seeds/") else "pool",
            annotator="fixture",
            labeled_at="2026-01-01T00:00:00Z",
            note="",
        )
        for s in sentences[:LABELED]
    ]
    write_jsonl(params.path("labels"), labeled)
    shutil.copy(ROOT / "labels" / "GUIDELINES.md", params.path("guidelines"))
    fit_tiny_tfidf(params.path("models_dir") / "tfidf")
    params.path("champion").write_text(json.dumps({"model": "tfidf"}), encoding="utf-8")
    return truth


def copy_project(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def file_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


_TEMPLATE: list[Path] = []


def template_project(factory) -> Path:  # noqa: ANN001 - pytest.TempPathFactory
    """The tiny project, built once per test run and copied by each test that writes."""
    if not _TEMPLATE:
        root = factory.mktemp("label-template")
        build_project(root)
        _TEMPLATE.append(root)
    return _TEMPLATE[0]
