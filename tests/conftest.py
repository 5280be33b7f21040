"""Shared fixtures: the sandbox Reddit server with the shipped sample and the shipped model.

Helpers that tests import (a daemon wired to the sandbox, a stand-in classifier, …) live in
``tests/support.py``; ``pyproject.toml`` puts ``tests/`` on ``sys.path`` for them."""

from __future__ import annotations

import os

import pytest

# praw 8.0.3 ignores timeout=; prawcore reads this at import. Keep test hangs short.
os.environ.setdefault("PRAWCORE_TIMEOUT", "10")


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
