"""The multi-crop path of the classify stage ("see the whole image", issue 15).

An elongated image is seen as 2–3 squares along its long side ("tiles"), their uncalibrated
probabilities averaged and then calibrated with the tiles' own temperature; other images are
seen as their centre square. Pure functions are tested by hand; the served path on the real
GPL-2+ wesnoth story image of the demo sample (320 x 240, ratio 1.33: two tiles; source and
licence in ``modbot/sandbox/sample/README.md``) and on the real PACS sample images (square:
one crop), with the shipped model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import copy_model_dir, edit_labels, pacs_sample

from modbot.classify import (
    CROP_MODES,
    TILE_MAX,
    LiteRTClassifier,
    apply_temperature,
    combine_crops,
    crop_boxes,
    load_classifier,
    prepare_input,
    prepared_input,
    preprocess,
    preprocess_crops,
    read_labels,
    shipped_model_dir,
)
from modbot.daemon import model_crops
from modbot.errors import ModelError

WIDE_REAL = (Path(__file__).resolve().parents[1] / "modbot" / "sandbox" / "sample" / "images"
             / "wesnoth_story__Heir_To_The_Throne__httt_story5.jpg")


@pytest.fixture(scope="module")
def wide() -> Image.Image:
    with Image.open(WIDE_REAL) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def raw_model(tmp_path_factory) -> LiteRTClassifier:
    """The shipped export with calibration switched off (centre mode, temperature 1): its
    ``predict_batch`` gives the model's uncalibrated probabilities of single crops."""
    model_dir = copy_model_dir(tmp_path_factory.mktemp("raw"))
    edit_labels(model_dir, temperature=1.0)
    return LiteRTClassifier.load(model_dir, crops="centre")


# --- pure functions --------------------------------------------------------------------------

def test_crop_boxes_by_hand() -> None:
    assert crop_boxes(200, 200, "tiles") == [(0.0, 0.0, 200.0, 200.0)]
    assert crop_boxes(300, 100, "centre") == [(100.0, 0.0, 200.0, 100.0)]
    assert crop_boxes(300, 100, "tiles") == [(0.0, 0.0, 100.0, 100.0), (100.0, 0.0, 200.0, 100.0),
                                             (200.0, 0.0, 300.0, 100.0)]
    # ratio 1.2 < 1.3: not elongated, the centre square
    assert crop_boxes(120, 100, "tiles") == crop_boxes(120, 100, "centre") == [(10.0, 0.0, 110.0, 100.0)]
    # ratio 1.3: ceil(1.3) = 2 tiles, at both ends
    assert crop_boxes(130, 100, "tiles") == [(0.0, 0.0, 100.0, 100.0), (30.0, 0.0, 130.0, 100.0)]
    # tall, and very long: at most TILE_MAX tiles, evenly spaced, covering the whole long side
    tall = crop_boxes(100, 1000, "tiles")
    assert len(tall) == TILE_MAX == 3
    assert tall == [(0.0, 0.0, 100.0, 100.0), (0.0, 450.0, 100.0, 550.0), (0.0, 900.0, 100.0, 1000.0)]
    with pytest.raises(ValueError, match="crops"):
        crop_boxes(10, 10, "grid")
    with pytest.raises(ValueError, match="positive"):
        crop_boxes(0, 10, "tiles")


def test_combine_crops_averages_each_images_rows() -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [1.0, 0.0], [0.1, 0.9]])
    out = combine_crops(probs, np.array([0, 0, 1, 2]), 3)
    assert out.dtype == np.float64
    assert np.allclose(out, [[0.4, 0.6], [1.0, 0.0], [0.1, 0.9]])
    with pytest.raises(ValueError, match="at least one crop"):
        combine_crops(probs[:2], np.array([0, 0]), 2)


def test_preprocess_crops_cuts_tiles_and_keeps_owners(wide: Image.Image) -> None:
    square = Image.new("RGB", (50, 50), (0, 200, 0))
    batch, owner = preprocess_crops([wide, square, wide], 224, "tiles")
    assert batch.dtype == np.uint8 and batch.shape == (5, 224, 224, 3)
    assert owner.tolist() == [0, 0, 1, 2, 2]
    # each tile is the square at one end of the 320 x 240 image, prepared like a whole image
    assert np.array_equal(batch[0], preprocess([wide.crop((0, 0, 240, 240))], 224)[0])
    assert np.array_equal(batch[1], preprocess([wide.crop((80, 0, 320, 240))], 224)[0])
    assert np.array_equal(batch[2], preprocess([square], 224)[0])
    centre, centre_owner = preprocess_crops([wide, square], 224, "centre")
    assert np.array_equal(centre, preprocess([wide, square], 224)) and centre_owner.tolist() == [0, 1]
    empty, none = preprocess_crops([], 32, "tiles")
    assert empty.shape == (0, 32, 32, 3) and none.shape == (0,)
    with pytest.raises(ValueError, match="crops"):
        preprocess_crops([square], 32, "grid")


