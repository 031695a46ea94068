"""Where downloaded weights are kept."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "NAPARI_SAM2_CACHE"


def cache_dir() -> Path:
    """$NAPARI_SAM2_CACHE, else the platform's user cache folder + /napari-sam2."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "napari-sam2"
