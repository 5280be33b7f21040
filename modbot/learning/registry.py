"""Model versions on disk and the pointer to the champion (the model the daemon serves).

Layout of ``[learning] models_dir``::

    models/
      CHAMPION                 {"version": "v3-20260101T043012Z", "event": "promoted", "at": ...}
      v3-20260101T043012Z/     a model directory (model.keras, labels.json, metrics.json, ...)
      pacs-cnn128-1/           the baseline, copied here the first time a challenger is trained
      .tmp-*/                  work folders of runs in progress (removed when they end)

Old versions are removed by :meth:`ModelRegistry.prune` (after each promotion, keeping
``[learning] keep_versions``; ``modbot models prune`` by hand): never the champion, the version
it replaced (what a rollback or a daemon that has not swapped yet needs) or a protected one
(the adopted baseline).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from modbot.classify import read_labels
from modbot.errors import InputError, ModelError
from modbot.fsutil import fsync_dir, write_atomic
from modbot.record import write_transaction

POINTER = "CHAMPION"
#: Prefix of the folders :meth:`ModelRegistry.prune` renames a version to before deleting it.
_PRUNING = ".tmp-pruned-"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_version(version: str) -> str:
    """``version`` if it is a safe directory name (letters, digits, ``._-``; at most 100
    characters, not starting with a dot), else raise ``InputError``."""
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise InputError(f"not a valid model version name: {version!r}")
    return version


@dataclass
class RegistryPruneReport:
    """What :meth:`ModelRegistry.prune` removed (or would remove, ``dry_run``): ``removed`` and
    ``kept`` versions (oldest first), ``bytes_freed`` (bytes of the removed folders' files)
    and ``protected`` (kept whatever their age: champion, previous champion, baseline)."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"removed": self.removed, "kept": self.kept, "protected": self.protected,
                "bytes_freed": self.bytes_freed, "dry_run": self.dry_run}


def _tree_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            continue
    return total


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
                os.utime(staging / "m")  # copytree copied the source's time: "added" is now
                os.rename(staging / "m", target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        fsync_dir(self.root)
        return target

    def added_at(self, version: str) -> float:
        """When ``version`` was put here: its folder's modification time (Unix seconds)."""
        return self.path(version).stat().st_mtime

    def prune(self, keep: int, *, protect: set[str] | frozenset[str] = frozenset(),
              dry_run: bool = False) -> RegistryPruneReport:
        """Remove all but the ``keep`` most recently added versions (``keep`` >= 1; the
        champion, the version it replaced and ``protect`` are kept on top and do not count).

        Each removed version is first renamed to ``.tmp-pruned-<version>`` (a reader sees the
        whole folder or none of it), then deleted; leftovers of an interrupted prune are
        deleted too. ``dry_run`` reports without changing anything. Raises ``InputError`` for
        ``keep`` < 1, ``ModelError`` for an unreadable pointer, ``OSError`` when a folder cannot
        be renamed. The caller holds the retrain lock (no run adds a version meanwhile).
        """
        if keep < 1:
            raise InputError(f"keep must be at least 1 (got {keep})")
        pointer = self.pointer() or {}
        protected = {v for v in (pointer.get("version"), pointer.get("previous"), *protect)
                     if isinstance(v, str) and self.has(v)}
        versions = sorted(self.versions(), key=lambda v: (self.added_at(v), v))
        others = [v for v in versions if v not in protected]
        doomed = others[:max(0, len(others) - keep)]
        report = RegistryPruneReport(kept=[v for v in versions if v not in doomed],
                                     protected=sorted(protected), dry_run=dry_run)
        for version in doomed:
            report.bytes_freed += _tree_bytes(self.path(version))
        report.removed = doomed
        if dry_run:
            return report
        for version in doomed:
            os.rename(self.path(version), self.root / f"{_PRUNING}{version}")
        if doomed:
            fsync_dir(self.root)
        for leftover in self.root.glob(f"{_PRUNING}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        return report

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


def baseline_versions(db: Database) -> set[str]:
    """Versions recorded as ``baseline`` in the ``models`` table (the model served before the
    first retraining, adopted into the registry): pruning keeps them."""
    if "models" not in db.table_names():
        return set()
    return {r[0] for r in db.execute("SELECT version FROM models WHERE status = 'baseline' "
                                     "AND version IS NOT NULL").fetchall()}


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

