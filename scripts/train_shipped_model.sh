#!/usr/bin/env bash
# Reproduces the built-in model: `bash scripts/train_shipped_model.sh [RUN_DIR]`.
# Sets everything up (scripts/setup.sh), then trains napari_sam2_micro on synthetic microscopy on
# the CPU in two phases (running it again resumes either): images and clips from scratch (about
# 80 minutes on 2 cores), then a tracking phase that trains the decoder and memory on 8-frame
# clips with memory attention restarted local (about 70 minutes). Measures the result on held-out
# data and installs weights + metadata into src/napari_sam2/weights/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

RUN="${1:-$ROOT/runs/napari_sam2_micro}"
IMAGES=(train "$RUN/images" --from-scratch napari_sam2_micro --synthetic --steps 3600 --images-per-step 6
    --video-every 3 --lr 3e-4 --focal-weight 1 --eval-every 400 --seed 0 --device cpu)
TRACKING=(train "$RUN/tracking" --model "$RUN/images/best.pt" --synthetic --trainable decoder+memory
    --steps 2000 --images-per-step 2 --video-every 1 --clip-frames 8 --local-memory-init --lr 3e-4
    --focal-weight 1 --eval-every 250 --seed 1 --device cpu)

section "napari-sam2 ${IMAGES[*]}"
"$PY" -m napari_sam2 "${IMAGES[@]}"
section "napari-sam2 ${TRACKING[*]}"
"$PY" -m napari_sam2 "${TRACKING[@]}"
section "measure and install"
COMMAND="napari-sam2 ${IMAGES[*]/#$RUN/RUN_DIR} && napari-sam2 ${TRACKING[*]/#$RUN/RUN_DIR}"
"$PY" scripts/ship_model.py "$RUN/tracking" --command "$COMMAND"
