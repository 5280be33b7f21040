"""The learning loop end to end: a weak champion streams sandbox posts, moderators label
them, the scheduled retraining trains a challenger in a child process while the daemon keeps
streaming, promotes it, the daemon swaps it in live, a shuffled-label challenger is refused,
and a rollback is served live."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from support import REPO, make_daemon, run_until_recorded

from modbot.domain import MEDIA

PACS_SAMPLE = REPO / "tests" / "data" / "pacs_sample"
LEARNING_PACS = REPO / "tests" / "data" / "learning_pacs"
TITLES = REPO / "tests" / "data" / "rart_titles_sample.jsonl"


def image_post(pid: str, title: str, image: str, *, medium: str, flair: str | None = None) -> dict:
    """A minimal i.redd.it-style image submission for the sandbox (see ``modbot.sandbox``)."""
    return {"id": pid, "name": f"t3_{pid}", "title": title, "author": f"sandbox_artist_{pid[-2:]}",
            "subreddit": "Art", "url": "{base}/i/" + image, "url_overridden_by_dest": "{base}/i/" + image,
            "domain": "i.redd.it", "post_hint": "image", "is_self": False, "link_flair_text": flair,
            "_sandbox_truth": {"kind": "image", "medium": medium, "stated": medium}}


def titles_by_medium(sample_posts) -> dict[str, list[str]]:
    """Real r/Art titles (tests/data/rart_titles_sample.jsonl) by stated medium; photography
    titles come from the demo sample (r/Art 2020 has almost none)."""
    from modbot.medium import stated_medium

    out: dict[str, list[str]] = {}
    for line in TITLES.read_text(encoding="utf-8").splitlines():
        title = json.loads(line)["title"]
        out.setdefault(stated_medium(title).medium, []).append(title)
    for p in sample_posts:
        if p["_sandbox_truth"].get("stated") == "photography" and not p.get("link_flair_text"):
            out.setdefault("photography", []).append(p["title"])
    return out


def labelled_posts(sample_posts) -> tuple[list[dict], dict[str, bytes]]:
    """Sandbox posts for the 32 images of tests/data/learning_pacs, with real r/Art titles
    stating their medium."""
    from modbot.medium import stated_medium

    titles = titles_by_medium(sample_posts)
    posts, images = [], {}
    for medium in ("digital", "painting", "drawing", "photography"):
        for k, f in enumerate(sorted((LEARNING_PACS / medium).iterdir())):
            title = titles[medium][k % len(titles[medium])]
            assert stated_medium(title).medium == medium
            images[f"lp_{medium}_{f.name}"] = f.read_bytes()
            posts.append(image_post(f"lp{medium[:3]}{k}", title, f"lp_{medium}_{f.name}", medium=medium))
    return posts, images


@pytest.fixture(scope="module")
def weak_model(tmp_path_factory):
    """A deliberately weak champion: 9 images, 32 px, one epoch, and no photography class."""
    from modbot.ml.training import train_model

    root = tmp_path_factory.mktemp("weak")
    for medium in ("digital", "painting", "drawing"):
        (root / "tree" / medium).mkdir(parents=True)
        for f in (PACS_SAMPLE / medium).iterdir():
            (root / "tree" / medium / f.name).symlink_to(f)
    train_model(root / "tree", root / "model", arch="cnn", image_size=32, epochs=1, batch_size=4,
                seed=0, version="weak-no-photo", verbose=0, export=False)
    return root / "model"


def review_everything(db, truth: dict[str, str]) -> int:
    """Moderators record the true medium of every judged post (dismiss when it was stated)."""
    from modbot.cli.review import record_review

    n = 0
    for fullname, stated in db.execute("SELECT submission, stated FROM verdicts").fetchall():
        medium = truth.get(fullname)
        if medium not in MEDIA:
            continue
        if medium == stated:
            record_review(db, fullname, "dismiss", moderator="mod_a")
        else:
            record_review(db, fullname, "confirm", true_medium=medium, moderator="mod_a")
        n += 1
    return n


def live_posts(sample_posts, n: int = 300) -> list[dict]:
    """``n`` unlabelled posts (demo PACS images under their right stated media) to stream while
    the challenger trains."""
    pacs = [p for p in sample_posts if p["_sandbox_truth"]["kind"] == "image"
            and "pacs" in p["url"] and not p["_sandbox_truth"]["wrong_stated"]]
    return [image_post(f"lv{i:04d}", pacs[i % len(pacs)]["title"],
                       pacs[i % len(pacs)]["url"].rsplit("/", 1)[1],
                       medium=pacs[i % len(pacs)]["_sandbox_truth"]["medium"])
            for i in range(n)]


def stream_while_retraining(daemon, server, scheduler, swappable) -> dict:
    """Run the daemon, releasing a post every 0.25 s, until the scheduled run has ended (and,
    when it promoted, the new model has classified a post); return the run's row."""
    db = daemon.store.db
    stop = threading.Event()
    after_swap = []

    def releaser():
        while not stop.is_set() and server.pending:
            if scheduler.last_result is not None and swappable.swaps:
                after_swap.append(server.release(1))
                if len(after_swap) >= 5:
                    return
            else:
                server.release(1)
            stop.wait(0.25)

    feeder = threading.Thread(target=releaser)
    feeder.start()
    deadline = time.monotonic() + 240

    def until():
        assert time.monotonic() < deadline, "retraining did not finish in time"
        row = scheduler.last_result
        if row is None or row["status"] != "promoted":
            return row is not None
        return db.execute("SELECT COUNT(*) FROM predictions WHERE model_version = ?",
                          [row["version"]]).fetchone()[0] > 0

    try:
        daemon.run(stop=threading.Event(), until=until)
    finally:
        stop.set()
        feeder.join()
    return scheduler.last_result


