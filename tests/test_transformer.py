"""The fine-tuning loop: reproducible on CPU, batches grouped by length, weighted positives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.config import TransformerConfig
from pipeline.models import batched_forward, sigmoid_logits
from pipeline.train_transformer import (
    distinct_examples,
    fine_tune,
    length_grouped_batches,
    load_base,
    positive_weights,
)

TEXTS = [
    "Rebels captured the town.",
    "Twelve civilians were killed in the strike on the market square yesterday.",
    "The temple was blown up.",
    "Talks resumed.",
    "The army withdrew from the air base after a week of heavy fighting.",
    "Three soldiers died.",
    "Looters emptied the museum.",
    "Prices rose.",
]
Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]] * 2, dtype=np.float32)
TINY = TransformerConfig(max_length=16, epochs=1, batch_size=4, eval_batch_size=8, max_steps=2)


def scores(config: TransformerConfig) -> np.ndarray:
    tokenizer, model = fine_tune(TEXTS, Y, config, "test")
    return batched_forward(TEXTS, tokenizer, 16, 8, sigmoid_logits(model))


def test_same_params_give_the_same_model() -> None:
    first, second = scores(TINY), scores(TINY)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (len(TEXTS), 3)
    assert not np.array_equal(first, scores(dataclasses.replace(TINY, seed=1)))


def test_length_grouped_batches_cover_every_index_once_and_are_seeded() -> None:
    lengths = [int(n) for n in np.random.default_rng(0).integers(3, 60, 203)]
    batches = length_grouped_batches(lengths, 8, np.random.default_rng(4))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(203))
    assert all(len(b) <= 8 for b in batches)
    assert batches == length_grouped_batches(lengths, 8, np.random.default_rng(4))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 10  # sorted within chunks: little padding


def test_positive_weights() -> None:
    y = np.array([[1, 0, 0]] + [[0, 1, 0]] * 3 + [[0, 0, 0]] * 5, dtype=float)
    assert positive_weights(y, "none").tolist() == [1.0, 1.0, 1.0]
    assert positive_weights(y, "balanced").tolist() == pytest.approx([8.0, 2.0, 1.0])
    assert positive_weights(y, "sqrt").tolist() == pytest.approx([8**0.5, 2**0.5, 1.0])


def test_distinct_examples_keep_the_first_of_each_text_and_label_pair() -> None:
    texts = ["Rebels took the town.", "rebels  took the TOWN.", "Rebels took the town.", "Talks."]
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)
    kept = distinct_examples(texts, y, np.array([3, 0, 1, 2]))
    # 1 repeats 0 (case and spaces folded); 2 has the same text but other labels, so it stays
    assert kept.tolist() == [3, 0, 2]


def test_frozen_word_embeddings_do_not_move_and_the_rest_does() -> None:
    frozen = dataclasses.replace(TINY, freeze_word_embeddings=True)
    _, base = load_base(frozen)
    _, tuned = fine_tune(TEXTS, Y, frozen, "test")
    before, after = base.get_input_embeddings().weight, tuned.get_input_embeddings().weight
    assert bool((before == after).all())
    assert not bool((base.classifier.weight == tuned.classifier.weight).all())
    _, unfrozen = fine_tune(TEXTS, Y, TINY)
    assert not bool((before == unfrozen.get_input_embeddings().weight).all())
