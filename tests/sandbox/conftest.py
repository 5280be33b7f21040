"""Fixtures of the sandbox tests: a running ``SandboxServer`` with the shipped sample (the
``sample`` fixture of ``tests/conftest.py``), 10 posts released."""

from __future__ import annotations

import pytest

from modbot.sandbox.server import SandboxServer


@pytest.fixture
def server(sample):
    posts, images = sample
    with SandboxServer(posts, images, released=10) as srv:
        yield srv
