"""A tiny synthetic project: seed articles, a pool CSV, labels and authored sentences.

Sentences come from templates whose labels are known, so the label files can
be written after segmentation by looking each sentence's text up. Two pool
articles share a sentence (they must end up in one fold group), and several
carry the same boilerplate line.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import yaml

from pipeline.schema import LabeledSentence, Sentence, read_records, write_jsonl

TOWNS = ["Palmyra", "Aleppo", "Homs", "Raqqa", "Idlib", "Deir ez-Zor", "Tadmur", "Manbij"]
TEMPLATES: dict[tuple[str, ...], list[str]] = {
    ("control",): [
        "Rebels captured {town} after {n} days of fighting.",
        "The army retook the centre of {town} on {day}.",
        "Government forces withdrew from {town} overnight.",
        "Militants seized the air base outside {town}.",
        "Troops are besieging {town} from three sides.",
    ],
    ("casualty",): [
        "At least {n} civilians were killed in {town} on {day}.",
        "{n} soldiers were wounded in the shelling of {town}.",
        "The strike killed {n} fighters near {town}.",
        "Rescuers found {n} bodies under the rubble in {town}.",
    ],
    ("heritage",): [
        "Militants blew up the ancient temple of {town}.",
        "The museum of {town} was looted and its statues smashed.",
        "Experts fear the Roman ruins of {town} will be destroyed.",
    ],
    ("control", "casualty"): [
        "Fighters stormed {town} and killed {n} soldiers.",
    ],
    ("casualty", "heritage"): [
        "They destroyed the old citadel of {town} and executed {n} guards.",
    ],
    ("unrelated",): [
        "Talks on the future of {town} resumed in Geneva on {day}.",
        "The minister visited {town} to discuss trade.",
        "Aid convoys reached {town} with food for {n} families.",
        "Bread prices in {town} rose sharply this year.",
        "The city of {town} is famous for its markets.",
    ],
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SHARED = "Read more stories from our correspondents"
SHARED_BETWEEN = "The same wire report was carried by both papers on {day}."


def _sentence(rng: random.Random) -> tuple[str, list[str]]:
    labels = rng.choices(list(TEMPLATES), weights=[5, 4, 3, 1, 1, 6])[0]
    text = rng.choice(TEMPLATES[labels]).format(
        town=rng.choice(TOWNS), n=rng.randint(2, 900), day=rng.choice(DAYS)
    )
    return text, list(labels)


def write_articles(
    root: Path, n_seeds: int, n_pool: int, per_article: int, seed: int
) -> dict[str, list[str]]:
    """Write seeds/*.txt and a pool CSV under root; return text -> labels of every sentence."""
    rng = random.Random(seed)
    truth: dict[str, list[str]] = {SHARED: ["unrelated"]}
    seeds_dir = root / "data" / "articles" / "seeds"
    seeds_dir.mkdir(parents=True, exist_ok=True)

    def article(title_prefix: str, k: int) -> list[str]:
        lines = []
        while len(lines) < per_article:
            text, labels = _sentence(rng)
            if text not in truth:
                truth[text] = labels
                lines.append(text)
        title = f"{title_prefix} report {k} from {rng.choice(TOWNS)}"
        truth[title] = ["unrelated"]
        return [title, *lines]

    for k in range(n_seeds):
        (seeds_dir / f"{k:03d}_seed.txt").write_text(
            "\n".join(article("Seed", k)) + "\n", encoding="utf-8"
        )
    shared_text = SHARED_BETWEEN.format(day="Friday")
    truth[shared_text] = ["unrelated"]
    corpus = root / "data" / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    with open(corpus / "pool.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["unit_id", "article_title", "article_content", "source", "date", "location", "labels"]
        )
        for k in range(n_pool):
            title, *lines = article("Pool", k)
            if k in (0, 1):
                lines.append(shared_text)
            if k % 3 == 0:
                lines.append(SHARED)
            content = "\n".join([title, *lines])
            writer.writerow([1000 + k, title, content, "fixture", "2017-01-01", "Syria", "1"])
    return truth


def write_labels(
    root: Path,
    params_paths: dict[str, str],
    truth: dict[str, list[str]],
    n_authored: int,
    seed: int,
    unlabeled: int = 2,
) -> None:
    """Label the sentences from `truth`, all but those of the last `unlabeled` pool articles;
    a second annotation of five; a few authored sentences."""
    sentences = read_records(root / params_paths["sentences"], Sentence)
    pool = sorted({s.article_id for s in sentences if not s.article_id.startswith("seeds/")})
    skipped = set(pool[len(pool) - unlabeled :]) if unlabeled else set()  # an unlabeled pool
    records = []
    for s in sentences:
        if s.article_id in skipped:
            continue
        labels = truth.get(s.text)
        if labels is None:
            raise AssertionError(f"fixture sentence not from a template: {s.text!r}")
        records.append(
            LabeledSentence(
                sentence_id=s.sentence_id,
                article_id=s.article_id,
                text=s.text,
                labels=labels,
                source="seed" if s.article_id.startswith("seeds/") else "pool",
                annotator="fixture",
                labeled_at="2026-01-01T00:00:00+00:00",
                note="",
            )
        )
    write_jsonl(root / params_paths["labels"], records)
    second = [
        {
            "sentence_id": r.sentence_id,
            "text": r.text,
            "first_labels": r.labels,
            "first_annotator": "fixture",
            "second_labels": r.labels,
            "second_annotator": "fixture-2",
            "final_labels": r.labels,
            "note": "",
        }
        for r in records[:5]
    ]
    write_jsonl(root / params_paths["second_annotation"], second)
    rng = random.Random(seed + 1)
    authored = []
    while len(authored) < n_authored:
        text, labels = _sentence(rng)
        if text in truth:
            continue
        truth[text] = labels
        authored.append(
            LabeledSentence(
                sentence_id=f"authored:{len(authored):04d}",
                article_id="authored",
                text=text,
                labels=labels,
                source="authored",
                annotator="fixture",
                labeled_at="2026-01-01T00:00:00+00:00",
                note="written for training",
            )
        )
    write_jsonl(root / params_paths["authored"], authored)


TINY_PARAMS = {
    "dataset": {"n_folds": 2},
    "tfidf": {"max_iter": 500},
    "embed": {"batch_size": 32, "max_length": 32},
    "transformer": {
        "max_length": 16,
        "epochs": 1,
        "batch_size": 8,
        "eval_batch_size": 32,
        "cv_folds": 2,
        "max_steps": 1,
    },
}


def tiny_params(base: Path, target: Path, overrides: dict | None = None) -> dict:
    """The project's params.yaml with fixture inputs and the tiny training overrides."""
    params = yaml.safe_load(base.read_text(encoding="utf-8"))
    params["paths"]["corpus_csv"] = "data/corpus/pool.csv"
    for section, values in {**TINY_PARAMS, **(overrides or {})}.items():
        params.setdefault(section, {}).update(values)
    target.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params
