#!/usr/bin/env bash
# The built-in model's real-data phase (phase 6):
# `bash scripts/train_real_phase.sh [RUN_DIR] [SHARED_DATA] [BASE_MODEL] [TRAIN_OPTIONS...]`
# (TRAIN_OPTIONS, e.g. `--steps 1300 --seed 12`, override the defaults below).
# Fine-tunes BASE_MODEL (default: the built-in napari_sam2_micro; the shipped model was made from
# the phase-5 weights, `git show 7228410:src/napari_sam2/weights/napari_sam2_micro.pt > phase5.pt`
# and its .json) (all weights, 512 px input) on DSB 2018 train nuclei
# (scale 0.5-2x, crops, jittered intensity limits, noise, blur, flips, quarter turns, gamma) mixed
# with 30% synthetic images and time-lapse clips (the memory path needs clips), choosing the best
# step on DSB 2018 val. About 5 s per step on 2 free cores (800 steps: 65 minutes).
# Running it again resumes (state.pt: saved every 50 steps, every few minutes and on Ctrl-C).
# Then measures the result on the real sets. To install it: `python scripts/ship_model.py RUN_DIR
# --command "..." --calibrate SHARED/dsb2018/val --shared SHARED` (docs/shipped_model.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

RUN="${1:-$ROOT/runs/real}"
SHARED="${2:-$ROOT/../shared/data}"
BASE="${3:-napari_sam2_micro}"
REAL=(train "$RUN" --model "$BASE" --data "$SHARED/dsb2018/train" --synthetic --synthetic-share 0.3 --synthetic-size 256
    --val "$SHARED/dsb2018/val" --image-size 512 --trainable all --steps 800 --images-per-step 4
    --objects-per-image 8 --video-every 4 --clip-frames 6 --lr 1e-4 --warmup 30 --focal-weight 1
    --eval-every 50 --seed 11 --device cpu "${@:4}")

section "napari-sam2 ${REAL[*]}"
"$PY" -m napari_sam2 "${REAL[@]}"
section "measure on the real sets"
"$PY" -m napari_sam2 evaluate --model "$RUN/best.pt" --shared "$SHARED" --synthetic --json "$RUN/real_eval.json"
