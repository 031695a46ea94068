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