def check_promoted_and_swapped(row, db, swappable, models_dir) -> None:
    """The scheduled run promoted a better challenger with the new medium, trained while the
    daemon streamed, and the daemon serves it: one model per post."""
    from modbot.learning.registry import ModelRegistry

    assert row["status"] == "promoted", row
    counts = json.loads(row["data_counts"])
    assert counts["labels"]["by_source"] == {"review": counts["labels"]["total"]}
    assert "photography" in json.loads(row["labels"])           # the new medium was added
    assert counts["excluded_media"] == {"sculpture": 1}         # 1 label < 5
    assert row["challenger_macro_f1"] > row["champion_macro_f1"]
    champion_rep = json.loads(row["champion_metrics"])
    assert champion_rep["per_class"]["photography"]["recall"] == 0.0
    assert set(json.loads(row["challenger_metrics"])["per_class"]) == set(champion_rep["per_class"])
    # the daemon kept streaming while the challenger trained
    during = db.execute("SELECT COUNT(*) FROM submissions WHERE updated_at BETWEEN ? AND ?",
                        [row["train_started_at"], row["train_finished_at"]]).fetchone()[0]
    assert during >= 1
    # swapped live: the daemon serves the promoted model and records its version
    assert swappable.current.version == row["version"]
    assert ModelRegistry(models_dir).champion() == row["version"]
    versions = {v for (v,) in db.execute("SELECT DISTINCT model_version FROM predictions")}
    assert versions == {"weak-no-photo", row["version"]}
    for fullname, version in db.execute("SELECT submission, model_version FROM verdicts"):
        preds = {v for (v,) in db.execute(
            "SELECT model_version FROM predictions WHERE submission = ?", [fullname])}
        assert preds == {version}                                # one model per post


