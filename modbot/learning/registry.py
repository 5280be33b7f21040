"""Model versions on disk and the pointer to the champion (the model the daemon serves).

Layout of ``[learning] models_dir``::

    models/
      CHAMPION                 {"version": "v3-20260101T043012Z", "event": "promoted", "at": ...}
      v3-20260101T043012Z/     a model directory (model.keras, labels.json, metrics.json, ...)
      pacs-cnn128-1/           the baseline, copied here the first time a challenger is trained
      .tmp-*/                  work folders of runs in progress (removed when they end)

A version is added by moving a finished model directory into place with one ``rename`` (a
reader sees the whole directory or none of it). The champion changes only by replacing
``CHAMPION`` with ``os.replace`` (write a temporary file in the same folder, fsync, replace,
fsync the folder): a process reading the pointer at any moment sees the old or the new
champion, never a torn file. Nothing here loads TensorFlow.

Every change of the champion is also recorded in the database table ``champion_history``
(:func:`set_champion` with ``db``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from modbot.classify import read_labels
from modbot.errors import InputError, ModelError
from modbot.fsutil import fsync_dir, write_atomic
from modbot.record import write_transaction

POINTER = "CHAMPION"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_version(version: str) -> str:
    """``version`` if it is a safe directory name (letters, digits, ``._-``; at most 100
    characters, not starting with a dot), else raise ``InputError``."""
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise InputError(f"not a valid model version name: {version!r}")
    return version


class ModelRegistry:
    """The model versions under ``root`` (``[learning] models_dir``) and the champion pointer."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, version: str) -> Path:
        """Directory of ``version`` (whether or not it exists)."""
        return self.root / check_version(version)

    def has(self, version: str) -> bool:
        """True when ``version`` is a model directory here (it has a ``labels.json``)."""
        return (self.path(version) / "labels.json").is_file()

    def versions(self) -> list[str]:
        """Versions present on disk, sorted by name."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / "labels.json").is_file())

    def pointer(self) -> dict[str, Any] | None:
        """The parsed ``CHAMPION`` file (``version``, ``event``, ``at``, ``previous``), or None
        when there is none. Raises ``ModelError`` for an unreadable pointer."""
        p = self.root / POINTER
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read champion pointer {p}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("version"), str):
            raise ModelError(f"champion pointer {p} has no version")
        return data

    def champion(self) -> str | None:
        """The champion's version, or None when no champion was set here yet."""
        data = self.pointer()
        return None if data is None else data["version"]

    def champion_dir(self) -> Path | None:
        """The champion's model directory, or None. Raises ``ModelError`` when the pointer
        names a version that is not on disk."""
        version = self.champion()
        if version is None:
            return None
        if not self.has(version):
            raise ModelError(f"champion {version} is not in {self.root}")
        return self.path(version)

    def work_dir(self, prefix: str) -> Path:
        """A new, empty work folder ``<root>/.tmp-<prefix>-*`` (same file system as the versions,
        so :meth:`add` can move results in with a rename). The caller removes it."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".tmp-{prefix}-", dir=self.root))

    def add(self, source: str | os.PathLike[str], version: str, *, move: bool = False) -> Path:
        """Put the model directory ``source`` here as ``version``; return its path.

        ``move=True`` renames ``source`` (it must be on the same file system, e.g. a
        :meth:`work_dir`); otherwise it is copied to a temporary folder first and renamed into
        place. ``labels.json`` is checked first (``ModelError`` if invalid); ``InputError`` if
        ``version`` already exists.
        """
        target = self.path(version)
        read_labels(source)
        if target.exists():
            raise InputError(f"model version {version} already exists in {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        if move:
            os.rename(source, target)
        else:
            staging = Path(tempfile.mkdtemp(prefix=f".tmp-add-{version}-", dir=self.root))
            try:
                shutil.copytree(source, staging / "m", symlinks=False)
                os.rename(staging / "m", target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        fsync_dir(self.root)
        return target

    def set_pointer(self, version: str, *, event: str, now: float | None = None) -> None:
        """Make ``version`` (which must be here, ``InputError`` otherwise) the champion by
        atomically replacing the pointer file."""
        if not self.has(version):
            raise InputError(f"no model version {version} in {self.root} (see `modbot models`)")
        previous = self.champion() if (self.root / POINTER).exists() else None
        doc = {"version": version, "event": event, "at": time.time() if now is None else now,
               "previous": previous}
        # temp file in the same folder, fsync, os.replace, fsync of the folder
        write_atomic(self.root / POINTER, json.dumps(doc, indent=2) + "\n", sync_dir=True)


def set_champion(registry: ModelRegistry, version: str, *, event: str, db: Database | None = None,
                 run_id: int | None = None, by: str | None = None, note: str | None = None,
                 now: float | None = None) -> None:
    """Make ``version`` the champion (atomic pointer replacement) and record the change in
    ``champion_history`` when ``db`` is given. ``event``: ``promoted`` or ``rollback``.
    Raises ``InputError`` if the version is not on disk."""
    now = time.time() if now is None else now
    registry.set_pointer(version, event=event, now=now)
    if db is not None:
        with write_transaction(db):
            db["champion_history"].insert({"version": version, "event": event, "run_id": run_id,
                                           "by": by, "note": note, "at": now})


def rollback(registry: ModelRegistry, version: str, *, db: Database | None = None,
             by: str | None = None, note: str | None = None) -> dict[str, Any]:
    """Restore an earlier version as the champion; returns its ``labels.json`` content.

    The version's directory must exist and its ``labels.json`` be valid (``InputError`` /
    ``ModelError`` otherwise). A running daemon notices the new pointer within
    ``[learning] watch_interval_s`` seconds and swaps the model in (see
    :class:`modbot.learning.scheduler.RetrainScheduler`).
    """
    if not registry.has(version):
        raise InputError(f"no model version {version} in {registry.root}; "
                         f"versions: {', '.join(registry.versions()) or 'none'}")
    meta = read_labels(registry.path(version))
    set_champion(registry, version, event="rollback", db=db, by=by, note=note)
    return meta


def serving_model_dir(config: Any) -> str | None:
    """The model directory the daemon should serve: the registry's champion when
    ``[learning] models_dir`` holds one, else ``[storage] model_dir`` (None = the shipped
    model). Raises ``ModelError`` for a pointer to a missing version."""
    champion = ModelRegistry(config.learning.models_dir).champion_dir()
    if champion is not None:
        return str(champion)
    return config.storage.model_dir or None

