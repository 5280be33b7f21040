"""Score the held-out TEST sources once with a finished model directory (served path).
Usage: python -m realart.score_test CONFIG.json MODEL_DIR"""
import json
import sys
from pathlib import Path

from realart.build_final import score_test
from realart.heads import Cache

cfg = json.loads(Path(sys.argv[1]).read_text())
out = Path(sys.argv[2])
res = score_test(out, Cache(cfg["backbone"], cfg["subset"]), cfg)
m = json.loads((out / "metrics.json").read_text())
m["test"] = {"what": "held-out realart test sources (test_sources.json), scored ONCE through load_classifier (LiteRT int8)", **res}
m["tflite"] = json.loads((out / "labels.json").read_text())["tflite"]
(out / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
