"""``modbot evaluate`` and ``modbot classify`` on the real PACS sample in ``tests/data/pacs_sample``
(12 images of the shipped model's held-out objects; see the README there), with the shipped
model through its checked LiteRT export (no TensorFlow needed for these)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from support import DATA, REPO

from modbot.cli import main

SAMPLE = DATA / "pacs_sample"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The sample, plus: a medium the model does not know (ink, one image), a folder that
    is not a medium, a corrupt JPEG and an image two levels deep."""
    root = tmp_path / "tree"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("README.md"))
    (root / "ink").mkdir()
    shutil.copy(SAMPLE / "photography" / "giraffe_084_0003.jpg", root / "ink" / "linework.jpg")
    (root / "notes").mkdir()
    (root / "notes" / "x.jpg").write_bytes(b"not looked at")
    (root / "painting" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    deep = root / "drawing" / "a" / "b"
    deep.mkdir(parents=True)
    shutil.move(str(root / "drawing" / "giraffe_7363.png"), deep / "giraffe_7363.png")
    return root


def test_evaluate_json_reports_metrics_unknown_media_and_unreadable_files(tree: Path, tmp_path: Path) -> None:
    plot = tmp_path / "confusion.png"
    result = CliRunner().invoke(main, ["evaluate", str(tree), "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("accuracy", "macro_f1", "per_class", "confusion", "n_images"):
        assert key in data
    assert data["n_images"] == 12  # the corrupt file and the ink image are not scored
    labels = data["confusion"]["labels"]
    assert labels == ["digital", "painting", "drawing", "photography", "sculpture"]
    matrix = data["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == 12 and [sum(row) for row in matrix] == [3, 3, 3, 3, 0]
    assert {m: c["support"] for m, c in data["per_class"].items()} == {**dict.fromkeys(labels, 3), "sculpture": 0}
    correct = sum(matrix[i][i] for i in range(len(labels)))
    assert data["accuracy"] == pytest.approx(correct / 12)
    assert data["accuracy"] >= 9 / 12  # shipped model: 11 of 12 measured (PACS giraffe sample)
    flags = data["flags"]  # every image posted once truly and once with each other medium stated
    assert flags["counts"]["correct"] == 12 and flags["counts"]["misstated"] == 12 * 4
    assert flags["false_flag_rate"] == flags["counts"]["false_flags"] / 12
    assert set(flags["thresholds"]) == set(labels)
    assert 0.0 <= data["macro_f1"] <= 1.0 and 0.0 <= data["ece"] <= 1.0
    assert data["unknown_media"]["ink"]["n_images"] == 1
    assert sum(data["unknown_media"]["ink"]["predicted"].values()) == 1
    assert data["ignored_folders"] == ["notes"]
    assert [u["path"] for u in data["unreadable"]] == ["painting/broken.jpg"]
    with Image.open(plot) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 200


def test_evaluate_prints_tables(tree: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(tree)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "macro-F1" in out and "Confusion matrix" in out and "photography" in out
    assert "ink" in out and "unknown to the model" in out
    assert "painting/broken.jpg" in out


@pytest.mark.slow  # imports TensorFlow and builds the Keras model (~15 s)
def test_evaluate_keras_backend_agrees_with_litert(tree: Path) -> None:
    runner = CliRunner()
    lite = json.loads(runner.invoke(main, ["evaluate", str(tree), "--json"]).output)
    keras = runner.invoke(main, ["evaluate", str(tree), "--json", "--backend", "keras"])
    assert keras.exit_code == 0, keras.output
    assert json.loads(keras.output)["confusion"] == lite["confusion"]


def test_evaluate_scores_each_crop_mode_with_its_own_judge(tmp_path: Path) -> None:
    """The shipped model serves tiles; ``--crops centre`` scores the centre square with the
    centre crop's thresholds. A tree with the demo sample's real wide wesnoth picture (GPL-2+,
    320 x 240: two tiles) and the square PACS digital images."""
    root = tmp_path / "tree"
    shutil.copytree(SAMPLE / "digital", root / "digital")
    shutil.copy(REPO / "modbot" / "sandbox" / "sample" / "images" / "wesnoth_story__Heir_To_The_Throne__httt_story5.jpg",
                root / "digital" / "story.jpg")
    runner = CliRunner()
    tiles = json.loads(runner.invoke(main, ["evaluate", str(root), "--json"]).output)
    centre = runner.invoke(main, ["evaluate", str(root), "--json", "--crops", "centre"])
    assert centre.exit_code == 0, centre.output
    centre = json.loads(centre.output)
    assert tiles["crops"] == "tiles" and centre["crops"] == "centre"
    assert tiles["n_images"] == centre["n_images"] == 4
    assert tiles["flags"]["thresholds"] != centre["flags"]["thresholds"]
    bad = runner.invoke(main, ["evaluate", str(root), "--crops", "grid"])
    assert bad.exit_code == 2 and "grid" in bad.output


def test_evaluate_refuses_a_missing_model_dir(tree: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(tree), "--model", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "not found" in result.output


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_server():
    handler = functools.partial(_Quiet, directory=str(SAMPLE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_classify_files_and_a_url_as_json(image_server: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    sources = [str(SAMPLE / "drawing" / "giraffe_7361.png"), f"{image_server}/digital/giraffe_pic_001.jpg",
               str(missing)]
    result = CliRunner().invoke(main, ["classify", *sources, "--json", "--allow-host", "127.0.0.1"])
    assert result.exit_code == 1  # one source failed; the others are still printed
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["source"] for r in rows] == sources
    for row in rows[:2]:
        assert set(row["probabilities"]) == {"digital", "painting", "drawing", "photography", "sculpture"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert row["top"] == max(row["probabilities"], key=row["probabilities"].get)
    assert rows[0]["top"] == "drawing"
    assert "error" in rows[2] and "probabilities" not in rows[2]


def test_classify_url_to_a_private_address_is_refused_without_allow_host(image_server: str) -> None:
    result = CliRunner().invoke(main, ["classify", f"{image_server}/digital/giraffe_pic_001.jpg"])
    assert result.exit_code == 1 and "blocked_address" in result.output


def test_importing_the_commands_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = ("import sys, modbot.cli.evaluate, modbot.cli; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"
