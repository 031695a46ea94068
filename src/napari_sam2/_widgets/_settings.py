"""The widgets' remembered choices, kept as a small JSON file in the user's config folder."""

from __future__ import annotations

import json
from typing import Any

from ..checkpoints.cache import CONFIG_ENV, config_dir  # noqa: F401 (re-exported for the widgets)

FILENAME = "widgets.json"


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
