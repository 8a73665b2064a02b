"""Thresholds, calibration, ECE, metrics, the TF-IDF model's determinism and the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import TfidfConfig, load_params
from pipeline.dataset import Example, multi_hot
from pipeline.evaluate import compute_metrics
from pipeline.export_onnx import agreement, check_texts
from pipeline.models import (
    ModelFormatError,
    Platt,
    cross_fit,
    expected_calibration_error,
    fit_platt,
    fit_postprocess,
    load_model,
    names_from_decisions,
    reliability,
    tune_threshold,
)
from pipeline.schema import LabeledSentence, Sentence, write_jsonl
from pipeline.train_tfidf import TfidfLearner
from pipeline.training import cross_validate, oof_rows, save_folder


def test_tune_threshold_finds_the_best_f1_cut() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    y = np.array([1, 1, 0, 1, 0, 0])
    # top 4 gives F1 = 2*3/(4+3) = 0.857, top 2 gives 2*2/(2+3) = 0.8
    assert tune_threshold(scores, y) == pytest.approx((0.6 + 0.3) / 2)


def test_tune_threshold_separable_and_degenerate_cases() -> None:
    assert tune_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == pytest.approx(
        0.5
    )
    assert tune_threshold(np.array([0.1, 0.2]), np.array([0, 0])) == 0.5  # no positive: default
    assert tune_threshold(np.array([0.4, 0.4, 0.4]), np.array([1, 0, 1])) == pytest.approx(0.4)


def test_platt_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.02, 0.98, 20_000)
    y = (rng.uniform(size=true_p.size) < true_p).astype(float)
    logit = np.log(true_p / (1 - true_p))
    overconfident = 1 / (1 + np.exp(-(3 * logit - 1)))  # a = 1/3, b = 1/3 undoes this
    platt = fit_platt(overconfident, y)
    assert platt.a == pytest.approx(1 / 3, abs=0.03)
    assert platt.b == pytest.approx(1 / 3, abs=0.05)
    before = expected_calibration_error(overconfident, y)
    after = expected_calibration_error(platt.apply(overconfident), y)
    assert after < 0.02 < before


def test_platt_stays_finite_on_separable_or_one_class_data() -> None:
    p = fit_platt(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert np.isfinite([p.a, p.b]).all()
    assert p.apply(np.array([0.95]))[0] < 1.0
    q = fit_platt(np.array([0.1, 0.5, 0.9]), np.array([0, 0, 0]))
    assert (q.apply(np.array([0.1, 0.9])) < 0.5).all()
    assert Platt().apply(np.array([0.25]))[0] == pytest.approx(0.25)


def test_ece_and_reliability_bins() -> None:
    p = np.array([0.05, 0.05, 0.95, 0.95])
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(p, y, 10) == pytest.approx(0.05)
    bins = reliability(p, y, 10)
    assert [b["count"] for b in bins] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert expected_calibration_error(np.array([0.5, 0.5]), np.array([1, 1]), 10) == pytest.approx(
        0.5
    )


def test_postprocess_calibrates_then_thresholds() -> None:
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=(400, 3)) < 0.3).astype(float)
    raw = np.clip(0.2 + 0.5 * y + rng.normal(0, 0.15, y.shape), 0.01, 0.99)
    post = fit_postprocess(raw, y)
    cal = post.calibrate(raw)
    for j in range(3):
        assert post.thresholds[j] == pytest.approx(tune_threshold(cal[:, j], y[:, j]))
    calibrated, decided = cross_fit(raw, y, np.arange(400) % 4)
    assert calibrated.shape == decided.shape == (400, 3)
    assert (decided == y.astype(bool)).mean() > 0.85


def test_compute_metrics_by_hand() -> None:
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]], dtype=bool)
    decided = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=bool)
    scores = decided * 0.8 + 0.1
    m = compute_metrics(y, scores, decided, ece_bins=10)
    assert m["per_label"]["control"]["precision"] == pytest.approx(2 / 3)
    assert m["per_label"]["casualty"]["f1"] == 0.0
    assert m["per_label"]["unrelated"]["support"] == 1 and m["per_label"]["unrelated"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((0.8 + 0 + 1 + 0) / 4)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert m["subset_accuracy"] == pytest.approx(2 / 4)
    assert m["hamming_loss"] == pytest.approx(2 / 12)
    assert m["per_label"]["casualty"]["roc_auc"] == pytest.approx(0.5)
    assert names_from_decisions(decided[2:]) == [["control"], ["heritage"]]


TEXTS = {
    "control": ["Rebels captured {t}.", "The army retook {t}.", "Troops withdrew from {t}."],
    "casualty": ["{n} people were killed in {t}.", "{n} soldiers died near {t}."],
    "heritage": ["The temple of {t} was blown up.", "The museum in {t} was looted."],
    "unrelated": ["Talks about {t} resumed.", "Prices rose in {t}.", "The minister visited {t}."],
}


def examples(n: int = 80) -> list[Example]:
    rng = np.random.default_rng(5)
    towns = ["Homs", "Aleppo", "Palmyra", "Raqqa", "Idlib"]
    out = []
    for i in range(n):
        name = list(TEXTS)[i % 4]
        text = rng.choice(TEXTS[name]).format(t=rng.choice(towns), n=int(rng.integers(2, 500)))
        out.append(
            Example(
                f"a{i // 4}:{i}",
                f"a{i // 4}",
                text,
                multi_hot([name], "t"),
                [name],
                "pool",
                (i // 4) % 2,
            )
        )
    return out


def test_tfidf_cross_validation_is_deterministic() -> None:
    data = examples()
    first = cross_validate(data, TfidfLearner(data, TfidfConfig()))
    second = cross_validate(data, TfidfLearner(data, TfidfConfig()))
    np.testing.assert_array_equal(first.raw, second.raw)
    np.testing.assert_array_equal(first.calibrated, second.calibrated)
    rows = oof_rows(data, first)
    assert len(rows) == len(data) and rows[0]["raw"].keys() == {"control", "casualty", "heritage"}


def _tfidf_folder(tmp_path: Path) -> Path:
    data = examples()
    learner = TfidfLearner(data, TfidfConfig())
    result = cross_validate(data, learner)
    post = fit_postprocess(result.raw, np.array([e.labels for e in data])).to_dict()
    meta = {
        "name": "tfidf",
        "kind": "tfidf",
        "labels": ["control", "casualty", "heritage"],
        "thresholds": post.pop("thresholds"),
        "calibration": post,
        "version": 7,
        "max_length": 0,
        "training": {},
        "data": {"real_sentences": 80, "authored_sentences": 0, "cv_folds": 2},
        "created_at": "now",
        "evaluation": {
            **compute_metrics(np.zeros((1, 3), bool), np.zeros((1, 3)), np.zeros((1, 3), bool), 10),
            "leave_seeds_out": compute_metrics(
                np.zeros((1, 3), bool), np.zeros((1, 3)), np.zeros((1, 3), bool), 10
            ),
        },
    }
    folder = tmp_path / "tfidf"
    save_folder(learner, learner.fit(np.arange(len(data)), "final"), folder, meta)
    return folder


def test_load_model_round_trip_without_torch_or_mlflow(tmp_path: Path) -> None:
    folder = _tfidf_folder(tmp_path)
    assert json.loads((folder / "model.json").read_text())["format"] == "claims-model/1"
    code = (
        "import sys, json; from pipeline.models import load_model; "
        f"m = load_model({str(folder)!r}); "
        "print(json.dumps({'p': m.predict(['Rebels captured Homs.', 'Prices rose in Homs.']), "
        "'v': m.version, 'n': m.max_length, 'heavy': sorted(k for k in ('torch', 'transformers', 'mlflow') "
        "if k in sys.modules)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got == {"p": [["control"], ["unrelated"]], "v": "7", "n": 0, "heavy": []}
    model = load_model(folder)
    assert model.scores(["The museum in Raqqa was looted."]).shape == (1, 3)
    assert set(model.thresholds) == {"control", "casualty", "heritage"}


def test_load_model_rejects_a_folder_without_model_json(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError) as err:
        load_model(tmp_path)
    assert str(err.value) == f"{tmp_path}: not a model folder (no model.json)"


def test_onnx_check_set_tops_up_unlabeled_with_labeled_sentences(
    tmp_path: Path, root: Path
) -> None:
    params = replace(load_params(root / "params.yaml"), root=tmp_path)
    rows = [("seeds/a", 0, "Seed text."), ("pool/b", 0, "Labeled one."), ("pool/b", 1, "Free one.")]
    rows += [("pool/c", 0, "Free one."), ("pool/c", 1, "Labeled two."), ("pool/c", 2, "Free two.")]
    sentences = [Sentence(f"{a}:{i}", a, i, 0, len(t), t) for a, i, t in rows]
    labels = [
        LabeledSentence(s.sentence_id, s.article_id, s.text, ["unrelated"], "pool", "t", "x", "")
        for s in sentences
        if s.text.startswith(("Labeled", "Seed"))
    ]
    for key, records in (("sentences", sentences), ("labels", labels)):
        params.path(key).parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(params.path(key), records)

    # unlabeled first (distinct, seeds never), then labeled pool sentences up to the limit
    assert check_texts(params, 3) == (["Free one.", "Free two.", "Labeled one."], 2)
    assert check_texts(params, 0) == (["Free one.", "Free two.", "Labeled one.", "Labeled two."], 2)
    assert check_texts(params, 1) == (["Free one."], 1)
    decided = np.array([[1, 0, 0], [0, 1, 0]])
    assert agreement(decided, np.array([[1, 0, 0], [0, 0, 0]])) == 0.5
    assert agreement(decided[:0], decided[:0]) == 1.0
