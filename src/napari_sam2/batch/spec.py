"""What a batch job does, as a small picklable record sent to every worker."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODES = ("everything", "prompts", "propagate")
DIRECTIONS = ("both", "forward", "backward")
OUTPUT_SUFFIXES = {"tif": "_labels.tif", "zarr": "_labels.zarr"}  # output_format -> <stem><suffix>


class BatchError(ValueError):
    """A batch that cannot run as asked (no inputs, a bad option, no cluster), saying what to do."""


@dataclass(frozen=True)
class BatchSpec:
    """mode: 'everything' (automatic masks of every image or slice), 'prompts' (the objects of a
    prompts file on their prompted frames) or 'propagate' (track through stacks; objects from a
    prompts file, else from segmenting the first frame). model: preset name, checkpoint path or
    None for the default. amg: AutomaticMaskGenerator parameters. output_format: 'tif' (label
    TIFFs) or 'zarr' (OME-Zarr label folders, a stack's frames written as they finish)."""

    mode: str = "everything"
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    image_size: int | None = None
    prompts: str | None = None  # a prompts file shared by every input without its own
    direction: str = "both"
    amg: dict[str, Any] = field(default_factory=dict)
    output_format: str = "tif"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BatchError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}.")
        if self.direction not in DIRECTIONS:
            raise BatchError(f"direction must be one of {', '.join(DIRECTIONS)}, not {self.direction!r}.")
        if self.output_format not in OUTPUT_SUFFIXES:
            raise BatchError(
                f"output format must be one of {', '.join(OUTPUT_SUFFIXES)}, not {self.output_format!r}."
            )
        check_amg(self.amg)

    @property
    def output_suffix(self) -> str:
        """What follows an input's stem in its output's name: `_labels.tif` or `_labels.zarr`."""
        return OUTPUT_SUFFIXES[self.output_format]

    def settings(self) -> dict[str, Any]:
        """The settings that decide the outputs (the device does not), as plain JSON values."""
        data = asdict(self)
        data.pop("device")
        data["amg"] = {k: _plain(v) for k, v in sorted(self.amg.items())}
        if self.model and Path(self.model).is_file():
            stat = Path(self.model).stat()
            data["model_file"] = [stat.st_size, stat.st_mtime_ns]
        return data

    def fingerprint(self) -> str:
        """A short hash of `settings()`: an output made with other settings is not reused."""
        text = json.dumps(self.settings(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_amg(params: dict[str, Any]) -> None:
    """Raise BatchError on a parameter AutomaticMaskGenerator does not take."""
    from ..engine.automatic import (
        AutomaticMaskGenerator,  # light: the module is imported by workers anyway
    )

    allowed = set(inspect.signature(AutomaticMaskGenerator.__init__).parameters) - {"self", "model", "precision"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BatchError(
            f"unknown segment-everything parameters {unknown}; allowed: {', '.join(sorted(allowed))}."
        )


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
