"""Joining labels to sentences, fold grouping and the authored (training-only) rule."""

from __future__ import annotations

import pytest

from pipeline.config import DatasetConfig
from pipeline.dataset import (
    AUTHORED_FOLD,
    DatasetError,
    assign_folds,
    build_examples,
    group_articles,
    multi_hot,
    summarize,
)
from pipeline.schema import LabeledSentence, Sentence


def sentence(article: str, index: int, text: str) -> Sentence:
    return Sentence(f"{article}:{index}", article, index, 0, len(text), text)


def label(s: Sentence, labels: list[str], source: str = "pool") -> LabeledSentence:
    return LabeledSentence(
        s.sentence_id, s.article_id, s.text, labels, source, "a", "2026-01-01", ""
    )


def authored(i: int, text: str, labels: list[str]) -> LabeledSentence:
    return LabeledSentence(
        f"authored:{i}", "authored", text, labels, "authored", "a", "2026-01-01", ""
    )


def corpus(n_pool: int = 12, per_article: int = 4) -> list[Sentence]:
    out = []
    for k in range(5):
        out += [
            sentence(f"seeds/{k:03d}", i, f"Seed {k} sentence {i}.") for i in range(per_article)
        ]
    for k in range(n_pool):
        out += [sentence(f"fakes-{k}", i, f"Pool {k} sentence {i}.") for i in range(per_article)]
    return out


def test_multi_hot_follows_label_order_and_unrelated_is_all_zero() -> None:
    assert multi_hot(["heritage", "control"], "x") == [1.0, 0.0, 1.0]
    assert multi_hot(["unrelated"], "x") == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            ["looting"],
            "x: labels must be one or more of control, casualty, heritage, unrelated, got ['looting']",
        ),
        ([], "x: labels must be one or more of control, casualty, heritage, unrelated, got []"),
        (
            ["unrelated", "control"],
            "x: 'unrelated' cannot go with other labels, got ['unrelated', 'control']",
        ),
    ],
)
def test_multi_hot_rejects_bad_labels(labels: list[str], message: str) -> None:
    with pytest.raises(DatasetError) as err:
        multi_hot(labels, "x")
    assert str(err.value) == message


def test_group_articles_joins_articles_that_share_a_normalised_sentence() -> None:
    groups = group_articles(
        {
            "fakes-1": ["Rebels took the town.", "Unique one."],
            "fakes-2": ["  REBELS took   the town. "],  # same after normalize_text
            "fakes-3": ["Something else."],
            "fakes-4": ["Unique one."],  # chained through fakes-1
            "seeds/a": ["Seed a."],
            "seeds/b": ["Seed b."],
        },
        seed_prefix="seeds/",
    )
    assert groups["fakes-1"] == groups["fakes-2"] == groups["fakes-4"] == "fakes-1"
    assert groups["fakes-3"] == "fakes-3"
    assert groups["seeds/a"] == groups["seeds/b"]  # seeds always one group


def test_assign_folds_is_balanced_seeded_and_complete() -> None:
    sizes = {f"g{i}": size for i, size in enumerate([40, 30, 20, 20, 10, 10, 10, 5, 5])}
    folds = assign_folds(sizes, n_folds=3, seed=7)
    assert folds == assign_folds(sizes, n_folds=3, seed=7)
    assert set(folds) == set(sizes)
    load = [sum(s for g, s in sizes.items() if folds[g] == f) for f in range(3)]
    assert max(load) - min(load) <= 10
    assert len({tuple(sorted(assign_folds(sizes, 3, seed).items())) for seed in range(10)}) > 1


def test_build_examples_keeps_groups_and_seeds_in_one_fold() -> None:
    sentences = corpus()
    # fakes-3 and fakes-9 share a boilerplate line, so they must share a fold
    sentences += [sentence("fakes-3", 99, "Read also"), sentence("fakes-9", 99, "READ  also")]
    labeled = [
        label(s, ["unrelated"], "seed" if s.article_id.startswith("seeds/") else "pool")
        for s in sentences
    ]
    examples = build_examples(sentences, labeled, [], DatasetConfig(n_folds=3, seed=1))
    fold_of: dict[str, set[int]] = {}
    for e in examples:
        fold_of.setdefault(e.article_id, set()).add(e.fold)
    assert all(len(f) == 1 for f in fold_of.values()), "an article spans two folds"
    assert fold_of["fakes-3"] == fold_of["fakes-9"]
    seed_folds = set().union(*(f for a, f in fold_of.items() if a.startswith("seeds/")))
    assert len(seed_folds) == 1
    assert {e.fold for e in examples} == {0, 1, 2}


def test_authored_sentences_are_training_only_and_never_repeat_a_real_one() -> None:
    sentences = corpus(n_pool=4)
    labeled = [label(s, ["control"]) for s in sentences]
    extra = [
        authored(1, "Fighters stormed the citadel.", ["control"]),
        authored(2, "  pool 2 SENTENCE 1. ", ["control"]),  # repeats a real sentence: dropped
    ]
    examples = build_examples(sentences, labeled, extra, DatasetConfig(n_folds=2, seed=1))
    mine = [e for e in examples if e.source == "authored"]
    assert [e.sentence_id for e in mine] == ["authored:1"]
    assert all(e.fold == AUTHORED_FOLD for e in mine)
    assert all(e.fold >= 0 for e in examples if e.source != "authored")
    summary = summarize(examples, DatasetConfig(n_folds=2, seed=1))
    assert summary["folds"]["-1"]["sentences"] == 1
    assert summary["folds"]["-1"]["role"] == "train only (authored)"
    assert summary["real_sentences"] == len(sentences)


def test_label_text_mismatch_is_an_error_naming_the_id() -> None:
    s = sentence("fakes-1", 0, "Rebels took the town.")
    stale = LabeledSentence(
        s.sentence_id, s.article_id, "Rebels took the city.", ["control"], "pool", "a", "t", ""
    )
    with pytest.raises(DatasetError) as err:
        build_examples([s], [stale], [], DatasetConfig())
    assert str(err.value).startswith("fakes-1:0: label text no longer matches the sentence text")


def test_unknown_sentence_ids_are_listed() -> None:
    s = sentence("fakes-1", 0, "Rebels took the town.")
    ghost = LabeledSentence("fakes-1:7", "fakes-1", "Gone.", ["control"], "pool", "a", "t", "")
    with pytest.raises(DatasetError) as err:
        build_examples([s], [label(s, ["control"]), ghost], [], DatasetConfig())
    assert str(err.value) == "1 labeled sentence id(s) not in the sentences: fakes-1:7"


def test_authored_source_in_real_file_is_refused() -> None:
    s = sentence("fakes-1", 0, "Rebels took the town.")
    with pytest.raises(DatasetError, match="belongs in the authored file"):
        build_examples([s], [label(s, ["control"], "authored")], [], DatasetConfig())
