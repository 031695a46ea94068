#!/usr/bin/env bash
# Reproduces the built-in model: `bash scripts/train_shipped_model.sh [RUN_DIR]`.
# Sets everything up (scripts/setup.sh), trains napari_sam2_micro from scratch on synthetic
# microscopy on the CPU (about 80 minutes on 2 cores; running it again resumes), measures it on
# held-out data and installs weights + metadata into src/napari_sam2/weights/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

RUN="${1:-$ROOT/runs/napari_sam2_micro}"
TRAIN=(train "$RUN" --from-scratch napari_sam2_micro --synthetic --steps 3600 --images-per-step 6
    --video-every 3 --lr 3e-4 --focal-weight 1 --eval-every 400 --seed 0 --device cpu)

section "napari-sam2 ${TRAIN[*]}"
"$PY" -m napari_sam2 "${TRAIN[@]}"
section "measure and install"
"$PY" scripts/ship_model.py "$RUN" --command "napari-sam2 ${TRAIN[*]/#$RUN/RUN_DIR}"
