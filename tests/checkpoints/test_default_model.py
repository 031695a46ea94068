"""The default model (cached official, else shipped, else downloaded tiny), and the demo."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_sam2 import load_model
from napari_sam2.checkpoints import loading, shipped
from napari_sam2.checkpoints.loading import default_model
from napari_sam2.checkpoints.shipped import SHIPPED_MODEL


def test_default_is_a_cached_official_model_first(empty_cache, fake_shipped):
    assert default_model() == SHIPPED_MODEL
    (empty_cache / "sam2_hiera_large.pt").write_bytes(b"")
    assert default_model() == "sam2_hiera_large"
    (empty_cache / "sam2.1_hiera_small.pt").write_bytes(b"")
    assert default_model() == "sam2.1_hiera_small"  # 2.1 before 2, small before large


def test_without_shipped_weights_the_default_is_tiny(empty_cache, monkeypatch, tmp_path):
    monkeypatch.setattr(shipped, "shipped_path", lambda: tmp_path / "nothing.pt")
    assert default_model() == "sam2.1_hiera_tiny"
    with pytest.raises(Exception, match="Offline mode.*sam2.1_hiera_tiny"):
        load_model(device="cpu")


def test_load_model_without_a_name_loads_the_shipped_model_offline(empty_cache, fake_shipped):
    model = load_model(device="cpu")
    assert model.config.name == SHIPPED_MODEL and model.image_size == 512
    assert load_model(SHIPPED_MODEL, device="cpu").config.d_model == 128
    assert loading.default_model() == SHIPPED_MODEL


def test_demo_segments_and_tracks_offline(tmp_path, checkpoint):
    env = {"NAPARI_SAM2_OFFLINE": "1", "NAPARI_SAM2_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "napari_sam2", "demo", "--headless", "--model", str(checkpoint),
         "--out", str(tmp_path / "demo"), "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "mean IoU over all frames" in out.stdout and "labels.tif" in out.stdout
    labels = tifffile.imread(tmp_path / "demo" / "labels.tif")
    assert labels.shape == (30, 256, 256) and labels.dtype == np.uint32
    assert (tmp_path / "demo" / "overlay.png").stat().st_size > 1000
