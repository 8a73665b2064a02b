"""Stage `train_tfidf`: TF-IDF word and character n-grams, one-vs-rest logistic regression."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import Params, TfidfConfig
from pipeline.dataset import Example
from pipeline.models import WEIGHTS

log = logging.getLogger(__name__)

NAME = "tfidf"


def build_pipeline(cfg: TfidfConfig) -> Any:
    """FeatureUnion(word 1-n, char_wb n-m TF-IDF) -> one-vs-rest balanced logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import FeatureUnion, Pipeline

    common = {
        "lowercase": True,
        "min_df": cfg.min_df,
        "sublinear_tf": cfg.sublinear_tf,
        "dtype": np.float64,
    }
    features = FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(analyzer="word", ngram_range=(1, cfg.word_ngram_max), **common),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(cfg.char_ngram_min, cfg.char_ngram_max),
                    **common,
                ),
            ),
        ]
    )
    classifier = OneVsRestClassifier(
        LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=cfg.max_iter)
    )
    return Pipeline([("features", features), ("classifier", classifier)])


class TfidfLearner:
    kind = NAME

    def __init__(self, examples: list[Example], cfg: TfidfConfig) -> None:
        self.cfg = cfg
        self.texts = [e.text for e in examples]
        self.y = np.array([e.labels for e in examples], dtype=int).reshape(-1, 3)

    def settings(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self.cfg)

    def cv_fold(self, fold: int) -> int:
        return fold

    def fit(self, idx: np.ndarray, tag: str) -> Any:
        pipeline = build_pipeline(self.cfg)
        pipeline.fit([self.texts[i] for i in idx], self.y[idx])
        return pipeline

    def raw_scores(self, fitted: Any, idx: np.ndarray) -> np.ndarray:
        return np.asarray(fitted.predict_proba([self.texts[i] for i in idx]), dtype=np.float64)

    def save(self, fitted: Any, folder: Path) -> dict[str, Any]:
        import joblib

        joblib.dump(fitted, folder / WEIGHTS[NAME])
        return {"weights": WEIGHTS[NAME], "max_length": 0}


def make_learner(params: Params, examples: list[Example]) -> TfidfLearner:
    return TfidfLearner(examples, params.tfidf)


def run_train_tfidf(params: Params) -> dict[str, Any]:
    from pipeline.training import run_training

    return run_training(params, NAME, make_learner)
