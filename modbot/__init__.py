"""modbot: medium-mismatch moderation for image subreddits."""

from pathlib import Path as _Path

__version__ = "0.1.0"


def _checkout_subpackages() -> None:
    """Make ``modbot.migrations`` importable from a source checkout used through PYTHONPATH.

    pyproject.toml installs the top-level ``migrations/`` folder as ``modbot.migrations`` (and
    ``model/`` as ``modbot.shipped_model``, which ``modbot.classify`` finds either way). When the
    checkout itself is on ``sys.path`` — tests and benches start daemons that way — there is no
    such subfolder, so the checkout's root joins this package's search path. An installed copy
    has ``modbot/migrations/`` and is left alone.
    """
    here = _Path(__file__).resolve().parent
    root = here.parent
    if not (here / "migrations").exists() and (root / "migrations" / "migrations.py").is_file() \
            and (root / "pyproject.toml").is_file():
        __path__.append(str(root))  # noqa: F821 - the package's own search path


_checkout_subpackages()