def models_command(tmp_path, database: str, models_dir: str):
    """``invoke(*args, env=None)``: ``modbot --config <file> models <args>`` in-process."""
    from modbot.cli import main
    from modbot.cli.learning import COMMANDS

    for command in COMMANDS:
        if command.name not in main.commands:
            main.add_command(command)
    cfg = tmp_path / "modbot.toml"
    cfg.write_text(f'[storage]\ndatabase = "{database}"\n[learning]\nmodels_dir = "{models_dir}"\n')
    runner = CliRunner()
    return lambda *args, env=None: runner.invoke(main, ["--config", str(cfg), "models", *args], env=env)


@pytest.mark.slow
def test_scheduled_retraining_promotes_swaps_live_and_refuses_a_worse_model(tmp_path, sample, weak_model):
    from modbot.learning.registry import ModelRegistry
    from modbot.learning.retrain import retrain_once
    from modbot.learning.scheduler import RetrainScheduler
    from modbot.learning.serving import SwappableClassifier
    from modbot.ml.keras_classifier import KerasClassifier
    from modbot.sandbox.sample import truth_by_fullname
    from modbot.sandbox.server import SandboxServer

    posts, images = sample
    extra, extra_images = labelled_posts(posts)
    truth = {k: v["medium"] for k, v in truth_by_fullname(posts + extra).items()}
    learning = {"enabled": True, "models_dir": str(tmp_path / "models"), "eval_fraction": 0.3, "min_train_labels": 10,
                "min_eval_labels": 5, "new_medium_min_labels": 5, "margin": 0.0, "recall_floor": 0.0,
                "stated_labels": "none", "arch": "lite0", "image_size": 96, "epochs": 2, "batch_size": 8,
                "interval_s": 3600.0, "watch_interval_s": 0.5, "nice": 5, "timeout_s": 300.0}

    with SandboxServer(posts + extra + live_posts(posts), {**images, **extra_images},
                       released=len(posts) + len(extra)) as server:
        swappable = SwappableClassifier(KerasClassifier.load(weak_model))
        daemon = make_daemon(server, tmp_path, swappable, learning=learning,
                             storage={"model_dir": str(weak_model)})
        run_until_recorded(daemon, server)
        db = daemon.store.db
        assert review_everything(db, truth) >= 65

        # the scheduled job fires now; posts keep arriving while the challenger trains
        scheduler = RetrainScheduler()
        scheduler.start(daemon, daemon.config, first_run_at=datetime.now(UTC))
        row = stream_while_retraining(daemon, server, scheduler, swappable)
        check_promoted_and_swapped(row, db, swappable, learning["models_dir"])

        # a deliberately worse challenger (shuffled labels) is refused; the champion stays
        # (a tiny CNN, to keep the test short: the gates judge it like any challenger)
        worse = retrain_once(daemon.config.replace(learning={"arch": "cnn", "image_size": 32,
                                                             "epochs": 1}),
                             trigger="test", shuffle_labels=True)
        assert worse.status == "refused", worse
        assert worse.challenger_macro_f1 < worse.champion_macro_f1
        assert worse.champion_version == row["version"]
        assert ModelRegistry(learning["models_dir"]).champion() == row["version"]

        # modbot models lists every run; rollback restores the baseline, served live
        models = models_command(tmp_path, daemon.config.storage.database, learning["models_dir"])
        listed = models("--json")
        assert listed.exit_code == 0, listed.output
        doc = json.loads(listed.stdout)
        assert doc["champion"] == row["version"]
        assert {r["version"]: r["status"] for r in doc["runs"]} == {
            worse.version: "refused", row["version"]: "promoted", "weak-no-photo": "baseline"}
        assert set(doc["versions"]) == {"weak-no-photo", row["version"]}
        assert row["version"] + " *" in models(env={"COLUMNS": "250"}).stdout
        back = models("rollback", "weak-no-photo", "--note", "test")
        assert back.exit_code == 0, back.output
        assert scheduler.sync_champion() is True
        assert swappable.current.version == "weak-no-photo"
        assert models("rollback", "nope").exit_code == 1
        scheduler.shutdown()
        daemon.close()
