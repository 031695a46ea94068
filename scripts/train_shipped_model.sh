#!/usr/bin/env bash
# Reproduces the built-in model: `bash scripts/train_shipped_model.sh [RUN_DIR] [SHARED_DATA]`.
# Sets everything up (scripts/setup.sh), then trains napari_sam2_micro on the CPU in six phases
# (running it again resumes any): on synthetic microscopy, images and clips from scratch at 256 px
# (about 80 minutes on 2 cores), a tracking phase that trains the decoder and memory on 8-frame
# clips with memory attention restarted local (about 70 minutes), then everything fine-tuned at
# 384 px input (about 40 minutes), once more at a lower learning rate (about 30 minutes) and at
# 512 px input (about 55 minutes); then on real nuclei, DSB 2018 train mixed with synthetic
# images and clips (scripts/train_real_phase.sh, about 65 minutes).
# Chooses segment-everything's filters on DSB 2018 val, measures the result on the real sets and
# on held-out synthetic data and installs weights + metadata into src/napari_sam2/weights/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

RUN="${1:-$ROOT/runs/napari_sam2_micro}"
SHARED="${2:-$ROOT/../shared/data}"
IMAGES=(train "$RUN/images" --from-scratch napari_sam2_micro --image-size 256 --synthetic --steps 3600 --images-per-step 6
    --video-every 3 --lr 3e-4 --focal-weight 1 --eval-every 400 --seed 0 --device cpu)
TRACKING=(train "$RUN/tracking" --model "$RUN/images/best.pt" --image-size 256 --synthetic --trainable decoder+memory
    --steps 2000 --images-per-step 2 --video-every 1 --clip-frames 8 --local-memory-init --lr 3e-4
    --focal-weight 1 --eval-every 250 --seed 1 --device cpu)
FINETUNE=(train "$RUN/finetune384" --model "$RUN/tracking/best.pt" --image-size 384 --synthetic --synthetic-size 256
    --trainable all --steps 500 --images-per-step 6 --video-every 3 --clip-frames 8 --lr 1e-4 --warmup 30
    --focal-weight 1 --eval-every 100 --seed 4 --device cpu)
MORE=(train "$RUN/more384" --model "$RUN/finetune384/best.pt" --image-size 384 --synthetic --synthetic-size 256
    --trainable all --steps 500 --images-per-step 6 --video-every 3 --clip-frames 8 --lr 5e-5 --warmup 20
    --focal-weight 1 --eval-every 100 --seed 5 --device cpu)
AT512=(train "$RUN/finetune512" --model "$RUN/more384/best.pt" --image-size 512 --synthetic --synthetic-size 256
    --trainable all --steps 400 --images-per-step 6 --video-every 3 --clip-frames 8 --lr 1e-4 --warmup 30
    --focal-weight 1 --eval-every 100 --seed 8 --device cpu)

section "napari-sam2 ${IMAGES[*]}"
"$PY" -m napari_sam2 "${IMAGES[@]}"
section "napari-sam2 ${TRACKING[*]}"
"$PY" -m napari_sam2 "${TRACKING[@]}"
section "napari-sam2 ${FINETUNE[*]}"
"$PY" -m napari_sam2 "${FINETUNE[@]}"
section "napari-sam2 ${MORE[*]}"
"$PY" -m napari_sam2 "${MORE[@]}"
section "napari-sam2 ${AT512[*]}"
"$PY" -m napari_sam2 "${AT512[@]}"
bash "$ROOT/scripts/train_real_phase.sh" "$RUN/real" "$SHARED" "$RUN/finetune512/best.pt"
section "calibrate, measure and install"
COMMAND="napari-sam2 ${IMAGES[*]/#$RUN/RUN_DIR} && napari-sam2 ${TRACKING[*]/#$RUN/RUN_DIR} && napari-sam2 ${FINETUNE[*]/#$RUN/RUN_DIR}"
COMMAND+=" && napari-sam2 ${MORE[*]/#$RUN/RUN_DIR} && napari-sam2 ${AT512[*]/#$RUN/RUN_DIR}"
COMMAND+=" && bash scripts/train_real_phase.sh RUN_DIR/real SHARED_DATA RUN_DIR/finetune512/best.pt"
"$PY" scripts/ship_model.py "$RUN/real" --command "$COMMAND" --calibrate "$SHARED/dsb2018/val" --shared "$SHARED"
