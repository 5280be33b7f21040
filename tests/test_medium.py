"""Tests of the stated-medium normaliser (modbot/medium.py).

Real data: ``tests/data/rart_titles_sample.jsonl`` holds 200 real r/Art submissions (40 per
label, rows kept as id/title/medium/unix_time) drawn at random (seed 2020) from
``../shared/data/rart-2020/posts.jsonl``, which comes from the public "Reddit Art Classifier"
project (MWilliamson96/RedditArtClassifier, ``data/meta_data_final.json``, r/Art April–November
2020; no licence stated, used as test data). Regenerate with
``python bench/medium_agreement.py --write-sample tests/data/rart_titles_sample.jsonl --per-class 40``.
Its ``medium`` label was made by that project's keyword matching of the title, so it is a
reference, not ground truth: on this sample we agree on 196 of 200 rows (98.0 %); the four
disagreements are the data set's or ambiguous (see test_sample_disagreements_are_known_kinds).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from modbot.config import load_config
from modbot.domain import MEDIA, UNKNOWN, StatedMedium
from modbot.errors import ConfigError, InputError, ModbotError
from modbot.medium import Vocabulary, annotate_jsonl, medium_field, stated_medium

SAMPLE = Path(__file__).parent / "data" / "rart_titles_sample.jsonl"
LABEL_MAP = {"digital": "digital", "paint": "painting", "ink": "ink",
             "non_ink_drawing": "drawing", "sculpture": "sculpture"}


@pytest.fixture(scope="module")
def sample_rows() -> list[dict]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]
    assert len(rows) == 200
    return rows


def real(title: str, rows: list[dict]) -> str:
    """``title``, after checking that it is a real title of the sample."""
    assert title in {r["title"] for r in rows}, f"not in the sample: {title!r}"
    return title


# ------------------------------------------------------------------ agreement on real titles

def test_sample_agreement_bound(sample_rows):
    agree = sum(stated_medium(r["title"]).medium == LABEL_MAP[r["medium"]] for r in sample_rows)
    # Measured: 196/200 = 0.98. The bound leaves room for two deliberate vocabulary changes.
    assert agree / len(sample_rows) >= 0.97, agree


def test_sample_recall_per_label(sample_rows):
    for label, medium in LABEL_MAP.items():
        rows = [r for r in sample_rows if r["medium"] == label]
        hits = sum(stated_medium(r["title"]).medium == medium for r in rows)
        assert hits / len(rows) >= 0.95, (label, hits, len(rows))


def test_sample_disagreements_are_known_kinds(sample_rows):
    """Every disagreement on the sample is one we decided on purpose (see bench/)."""
    wrong = {r["title"]: stated_medium(r["title"]).medium for r in sample_rows
             if stated_medium(r["title"]).medium != LABEL_MAP[r["medium"]]}
    assert wrong == {
        "Baby Blue Faces, Me, Nail Polish, 2020": "painting",  # data set: "nail" → sculpture
        "Eyeless, Me, Sharpie and Colored Pencil, 2020": "mixed_media",  # two media stated
        "Convalescing, by me, oil pastel, 2020": "drawing",  # pastel is a drawing medium
        '"Jimi,artist/jeffreyVanAllen,charcoal,ink"': "ink",  # no year: last field read
    }


@pytest.mark.parametrize("title, medium, matched", [
    ("Sparks Fly, Me, Digital, 2020", "digital", "digital*"),
    ("The Keeper, Me, Photoshop, 2020", "digital", "photoshop*"),
    ("Snow Valley, Me, 3D Render, 2020", "digital", "3d render"),
    ("Early Morning, Me, Digital 3D, 2020", "digital", "digital*"),
    ("Mushroom study, me, oil on canvas, 2020", "painting", "oil"),
    ("Andrews Grackle, me, watercolors, 2020", "painting", "water color"),
    ("Moon,Fred Haze,acrylic,21/11/20", "painting", "acrylic*"),
    ("Cat in multicolor , By Me , acrylic on canvas [ 40x65 ] , 2020", "painting", "acrylic*"),
    ("Slave Market with the Disappearing Bust of Voltaire, Salvador Dalí, Oil on Canvas, 1940",
     "painting", "oil"),
    ("Fear the ocean, me, pen and ink, 2020", "ink", "pen and ink"),
    ("RIP, me, Pen & Ink, 2020", "ink", "pen and ink"),
    ("Twisted, Kap, pen&ink, 2020", "ink", "pen and ink"),
    ("Halloween Witch, me : arts.by.li , promarkers on paper, 2020", "ink", "promarker"),
    ("Untitled, Joseph Rivera, Ink and Wite-Out on Glossy Print, 2020", "ink", "ink"),
    ("Orc, me, mech pencil, 2020", "drawing", "pencil*"),
    ("Old smoker, me, charcoal on toned paper, 2018", "drawing", "charcoal"),
    ("Me, The Lovers, pencil on paper, 2020", "drawing", "pencil*"),
    ("Rise From Your Grave, Me, Charcoal and Graphite, 2019.", "drawing", "charcoal"),
    ("A masterpiece, classmate, pencile, 2020", "drawing", "pencil*"),
    ("Melt, me, Borosilicate Glass, 2020", "sculpture", "glass"),
    ("Dreamrunner, Me, Polymer clay, 2019", "sculpture", "polymer clay"),
    # medium before the artist: "Title, Medium, Artist, Year"
    ("Gediminas’s Iron Wolf, clay gilded with 24K gold leafs, Me, 2020.", "sculpture", "clay"),
])
def test_real_titles(sample_rows, title, medium, matched):
    stated = stated_medium(real(title, sample_rows))
    assert (stated.medium, stated.source, stated.matched) == (medium, "title", matched)


def test_real_title_with_a_generic_secondary_material(sample_rows):
    # "Paints" is generic; the specific "colour pencils" decides.
    title = real("Love, Me, Paints and colour pencils, 2020. A recreation of thesanesparza's comic "
                 "with a little me added to it. Because my boy loved the theme portrayed here.",
                 sample_rows)
    assert stated_medium(title).medium == "drawing"


# ------------------------------------------------------------------ title parsing

@pytest.mark.parametrize("title, field", [
    ("Don't eat me, Otama-shimai, Digital, 2022", "Digital"),  # real r/Art title, 2026 listing
    ("Sunset, the sea, and me, Me, Oil on canvas, 2020", "Oil on canvas"),  # commas in title
    ("Marahan, Ink, Me, 2020", "Ink"),  # artist after the medium
    ("Cat, me, Acrylic on canvas, 60x80cm, 2020", "Acrylic on canvas"),  # size field skipped
    ("Sunset (OC), by me, gouache, 2019-2020", "gouache"),
    ("Sunset - me - oil on canvas - 2020", "oil on canvas"),  # dashes instead of commas
    ("Sunset | me | gouache", "gouache"),  # no year: last field
    ("'The Fatherless Son', Alexander Robinson, Acrylic, 2020 (A part of a public art campaign)",
     "Acrylic"),
    ("Moon,Fred Haze,acrylic,21/11/20", "acrylic"),  # a date as the year (real, in the sample)
    ("Untitled, Me, 2020", None),  # no medium field
    ("Just a title", None),
    ("", None),
])
def test_medium_field(title, field):
    assert medium_field(title) == field


def test_medium_after_the_year_and_in_brackets():
    assert stated_medium("Cat, me, 2020, oil").medium == "painting"
    assert stated_medium("Cat, me, 2020 (oil on canvas)").medium == "painting"
    assert stated_medium("Sunset (oil on canvas)").medium == "painting"
    # the artwork's own title is never read as the medium
    assert stated_medium("Oil and Water, me, 2020").medium == UNKNOWN


# ------------------------------------------------------------------ vocabulary rules

@pytest.mark.parametrize("text, medium", [
    ("toil", UNKNOWN), ("soil", UNKNOWN), ("open", UNKNOWN), ("pink", UNKNOWN),  # boundaries
    ("oils", "painting"), ("oil", "painting"), ("Inkscape", "digital"), ("ink", "ink"),
    ("pencils", "drawing"), ("digitally painted", "digital"), ("DigitalArt", "digital"),
    ("water-color", "painting"), ("watercolour", "painting"), ("Conté crayon", "drawing"),
    # multi-word phrases and compounds beat single words
    ("digital painting", "digital"), ("digital watercolor", "digital"), ("3D paint", "digital"),
    ("oil pastel", "drawing"), ("watercolour pencils", "drawing"), ("acrylic ink", "ink"),
    ("micron pen", "ink"), ("ink painting", "ink"), ("digital photography", "photography"),
    ("digital photo manipulation", "digital"), ("digital print", "digital"),
    ("stained glass", "sculpture"), ("wood carving", "sculpture"), ("ceramic", "sculpture"),
    ("polymer clay", "sculpture"), ("Procreate", "digital"), ("clip studio paint", "digital"),
    ("blender", "digital"), ("biro", "ink"), ("ballpoint pen", "ink"), ("gouache", "painting"),
    ("linocut", "other"), ("embroidery", "other"), ("collage", "mixed_media"),
    # generic terms yield to specific ones; supports ("on ...") only count when alone
    ("clay and paint", "sculpture"), ("painting", "painting"), ("sketch", "drawing"),
    ("acrylic on wood", "painting"), ("painting on glass", "painting"),
    ("sketch on procreate", "digital"), ("mixed media on watercolour paper", "mixed_media"),
    # two media stated → mixed_media; a plural ends a compound
    ("watercolor and ink", "mixed_media"), ("pencil, digital", "mixed_media"),
    ("colored pencils highlighter", "mixed_media"), ("graphite/charcoal", "drawing"),
    ("traditional & digital", "mixed_media"),
    ("", UNKNOWN), ("gesso on board", UNKNOWN), ("Artwork", UNKNOWN),
])
def test_vocabulary_resolve(text, medium):
    assert Vocabulary.default().resolve(text)[0] == medium


def test_mixed_names_both_terms():
    assert Vocabulary.default().resolve("Watercolor and ink") == ("mixed_media", "water color + ink")


def test_vocabulary_file_lists_each_phrase_once():
    import tomllib
    from collections import Counter
    from importlib import resources

    from modbot.medium import _normalise_phrase

    data = tomllib.loads(resources.files("modbot").joinpath("vocabulary.toml").read_text("utf-8"))
    assert set(data) == {"specific", "generic"}
    phrases = Counter(_normalise_phrase(p) for table in data.values() for media in table.values()
                      for p in media)
    assert [p for p, n in phrases.items() if n > 1] == []


def test_default_vocabulary_values_are_media():
    vocab = Vocabulary.default()
    assert len(vocab) > 300
    assert set(vocab.terms.values()) <= set(MEDIA) | {UNKNOWN}
    assert vocab.terms["procreate*"] == "digital" and vocab.is_generic("paint")
    assert Vocabulary.default() is vocab  # loaded once


# ------------------------------------------------------------------ flair precedence

def test_specific_flair_wins_over_the_title():
    # real r/Art submission 1skex88 (../shared/data/reddit-api/art_image_flair_1skex88.json)
    stated = stated_medium("Don't eat me, Otama-shimai, Digital, 2022", "Digital Art")
    assert stated == StatedMedium("digital", "flair", raw="Digital Art", matched="digital*")
    assert stated_medium("Cat, me, digital, 2020", "Painting").medium == "painting"
    assert stated_medium("Cat, me, acrylic, 2020", "Mixed Media").source == "flair"


def test_generic_flair_falls_back_to_the_title():
    for flair in ("Artwork", "OC", "Featured", "", "   ", None):
        stated = stated_medium("Cat, me, oil on canvas, 2020", flair)
        assert (stated.medium, stated.source) == ("painting", "title"), flair
    assert stated_medium("Untitled, Me, 2020", "Artwork") == StatedMedium(UNKNOWN, "none")


def test_drawing_flair_is_refined_by_an_ink_title():
    stated = stated_medium("Dragon, me, micron pen, 2020", "Drawing")
    assert (stated.medium, stated.source) == ("ink", "title")
    assert stated_medium("Dragon, me, graphite, 2020", "Drawing").source == "flair"


def test_other_flair_is_used_only_when_the_title_is_silent():
    assert stated_medium("Dragon, me, digital, 2020", "Print").medium == "digital"
    stated = stated_medium("Dragon, me, 2020", "Print")
    assert (stated.medium, stated.source) == ("other", "flair")


def test_unknown_keeps_the_unrecognised_field():
    stated = stated_medium("Cat, me, gesso on board, 2020")
    assert stated == StatedMedium(UNKNOWN, "none", raw="gesso on board", matched=None)


# ------------------------------------------------------------------ config extension

def test_config_terms_extend_and_override(tmp_path):
    cfg_file = tmp_path / "modbot.toml"
    cfg_file.write_text('[medium]\nvocabulary = { "gesso" = "painting", "Oil Pastel" = "painting",'
                        ' "pastel*" = "unknown" }\n', encoding="utf-8")
    config = load_config(cfg_file, env={})
    base = Vocabulary.default()
    vocab = base.with_terms(config.medium.vocabulary)
    assert stated_medium("Cat, me, gesso on board, 2020").medium == UNKNOWN
    assert stated_medium("Cat, me, gesso on board, 2020", vocabulary=vocab).medium == "painting"
    assert stated_medium("Keanu, me, oil pastel, 2020", vocabulary=vocab).medium == "painting"
    assert vocab.resolve("pastels") == (UNKNOWN, None)  # built-in "pastel*" switched off
    assert vocab.resolve("soft pastels")[0] == "drawing"  # a longer built-in phrase still applies
    assert base.resolve("oil pastel")[0] == "drawing"  # the default is unchanged
    assert base.with_terms({}) is base


@pytest.mark.parametrize("extra", [
    {"gel pen": "pens"}, {"gel pen": "unknown_medium"}, {"": "ink"}, {"***": "ink"},
    {"gel pen": 3}, {"a*b": "ink"},
])
def test_bad_config_terms_raise(extra):
    with pytest.raises(ConfigError):
        Vocabulary.default().with_terms(extra)


def test_config_values_are_forgiving_about_case():
    vocab = Vocabulary.default().with_terms({"Assemblage": "Mixed Media"})
    assert vocab.resolve("assemblage")[0] == "mixed_media"


# ------------------------------------------------------------------ annotate_jsonl

def test_annotate_jsonl_round_trip(sample_rows):
    rows = sample_rows[:5] + [{"title": "Cat, me, oil, 2020", "link_flair_text": "Digital Art",
                               "extra": [1, "ü"]}]
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
    lines.insert(2, "\n")  # blank lines are skipped
    out = io.StringIO()
    assert annotate_jsonl(lines, out) == len(rows)
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(written) == len(rows)
    for before, after in zip(rows, written, strict=True):
        stated = (after.pop("stated_medium"), after.pop("stated_medium_source"),
                  after.pop("stated_medium_matched"))
        assert after == before
        expected = stated_medium(before["title"], before.get("link_flair_text"))
        assert stated == (expected.medium, expected.source, expected.matched)
    assert json.loads(out.getvalue().splitlines()[-1])["stated_medium_source"] == "flair"


def test_annotate_jsonl_uses_the_given_vocabulary():
    out = io.StringIO()
    vocab = Vocabulary.default().with_terms({"gesso": "painting"})
    annotate_jsonl(['{"title": "Cat, me, gesso, 2020"}'], out, vocabulary=vocab)
    assert json.loads(out.getvalue())["stated_medium"] == "painting"


@pytest.mark.parametrize("bad, reason", [
    ('{"title": "Cat, me, oil, 2020"', "not valid JSON"),
    ('["Cat, me, oil, 2020"]', "expected a JSON object"),
    ('{"name": "Cat"}', '"title" must be a string'),
    ('{"title": "Cat", "link_flair_text": 5}', '"link_flair_text" must be a string or null'),
])
def test_annotate_jsonl_names_the_bad_line(bad, reason):
    lines = ['{"title": "A, me, ink, 2020"}', "", bad, '{"title": "B, me, ink, 2020"}']
    out = io.StringIO()
    with pytest.raises(InputError) as info:
        annotate_jsonl(lines, out)
    assert info.value.line == 3
    assert str(info.value).startswith("line 3:") and reason in str(info.value)
    assert isinstance(info.value, ModbotError)
    assert len(out.getvalue().splitlines()) == 1  # the good line before it was written
