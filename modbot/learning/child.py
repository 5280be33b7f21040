"""The retraining child process: ``python -m modbot.learning.child --config-json FILE ...``.

:class:`modbot.learning.scheduler.RetrainScheduler` starts one per scheduled run, so that
training (TensorFlow, minutes of CPU) never stalls the daemon's stream; the configuration
travels as a JSON file (:func:`config_to_json`). The package must be importable by the Python
that runs it (an installed or editable modbot); nothing is put on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from modbot.config import Config
from modbot.learning.retrain import retrain_once
from modbot.log import configure_logging
from modbot.ml.tf import load_tensorflow

#: ``python -m`` target of the child process.
MODULE = "modbot.learning.child"


def config_to_json(config: Config) -> str:
    """``config`` as JSON sections (``Config().replace(**json.loads(text))`` rebuilds it;
    ``source`` is left out)."""
    data = dataclasses.asdict(config)
    data.pop("source", None)
    return json.dumps(data)


def config_from_json(text: str) -> Config:
    """Inverse of :func:`config_to_json`. Raises ``ConfigError`` for an unknown section or
    key, ``ValueError`` for text that is not JSON."""
    return Config().replace(**json.loads(text))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m modbot.learning.child --config-json FILE [--run-id N] [--trigger T]
    [--shuffle-labels] [--no-promote] [--champion-dir DIR]``: one run (what
    :class:`~modbot.learning.scheduler.RetrainScheduler` starts).

    Lowers its priority (``[learning] nice``), sets TensorFlow's thread pool to ``[learning]
    threads``, runs :func:`~modbot.learning.retrain.retrain_once` and prints its result as one
    JSON line. Exit status 0 when the run was recorded (whatever the decision), 1 when it failed.
    """
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=main.__doc__)
    parser.add_argument("--config-json", required=True, help="config as written by config_to_json")
    parser.add_argument("--run-id", type=int, default=None)
    parser.add_argument("--trigger", default="schedule")
    parser.add_argument("--shuffle-labels", action="store_true")
    parser.add_argument("--no-promote", action="store_true")
    parser.add_argument("--champion-dir", default=None, help="the model directory being served")
    args = parser.parse_args(argv)
    configure_logging(json=True)
    config = config_from_json(Path(args.config_json).read_text(encoding="utf-8"))
    with contextlib.suppress(OSError):
        os.nice(config.learning.nice)
    load_tensorflow(config.learning.threads)
    result = retrain_once(config, trigger=args.trigger, run_id=args.run_id,
                          shuffle_labels=args.shuffle_labels, promote=not args.no_promote,
                          champion_dir=args.champion_dir)
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 1 if result.status == "failed" else 0


if __name__ == "__main__":  # pragma: no cover - the child process
    sys.exit(main())
