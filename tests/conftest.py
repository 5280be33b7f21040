"""Shared fixtures: the sandbox Reddit server with the shipped sample, the shipped model, and a
daemon wired to both with a real SQLite file in a temp dir."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

# praw 8.0.3 ignores timeout=; prawcore reads this at import. Keep test hangs short.
os.environ.setdefault("PRAWCORE_TIMEOUT", "10")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shipped_classifier():
    """The shipped model as the daemon serves it (LiteRT when its checked export is present),
    loaded once per test session."""
    from modbot.classify import load_classifier

    return load_classifier(None)


@pytest.fixture(scope="session")
def sample():
    """(posts, images) of the demo sample shipped inside the package."""
    from modbot.sandbox.sample import load_sample

    return load_sample()


@pytest.fixture
def sandbox(sample):
    """A running sandbox with every sample post released."""
    from modbot.sandbox.server import SandboxServer

    posts, images = sample
    with SandboxServer(posts, images, released=len(posts)) as server:
        yield server


def make_daemon(server, workdir: Path, classifier, *, act: bool = False, **sections):
    """A real Daemon: praw → sandbox, SQLite file in ``workdir``, the given classifier."""
    from modbot.daemon import Daemon
    from modbot.demo import demo_config
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
