"""Which sentence next: orderings of candidate sentences for labeling.

Pure functions: label lists and score arrays in, positions out, best first.
Scores are calibrated probabilities of shape (n, 3) in `LABELS` order;
thresholds are the model's per-label cuts (predict a label when score >= cut).

- `uncertain`: smallest margin first, the margin being min over labels of
  |score - threshold|: the sentences the model is least sure about.
- `disagree`: only sentences where two models predict different label sets;
  most disputed labels first, then the most confident dispute.
- `random`: a seeded permutation (the baseline).
- `audit`: labeled sentences whose out-of-fold prediction contradicts the
  human label, i.e. likely label errors. Method `cleanlab` (the default) is
  cleanlab's multi-label `find_label_issues` (confident learning, noise rates
  estimated per label from the same scores), ranked by its label quality
  score; method `margin` flags a sentence when, for some label, the score lies
  at least `margin` beyond the threshold on the side opposite the human label,
  ranked by that distance.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence

import numpy as np

from pipeline.config import LABELS, STRATEGIES


class StrategyError(ValueError):
    """A strategy cannot rank these candidates (missing scores, too few labels)."""


def label_matrix(labels: Sequence[Sequence[str]]) -> np.ndarray:
    """(n, 3) booleans: which claim labels each label list holds (`unrelated` is none)."""
    return np.array([[name in row for name in LABELS] for row in labels], dtype=bool).reshape(
        len(labels), len(LABELS)
    )


def decide(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(n, 3) booleans: the labels a model predicts."""
    return np.asarray(scores) >= np.asarray(thresholds)[None, :]


def margins(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per sentence, the distance of the closest label score to its threshold."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1, len(LABELS))
    return np.abs(scores - np.asarray(thresholds)[None, :]).min(axis=1)


def uncertain(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Positions by margin, smallest first (ties keep their input order)."""
    return np.argsort(margins(scores, thresholds), kind="stable")


def disagree(
    scores_a: np.ndarray,
    thresholds_a: np.ndarray,
    scores_b: np.ndarray,
    thresholds_b: np.ndarray,
) -> np.ndarray:
    """Positions where models a and b predict different label sets.

    More disputed labels first; among equals, the larger summed distance of
    both models from their thresholds on the disputed labels first (two sure
    models that disagree: one of them is clearly wrong).
    """
    scores_a, scores_b = np.asarray(scores_a), np.asarray(scores_b)
    if scores_a.shape != scores_b.shape:
        raise StrategyError(
            f"disagree: both models must score the same sentences, got shapes "
            f"{scores_a.shape} and {scores_b.shape}"
        )
    disputed = decide(scores_a, thresholds_a) != decide(scores_b, thresholds_b)
    strength = np.abs(scores_a - thresholds_a) + np.abs(scores_b - thresholds_b)
    strength = np.where(disputed, strength, 0.0).sum(axis=1)
    count = disputed.sum(axis=1)
    keep = np.flatnonzero(count > 0)
    order = np.lexsort((-strength[keep], -count[keep]))  # last key sorts first
    return keep[order]


def random_order(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of range(n)."""
    return np.random.default_rng(seed).permutation(n)


def contradiction(y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per sentence, how far the score of the most contradicted label lies across its threshold.

    Positive when the prediction differs from the human label on some label.
    """
    y = np.asarray(y, dtype=bool)
    gap = np.asarray(scores) - np.asarray(thresholds)[None, :]
    return np.where(y, -gap, gap).max(axis=1)


def audit_margin(
    y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, margin: float
) -> np.ndarray:
    """Positions whose contradiction is at least `margin`, strongest first."""
    strength = contradiction(y, scores, thresholds)
    keep = np.flatnonzero(strength >= margin)
    return keep[np.argsort(-strength[keep], kind="stable")]


def audit_cleanlab(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Positions cleanlab flags as label issues, most likely error first.

    Needs out-of-sample scores (OOF) of all labeled sentences: cleanlab
    estimates each label's noise rates from them.
    """
    from cleanlab.multilabel_classification.filter import find_label_issues

    y = np.asarray(y, dtype=bool)
    if len(y) == 0:
        return np.zeros(0, dtype=int)
    missing = [name for name, n in zip(LABELS, y.sum(axis=0), strict=True) if n == 0]
    if missing:
        raise StrategyError(
            f"audit (cleanlab): no sentence is labeled {', '.join(missing)}; "
            "cleanlab needs examples of every label (use audit_method: margin)"
        )
    given = [[j for j in range(len(LABELS)) if row[j]] for row in y]
    # cleanlab prints and warns about small classes; the ranking is what matters here.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        ranked = find_label_issues(
            labels=given,
            pred_probs=np.asarray(scores, dtype=np.float64),
            return_indices_ranked_by="self_confidence",
        )
    return np.asarray(ranked, dtype=int)


def audit(
    y: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    *,
    method: str = "cleanlab",
    margin: float = 0.3,
) -> np.ndarray:
    """Likely label errors, most likely first (see the module docstring)."""
    if method == "cleanlab":
        return audit_cleanlab(y, scores)
    if method == "margin":
        return audit_margin(y, scores, thresholds, margin)
    raise StrategyError(f"audit method must be cleanlab or margin, got {method!r}")


def check_strategy(name: str) -> str:
    if name not in STRATEGIES:
        raise StrategyError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    return name


def skipped_last(order: Sequence[int], skipped: Sequence[int]) -> list[int]:
    """`order` with the positions in `skipped` moved to the end, in the order given there."""
    held, present = set(skipped), {int(i) for i in order}
    return [int(i) for i in order if i not in held] + [i for i in skipped if i in present]
