"""The headless examples run end to end (with a small random-weight model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segment_nuclei(checkpoint):
    labels = load("segment_nuclei").main(str(checkpoint))
    assert labels.shape == (384, 384) and labels.dtype == np.uint32


def test_track_cells_streams_to_tiff(checkpoint, tmp_path):
    import tifffile

    out = tmp_path / "tracks.tif"
    labels = load("track_cells").main(str(checkpoint), str(out))
    assert tifffile.imread(out).shape == labels.shape == (12, 192, 192)


def test_segment_everything(checkpoint):
    labels = load("segment_everything").main(str(checkpoint), points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    assert labels.shape == (303, 384)


def test_napari_example_is_valid_python():
    compile((EXAMPLES / "open_in_napari.py").read_text(), "open_in_napari.py", "exec")
