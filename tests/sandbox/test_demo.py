"""``modbot demo`` (``modbot.sandbox.demo.run_demo``) checks its flags against the sample's truth:
a flag on a mis-stated post is right, a flag on a correctly stated post is false. The counts
are recomputed here from the database and the sample, never from hard-coded model outputs."""

from __future__ import annotations

import re
import sqlite3

import pytest

from modbot.cli import _print_demo_summary, demo_flag_line
from modbot.sandbox.demo import flag_truth, run_demo, truth_check


def _post(pid: str, medium, stated, **extra) -> dict:
    wrong = medium is not None and stated is not None and medium != stated
    return {"id": pid, "name": f"t3_{pid}",
            "_sandbox_truth": {"medium": medium, "stated": stated, "wrong_stated": wrong, **extra}}


def test_truth_check_classifies_every_flag_by_truth():
    posts = [_post("a", "digital", "painting"), _post("b", "digital", "digital"),
             _post("c", "drawing", "drawing"), _post("d", "painting", "drawing"),
             _post("e", None, "digital"), {"id": "f", "name": "t3_f"}, _post("g", "photography", "photography")]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE verdicts (submission TEXT, kind TEXT)")
    db.executemany("INSERT INTO verdicts VALUES (?, ?)", [
        ("t3_a", "mismatch"), ("t3_b", "mismatch"), ("t3_c", "match"), ("t3_d", "uncertain"),
        ("t3_e", "mismatch"), ("t3_f", "mismatch"), ("t3_g", "not_judged")])
    tc = truth_check(db, posts)
    assert tc["flags"] == {"t3_a": "right", "t3_b": "false", "t3_e": "unknown", "t3_f": "unknown"}
    assert (tc["flagged"], tc["right_flags"], tc["false_flags"], tc["unknown_flags"]) == (4, 1, 1, 2)
    assert (tc["wrong_stated"], tc["wrong_stated_judged"], tc["wrong_stated_flagged"]) == (2, 2, 1)
    assert tc["right_stated_judged"] == 2  # b (mismatch) and c (match); g not judged, e no medium
    line = " ".join(demo_flag_line(tc).split())
    assert "flags: 1 right (mis-stated posts caught), 1 false (correctly stated posts flagged)" in line
    assert "2 on posts the sample has no truth for" in line and "1 of 2 mis-stated posts caught" in line
    assert flag_truth(None) == "unknown" and flag_truth({"medium": "digital", "stated": None}) == "unknown"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, shipped_classifier, sample):
    """One real demo run (sandbox + praw + the shipped model), about 15 s."""
    work = tmp_path_factory.mktemp("demo")
    result = run_demo(work, classifier=shipped_classifier, release_every_s=0.05, batch=5)
    db = sqlite3.connect(result.database)
    verdicts = dict(db.execute("SELECT submission, kind FROM verdicts").fetchall())
    db.close()
    return result, verdicts, sample[0]


@pytest.mark.slow
def test_demo_flags_are_counted_and_classified_by_the_samples_truth(demo_run):
    result, verdicts, posts = demo_run
    tc = result.truth
    assert result.released == len(posts) == 50
    flagged = {f for f, kind in verdicts.items() if kind == "mismatch"}
    assert set(tc["flags"]) == flagged and tc["flagged"] == len(flagged)
    by_name = {p["name"]: p["_sandbox_truth"] for p in posts}
    for fullname, word in tc["flags"].items():
        truth = by_name[fullname]
        assert truth["medium"] is not None and truth["stated"] is not None, fullname
        assert word == ("right" if truth["medium"] != truth["stated"] else "false"), fullname
        assert word == ("right" if truth["wrong_stated"] else "false"), fullname
    assert tc["unknown_flags"] == 0
    assert tc["right_flags"] + tc["false_flags"] == tc["flagged"]
    assert tc["right_flags"] == tc["wrong_stated_flagged"] <= tc["wrong_stated_judged"] <= tc["wrong_stated"]
    assert tc["wrong_stated"] == sum(t["wrong_stated"] for t in by_name.values()) == 8
    judged = {f for f, kind in verdicts.items() if kind in ("match", "mismatch", "uncertain")}
    assert tc["right_stated_judged"] == sum(1 for f in judged if not by_name[f]["wrong_stated"])
    assert tc["false_flags"] <= tc["right_stated_judged"]
    # the wesnoth digital paintings were streamed and judged like any post
    wes = [p["name"] for p in posts if p["_sandbox_truth"].get("source") == "wesnoth"]
    assert len(wes) == 8 and all(verdicts.get(f) in ("match", "mismatch", "uncertain") for f in wes)


def test_demo_summary_prints_right_and_false_flags(demo_run, capsys):
    result, verdicts, posts = demo_run
    _print_demo_summary(result)
    out = capsys.readouterr()
    text = " ".join(out.out.split())
    tc = result.truth
    m = re.search(r"flags: (\d+) right \(mis-stated posts caught\), (\d+) false \(correctly stated "
                  r"posts flagged\); (\d+) of (\d+) mis-stated posts caught", text)
    assert m, out.out
    right, false, caught, of = map(int, m.groups())
    by_name = {p["name"]: p["_sandbox_truth"] for p in posts}
    flagged = [f for f, kind in verdicts.items() if kind == "mismatch"]
    assert right == sum(by_name[f]["wrong_stated"] for f in flagged) == tc["right_flags"]
    assert false == sum(not by_name[f]["wrong_stated"] for f in flagged) == tc["false_flags"]
    assert right + false == len(flagged) and (caught, of) == (right, 8)
    assert text.count("right (mis-stated)") == right and text.count("FALSE (stated right)") == false
    assert "Mismatches" in out.out
