"""The learning loop, measured: a weak champion is replaced live by a better challenger.

What runs (all real: the daemon, praw, the sandbox over 127.0.0.1 HTTP, SQLite, TensorFlow):

1. **Weak champion**: the seed-style CNN (``arch="cnn"``) trained on 8 images per medium at
   64 px for 3 epochs, and *without photography* — it cannot predict that medium at all.
2. **Labelled stream**: ``--per-medium`` sandbox posts per medium, each a PACS image
   (``../shared/data/pacs``, objects dog, elephant and person) under a real r/Art title from
   ``../shared/data/rart-2020/posts.jsonl`` stating its medium; about 1 in 10 states a wrong
   medium. The daemon (serving the champion through a ``SwappableClassifier``) streams and
   judges them; a moderator thread records each post's true medium with
   ``modbot.cli.review.record_review`` as its verdict appears (dismiss when the stated medium is
   right, confirm with the true medium otherwise).
3. **Scheduled retraining**: once every labelled post is reviewed, the ``RetrainScheduler``
   (APScheduler, interval trigger) is started with its first run due at once. It trains a
   challenger in a child process (the trainer's default architecture unless ``--arch``) on the
   training side of the labels, evaluates champion and challenger on the fixed evaluation set
   (``[learning] eval_fraction`` of each medium, never trained on), and promotes only past the
   gates (``--margin``, ``--recall-floor``). Meanwhile unlabelled posts (object horse) keep
   arriving (``--live-rate`` per second) and the daemon keeps classifying them:
   ``streamed_during_training`` counts submissions finished between the start and the end of
   the challenger's training (timestamps recorded in the ``models`` row).
4. **Live swap**: the promoted model is loaded and warmed up in the daemon process and swapped
   in; ``predictions_by_new_model`` counts later predictions recorded with its version.
5. **A deliberately worse challenger**: the same job with ``--shuffle-labels`` (labels randomly
   permuted) must be refused.
6. **Held-out object**: champion and promoted challenger are also scored on 50 images per medium
   of an object never streamed nor trained on (giraffe), a check that the model learned the
   medium rather than the subject.

Run from the repository root: ``python bench/learning_loop.py [--json]`` (a few minutes on 2
CPU cores). Prints a before/after table; with ``--json`` the last line is one JSON object with
``before_macro_f1``, ``after_macro_f1`` (evaluation set), ``promoted``, ``refused_worse``,
``streamed_during_training`` and more. Exit status 1 when the promotion or the refusal did not
happen.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
#: PACS depiction → canonical medium (the stand-in mapping of ../shared/README.md).
DEPICTION = {"cartoon": "digital", "art_painting": "painting", "sketch": "drawing", "photo": "photography"}
LABELLED_OBJECTS = ("dog", "elephant", "person")
LIVE_OBJECT = "horse"
HELDOUT_OBJECT = "giraffe"


def fresh_workdir(workdir: Path | None, prefix: str) -> Path:
    """``workdir`` emptied (kept after the run), else a new temporary directory."""
    work = workdir or Path(tempfile.mkdtemp(prefix=prefix))
    if workdir:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    return work


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def image_post(pid: str, title: str, image: str, *, medium: str, stated: str) -> dict[str, Any]:
    """A minimal i.redd.it-style image submission for the sandbox."""
    return {"id": pid, "name": f"t3_{pid}", "title": title, "author": f"sandbox_artist_{pid[-2:]}",
            "subreddit": "Art", "url": "{base}/i/" + image, "url_overridden_by_dest": "{base}/i/" + image,
            "domain": "i.redd.it", "post_hint": "image", "is_self": False, "link_flair_text": None,
            "_sandbox_truth": {"kind": "image", "medium": medium, "stated": stated}}


def rart_titles() -> dict[str, list[str]]:
    """Real r/Art titles by the medium they state (modbot's own reading of the title)."""
    from modbot.medium import stated_medium

    out: dict[str, list[str]] = {}
    for line in (SHARED / "rart-2020" / "posts.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            title = json.loads(line)["title"]
            out.setdefault(stated_medium(title).medium, []).append(title)
    return out


def pacs_files(depiction: str, obj: str) -> list[Path]:
    return sorted(p for p in (SHARED / "pacs" / depiction / obj).iterdir() if p.is_file())


def build_posts(per_medium: int, live: int, seed: int) -> tuple[list, list, dict, dict]:
    """(labelled posts, live posts, images by name, truth by fullname)."""
    rng = random.Random(seed)
    titles = rart_titles()
    media = list(DEPICTION.values())
    labelled, images, truth = [], {}, {}
    for depiction, medium in DEPICTION.items():
        files = [f for obj in LABELLED_OBJECTS for f in pacs_files(depiction, obj)]
        rng.shuffle(files)
        for k, f in enumerate(files[:per_medium]):
            name = f"{depiction}_{f.parent.name}_{f.name}"
            images[name] = f.read_bytes()
            stated = medium if rng.random() >= 0.1 else rng.choice([m for m in media if m != medium])
            pool = titles[stated]
            post = image_post(f"ll{medium[:3]}{k:04d}", pool[rng.randrange(len(pool))], name,
                              medium=medium, stated=stated)
            labelled.append(post)
            truth[post["name"]] = medium
    rng.shuffle(labelled)
    live_posts = make_live_posts(live, titles, rng, images)
    return labelled, live_posts, images, truth


def make_live_posts(n: int, titles: dict[str, list[str]], rng: random.Random,
                    images: dict[str, bytes]) -> list[dict[str, Any]]:
    """``n`` unlabelled posts of PACS horse images (every depiction, cycled) stating their true
    medium under real r/Art titles; their bytes are added to ``images``."""
    files = [(depiction, f) for depiction in DEPICTION for f in pacs_files(depiction, LIVE_OBJECT)]
    rng.shuffle(files)
    posts = []
    for k in range(n):
        depiction, f = files[k % len(files)]
        name = f"{depiction}_{LIVE_OBJECT}_{f.name}"
        images[name] = f.read_bytes()
        medium = DEPICTION[depiction]
        pool = titles[medium]
        posts.append(image_post(f"lv{k:05d}", pool[rng.randrange(len(pool))], name, medium=medium, stated=medium))
    return posts


def train_weak(out: Path, per_medium: int = 8) -> Path:
    """The weak champion: CNN, 64 px, 3 epochs, few images, no photography."""
    from modbot.ml.training import train_model

    tree = out / "tree"
    for depiction, medium in DEPICTION.items():
        if medium == "photography":
            continue
        (tree / medium).mkdir(parents=True, exist_ok=True)
        for f in pacs_files(depiction, "dog")[:per_medium]:
            (tree / medium / f.name).symlink_to(f)
    train_model(tree, out / "model", arch="cnn", image_size=64, epochs=3, batch_size=8, seed=0,
                version="weak-cnn64-no-photo", verbose=0, export=False)
    return out / "model"


def heldout(per_medium: int) -> tuple[list[Path], list[str]]:
    paths, truth = [], []
    for depiction, medium in DEPICTION.items():
        for f in pacs_files(depiction, HELDOUT_OBJECT)[:per_medium]:
            paths.append(f)
            truth.append(medium)
    return paths, truth


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-medium", type=int, default=60, help="labelled posts per medium")
    ap.add_argument("--live", type=int, default=2000, help="unlabelled posts available to stream")
    ap.add_argument("--live-rate", type=float, default=4.0, help="unlabelled posts released per second")
    ap.add_argument("--arch", default="", help="challenger architecture (default: the trainer's)")
    ap.add_argument("--image-size", type=int, default=0, help="challenger input size (0: arch default)")
    ap.add_argument("--epochs", type=int, default=0, help="challenger epochs (0: arch default)")
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--recall-floor", type=float, default=0.3)
    ap.add_argument("--eval-fraction", type=float, default=0.25)
    ap.add_argument("--heldout", type=int, default=50, help="held-out object images per medium")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return ap.parse_args(argv)


def learning_settings(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """``[learning]`` of the bench: retraining due once a day (the bench starts it at once)."""
    return {"enabled": True, "models_dir": str(work / "models"), "eval_fraction": args.eval_fraction,
            "min_train_labels": 40, "min_eval_labels": 20, "new_medium_min_labels": 30,
            "margin": args.margin, "recall_floor": args.recall_floor, "stated_labels": "none",
            "arch": args.arch, "image_size": args.image_size, "epochs": args.epochs,
            "seed": args.seed, "interval_s": 24 * 3600.0, "watch_interval_s": 2.0,
            "threads": 1, "nice": 10, "timeout_s": 1800.0}


def review_pending(database: str, truth: dict[str, str]) -> int:
    """The moderator: review every labelled post whose verdict exists (dismiss when the stated
    medium is right, confirm with the true medium otherwise); return how many are left."""
    from modbot.cli.review import record_review
    from modbot.record import open_database, write_transaction

    db = open_database(database)
    try:
        done = {r[0] for r in db.execute("SELECT DISTINCT submission FROM reviews")}
        for fullname, stated in db.execute("SELECT submission, stated FROM verdicts").fetchall():
            medium = truth.get(fullname)
            if medium is None or fullname in done:
                continue
            with write_transaction(db):  # BEGIN IMMEDIATE: the daemon writes meanwhile
                if medium == stated:
                    record_review(db, fullname, "dismiss", moderator="bench_mod")
                else:
                    record_review(db, fullname, "confirm", true_medium=medium, moderator="bench_mod")
            done.add(fullname)
        return len(set(truth) - done)
    finally:
        db.conn.close()


class Controller:
    """The bench's script while the daemon runs (phases 1-5 of the module docstring); its
    outcome is ``result`` (``run``: the scheduled run's row, ``worse``: the shuffled run's)."""

    def __init__(self, args: argparse.Namespace, server: Any, daemon: Any, config: Any,
                 swappable: Any, n_live: int, truth: dict[str, str], t0: float) -> None:
        from modbot.learning.scheduler import RetrainScheduler

        self.args, self.server, self.daemon, self.config = args, server, daemon, config
        self.swappable, self.n_live, self.truth, self.t0 = swappable, n_live, truth, t0
        self.scheduler = RetrainScheduler()
        self.finished = threading.Event()
        self.failure: list[BaseException] = []
        self.result: dict[str, Any] = {}

    def __call__(self) -> None:
        try:
            self.label_phase()
            stop_live = threading.Event()
            feeder = threading.Thread(target=self.live_feed, args=(stop_live,), daemon=True)
            feeder.start()
            self.retrain_phase()
            stop_live.set()
            feeder.join()
        except BaseException as exc:  # reported after the daemon stops
            self.failure.append(exc)
        finally:
            self.finished.set()

    def label_phase(self) -> None:
        """The labelled posts stream in; the moderator reviews as verdicts appear."""
        while self.server.pending > self.n_live:
            self.server.release(10)
            time.sleep(0.2)
        deadline = time.monotonic() + 600
        while review_pending(self.config.storage.database, self.truth) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("labelled posts were not all judged in 600 s")
            time.sleep(1.0)
        log(f"{len(self.truth)} labelled posts reviewed ({time.monotonic() - self.t0:.0f} s); "
            "scheduled retraining due now, live posts keep streaming")

    def live_feed(self, stop: threading.Event) -> None:
        """Unlabelled posts keep arriving while the scheduled job trains."""
        while not stop.is_set() and self.server.pending:
            self.server.release(1)
            stop.wait(1.0 / self.args.live_rate)

    def retrain_phase(self) -> None:
        """The scheduled run (due now), the live swap, then a shuffled-label challenger."""
        self.scheduler.start(self.daemon, self.config, first_run_at=datetime.now(UTC))
        while self.scheduler.last_result is None:
            time.sleep(0.5)
        row = self.result["run"] = self.scheduler.last_result
        log(f"scheduled run: {row['status']} — {row['reason']} ({time.monotonic() - self.t0:.0f} s)")
        swap_deadline = time.monotonic() + 60
        while row["status"] == "promoted" and self.swappable.current.version != row["version"]:
            if time.monotonic() > swap_deadline:
                raise TimeoutError("the promoted model was not swapped in within 60 s")
            time.sleep(0.2)
        time.sleep(5.0)  # the daemon classifies with the new model for a while
        log("training a challenger on shuffled labels")
        worse = self.result["worse"] = self.scheduler.run_retrain(
            trigger="bench-shuffled", extra_args=["--shuffle-labels"])
        log(f"shuffled run: {worse['status']} — {worse['reason']}")


def run_loop(args: argparse.Namespace, work: Path, weak_dir: Path, t0: float) -> dict[str, Any]:
    """The daemon streams (sandbox) while the :class:`Controller` labels, retrains and swaps;
    returns the runs' rows and the daemon's counts."""
    from modbot.daemon import Daemon
    from modbot.learning.serving import SwappableClassifier
    from modbot.ml.keras_classifier import KerasClassifier
    from modbot.sandbox.demo import demo_config
    from modbot.sandbox.server import SandboxServer
    from modbot.stream import make_reddit

    labelled, live, images, truth = build_posts(args.per_medium, args.live, args.seed)
    log(f"{len(labelled)} labelled posts, {len(live)} live posts; weak champion ready "
        f"({time.monotonic() - t0:.0f} s)")
    with SandboxServer(labelled + live, images, released=0) as server:
        config = demo_config(server.url, work, act=False).replace(
            learning=learning_settings(args, work), storage={"model_dir": str(weak_dir)},
            reddit={"poll_interval": 0.2}, daemon={"retry_base_s": 2.0})
        creds = {k: v for k, v in server.praw_kwargs().items()
                 if k in ("client_id", "client_secret", "username", "password")}
        swappable = SwappableClassifier(KerasClassifier.load(weak_dir))
        daemon = Daemon(config, reddit=make_reddit(config, **creds), classifier=swappable)
        controller = Controller(args, server, daemon, config, swappable, len(live), truth, t0)
        ctl = threading.Thread(target=controller, name="bench-controller")
        ctl.start()
        stats = daemon.run(stop=threading.Event(), until=controller.finished.is_set)
        ctl.join()
        controller.scheduler.shutdown()
        if controller.failure:
            raise controller.failure[0]
        out = {**controller.result, "stats": stats, **daemon_counts(daemon.store.db, controller.result["run"])}
        daemon.close()
    return out


def daemon_counts(db: Any, row: dict[str, Any]) -> dict[str, int]:
    """Submissions finished during training, predictions by the promoted model, posts
    classified by two models."""
    during = db.execute("SELECT COUNT(*) FROM submissions WHERE status IN ('done','skipped','failed') "
                        "AND updated_at BETWEEN ? AND ?",
                        [row["train_started_at"] or 0, row["train_finished_at"] or 0]).fetchone()[0]
    by_new = db.execute("SELECT COUNT(*) FROM predictions WHERE model_version = ?",
                        [row["version"]]).fetchone()[0]
    mixed = db.execute("SELECT COUNT(*) FROM (SELECT submission FROM predictions GROUP BY submission "
                       "HAVING COUNT(DISTINCT model_version) > 1)").fetchone()[0]
    return {"during": during, "by_new": by_new, "mixed": mixed}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (SHARED / "pacs").is_dir():
        print(f"needs PACS in {SHARED / 'pacs'} (see ../shared/README.md)", file=sys.stderr)
        return 2

    from modbot.learning.registry import ModelRegistry
    from modbot.learning.retrain import evaluate
    from modbot.log import configure_logging
    from modbot.ml.keras_classifier import KerasClassifier

    configure_logging(json=True, level="WARNING")
    work = fresh_workdir(args.workdir, "modbot-learning-")
    t0 = time.monotonic()
    log(f"work dir {work}; training the weak champion")
    weak_dir = train_weak(work / "weak")
    loop = run_loop(args, work, weak_dir, t0)
    row, worse, stats = loop["run"], loop["worse"], loop["stats"]
    champion_now = ModelRegistry(work / "models").champion()

    # the held-out object, scored in this process with both models
    paths, truth_h = heldout(args.heldout)
    weak = KerasClassifier.load(weak_dir)
    models = [weak]
    if row["status"] == "promoted":
        models.append(KerasClassifier.load(work / "models" / row["version"]))
    order = ["digital", "painting", "drawing", "photography"]
    reports = evaluate(models, paths, truth_h, order)
    before = metrics_of(row, "champion_metrics")
    after = metrics_of(row, "challenger_metrics")
    worse_rep = metrics_of(worse, "challenger_metrics")
    print_table(row, worse, weak.version, (before, after, worse_rep), reports, order, len(paths))
    print_summary(args, row, worse, loop, stats, t0)
    out = {
        "before_macro_f1": before["macro_f1"] if before else None,
        "after_macro_f1": after["macro_f1"] if after else None,
        "promoted": row["status"] == "promoted",
        "refused_worse": bool(worse and worse["status"] == "refused"),
        "streamed_during_training": loop["during"],
        "worse_macro_f1": worse_rep["macro_f1"] if worse_rep else None,
        "heldout_before_macro_f1": reports[0]["macro_f1"],
        "heldout_after_macro_f1": reports[1]["macro_f1"] if len(reports) > 1 else None,
        "n_train": row["n_train"], "n_eval": row["n_eval"], "n_heldout": len(paths),
        "champion_version": weak.version, "challenger_version": row["version"],
        "champion_after_run": champion_now,
        "predictions_by_new_model": loop["by_new"], "posts_classified_by_two_models": loop["mixed"],
        "daemon_internal_errors": stats.errors, "submissions_streamed": stats.processed,
        "train_seconds": seconds(row, "train_started_at", "train_finished_at"),
        "run_seconds": row["duration_s"], "total_seconds": round(time.monotonic() - t0, 1),
        "workdir": str(work),
    }
    if args.json:
        print(json.dumps(out))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if out["promoted"] and out["refused_worse"] else 1


def metrics_of(row: dict[str, Any] | None, column: str) -> dict[str, Any] | None:
    """A run's classification report (JSON column), or None."""
    return json.loads(row[column]) if row and row[column] else None


def seconds(r: dict[str, Any], a: str, b: str) -> float | None:
    return None if r.get(a) is None or r.get(b) is None else round(r[b] - r[a], 1)


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_table(row: dict[str, Any], worse: dict[str, Any] | None, weak_version: str,
                metrics: tuple[Any, Any, Any], reports: list[dict[str, Any]], order: list[str],
                n_heldout: int) -> None:
    """Before/after table: evaluation-set macro-F1 and recalls, held-out macro-F1, decisions."""
    before, after, worse_rep = metrics
    cols = [("champion (before)", before, reports[0], weak_version, "-"),
            ("challenger (after)", after, reports[1] if len(reports) > 1 else None, row["version"], row["status"]),
            ("shuffled challenger", worse_rep, None, worse["version"] if worse else None,
             worse["status"] if worse else "-")]
    lines = [f"{'':34}" + "".join(f"{c[0]:>22}" for c in cols),
             f"{'model':34}" + "".join(f"{(c[3] or '-')[-21:]:>22}" for c in cols),
             f"{'eval set macro-F1 (n=' + str(row['n_eval']) + ')':34}"
             + "".join(f"{_f(c[1]['macro_f1'] if c[1] else None):>22}" for c in cols)]
    for m in order:
        lines.append(f"{'  recall ' + m:34}" + "".join(
            f"{_f(c[1]['per_class'][m]['recall'] if c[1] and m in c[1]['per_class'] else None):>22}" for c in cols))
    lines.append(f"{'held-out object macro-F1 (n=' + str(n_heldout) + ')':34}"
                 + "".join(f"{_f(c[2]['macro_f1'] if c[2] else None):>22}" for c in cols))
    lines.append(f"{'decision':34}" + "".join(f"{c[4]:>22}" for c in cols))
    print("\n".join(lines))


def print_summary(args: argparse.Namespace, row: dict[str, Any], worse: dict[str, Any] | None,
                  loop: dict[str, Any], stats: Any, t0: float) -> None:
    counts = json.loads(row["data_counts"]) if row["data_counts"] else {}
    print(f"\nlabels: {counts.get('labels', {}).get('by_medium')} (all moderator reviews); "
          f"train {row['n_train']}, eval {row['n_eval']}; challenger trained in "
          f"{seconds(row, 'train_started_at', 'train_finished_at')} s (run {row['duration_s']} s); "
          f"{loop['during']} submissions processed by the daemon meanwhile; {loop['by_new']} predictions by the "
          f"promoted model after the live swap; {loop['mixed']} posts classified by two models; "
          f"{stats.processed} submissions streamed in all ({stats.errors} internal errors, retried); "
          f"{time.monotonic() - t0:.0f} s total.")
    print(f"gates: margin {args.margin}, recall floor {args.recall_floor}; "
          f"scheduled run: {row['reason']}; shuffled run: {worse['reason'] if worse else '-'}")


if __name__ == "__main__":
    sys.exit(main())
