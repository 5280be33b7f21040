"""Helpers that tests import: a real daemon wired to the sandbox (``make_daemon``,
``run_until_recorded``), and for the operations tests (faults, signals, secrets, crash safety) a stand-in
classifier, a fast in-process daemon against the sandbox, a systemd notify socket, and a
config file for a ``modbot run`` subprocess. No mocks: real HTTP on 127.0.0.1, real praw,
real SQLite; only the CNN is replaced (it is not what these tests are about)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import praw
import requests

from modbot.sandbox.harness import CREDENTIAL_KEYS, NotifySocket, modbot_run_cmd, run_config_toml  # noqa: F401 - NotifySocket, modbot_run_cmd: for the tests
from modbot.sandbox.harness import run_env as harness_run_env

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
DATA = REPO / "tests" / "data"


class StubClassifier:
    """Says every image is ``label`` with probability ``p`` (rest spread evenly): a real
    object with the daemon's ``Classifier`` interface, no TensorFlow."""

    labels = ("digital", "painting", "drawing", "photography")
    version = "stub-1"

    def __init__(self, label: str = "photography", p: float = 0.97) -> None:
        self.label, self.p = label, p
        self.calls = 0

    def predict(self, images: list[Any]) -> list[Any]:
        from modbot.domain import Prediction

        self.calls += 1
        rest = (1 - self.p) / (len(self.labels) - 1)
        probs = {lab: (self.p if lab == self.label else rest) for lab in self.labels}
        return [Prediction(probs, self.version) for _ in images]


def fast_budget(**overrides: Any):
    """A request budget with short backoffs (tests must not wait minutes)."""
    from modbot.ratelimit import RequestBudget

    kwargs = {"backoff_base_s": 0.2, "backoff_max_s": 1.0}
    kwargs.update(overrides)
    return RequestBudget(**kwargs)


def fast_daemon(server, workdir: Path, *, classifier=None, budget=None, act: bool = False,
                notifier=None, **sections: dict[str, Any]):
    """An in-process Daemon: praw → sandbox with a fast budget, SQLite in ``workdir``."""
    from modbot.daemon import Daemon
    from modbot.sandbox.demo import demo_config
    from modbot.stream import make_reddit

    config = demo_config(server.url, workdir, act=act)
    base = {"reddit": {"poll_interval": 0.05, "request_timeout": 2.0},
            "daemon": {"retry_base_s": 0.2, "max_attempts": 3}}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    config = config.replace(**base)
    creds = {k: v for k, v in server.praw_kwargs().items() if k in CREDENTIAL_KEYS}
    reddit = make_reddit(config, budget=budget or fast_budget(), **creds)
    return Daemon(config, reddit=reddit, classifier=classifier or StubClassifier(),
                  notifier=notifier)


