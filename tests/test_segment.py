"""Segmenter: the seeds' own tricky lines, FA-KES text, offsets and stable ids."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import SegmentConfig
from pipeline.reader import make_article
from pipeline.segment import segment_article, sentence_id

CFG = SegmentConfig()


def sentences(text: str) -> list[str]:
    return [s.text for s in segment_article(make_article("t", text, language="en"), CFG)]


def test_headline_without_full_stop_is_its_own_sentence() -> None:
    text = "Islamic State 'recaptures' ancient Syrian city Palmyra\n\nIS re-entered Palmyra on Saturday."
    assert sentences(text) == [
        "Islamic State 'recaptures' ancient Syrian city Palmyra",
        "IS re-entered Palmyra on Saturday.",
    ]


def test_abbreviations_and_units_do_not_break() -> None:
    text = (
        "The Observatory's head Mr Abdel Rahman said U.S. jets struck a silo 10 km (6 miles) "
        "east of the city. Fighting went on."
    )
    assert sentences(text) == [
        "The Observatory's head Mr Abdel Rahman said U.S. jets struck a silo 10 km (6 miles) "
        "east of the city.",
        "Fighting went on.",
    ]


def test_quotes_ending_in_full_stop_close_the_sentence() -> None:
    text = (
        '"The army is using all means to prevent the terrorists from staying in Palmyra," he said. '
        '"Syrian troops are fighting to defend Palmyra." Syria\'s army acknowledged an offensive.'
    )
    assert sentences(text) == [
        '"The army is using all means to prevent the terrorists from staying in Palmyra," he said.',
        '"Syrian troops are fighting to defend Palmyra."',
        "Syria's army acknowledged an offensive.",
    ]


def test_dateline_stays_with_its_sentence(seeds_dir: Path) -> None:
    text = (seeds_dir / "002_2fe0e50d60397593.txt").read_text(encoding="utf-8")
    got = sentences(text)
    assert got[3].startswith(
        "By Suleiman Al-Khalidi AMMAN (Reuters) - The governor of Syria's Homs"
    )
    assert got[3].endswith("earlier in the day.")
    assert "Handout via REUTERS TV" in got
    assert "(Additional reporting by Jack Stubbs in Moscow; Editing by Tom Heneghan)" in got


def test_seed_captions_and_furniture_are_separate(seeds_dir: Path) -> None:
    text = (seeds_dir / "001_6708216701232fe5.txt").read_text(encoding="utf-8")
    got = sentences(text)
    assert "image copyrightReuters" in got
    assert "In other developments:" in got
    assert "Two 2,000-year-old temples, an arch and funerary towers were left in ruins." in got


def test_fakes_text_without_commas() -> None:
    text = (
        "Sun 10 Jul 2016 29 Syria Rebels Dead in Fighting for Key Aleppo Road. At least 29 Syrian "
        "rebels were killed in clashes with regime troops overnight during a failed bid to reopen "
        "the oppositions key supply route into Aleppo city a monitor said Sunday. The fighters "
        "from the Faylaq al-Sham Islamist faction were killed the Syrian Observatory said."
    )
    got = sentences(text)
    assert len(got) == 3
    assert got[1].startswith("At least 29 Syrian rebels") and got[1].endswith("said Sunday.")


def test_offsets_round_trip_and_ids_are_stable(seeds_dir: Path) -> None:
    for path in sorted(seeds_dir.glob("*.txt")):
        article = make_article(path.stem, path.read_text(encoding="utf-8"), language="en")
        recs = segment_article(article, CFG)
        assert recs, path
        for i, rec in enumerate(recs):
            assert article.text[rec.start : rec.end] == rec.text
            assert rec.index == i
            assert rec.text == rec.text.strip()
        assert len({r.sentence_id for r in recs}) == len(recs)


def test_sentence_id_depends_on_text_not_position() -> None:
    a = segment_article(make_article("x", "First one.\nSecond one.", language="en"), CFG)
    b = segment_article(make_article("x", "New lead.\nFirst one.\nSecond one.", language="en"), CFG)
    assert a[0].sentence_id == b[1].sentence_id and a[1].sentence_id == b[2].sentence_id
    assert a[0].sentence_id == sentence_id("x", "First one.")


def test_repeated_sentences_get_an_occurrence_counter() -> None:
    recs = segment_article(make_article("x", "Same.\nOther.\nSame.", language="en"), CFG)
    assert recs[0].sentence_id != recs[2].sentence_id
    assert recs[2].sentence_id == sentence_id("x", "Same.", 2)


def test_two_sentences_inside_one_quotation_are_split() -> None:
    text = (
        "\u201cOver the past night, Syrian troops thwarted all terrorist attacks on Palmyra. "
        "The attacking militants actively used car bombs.\u201d Then the statement ended."
    )
    assert sentences(text) == [
        "\u201cOver the past night, Syrian troops thwarted all terrorist attacks on Palmyra.",
        "The attacking militants actively used car bombs.\u201d",
        "Then the statement ended.",
    ]


def test_quote_followed_by_attribution_without_comma_is_not_broken() -> None:
    text = (
        '"Some cases appear to show signs consistent with exposure to nerve agents" WHO said in '
        "a statement putting the death toll at 70. The United States blamed Syrian aircraft."
    )
    assert sentences(text) == [
        '"Some cases appear to show signs consistent with exposure to nerve agents" WHO said in '
        "a statement putting the death toll at 70.",
        "The United States blamed Syrian aircraft.",
    ]