def test_tiles_prepared_ahead_are_used(wide: Image.Image) -> None:
    """The daemon's decode threads prepare the served mode's crops ahead
    (:func:`prepare_input`); :func:`preprocess_crops` then copies them."""
    photo = wide.copy()
    expected, _ = preprocess_crops([wide], 224, "tiles")
    assert prepare_input(photo, 224, "tiles") is photo
    ready = prepared_input(photo, 224, "tiles")
    assert ready is not None and ready.shape == (2, 224, 224, 3) and np.array_equal(ready, expected)
    assert prepared_input(photo, 224) is None  # the centre crop was not prepared
    photo.paste((0, 0, 0), (0, 0, 320, 240))  # the daemon never paints an image: shows the copy is used
    assert np.array_equal(preprocess_crops([photo], 224, "tiles")[0], expected)
    with pytest.raises(ValueError, match="crops"):
        prepare_input(photo, 224, "grid")


def test_model_crops_reads_the_served_model_through_the_swappable_classifier() -> None:
    from modbot.learning.serving import SwappableClassifier

    class Tiles:
        crops = "tiles"
        labels = ("digital",)
        version = "t"

    assert model_crops(Tiles()) == "tiles"
    assert model_crops(SwappableClassifier(Tiles())) == "tiles"
    assert model_crops(object()) == "centre"


# --- labels.json ------------------------------------------------------------------------------

def test_shipped_model_is_served_with_tiles_and_their_own_calibration() -> None:
    tiles, centre = read_labels(shipped_model_dir()), read_labels(shipped_model_dir(), "centre")
    assert tiles["crops"] == "tiles" and centre["crops"] == "centre"
    assert tiles["temperature"] != centre["temperature"]
    assert set(tiles["flag_thresholds"]) == set(tiles["labels"])
    assert tiles["flag_thresholds"] != centre["flag_thresholds"]
    assert all(0.0 < t < 0.2 for t in tiles["flag_thresholds"].values())
    assert set(CROP_MODES) == {"centre", "tiles"}


def test_read_labels_refuses_a_crop_mode_without_calibration(tmp_path) -> None:
    model_dir = copy_model_dir(tmp_path)
    edit_labels(model_dir, crops="grid")
    with pytest.raises(ModelError, match="crop mode 'grid'"):
        read_labels(model_dir)
    edit_labels(model_dir, crops="tiles", crop_calibration={})
    with pytest.raises(ModelError, match="no calibration for crop mode 'tiles'"):
        read_labels(model_dir)
    with pytest.raises(ModelError, match="no calibration"):
        load_classifier(model_dir)
    assert read_labels(model_dir, "centre")["crops"] == "centre"  # the centre crop still serves
    edit_labels(model_dir, crop_calibration={"tiles": {"temperature": 0}})
    with pytest.raises(ModelError, match="temperature"):
        read_labels(model_dir)


# --- the served path, real images, shipped model ----------------------------------------------

def test_served_tiles_average_raw_probabilities_then_calibrate(wide: Image.Image,
                                                              raw_model: LiteRTClassifier) -> None:
    """On the real wide image: the served probability is the tiles' temperature applied to
    the mean of the two tiles' uncalibrated probabilities — not the centre crop's."""
    served = load_classifier()
    assert served.crops == "tiles"
    tiles = [wide.crop((0, 0, 240, 240)), wide.crop((80, 0, 320, 240))]
    raw = raw_model.predict_batch(preprocess(tiles, 224))
    expected = apply_temperature(raw.mean(axis=0, keepdims=True), served.temperature)
    got = served.predict_proba([wide])
    assert got.shape == (1, len(served.labels))
    assert np.allclose(got, expected, atol=1e-9)
    centre = load_classifier(crops="centre").predict_proba([wide])
    assert not np.allclose(got, centre, atol=1e-3)
    prediction = served.predict([wide])[0]
    assert prediction.flag_thresholds == read_labels(shipped_model_dir())["flag_thresholds"]


def test_images_that_are_not_elongated_get_one_crop_in_both_modes(raw_model: LiteRTClassifier) -> None:
    """The PACS sample images are square: tiles and centre see the same input, so the two
    modes differ only by their temperatures, and the decision is the same."""
    _, images = pacs_sample()
    tiles = load_classifier()
    raw = raw_model.predict_batch(preprocess(images, 224))
    got = tiles.predict_proba(images)
    assert np.allclose(got, apply_temperature(raw, tiles.temperature), atol=1e-9)
    assert (got.argmax(axis=1) == load_classifier(crops="centre").predict_proba(images).argmax(axis=1)).all()
