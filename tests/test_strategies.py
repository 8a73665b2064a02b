"""Which sentence next: each strategy on small score arrays."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import strategies
from pipeline.strategies import StrategyError

T = np.array([0.5, 0.4, 0.3])


def test_label_matrix_reads_claims_and_treats_unrelated_as_none() -> None:
    y = strategies.label_matrix([["control"], ["casualty", "heritage"], ["unrelated"]])
    assert y.tolist() == [[True, False, False], [False, True, True], [False, False, False]]
    assert strategies.label_matrix([]).shape == (0, 3)


def test_uncertain_orders_by_the_closest_label_to_its_threshold() -> None:
    scores = np.array(
        [
            [0.90, 0.05, 0.05],  # margins 0.40, 0.35, 0.25 -> 0.25
            [0.52, 0.90, 0.90],  # 0.02
            [0.10, 0.39, 0.00],  # 0.01
            [0.00, 0.00, 0.20],  # 0.10
            [0.49, 0.50, 0.90],  # 0.01, tie with row 2: input order kept
        ]
    )
    assert strategies.margins(scores, T).round(2).tolist() == [0.25, 0.02, 0.01, 0.1, 0.01]
    assert strategies.uncertain(scores, T).tolist() == [2, 4, 1, 3, 0]


def test_disagree_keeps_only_differing_label_sets_most_disputed_first() -> None:
    a = np.array(
        [
            [0.9, 0.0, 0.0],  # control | control: agree
            [0.9, 0.9, 0.0],  # control+casualty | unrelated: 2 disputed
            [0.6, 0.0, 0.0],  # control | unrelated: 1 disputed, weak
            [1.0, 0.0, 0.0],  # control | unrelated: 1 disputed, strong
        ]
    )
    b = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.1], [0.45, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert strategies.disagree(a, T, b, T).tolist() == [1, 3, 2]
    same = strategies.disagree(a, T, a, T)
    assert same.tolist() == []


def test_disagree_uses_each_models_own_thresholds() -> None:
    scores = np.array([[0.45, 0.0, 0.0]])
    low, high = np.array([0.4, 0.5, 0.5]), np.array([0.5, 0.5, 0.5])
    assert strategies.disagree(scores, low, scores, high).tolist() == [0]


def test_disagree_refuses_different_sentence_counts() -> None:
    with pytest.raises(StrategyError, match=r"same sentences, got shapes \(2, 3\) and \(1, 3\)"):
        strategies.disagree(np.zeros((2, 3)), T, np.zeros((1, 3)), T)


def test_random_is_a_seeded_permutation() -> None:
    first = strategies.random_order(50, seed=3)
    assert sorted(first.tolist()) == list(range(50))
    assert strategies.random_order(50, seed=3).tolist() == first.tolist()
    assert strategies.random_order(50, seed=4).tolist() != first.tolist()


def test_audit_margin_flags_labels_the_model_contradicts_strongly() -> None:
    y = strategies.label_matrix([["control"], ["unrelated"], ["casualty"], ["heritage"]])
    scores = np.array(
        [
            [0.95, 0.0, 0.0],  # agrees: every label on its side, by 0.3 at least
            [0.0, 0.95, 0.0],  # labeled unrelated, casualty score 0.55 over its threshold
            [0.0, 0.02, 0.0],  # labeled casualty, score 0.38 under
            [0.0, 0.0, 0.25],  # labeled heritage, 0.05 under: not strong
        ]
    )
    assert strategies.contradiction(y, scores, T).round(2).tolist() == [-0.3, 0.55, 0.38, 0.05]
    assert strategies.audit(y, scores, T, method="margin", margin=0.3).tolist() == [1, 2]
    assert strategies.audit(y, scores, T, method="margin", margin=0.5).tolist() == [1]


def _noisy_set(n: int = 300, flipped: tuple[int, ...] = (5, 77, 150)) -> tuple:
    """Scores that match the labels, except on a few sentences whose label was flipped."""
    rng = np.random.default_rng(0)
    y = rng.random((n, 3)) < np.array([0.3, 0.4, 0.1])
    scores = np.where(y, rng.uniform(0.7, 0.99, (n, 3)), rng.uniform(0.01, 0.2, (n, 3)))
    given = y.copy()
    for i in flipped:
        given[i, 1] = not given[i, 1]
    return given, scores, flipped


def test_audit_cleanlab_finds_flipped_labels_first() -> None:
    given, scores, flipped = _noisy_set()
    found = strategies.audit(given, scores, T, method="cleanlab")
    assert sorted(found[: len(flipped)].tolist()) == sorted(flipped)
    assert len(found) == len(flipped)


def test_audit_cleanlab_needs_every_label() -> None:
    given, scores, _ = _noisy_set()
    given[:, 2] = False
    with pytest.raises(StrategyError, match="no sentence is labeled heritage"):
        strategies.audit(given, scores, T, method="cleanlab")


def test_unknown_strategy_and_method_are_refused() -> None:
    with pytest.raises(StrategyError, match="strategy must be one of uncertain, disagree"):
        strategies.check_strategy("newest")
    with pytest.raises(StrategyError, match="audit method must be cleanlab or margin"):
        strategies.audit(np.zeros((1, 3), bool), np.zeros((1, 3)), T, method="vote")


def test_skipped_go_last_in_the_order_they_were_skipped() -> None:
    assert strategies.skipped_last([4, 2, 0, 3, 1], skipped=[3, 4, 9]) == [2, 0, 1, 3, 4]
