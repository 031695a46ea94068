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
MAX_OBJECT_ID = 2**32 - 1  # label images are uint32


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
        if not isinstance(data, dict):
            raise PromptsFileError(
                f"{where} holds a JSON {type(data).__name__}, not a napari-sam2 prompts file "
                '(a JSON object with "format" and "objects"; see docs/prompts.md).'
            )
        if data.get("format") != FORMAT:
            raise PromptsFileError(f"{where} is not a napari-sam2 prompts file (format {data.get('format')!r}).")
        if int(data.get("version", 0)) > VERSION:
            raise PromptsFileError(f"{where} has version {data['version']}; this napari-sam2 reads up to {VERSION}.")
        objects = []
        entries = data.get("objects", [])
        if not isinstance(entries, list):
            raise PromptsFileError(f"{where}: objects must be a list of {{\"id\": ..., \"prompts\": [...]}}.")
        for i, obj in enumerate(entries):
            if not isinstance(obj, dict) or "id" not in obj:
                raise PromptsFileError(f"{where}: object {i} has no id.")
            obj_id = check_object_id(obj["id"], f"{where}: object {i}")
            raw = obj.get("prompts", [])
            if not isinstance(raw, list):
                raise PromptsFileError(f"{where}: object {obj_id}: prompts must be a list.")
            prompts = [prompt_from_dict(p, f"{where}: object {obj_id}, prompt {j}") for j, p in enumerate(raw)]
            objects.append(ObjectPrompts(obj_id, prompts))
        check_objects(objects, where)
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
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PromptsFileError(f"{path} is not valid JSON: {err}") from None
        session = cls.from_dict(data, str(path))
        session.image.setdefault("base", str(path.parent))
        return session

    @classmethod
    def from_csv(cls, path: Path) -> PromptSession:
        session = cls()
        try:  # utf-8-sig: spreadsheet programs (Excel) start UTF-8 CSVs with a byte-order mark
            with path.open(newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.DictReader(handle))
        except (UnicodeDecodeError, csv.Error) as err:
            raise PromptsFileError(f"{path} is not a readable CSV file: {err}") from None
        needed = {"object", "frame", "x", "y"}
        columns = {c.strip().lower() for c in rows[0] if c} if rows else set()
        if not needed <= columns:
            raise PromptsFileError(f"{path}: a prompts CSV needs the columns object, frame, x, y (and optionally label).")
        grouped: dict[tuple[int, int], Prompt] = {}
        for n, raw in enumerate(rows, start=2):  # line 1 is the header
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
            where = f"{path}, line {n}"
            key = (check_object_id(row["object"], where), check_frame(row["frame"], where))
            try:
                point = [float(row["x"]), float(row["y"])]
            except ValueError:
                raise PromptsFileError(f"{where}: x and y must be numbers, not {row['x']!r}, {row['y']!r}.") from None
            label = row.get("label") or "1"
            if label not in ("0", "1"):
                raise PromptsFileError(f"{where}: label must be 1 (foreground) or 0 (background), not {label!r}.")
            if key not in grouped:
                grouped[key] = Prompt(frame=key[1], points=[], labels=[])
                session.add(key[0], grouped[key])
            grouped[key].points.append(point)
            grouped[key].labels.append(int(label))
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
            mask = self._mask_file(str(prompt.mask))
        if mask.shape != tuple(shape):
            raise PromptsFileError(f"mask of frame {prompt.frame} has shape {mask.shape}, frames are {tuple(shape)}.")
        return mask.astype(bool)

    def _mask_file(self, name: str) -> np.ndarray:
        """A mask TIFF named relative to the prompts file's folder. Paths that leave that folder
        (absolute, `..`) are refused, and a file that is not a TIFF is named, never echoed."""
        base = Path(self.image.get("base", ".")).resolve()
        path = (base / name).resolve()
        if Path(name).is_absolute() or not path.is_relative_to(base):
            raise PromptsFileError(
                f"mask {name!r} is outside the prompts file's folder {base}; masks are TIFF files "
                "named relative to it (put the mask beside the prompts file)."
            )
        if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
            raise PromptsFileError(f"mask {name!r}: no mask TIFF at {path}.")
        import tifffile

        try:
            return np.asarray(tifffile.imread(path)) > 0
        except Exception:  # the reader's message may quote the file's bytes: do not repeat it
            raise PromptsFileError(f"mask {name!r} at {path} is not a readable TIFF image.") from None


