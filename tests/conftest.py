"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest
import torch

from napari_sam2 import build_model


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A small random-weight model saved in the official format, with objects made present
    (positive object-score bias) so that masks are not all empty."""
    torch.manual_seed(0)
    model = build_model("sam2.1_hiera_test", device="cpu")
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    path = tmp_path_factory.mktemp("model") / "test_model.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def present_model():
    """The small random-weight test model at 128 px input, objects made present (positive
    object-score bias) so that masks are not all empty; for tests that only run inference."""
    torch.manual_seed(0)
    model = build_model("sam2.1_hiera_test", device="cpu", image_size=128)
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return model


@pytest.fixture
def notes():
    """Error notifications napari shows during a test, as text."""
    from napari.utils.notifications import notification_manager

    seen: list[str] = []

    def record(event):
        notification = getattr(event, "value", event)
        if str(notification.severity).lower() == "error":
            seen.append(str(notification.message))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def own_settings(tmp_path, monkeypatch):
    """Widget settings in a fresh folder, and never a download (for the widget test modules)."""
    monkeypatch.setenv("NAPARI_SAM2_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NAPARI_SAM2_EMBEDDINGS", str(tmp_path / "embeddings"))  # no shared cache
    monkeypatch.setenv("NAPARI_SAM2_PRECOMPUTE", "0")  # tests that count embeddings; on in its own tests
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A cache folder with no official weights, offline."""
    from napari_sam2.checkpoints.cache import CACHE_ENV

    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv(CACHE_ENV, str(folder))
    monkeypatch.setenv("NAPARI_SAM2_OFFLINE", "1")
    return folder


@pytest.fixture
def fake_shipped(tmp_path, monkeypatch):
    """A random checkpoint of the built-in architecture standing in for the shipped one."""
    from napari_sam2.checkpoints import shipped

    torch.manual_seed(0)
    path = tmp_path / "weights" / f"{shipped.SHIPPED_MODEL}.pt"
    path.parent.mkdir()
    torch.save({"model": build_model(shipped.SHIPPED_MODEL, device="cpu").state_dict()}, path)
    monkeypatch.setattr(shipped, "shipped_path", lambda: path)
    return path
