"""Choose how many orientations the built-in model's prompts are averaged over, on validation
images, and record it in its metadata (`scripts/ship_model.py` does the same for a new model).

`python scripts/choose_orientations.py VAL_DIR` (e.g. ../shared/data/dsb2018/val): measures
click, box and click + 2 corrections with 1, 4 and 8 orientations and the time of a 512 px
embedding for each, then writes the best count whose embedding fits in 0.25 s into
src/napari_sam2/weights/<built-in>.json as `prompt_orientations`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_sam2 import load_model
from napari_sam2.checkpoints.shipped import SHIPPED_MODEL
from napari_sam2.training.orientation_choice import orientation_metadata
from napari_sam2.training.real_eval import load_samples

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "napari_sam2" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("val", type=Path, help="a labelled validation folder (images/ + labels/)")
    args = parser.parse_args()
    model = load_model(WEIGHTS / f"{SHIPPED_MODEL}.pt", device="cpu")
    chosen = orientation_metadata(model, load_samples(args.val), args.val.name)
    path = WEIGHTS / f"{SHIPPED_MODEL}.json"
    metadata = json.loads(path.read_text())
    metadata["prompt_orientations"] = chosen
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"{SHIPPED_MODEL}: prompts averaged over {chosen['orientations']} orientation(s), written to {path}")


if __name__ == "__main__":
    main()