def check_object_id(value: Any, where: str) -> int:
    """An object id as an int in 1..2^32-1 (label images are uint32); 1.5, "a", 0, True and
    negative ids are errors, never rounded or dropped."""
    number = _whole_number(value)
    if number is None or not 1 <= number <= MAX_OBJECT_ID:
        raise PromptsFileError(
            f"{where}: object id {value!r} is not valid; ids are whole numbers from 1 to {MAX_OBJECT_ID} "
            "(0 is the background of the label image)."
        )
    return number


def check_frame(value: Any, where: str) -> int:
    """A frame index as an int >= 0 (frames count from 0; -1 is not the last frame)."""
    number = _whole_number(value)
    if number is None or number < 0:
        raise PromptsFileError(
            f"{where}: frame {value!r} is not valid; frames are whole numbers counted from 0."
        )
    return number


def _whole_number(value: Any) -> int | None:
    """`value` as an int when it is a whole number (an int, a float such as 2.0 or a numeric
    string), else None; booleans are not numbers here."""
    number = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            return None
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, (int, np.integer)):
        return None
    return int(number)


def check_objects(objects: list[ObjectPrompts], where: str) -> None:
    """Unique ids, and at least one prompt for each object (an object without prompts would be
    counted but never segmented)."""
    ids = [o.id for o in objects]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise PromptsFileError(f"{where}: object id {repeated[0]} is given more than once; ids must be unique.")
    for obj in objects:
        if not obj.prompts:
            raise PromptsFileError(
                f"{where}: object {obj.id} has no prompts; give it points, a box or a mask, or remove it."
            )


def check_frames(session: PromptSession, n_frames: int, axis_name: str = "stack axis") -> None:
    """Every prompt on a frame of a stack of `n_frames` (frame 99 of 10 is an error naming the
    object, not an index error or a silent skip)."""
    for obj in session.objects:
        for p in obj.prompts:
            if not 0 <= p.frame < n_frames:
                raise PromptsFileError(
                    f"object {obj.id} is prompted on frame {p.frame}, but the stack has {n_frames} "
                    f"frames along its {axis_name} (0..{n_frames - 1}); fix the frame or the axis."
                )


def prompt_from_dict(data: dict, where: str) -> Prompt:
    """A checked Prompt from its JSON (or API dict) form; `where` names it in errors."""
    unknown = set(data) - {"frame", "points", "labels", "box", "mask"}
    if unknown:
        raise PromptsFileError(f"{where}: unknown keys {sorted(unknown)}.")
    if not isinstance(data, dict):
        raise PromptsFileError(f"{where}: a prompt is an object such as {{\"frame\": 0, \"points\": [[x, y]]}}.")
    prompt = Prompt(**data)
    prompt.frame = check_frame(prompt.frame, where)
    if prompt.points is None and prompt.box is None and prompt.mask is None:
        raise PromptsFileError(f"{where}: give points, a box or a mask.")
    if prompt.points is not None:
        try:
            pts = np.asarray(prompt.points, dtype=float)
        except (TypeError, ValueError):
            raise PromptsFileError(f"{where}: points must be [[x, y], ...] numbers.") from None
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise PromptsFileError(f"{where}: points must be [[x, y], ...].")
        if prompt.labels is not None and len(prompt.labels) != len(pts):
            raise PromptsFileError(f"{where}: {len(pts)} points but {len(prompt.labels)} labels.")
        if prompt.labels is not None and any(lab not in (0, 1) or isinstance(lab, bool) for lab in prompt.labels):
            raise PromptsFileError(f"{where}: labels must be 1 (foreground) or 0 (background).")
    if prompt.box is not None and np.asarray(prompt.box, dtype=object).shape != (4,):
        raise PromptsFileError(
            f"{where}: box must be one [x0, y0, x1, y1]; give each boxed object its own id."
        )
    return prompt
