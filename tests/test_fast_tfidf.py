"""The compiled TF-IDF scorer gives the fitted pipeline's own scores."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import TfidfConfig
from pipeline.fast_tfidf import CompiledTfidf, UnsupportedPipeline
from pipeline.train_tfidf import build_pipeline

TRAIN = [
    ("Rebels captured the town of Kafr Nubl on Sunday.", [1, 0, 0]),
    ("At least 12 civilians were killed in air strikes on Douma.", [0, 1, 0]),
    ("Militants blew up the Temple of Bel in Palmyra.", [0, 0, 1]),
    ("Talks on a ceasefire resumed in Geneva.", [0, 0, 0]),
    ("Government forces retook the citadel and killed 30 fighters.", [1, 1, 0]),
    ("The museum was looted and two guards were shot dead.", [0, 1, 1]),
]
UNSEEN = [
    "Troops RETOOK the airport; 4 soldiers died.",
    "",
    "   ",
    "Syrias army shelled Idlib   Idlib again",
    "Caf\u00e9 owners in Homs said the old souk was spared.",
    "xyzzy qwerty",
]


@pytest.fixture(scope="module")
def fitted():  # noqa: ANN201
    pipeline = build_pipeline(TfidfConfig(max_iter=500))
    pipeline.fit([t for t, _ in TRAIN], np.array([y for _, y in TRAIN]))
    return pipeline


def test_scores_equal_the_pipeline(fitted) -> None:  # noqa: ANN001
    compiled = CompiledTfidf(fitted)
    texts = [t for t, _ in TRAIN] + UNSEEN
    expected = fitted.predict_proba(texts)
    np.testing.assert_allclose(compiled.predict_proba(texts), expected, rtol=0, atol=1e-12)
    # the word cache is filled now; a second pass must give the same again
    np.testing.assert_allclose(compiled.predict_proba(texts), expected, rtol=0, atol=1e-12)


def test_an_unsupported_pipeline_is_refused(fitted) -> None:  # noqa: ANN001
    fitted.named_steps["features"].transformer_list[0][1].binary = True
    try:
        with pytest.raises(UnsupportedPipeline, match="binary"):
            CompiledTfidf(fitted)
    finally:
        fitted.named_steps["features"].transformer_list[0][1].binary = False
