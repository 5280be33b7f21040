"""Benchmark the classify stage as the daemon serves it, and against a naive ``model.predict``.

One command, one run::

    python bench/classify_speed.py [--model MODEL_DIR] [--json]

It measures, on this machine (the figures in model/MODEL_CARD.md and the README come from a
2-core machine):

- model load time (``modbot.classify.load_classifier``: LiteRT when the model directory has a
  checked export, so no TensorFlow);
- single-image latency p50/p95 of the classify step (``predict([image])``: preprocessing
  included) on a 224×224 px input;
- decode + resize + classify of a 1500×1500 px JPEG held in memory
  (``modbot.decode.open_image`` with reduced-scale decoding, then ``predict``), and of a
  1500×1000 px one (elongated: with the model's ``"tiles"`` crop mode it is seen as two
  squares, so classified twice; ``crops`` in the output says which mode was served);
- batch throughput (``predict_batch`` on preprocessed batches of 32; also with preprocessing
  of 224 px images);
- resident memory (VmRSS) of that serving process after loading and after classifying 500 and
  1,000 images (growth between 500 and 1,000 shows a leak);
- the same single-image latency through a naive ``keras.Model.predict`` per image and through
  ``KerasClassifier`` (a traced ``tf.function``), and the ratio naive / served.

The serving measurements run in a child process that never imports TensorFlow (as the
daemon's would not), so its memory figures are the daemon's; the Keras ones run in this
process afterwards. Prints a table; with ``--json`` the last line is one JSON object with at
least ``p50_ms``, ``p95_ms``, ``decode_classify_p50_ms``, ``batch_images_per_s``,
``rss_mb_after_1000``, ``speedup_vs_predict``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent

SAMPLE = REPO / "tests" / "data" / "pacs_sample"


def rss_mb() -> float:
    """Resident set size of this process in MiB (VmRSS from /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample_images(size: int = 224) -> list[Any]:
    """The 12 PACS sample images of the repository, as RGB Pillow images of ``size`` px."""
    from PIL import Image

    out = []
    for p in sorted(SAMPLE.glob("*/*")):
        if p.suffix in (".jpg", ".png"):
            with Image.open(p) as im:
                out.append(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
    return out


def big_jpeg(side: int = 1500, height: int | None = None) -> bytes:
    """A ``side``×``height`` (default square) JPEG (quality 90) made from a PACS sample photo,
    upscaled, with sensor-like noise so that it compresses like a photograph (about 1 MB)."""
    from PIL import Image

    height = height or side
    with Image.open(SAMPLE / "photography" / "giraffe_084_0001.jpg") as im:
        base = np.asarray(im.convert("RGB").resize((side, height), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = np.random.default_rng(0).integers(-12, 13, size=base.shape, dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 of durations in seconds, returned in milliseconds."""
    a = np.asarray(samples) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def time_calls(fn: Any, n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def serve_measurements(model_dir: str | None, n_single: int, n_rss: int) -> dict[str, Any]:
    """The serving path, in this process (which must not import TensorFlow)."""
    from modbot.classify import load_classifier, preprocess
    from modbot.decode import open_image

    rss_start = rss_mb()
    t = time.perf_counter()
    clf = load_classifier(model_dir)
    load_s = time.perf_counter() - t
    rss_loaded = rss_mb()
    images = sample_images(224)
    single = time_calls(lambda: clf.predict([images[0]]), n_single)
    jpeg = big_jpeg()
    decode = time_calls(lambda: clf.predict([open_image(jpeg, clf.input_size)]), max(20, n_single // 5))
    decode_only = time_calls(lambda: preprocess([open_image(jpeg, clf.input_size)], clf.input_size), 20)
    wide = big_jpeg(1500, 1000)
    decode_wide = time_calls(lambda: clf.predict([open_image(wide, clf.input_size)]), max(20, n_single // 5))
    batch = preprocess((images * 3)[:32], clf.input_size)
    batches = time_calls(lambda: clf.predict_batch(batch), 20, warmup=2)
    with_pre = time_calls(lambda: clf.predict((images * 3)[:32]), 10, warmup=1)
    rss_500 = rss_1000 = None
    for i in range(n_rss):
        clf.predict([images[i % len(images)]])
        if i + 1 == n_rss // 2:
            rss_500 = rss_mb()
    rss_1000 = rss_mb()
    p50, p95 = percentiles(single)
    d50, d95 = percentiles(decode)
    return {
        "backend": type(clf).__name__,
        "model_version": clf.version,
        "input_size": list(clf.input_size),
        "threads": getattr(clf, "threads", None),
        "load_s": load_s,
        "p50_ms": p50,
        "p95_ms": p95,
        "decode_classify_p50_ms": d50,
        "decode_classify_p95_ms": d95,
        "decode_resize_p50_ms": percentiles(decode_only)[0],
        "crops": getattr(clf, "crops", "centre"),
        "decode_classify_wide_p50_ms": percentiles(decode_wide)[0],
        "decode_classify_wide_p95_ms": percentiles(decode_wide)[1],
        "jpeg_bytes": len(jpeg),
        "batch_size": 32,
        "batch_images_per_s": 32 / float(np.median(batches)),
        "batch_images_per_s_with_preprocess": 32 / float(np.median(with_pre)),
        "rss_mb_start": rss_start,
        "rss_mb_loaded": rss_loaded,
        "rss_mb_after_500": rss_500,
        "rss_mb_after_1000": rss_1000,
        "n_classified_for_rss": n_rss,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def keras_measurements(model_dir: str | None, n: int) -> dict[str, Any]:
    """Naive ``model.predict`` per image and the traced ``KerasClassifier`` path."""
    from modbot.classify import preprocess
    from modbot.ml.keras_classifier import KerasClassifier

    clf = KerasClassifier.load(model_dir)
    images = sample_images(224)
    x = preprocess([images[0]], clf.input_size).astype(np.float32)
    naive = time_calls(lambda: clf._model.predict(x, verbose=0), max(10, n // 10), warmup=2)
    traced = time_calls(lambda: clf.predict([images[0]]), n)
    return {"keras_predict_p50_ms": percentiles(naive)[0], "keras_tf_function_p50_ms": percentiles(traced)[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--n", type=int, default=200, help="single-image calls timed")
    parser.add_argument("--rss-images", type=int, default=1000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(serve_measurements(args.model, args.n, args.rss_images)))
        return 0
    cmd = [sys.executable, __file__, "--child", "--n", str(args.n), "--rss-images", str(args.rss_images)]
    if args.model:
        cmd += ["--model", args.model]
    child = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if child.returncode != 0:
        sys.stderr.write(child.stderr)
        return child.returncode
    res = json.loads(child.stdout.strip().splitlines()[-1])
    res.update(keras_measurements(args.model, args.n))
    res["speedup_vs_predict"] = res["keras_predict_p50_ms"] / res["p50_ms"]
    res["cpu_count"] = len(os.sched_getaffinity(0))
    res["loadavg_1min"] = os.getloadavg()[0]
    rows = [
        ("serving backend", f"{res['backend']} ({res['threads']} threads), model {res['model_version']}, "
                            f"input {res['input_size'][0]} px"),
        ("model load", f"{res['load_s'] * 1000:.0f} ms"),
        ("classify one 224 px image, p50 / p95", f"{res['p50_ms']:.2f} / {res['p95_ms']:.2f} ms  (target p50 <= 5)"),
        ("decode+resize+classify 1500 px JPEG, p50 / p95",
         f"{res['decode_classify_p50_ms']:.1f} / {res['decode_classify_p95_ms']:.1f} ms  (target p50 <= 30; "
         f"decode+resize alone {res['decode_resize_p50_ms']:.1f} ms, {res['jpeg_bytes'] / 1e6:.2f} MB file)"),
        (f"the same, 1500x1000 px JPEG ({res['crops']} crops), p50 / p95",
         f"{res['decode_classify_wide_p50_ms']:.1f} / {res['decode_classify_wide_p95_ms']:.1f} ms"),
        ("batch throughput (32, preprocessed)", f"{res['batch_images_per_s']:.0f} images/s  (target >= 200)"),
        ("batch throughput incl. preprocessing", f"{res['batch_images_per_s_with_preprocess']:.0f} images/s"),
        ("RSS loaded / after 500 / after 1000",
         f"{res['rss_mb_loaded']:.0f} / {res['rss_mb_after_500']:.0f} / {res['rss_mb_after_1000']:.0f} MB "
         f"(target <= 200, not growing; TensorFlow imported: {res['tensorflow_imported']})"),
        ("naive keras model.predict per image, p50", f"{res['keras_predict_p50_ms']:.1f} ms"),
        ("KerasClassifier (tf.function), p50", f"{res['keras_tf_function_p50_ms']:.1f} ms"),
        ("speed-up served vs model.predict", f"{res['speedup_vs_predict']:.1f}x"),
        ("machine", f"{res['cpu_count']} CPUs, 1-min load average {res['loadavg_1min']:.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
