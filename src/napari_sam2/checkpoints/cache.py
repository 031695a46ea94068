"""Where napari-sam2 keeps files for the user: downloaded weights (cache) and settings (config)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "NAPARI_SAM2_CACHE"
CONFIG_ENV = "NAPARI_SAM2_CONFIG_DIR"

# Per platform: (environment variable, fallback below the home folder), for caches and configs.
_PLATFORM_BASES = {
    "cache": {
        "win32": ("LOCALAPPDATA", ("AppData", "Local")),
        "darwin": (None, ("Library", "Caches")),
        "other": ("XDG_CACHE_HOME", (".cache",)),
    },
    "config": {
        "win32": ("APPDATA", ("AppData", "Roaming")),
        "darwin": (None, ("Library", "Application Support")),
        "other": ("XDG_CONFIG_HOME", (".config",)),
    },
}


def _user_dir(kind: str, override_env: str) -> Path:
    override = os.environ.get(override_env)
    if override:
        return Path(override).expanduser()
    bases = _PLATFORM_BASES[kind]
    env, fallback = bases.get(sys.platform, bases["other"])
    base = os.environ.get(env) if env else None
    return (Path(base) if base else Path.home().joinpath(*fallback)) / "napari-sam2"


def cache_dir() -> Path:
    """$NAPARI_SAM2_CACHE, else the platform's user cache folder + /napari-sam2."""
    return _user_dir("cache", CACHE_ENV)


def config_dir() -> Path:
    """$NAPARI_SAM2_CONFIG_DIR, else the platform's user config folder + /napari-sam2."""
    return _user_dir("config", CONFIG_ENV)
