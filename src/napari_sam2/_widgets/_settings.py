"""The widgets' remembered choices, kept as a small JSON file in the user's config folder."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

CONFIG_ENV = "NAPARI_SAM2_CONFIG_DIR"
FILENAME = "widgets.json"


def config_dir() -> Path:
    """$NAPARI_SAM2_CONFIG_DIR, else the platform's user config folder + /napari-sam2."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "napari-sam2"


def load() -> dict[str, Any]:
    """The saved choices, or {} when there are none or the file cannot be read."""
    try:
        data = json.loads((config_dir() / FILENAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(values: dict[str, Any]) -> None:
    """Merge `values` into the saved choices; failures to write are ignored (nothing is lost)."""
    data = load()
    data.update(values)
    try:
        folder = config_dir()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FILENAME).write_text(json.dumps(data, indent=2, sort_keys=True))
    except OSError:
        pass
