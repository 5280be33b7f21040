"""The live swap: one model per call, warm-up before serving
(:mod:`modbot.learning.serving`)."""

from __future__ import annotations

import threading
import time

import pytest
from support import SlowModel

from modbot.errors import ModelError


def test_swappable_classifier_classifies_each_call_with_one_model():
    from modbot.learning.serving import SwappableClassifier

    swappable = SwappableClassifier(SlowModel("m0"))
    mixed, wrong_version, calls = [], [], []
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            preds = swappable.predict([object()] * 5)
            versions = {p.model_version for p in preds}
            calls.append(versions)
            if len(versions) != 1:
                mixed.append(versions)
            if swappable.version not in versions:       # what the daemon records afterwards
                wrong_version.append((swappable.version, versions))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(1, 40):
        swappable.swap(SlowModel(f"m{i}", labels=("digital", "painting", "photography")[: 2 + i % 2]))
        time.sleep(0.003)
    stop.set()
    for t in threads:
        t.join()
    assert swappable.swaps == 39 and swappable.current.version == "m39"
    assert len(calls) > 20 and len({v for c in calls for v in c}) > 3   # swaps did overlap calls
    assert mixed == [] and wrong_version == []

    with pytest.raises(ModelError):
        swappable.swap(SlowModel("bad", broken=True))       # fails its warm-up
    assert swappable.current.version == "m39"
