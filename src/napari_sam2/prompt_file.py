"""The prompts file: a JSON record of what was clicked where, so that a result can be replayed.

Written by the napari widgets, read by the command line and the Python API (see docs/prompts.md).
Coordinates are (x, y) pixels of a frame, as everywhere in the engine; frames count from 0.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "napari-sam2-prompts"
VERSION = 1


class PromptsFileError(ValueError):
    """A prompts file that cannot be used, naming the entry at fault."""


@dataclass
class Prompt:
    """Prompts for one object on one frame: clicks, a box, and/or a mask (file or RLE)."""

    frame: int = 0
    points: list[list[float]] | None = None  # [[x, y], ...]
    labels: list[int] | None = None  # 1 foreground, 0 background
    box: list[float] | None = None  # [x0, y0, x1, y1]
    mask: str | dict | None = None  # a path (relative to the prompts file) or {"size", "counts"} RLE


@dataclass
class ObjectPrompts:
    id: int
    prompts: list[Prompt] = field(default_factory=list)


@dataclass
class PromptSession:
    """Everything needed to reproduce a segmentation."""

    objects: list[ObjectPrompts] = field(default_factory=list)
    image: dict[str, Any] = field(default_factory=dict)  # path, stack_axis, channels, channel_axis
    model: dict[str, Any] = field(default_factory=lambda: {"name": None, "precision": "auto"})
    normalization: dict[str, Any] | None = field(default_factory=lambda: {"method": "auto"})
    mode: str = "propagate"  # "propagate" through a stack, or "segment" each prompted frame alone
    propagation: dict[str, Any] = field(default_factory=lambda: {"direction": "both"})

    def add(self, obj_id: int, prompt: Prompt) -> None:
        for obj in self.objects:
            if obj.id == obj_id:
                obj.prompts.append(prompt)
                return
        self.objects.append(ObjectPrompts(obj_id, [prompt]))

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict:
        data = {"format": FORMAT, "version": VERSION, **asdict(self)}
        for obj in data["objects"]:
            obj["prompts"] = [{k: v for k, v in p.items() if v is not None} for p in obj["prompts"]]
        return data

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def from_dict(cls, data: dict, where: str = "prompts") -> PromptSession:
        if data.get("format") != FORMAT:
            raise PromptsFileError(f"{where} is not a napari-sam2 prompts file (format {data.get('format')!r}).")
        if int(data.get("version", 0)) > VERSION:
            raise PromptsFileError(f"{where} has version {data['version']}; this napari-sam2 reads up to {VERSION}.")
        objects = []
        for i, obj in enumerate(data.get("objects", [])):
            if "id" not in obj:
                raise PromptsFileError(f"{where}: object {i} has no id.")
            prompts = [_prompt(p, f"{where}: object {obj['id']}, prompt {j}") for j, p in enumerate(obj.get("prompts", []))]
            objects.append(ObjectPrompts(int(obj["id"]), prompts))
        ids = [o.id for o in objects]
        if len(ids) != len(set(ids)) or any(i <= 0 for i in ids):
            raise PromptsFileError(f"{where}: object ids must be unique positive integers, got {ids}.")
        session = cls(objects=objects)
        for key in ("image", "model", "normalization", "mode", "propagation"):
            if key in data:
                setattr(session, key, data[key])
        if session.mode not in ("propagate", "segment"):
            raise PromptsFileError(f"{where}: mode must be 'propagate' or 'segment', not {session.mode!r}.")
        return session

    @classmethod
    def load(cls, path: str | Path) -> PromptSession:
        """A JSON prompts file, or a CSV with columns object,frame,x,y[,label] (clicks only)."""
        path = Path(path)
        if not path.is_file():
            raise PromptsFileError(f"No prompts file at {path}.")
        if path.suffix.lower() == ".csv":
            return cls.from_csv(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise PromptsFileError(f"{path} is not valid JSON: {err}") from None
        session = cls.from_dict(data, str(path))
        session.image.setdefault("base", str(path.parent))
        return session

    @classmethod
    def from_csv(cls, path: Path) -> PromptSession:
        session = cls()
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        needed = {"object", "frame", "x", "y"}
        if not rows or not needed <= set(rows[0]):
            raise PromptsFileError(f"{path}: a prompts CSV needs the columns object, frame, x, y (and optionally label).")
        grouped: dict[tuple[int, int], Prompt] = {}
        for row in rows:
            key = (int(row["object"]), int(row["frame"]))
            if key not in grouped:
                grouped[key] = Prompt(frame=key[1], points=[], labels=[])
                session.add(key[0], grouped[key])
            grouped[key].points.append([float(row["x"]), float(row["y"])])
            grouped[key].labels.append(int(row.get("label") or 1))
        session.image["base"] = str(path.parent)
        return session

    def merged(self, prompts: list[Prompt], frame_hw: tuple[int, int]):
        """(points, labels, box, mask) of several prompts of one object and frame: all clicks,
        the last box and the union of the masks (None where there are none)."""
        points, labels, box, mask = [], [], None, None
        for p in prompts:
            if p.points:
                points += p.points
                labels += p.labels or [1] * len(p.points)
            if p.box is not None:
                box = p.box
            if p.mask is not None:
                one = self.mask_array(p, tuple(frame_hw))
                mask = one if mask is None else mask | one
        return (points or None), (labels or None), box, mask

    def mask_array(self, prompt: Prompt, shape: tuple[int, int]) -> np.ndarray:
        """The mask of a prompt as a bool array of the frame's shape."""
        if isinstance(prompt.mask, dict):
            from .engine.mask_tools import rle_to_mask

            mask = rle_to_mask(prompt.mask)
        else:
            import tifffile

            path = Path(prompt.mask)
            if not path.is_absolute():
                path = Path(self.image.get("base", ".")) / path
            mask = tifffile.imread(path) > 0
        if mask.shape != tuple(shape):
            raise PromptsFileError(f"mask of frame {prompt.frame} has shape {mask.shape}, frames are {tuple(shape)}.")
        return mask.astype(bool)


def _prompt(data: dict, where: str) -> Prompt:
    unknown = set(data) - {"frame", "points", "labels", "box", "mask"}
    if unknown:
        raise PromptsFileError(f"{where}: unknown keys {sorted(unknown)}.")
    prompt = Prompt(**data)
    if prompt.points is None and prompt.box is None and prompt.mask is None:
        raise PromptsFileError(f"{where}: give points, a box or a mask.")
    if prompt.points is not None:
        pts = np.asarray(prompt.points, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise PromptsFileError(f"{where}: points must be [[x, y], ...].")
        if prompt.labels is not None and len(prompt.labels) != len(pts):
            raise PromptsFileError(f"{where}: {len(pts)} points but {len(prompt.labels)} labels.")
    if prompt.box is not None and len(prompt.box) != 4:
        raise PromptsFileError(f"{where}: box must be [x0, y0, x1, y1].")
    return prompt
