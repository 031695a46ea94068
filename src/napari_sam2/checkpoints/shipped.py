"""The model that ships inside the package: small, trained on synthetic microscopy, offline.

It is the default whenever no official checkpoint is in the cache, so that everything works
on a machine without internet. How it was trained and how well it does: docs/shipped_model.md
and the metadata file beside the weights.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

SHIPPED_MODEL = "napari_sam2_micro"


def shipped_path() -> Path:
    """Where the shipped checkpoint lives inside the package (it may not be there yet)."""
    return Path(str(resources.files("napari_sam2") / "weights" / f"{SHIPPED_MODEL}.pt"))


def has_shipped_model() -> bool:
    return shipped_path().is_file()


def shipped_weights() -> Path:
    """Path of the shipped checkpoint (official `{"model": state_dict}` format)."""
    path = shipped_path()
    if not path.exists():
        raise FileNotFoundError(
            f"The shipped model {path.name} is missing from this installation of napari-sam2; "
            "reinstall the package (the wheel and the source tree both contain it)."
        )
    return path


def shipped_metadata() -> dict:
    """How the shipped model was trained (command, seed, steps) and its measured metrics."""
    return json.loads(shipped_weights().with_suffix(".json").read_text())
