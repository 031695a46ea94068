#!/usr/bin/env bash
# The project's main job: `bash scripts/demo.sh [demo options...]`.
# Sets everything up (scripts/setup.sh), then runs `napari-sam2 demo`: segmentation on the
# built-in default, offline.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

section "napari-sam2 demo $*"
exec "$PY" -m napari_sam2 demo "$@"