def run_until(daemon, predicate, *, timeout_s: float = 60.0, stop: threading.Event | None = None):
    """Run ``daemon`` until ``predicate()`` is true at an idle point (TimeoutError after
    ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s

    def until() -> bool:
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        return predicate()

    return daemon.run(stop=stop or threading.Event(), until=until)


def statuses(db) -> dict[str, tuple[str, str | None]]:
    """fullname → (status, reason) of every recorded submission."""
    return {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT fullname, status, reason FROM submissions")}


def all_final(daemon, server, final=("done", "skipped", "failed")) -> bool:
    """True when every released post is in one of ``final``."""
    rows = statuses(daemon.store.db)
    return all(rows.get(f, ("?",))[0] in final for f in server.released)


def image_post(pid: str, image: str, *, title: str = "Dusk, me, oil on canvas, 2020",
               **extra: Any) -> dict[str, Any]:
    """A minimal i.redd.it-style image post of the sandbox serving ``/i/<image>``."""
    post = {
        "id": pid, "name": f"t3_{pid}", "title": title, "author": "sandbox_artist_01",
        "subreddit": "Art", "url": "{base}/i/" + image, "domain": "i.redd.it",
        "post_hint": "image", "is_self": False, "is_video": False, "link_flair_text": None,
        "permalink": f"/r/Art/comments/{pid}/x/",
    }
    post.update(extra)
    return post


def model_dir_for_tests() -> str:
    """The model a ``modbot run`` subprocess loads: ``$MODBOT_TEST_MODEL_DIR`` if set, else the
    shipped model (empty string)."""
    return os.environ.get("MODBOT_TEST_MODEL_DIR", "")


def write_run_config(path: Path, server, workdir: Path, *, act: bool = True,
                     **sections: dict[str, Any]) -> Path:
    """A TOML config for ``modbot run`` against ``server`` (credentials NOT included: they go
    through praw_* environment variables, see :func:`run_env`)."""
    path.write_text(run_config_toml(server.url, workdir, act=act, model_dir=model_dir_for_tests(),
                                    **sections), encoding="utf-8")
    return path


def run_env(server, *, notify: NotifySocket | None = None, **extra: str) -> dict[str, str]:
    """Environment for a ``modbot run`` subprocess (see ``modbot.sandbox.harness.run_env``);
    praw.ini lookups go to ``tests/data``, which holds none."""
    return harness_run_env(server, notify=notify, praw_ini_dir=DATA, **extra)


def make_daemon(server, workdir: Path, classifier, *, act: bool = False, **sections):
    """A real Daemon: praw → sandbox, SQLite file in ``workdir``, the given classifier."""
    from modbot.daemon import Daemon
    from modbot.sandbox.demo import demo_config
    from modbot.stream import make_reddit

    config = demo_config(server.url, workdir, act=act)
    if sections:
        config = config.replace(**sections)
    creds = {k: v for k, v in server.praw_kwargs().items()
             if k in ("client_id", "client_secret", "username", "password")}
    return Daemon(config, reddit=make_reddit(config, **creds), classifier=classifier)


def run_until_recorded(daemon, server, *, timeout_s: float = 120.0, extra=None):
    """Run ``daemon`` until every released post has a final (or retry) status."""
    deadline = time.monotonic() + timeout_s
    stop = threading.Event()

    def until():
        if time.monotonic() > deadline:
            raise TimeoutError("daemon did not record every released post in time")
        rows = {r[0] for r in daemon.store.db.execute(
            "SELECT fullname FROM submissions WHERE status IN ('done','skipped','failed','retry')")}
        return set(server.released) <= rows and (extra is None or extra())

    return daemon.run(stop=stop, until=until)


# ---- the shipped model and the PACS sample (tests/test_classify.py, tests/ml/)

#: Twelve PACS images of the shipped model's held-out test object (giraffe), three per medium;
#: see the README there.
PACS_SAMPLE = DATA / "pacs_sample"


def pacs_sample() -> tuple[list[str], list[Any]]:
    """``(media, images)`` of :data:`PACS_SAMPLE`: the folder name (true medium) and an RGB
    Pillow image of each file, in sorted path order."""
    from PIL import Image

    paths = sorted(p for p in PACS_SAMPLE.glob("*/*") if p.suffix in (".jpg", ".png"))
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    return [p.parent.name for p in paths], images


def copy_model_dir(tmp_path: Path) -> Path:
    """A copy of the shipped model directory at ``tmp_path / "model"`` (package files left out)."""
    import shutil

    from modbot.classify import shipped_model_dir

    dst = tmp_path / "model"
    shutil.copytree(shipped_model_dir(), dst, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return dst


def edit_labels(model_dir: Path, **changes: Any) -> None:
    """Update top-level fields of ``model_dir/labels.json``."""
    path = model_dir / "labels.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# --- the learning loop (tests/learning) ------------------------------------------------------


def fresh_db(tmp_path: Path):
    """A new modbot database (migrated) in ``tmp_path``."""
    from modbot.record import open_database

    return open_database(tmp_path / "modbot.db")


def fake_model_dir(path: Path, version: str, labels=("digital", "painting")) -> Path:
    """A model directory with a valid ``labels.json`` and a dummy ``model.keras`` (enough for
    the registry, which never loads it)."""
    path.mkdir(parents=True)
    (path / "labels.json").write_text(json.dumps({"labels": list(labels), "version": version,
                                                  "input_size": [32, 32]}))
    (path / "model.keras").write_bytes(b"not used here")
    return path


class SlowModel:
    """A real (if trivial) classifier: constant probabilities, slow enough to overlap swaps;
    ``broken`` ones return probabilities that do not sum to 1."""

    def __init__(self, version, labels=("digital", "painting"), delay=0.002, broken=False):
        self.version, self.labels, self.delay, self.broken = version, labels, delay, broken

    def predict(self, images):
        from modbot.domain import Prediction

        out = []
        for _ in images:
            time.sleep(self.delay)
            probs = {m: 1.0 / len(self.labels) for m in self.labels}
            if self.broken:
                probs = {m: 0.9 for m in self.labels}
            out.append(Prediction(probabilities=probs, model_version=self.version))
        return out


# --------------------------------------------------------------------------- sandbox HTTP clients


def sandbox_reddit(server, **overrides) -> praw.Reddit:
    """An unmodified ``praw.Reddit`` talking to ``server`` (``overrides`` replace its kwargs)."""
    kwargs = server.praw_kwargs(user_agent="python:modbot-tests:0.1 (by /u/modbot-sandbox)")
    kwargs.update(overrides)
    return praw.Reddit(**kwargs)


def sandbox_token(server) -> str:
    """A bearer token from ``server``'s password grant."""
    resp = requests.post(
        server.url + "/api/v1/access_token",
        auth=(server.client_id, server.client_secret),
        data={"grant_type": "password", "username": server.username, "password": server.password},
        timeout=5,
    )
    resp.raise_for_status()
    return resp.json()["access_token"]


def sandbox_get(server, path: str, tok: str, **params) -> requests.Response:
    """``GET path`` on ``server`` with bearer ``tok`` and praw's ``raw_json=1`` (no redirects)."""
    return requests.get(server.url + path, params={"raw_json": 1, **params},
                        headers={"Authorization": f"bearer {tok}"}, timeout=5,
                        allow_redirects=False)


def drain_stream(stream, max_nones: int = 3) -> list:
    """Items of a praw stream (``pause_after=0``) until it paused ``max_nones`` times in a row."""
    out, nones = [], 0
    for item in stream:
        if item is None:
            nones += 1
            if nones >= max_nones:
                break
            continue
        nones = 0
        out.append(item)
    return out


#: ``[judge]`` settings that flag every post whose stated medium the model does not prefer
#: (p(stated) < 0.5): many actions, for tests about acting rather than judging.
FLAG_EVERY_DISAGREEMENT = {"thresholds": {m: 0.5 for m in ("digital", "painting", "drawing",
                                                          "photography", "sculpture")}}
