"""TensorFlow and Keras, imported once, quietly, with a thread budget.

Every module of :mod:`modbot.ml` that needs TensorFlow gets it through :func:`load_tensorflow`
(or :func:`load_keras`), never by a bare ``import tensorflow``: the environment variables and
thread pools must be set before TensorFlow starts its runtime. Importing this module does not
import TensorFlow. :func:`quiet_stderr` also serves the LiteRT interpreter
(:class:`modbot.classify.LiteRTClassifier`) and the TFLite converter (:mod:`modbot.ml.export`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

#: Start-up lines TensorFlow writes to stderr whatever TF_CPP_MIN_LOG_LEVEL says.
IMPORT_NOISE = ("oneDNN custom operations are on", "All log messages before absl::InitializeLog()")

_tf_module: Any = None


def _cpu_count() -> int:
    """CPUs this process may use (its affinity mask on Linux, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_tensorflow(threads: int | None = None) -> Any:
    """Import TensorFlow once, quietly, with a thread budget; return the ``tensorflow`` module.

    Sets (unless already set) ``TF_CPP_MIN_LOG_LEVEL=2`` (C++ info/warnings off) and
    ``KERAS_BACKEND=tensorflow``. TensorFlow 2.21 prints a oneDNN notice before its log
    level applies; it is filtered out of the import's stderr (other lines pass through).
    oneDNN stays on: measured here it makes training 2× and inference 1.5× faster. ``threads``
    (default: the CPUs this process may use) becomes TensorFlow's intra-op pool size, with
    one inter-op thread: the model is a chain of layers, so inter-op parallelism buys nothing
    and would oversubscribe a small machine. The pool sizes can only be set before
    TensorFlow starts its runtime; if someone started it earlier, theirs stay.
    """
    global _tf_module
    if _tf_module is not None:
        return _tf_module
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with quiet_stderr():
        import tensorflow as tf  # heavy (seconds, ~500 MB): imported only when first needed

    threads = _cpu_count() if threads is None else threads
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, int(threads)))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # runtime already initialised by another user of TensorFlow in this process
    _tf_module = tf
    return tf


def load_keras(threads: int | None = None) -> Any:
    """The ``keras`` module (Keras 3 on the TensorFlow backend), after :func:`load_tensorflow`."""
    load_tensorflow(threads)
    import keras  # heavy: pulls in TensorFlow

    return keras


@contextlib.contextmanager
def quiet_stderr(noise: Sequence[str] | None = IMPORT_NOISE) -> Iterator[None]:
    """Capture file descriptor 2 for a block (C++ libraries write there directly, bypassing
    ``sys.stderr``); afterwards re-emit the captured lines except those containing one of
    ``noise``. ``noise=None`` drops everything (the TFLite converter's logging).

    Does nothing when there is no usable fd 2 (e.g. an embedded interpreter).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if noise is not None:
                capture.seek(0)
                kept = [
                    line
                    for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not any(n in line for n in noise)
                ]
                if kept:
                    sys.stderr.write("".join(kept))
