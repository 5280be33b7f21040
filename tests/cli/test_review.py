"""``modbot review`` on a database the real daemon wrote: listing, show, confirm/dismiss with
history and idempotency, and the interactive walk driven through CliRunner input."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest
from test_report import built_database, cli, copy_db, raw, report_json


@pytest.fixture
def db_path(tmp_path, tmp_path_factory, sample, shipped_classifier) -> Path:
    built = built_database(tmp_path_factory, sample, shipped_classifier)
    return copy_db(built["db"], tmp_path / "modbot.db")


def listing(db: Path, *args: str) -> list[dict]:
    res = cli("review", "--db", str(db), "--format", "json", *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_list_shows_every_mismatch_newest_first(db_path):
    expected = raw(db_path, "SELECT v.submission FROM verdicts v JOIN submissions s "
                            "ON s.fullname = v.submission WHERE v.kind = 'mismatch' "
                            "ORDER BY s.created_utc DESC, s.fullname")
    rows = listing(db_path)
    assert [r["fullname"] for r in rows] == [e[0] for e in expected]
    assert rows, "the demo sample has mis-stated posts: there must be mismatches"
    for r in rows:
        assert r["verdict"] == "mismatch" and r["stated"] != r["predicted"]
        assert r["permalink"].startswith("https://www.reddit.com/r/Art/comments/")
        assert r["images"] and all(Path(p).is_file() for p in r["images"])
        assert r["model_version"] and 0 < r["confidence"] <= 1
        assert r["decision"] is None

    table = cli("review", "--db", str(db_path)).stdout
    for r in rows:
        assert r["fullname"] in table
    # filters
    n_uncertain = raw(db_path, "SELECT COUNT(*) FROM verdicts WHERE kind = 'uncertain'")[0][0]
    assert len(listing(db_path, "--verdict", "uncertain", "--limit", "1000")) == n_uncertain
    assert len(listing(db_path, "--verdict", "all", "--limit", "1000")) == n_uncertain + len(rows)
    assert listing(db_path, "--limit", "1") == rows[:1]
    medium = rows[0]["predicted"]
    assert all(medium in (r["stated"], r["predicted"]) for r in listing(db_path, "--medium", medium))
    assert listing(db_path, "--since", "2999-01-01") == []
    assert cli("review", "--db", str(db_path), "--since", "soon").exit_code == 2


def test_show_prints_probabilities_actions_and_history(db_path):
    fullname, n_images = raw(db_path, "SELECT submission, n_images FROM verdicts "
                                      "WHERE kind = 'mismatch' ORDER BY n_images DESC")[0]
    res = cli("review", "--db", str(db_path), "show", fullname, "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["submission"]["fullname"] == fullname
    predicted = [im for im in d["images"] if im["prediction"]]
    assert len(predicted) == n_images
    for im in predicted:
        assert sum(im["prediction"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert {a["kind"]: a["status"] for a in d["actions"]} == {"report": "sent", "comment": "sent"}
    assert d["reviews"] == []

    text = cli("review", "--db", str(db_path), "show", fullname.removeprefix("t3_")).stdout
    assert "Probabilities by image" in text and "Actions" in text
    for label in predicted[0]["prediction"]["probabilities"]:
        assert label in text
    for im in predicted:
        assert im["path"] in text  # whole, unwrapped: copy-pastable

    # a gallery: every image's probabilities, plus their mean
    gallery = raw(db_path, "SELECT submission FROM verdicts WHERE n_images >= 2")
    if gallery:
        text = cli("review", "--db", str(db_path), "show", gallery[0][0]).stdout
        assert "img 0" in text and "img 1" in text and "mean" in text

    missing = cli("review", "--db", str(db_path), "show", "t3_doesnotexist")
    assert missing.exit_code == 1 and "no submission" in missing.output


def test_confirm_and_dismiss_keep_history_last_wins(db_path):
    fullname, stated, predicted = raw(
        db_path, "SELECT submission, stated, predicted FROM verdicts WHERE kind = 'mismatch'")[0]
    bare = fullname.removeprefix("t3_")
    res = cli("review", "--db", str(db_path), "confirm", bare, env={"MODBOT_MODERATOR": "carol"})
    assert res.exit_code == 0, res.output
    assert raw(db_path, "SELECT decision, true_medium, moderator, stated, predicted, verdict "
                        "FROM reviews") == [("confirm", predicted, "carol", stated, predicted,
                                             "mismatch")]
    # same again: idempotent, no new row
    again = cli("review", "--db", str(db_path), "confirm", fullname, "--moderator", "carol")
    assert again.exit_code == 0 and "nothing changed" in again.output
    assert raw(db_path, "SELECT COUNT(*) FROM reviews")[0][0] == 1

    # a dismissal with a note: the stated medium was right; history keeps both
    time.sleep(0.01)
    res = cli("review", "--db", str(db_path), "dismiss", fullname, "--note", "checked WIP photos",
              "--moderator", "dave")
    assert res.exit_code == 0
    assert raw(db_path, "SELECT decision, true_medium, moderator, note FROM latest_reviews") == [
        ("dismiss", stated, "dave", "checked WIP photos")]
    assert raw(db_path, "SELECT COUNT(*) FROM reviews WHERE submission = ?", [fullname])[0][0] == 2
    # the training labels follow the decision in force, one per fetched image
    labels = raw(db_path, "SELECT true_medium, path FROM review_labels WHERE submission = ?",
                 [fullname])
    n_ok = raw(db_path, "SELECT COUNT(*) FROM images WHERE submission = ? AND status = 'ok'",
               [fullname])[0][0]
    assert len(labels) == n_ok >= 1 and {m for m, _ in labels} == {stated}

    # confirm with another true medium than the prediction
    other = next(m for m in ("other", "mixed_media", "ink") if m not in (stated, predicted))
    res = cli("review", "--db", str(db_path), "confirm", fullname, "--medium", other)
    assert res.exit_code == 0
    assert raw(db_path, "SELECT decision, true_medium FROM latest_reviews") == [("confirm", other)]
    show = json.loads(cli("review", "--db", str(db_path), "show", fullname, "--format",
                          "json").stdout)
    assert [r["decision"] for r in show["reviews"]] == ["confirm", "dismiss", "confirm"]
    reviewed = listing(db_path, "--state", "reviewed")
    assert [(r["fullname"], r["decision"], r["true_medium"]) for r in reviewed] == [
        (fullname, "confirm", other)]
    assert fullname not in {r["fullname"] for r in listing(db_path, "--state", "pending")}


def test_decisions_that_make_no_sense_are_refused(db_path):
    fullname, stated = raw(db_path, "SELECT submission, stated FROM verdicts WHERE kind='mismatch'")[0]
    same = cli("review", "--db", str(db_path), "confirm", fullname, "--medium", stated)
    assert same.exit_code == 1 and "dismissal" in same.output
    bogus = cli("review", "--db", str(db_path), "confirm", fullname, "--medium", "crayon")
    assert bogus.exit_code == 2
    unknown = cli("review", "--db", str(db_path), "dismiss", "zzzzzz")
    assert unknown.exit_code == 1 and "no submission 'zzzzzz'" in unknown.output
    # a skipped post (video, self post) has no verdict: nothing to review
    skipped = raw(db_path, "SELECT fullname FROM submissions WHERE status = 'skipped'")[0][0]
    res = cli("review", "--db", str(db_path), "confirm", skipped, "--medium", "painting")
    assert res.exit_code == 1 and "no verdict" in res.output
    assert raw(db_path, "SELECT COUNT(*) FROM reviews")[0][0] == 0


def test_walk_reviews_the_queue_with_keys(db_path, tmp_path):
    queue = listing(db_path, "--verdict", "all", "--state", "pending", "--limit", "4")
    assert len(queue) >= 3
    # the viewer: a real program that logs the path it was asked to open
    opened = tmp_path / "opened.txt"
    viewer_py = tmp_path / "viewer.py"
    viewer_py.write_text(f"import sys\nopen({str(opened)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    viewer = f"{shlex.quote(sys.executable)} {shlex.quote(str(viewer_py))}"

    def other_than(stated):
        return next(m for m in ("other", "ink", "mixed_media") if m != stated)

    first, second, third = queue[:3]
    # "c" confirms with the prediction; where that is the stated medium (an uncertain verdict),
    # "m" asks for the true medium instead
    if first["predicted"] != first["stated"]:
        k1, true1 = "c", first["predicted"]
    else:
        true1 = other_than(first["stated"])
        k1 = f"m{true1}\n"
    true2 = other_than(second["stated"])
    # o: open image; x: unknown key (help); m: confirm with another medium; d: dismiss; q: quit
    keys = "o" + k1 + "x" + f"m{true2}\n" + "d" + "q"
    res = cli("review", "--db", str(db_path), "walk", "--verdict", "all", "--limit", "4",
              "--viewer", viewer, "--moderator", "erin", input=keys)
    assert res.exit_code == 0, res.output
    assert "Done: confirmed 2, dismissed 1, skipped 0." in res.output
    got = {r[0]: r[1:] for r in raw(db_path, "SELECT submission, decision, true_medium, "
                                            "moderator FROM reviews")}
    assert got == {
        first["fullname"]: ("confirm", true1, "erin"),
        second["fullname"]: ("confirm", true2, "erin"),
        third["fullname"]: ("dismiss", third["stated"], "erin"),
    }
    # "o" opened the first post's image(s) with the given viewer
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (opened.exists() and opened.read_text().strip()):
        time.sleep(0.05)
    assert opened.read_text().split() == first["images"]

    # the walk continues where it stopped: reviewed posts are no longer pending
    res = cli("review", "--db", str(db_path), "--interactive", "--verdict", "all", "--limit", "4",
              input="s")
    assert res.exit_code == 0
    assert queue[3]["fullname"] in res.output and first["fullname"] not in res.output
    assert "Done: confirmed 0, dismissed 0, skipped 1." in res.output  # end of input = quit


def test_walk_decisions_reach_the_report(db_path):
    n = len(listing(db_path))  # pending mismatches
    res = cli("review", "--db", str(db_path), "walk", input="c" * n)
    assert res.exit_code == 0
    o = report_json(db_path)["flag_precision"]["overall"]
    assert (o["reviewed"], o["confirmed"], o["precision"]) == (n, n, 1.0)
    res = cli("review", "--db", str(db_path), "walk")
    assert "Nothing to review" in res.output
