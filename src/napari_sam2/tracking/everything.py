"""Track every object of a movie or z-stack without prompts: new objects, divisions, lineage.

On the first frame every object is detected (`detection.py`) and becomes a track; the memory
tracker follows all of them, and on every frame:
- a track whose object score stays low ends (`engine/object_ending.py`) and leaves the tracker;
- a track whose mask falls into two large parts, or holds two touching blobs (or has two lobes)
  pinched at a dark waist, divides: it ends, and two daughter tracks begin with it as parent
  (backward in time, two daughters that meet in one blob end and their mother begins,
  `merges.py`) - unless the mask held both blobs before or a part is as large as a
  whole object: then they are two objects, and the larger keeps the track (`_split_masks`);
- masks are held to the frame's bright blobs (`blob_fit.py`): a mask that grew by more than
  `division_growth` keeps only its own blobs (a leak onto a neighbour or the background), and a
  mask that fills its blob far less than the other tracks fill theirs (a dim nucleus's bright
  spot) takes the blob;
- a new object next to a track whose area dropped by a quarter, the two holding about the
  track's former area, is the other half of a division (the track ends, its remaining mask
  and the new object become daughters);
- any other object that no track covers becomes a new track (every `detect_every` frames).
Frames are read lazily; the caller can stop at any frame and keep what is done.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.object_ending import ObjectEnding
from ..engine.tracker import StackTracker
from ..images.ctc import Tracks, ctc_tracks, write_ctc
from ..images.io import write_labels
from ..images.normalization import Normalization
from ..modeling.sam2 import SAM2Model
from ..progress import ProgressCallback, StopCheck
from .blob_fit import fitted_to_blobs, split_lobes
from .detection import detect_new, foreground_blobs
from .lineage import (
    Lineage, blobs_held, dark_between, largest_part, split_by_blobs, split_parts, touches,
)
from .merges import merged_daughters


@dataclass(frozen=True)
class Settings:
    """What counts as a new object, a division and an end. Defaults suit fluorescent nuclei."""

    direction: str = "forward"  # "forward" (time order) or "backward" (last frame first)
    detect_every: int = 1  # look for new objects every this many frames (1: every frame)
    min_area: int | None = None  # pixels; None: a fifth of the first frame's median blob
    divisions: bool = True  # look for divisions (backward: daughters meeting in their mother)
    fit_to_blobs: bool = True  # hold masks to the frame's bright blobs (blob_fit.py)
    division_share: float = 0.25  # the smaller daughter holds at least this share of the two
    area_drop: float = 0.75  # a track that keeps less than this of its area next to a new object divides
    division_growth: float = 1.3  # a mask covering two blobs divides only if it grew less than this
    daughter_size: float = 1.25  # daughters are at most this share of the median object (else two objects)
    division_mass: float = 0.4  # a mother's two daughters hold her area within this share
    touch_distance: int = 3  # pixels between a dividing track and its second daughter
    bridge: int = 2  # frames within which an ended track resumes when its object is found again
    window: int | None = 256  # largest tracking window, model-input pixels (StackTracker); None: whole frames
    memory: bool = True  # False: each track found by a click inside its last mask (engine/carried.py)
    ending: ObjectEnding = field(default_factory=ObjectEnding)

    def __post_init__(self) -> None:
        if self.direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', not {self.direction!r}.")
        if self.detect_every < 1:
            raise ValueError("detect_every must be at least 1 (frames between detections).")
        if self.bridge < 0:
            raise ValueError("bridge must be 0 (never resume an ended track) or more frames.")


@dataclass
class TrackingResult:
    """Labels (T, H, W), one id per track; the track table; lineage child -> parent."""

    labels: Any  # (T, H, W) uint32 array (or the `out` array given)
    lineage: Lineage
    frames_done: list[int]

    @property
    def completed(self) -> bool:
        return len(self.frames_done) == len(self.labels)

    @property
    def tracks(self) -> np.ndarray:
        """(N, 4) rows: track id, frame, centroid y, centroid x."""
        return self.lineage.table()

    @property
    def parents(self) -> dict[int, int]:
        """child -> parent of every track that has a parent."""
        return self.lineage.children()

    def ctc(self) -> tuple[np.ndarray, Tracks]:
        """Labels and tracks following the Cell Tracking Challenge's rules (see images/ctc.py)."""
        done = sorted(self.frames_done)
        first = done[0] if done else 0
        labels = np.asarray(self.labels[first : first + len(done)])
        return ctc_tracks(labels, self.parents, first_frame=first)

    def write_ctc(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """`maskNNN.tif` for every frame done and `res_track.txt`."""
        labels, tracks = self.ctc()
        first = min(self.frames_done) if self.frames_done else 0
        return write_ctc(out_dir, ((first + i, labels[i]) for i in range(len(labels))), tracks, overwrite)

    def write_labels(self, path: str | Path) -> Path:
        """The label movie (T, H, W) uint32, track ids as values (those of `tracks` and the CSV),
        as a TIFF, or OME-Zarr with a first axis 't' when `path` ends in .zarr; written
        atomically, replacing an existing file (callers check first)."""
        write_labels(path, np.asarray(self.labels, dtype=np.uint32), first_axis="t")
        return Path(path)

    def write_csv(self, path: str | Path) -> Path:
        """The track table with each track's parent: track_id, frame, y, x, parent."""
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["track_id", "frame", "y", "x", "parent"])
            for track, frame, y, x in self.tracks:
                writer.writerow([int(track), int(frame), f"{y:.2f}", f"{x:.2f}", self.lineage.parent.get(int(track), 0)])
        return path

    def napari_tracks(self) -> tuple[np.ndarray, dict[int, list[int]]]:
        """napari Tracks layer data (track id, t, y, x sorted by id then t) and its graph."""
        return napari_tracks(self.tracks, self.parents)


def napari_tracks(table: np.ndarray, parents: dict[int, int]) -> tuple[np.ndarray, dict[int, list[int]]]:
    """A track table as napari Tracks data (sorted by id, then t) and graph (child -> [parent])."""
    data = table[np.lexsort((table[:, 1], table[:, 0]))] if len(table) else table.reshape(0, 4)
    present = set(data[:, 0].astype(int).tolist())
    graph = {c: [p] for c, p in parents.items() if c in present and p in present}
    return data, graph


def track_everything(
    stack: Any,
    model: SAM2Model | str | None = None,
    settings: Settings | None = None,
    precision: str = "auto",
    normalization: str | Normalization | None = "auto",
    out: Any = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    **options: Any,
) -> TrackingResult:
    """Track every object of a (T, H, W) movie or (Z, Y, X) stack (any array, read lazily).

    model: a SAM2Model, a preset or checkpoint name, or None for the built-in model.
    options: `Settings` fields (direction, detect_every, min_area, ...). out: a (T, H, W)
    integer array to write into (e.g. a memmap); by default a new uint32 array. progress(done,
    total) after each frame; should_stop() before each: stopping keeps the frames done.
    on_frame(frame, labels) after each frame (the dock shows frames as they come).
    """
    settings = settings or Settings(**options)
    if not isinstance(model, SAM2Model):
        from ..checkpoints.loading import load_model

        model = load_model(model)
    tracker = new_tracker(model, stack, settings, precision, normalization)
    labels = np.zeros((tracker.num_frames, *tracker.frame_hw), np.uint32) if out is None else out
    lineage = Lineage()
    done: list[int] = []
    for frame, frame_labels in iterate(tracker, settings, lineage):
        labels[frame] = frame_labels
        done.append(frame)
        if on_frame is not None:
            on_frame(frame, frame_labels)
        if progress is not None:
            progress(len(done), tracker.num_frames)
        if should_stop is not None and should_stop():
            break
    tracker.frames.discard_pending()
    return TrackingResult(labels, lineage, done)


def new_tracker(
    model: SAM2Model, stack: Any, settings: Settings, precision: str = "auto",
    normalization: str | Normalization | None = "auto",
) -> StackTracker:
    """The tracker that `iterate` drives: the settings' ending, window (at most the model's
    input size) and memory."""
    window = None if settings.window is None else min(settings.window, model.image_size)
    return StackTracker(
        model, stack, precision=precision, normalization=normalization, ending=settings.ending,
        window=window, memory=settings.memory,
    )


def iterate(tracker: StackTracker, settings: Settings, lineage: Lineage) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame, label image) in processing order while tracking everything."""
    reverse = settings.direction == "backward"
    order = list(range(tracker.num_frames))[:: -1 if reverse else 1]
    divisions = settings.divisions and not reverse
    merges = settings.divisions and reverse  # backward, a division is two daughters meeting
    min_area = split = None
    before = _Before()
    ended: dict[int, tuple[int, np.ndarray]] = {}  # track -> (step it ended, its last mask)
    for step, frame in enumerate(order):
        if step + 1 < len(order):
            tracker.frames.prefetch([order[step + 1]])
        rgb = tracker.frames.get(frame)
        gray = rgb.mean(axis=-1)  # once per frame: 40 ms at 1024 px
        if min_area is None:
            min_area, split = _sizes(gray, settings.min_area)
        ended = {t: e for t, e in ended.items() if step - e[0] <= settings.bridge}
        masks: dict[int, np.ndarray] = {}
        gone: list[int] = []  # tracks that end on this frame
        if tracker.obj_ids:
            result = tracker.track(frame, reverse, rgb)
            for i, track in enumerate(result.obj_ids):
                if result.ended[i]:
                    gone.append(track)
                else:
                    masks[track] = result.masks[i]
        wanted = settings.divisions or settings.fit_to_blobs or step % settings.detect_every == 0
        blobs = foreground_blobs(gray, min_area, split) if wanted else None
        if settings.fit_to_blobs:
            masks = fitted_to_blobs(masks, before.masks, blobs, gray, (min_area, split), settings)
        if divisions:
            masks = _split_masks(tracker, frame, masks, lineage, blobs, gray, before, (min_area, split), settings)
        masks = {t: largest_part(m) for t, m in masks.items()}
        gone += [t for t, m in masks.items() if m.sum() < min_area // 2]  # only a fragment of it left
        if merges and step:
            masks, gone = _mothers(tracker, frame, masks, gone, lineage, blobs, gray, before, settings)
        for track in gone:
            tracker.remove_object(track)
            masks.pop(track, None)
            if track in before.masks:
                ended[track] = (step, before.masks[track])
        if step % settings.detect_every == 0:
            covered = np.zeros(tracker.frame_hw, bool)
            for m in masks.values():
                covered |= m
            for found in detect_new(tracker, frame, blobs, covered, min_area):
                mother = _dividing_neighbour(found.mask, masks, before.areas, settings) if divisions and step else None
                if mother is not None:
                    tracker.remove_object(mother)
                    first = lineage.new_track(frame, mother)
                    masks[first] = masks.pop(mother)
                    tracker.add_mask(frame, first, masks[first])
                    second = lineage.new_track(frame, mother)
                else:
                    second = resumed_track(found.mask, ended) or lineage.new_track(frame)
                    ended.pop(second, None)
                tracker.add_mask(frame, second, found.mask)
                masks[second] = found.mask
        frame_labels = np.zeros(tracker.frame_hw, np.uint32)
        for track, mask in masks.items():
            frame_labels[mask & (frame_labels == 0)] = track
        lineage.record(frame, frame_labels)
        before = _Before.of(frame_labels, masks, blobs)
        yield frame, frame_labels


def _mothers(
    tracker: StackTracker,
    frame: int,
    masks: dict[int, np.ndarray],
    gone: list[int],
    lineage: Lineage,
    blobs: np.ndarray,
    gray: np.ndarray,
    before: _Before,
    settings: Settings,
) -> tuple[dict[int, np.ndarray], list[int]]:
    """Backward: each pair of daughters that meet in one blob (`merges.py`) ends on the frame
    before, and their mother begins here as a new track, their parent. Daughters that the
    image still parts (a dark gap between them) merge on an earlier frame."""
    found = merged_daughters(
        masks, gone, before.masks, blobs, settings.division_mass, settings.daughter_size,
        lambda a, b: dark_between(a, b, gray),
    )
    for merge in found:
        mother = lineage.new_track(frame)
        for daughter in merge.daughters:
            tracker.remove_object(daughter)  # alive, or ending here (still in the tracker)
            masks.pop(daughter, None)
            gone = [t for t in gone if t != daughter]
            lineage.parent[daughter] = mother
        tracker.add_mask(frame, mother, merge.mother)
        masks[mother] = merge.mother
    return masks, gone


@dataclass
class _Before:
    """The frame before: each track's mask and area, and the frame's blobs (None if not found)."""

    masks: dict[int, np.ndarray] = field(default_factory=dict)
    areas: dict[int, int] = field(default_factory=dict)
    blobs: np.ndarray | None = None

    @classmethod
    def of(cls, labels: np.ndarray, tracks: Iterable[int], blobs: np.ndarray | None) -> _Before:
        masks = {t: labels == t for t in tracks}
        return cls(masks, {t: int(m.sum()) for t, m in masks.items()}, blobs)


def resumed_track(mask: np.ndarray, ended: dict[int, tuple[int, np.ndarray]], overlap: float = 0.5) -> int:
    """The recently ended track whose last mask covers at least `overlap` of the smaller of it and
    a newly found object (the same object, lost for a few frames), or 0: its track goes on."""
    best, best_share = 0, overlap
    area = int(mask.sum())
    for track, (_, last) in ended.items():
        shared = int((mask & last).sum())
        share = shared / max(min(area, int(last.sum())), 1)
        if share >= best_share:
            best, best_share = track, share
    return best


def _sizes(gray: np.ndarray, min_area: int | None) -> tuple[int, int]:
    """Smallest object area and the distance between blob centres that splits touching blobs,
    from the first frame's blobs unless `min_area` is given."""
    blobs = foreground_blobs(gray, 16, 3)
    areas = np.bincount(blobs.ravel())[1:]
    median = float(np.median(areas[areas > 0])) if (areas > 0).any() else 400.0
    if min_area is None:
        min_area = max(16, int(0.2 * median))
    radius = np.sqrt(max(median, min_area) / np.pi)
    return int(min_area), max(2, int(0.8 * radius))


def _split_masks(
    tracker: StackTracker,
    frame: int,
    masks: dict[int, np.ndarray],
    lineage: Lineage,
    blobs: np.ndarray,
    gray: np.ndarray,
    before: _Before,
    sizes: tuple[int, int],
    settings: Settings,
) -> dict[int, np.ndarray]:
    """Tracks whose mask fell into two large parts, or holds two touching blobs pinched at a
    dark waist without having grown (a leak onto a neighbour grows it), are split in two.

    The parts are daughters (the track ends, each part starts a track with it as parent) unless
    they are two objects that one mask held: the mask held both blobs on the frame before too,
    or a part is larger than `daughter_size` of the median object. Then the larger part keeps
    the track and the other starts one of its own."""
    out = {}
    min_area, split = sizes
    typical = float(np.median(list(before.areas.values()))) if before.areas else 0.0
    for track, mask in masks.items():
        parts, held_before = split_parts(mask, min_area, settings.division_share), False
        if not parts and mask.sum() <= settings.division_growth * before.areas.get(track, 0):
            parts = split_by_blobs(mask, blobs, gray, min_area, settings.division_share)
            held_before = bool(parts) and before.blobs is not None and len(blobs_held(before.masks[track], before.blobs, min_area)) >= 2
            parts = parts or split_lobes(mask, gray, split // 2, min_area, settings.division_share)
        if not parts or lineage.first.get(track) == frame:
            out[track] = mask
            continue
        parts.sort(key=lambda p: int(p.sum()), reverse=True)
        tracker.remove_object(track)
        if held_before or parts[0].sum() > settings.daughter_size * typical:
            tracks = [track, lineage.new_track(frame)]
        else:
            tracks = [lineage.new_track(frame, track) for _ in parts]
        for new, part in zip(tracks, parts):
            tracker.add_mask(frame, new, part)
            out[new] = part
    return out


def _dividing_neighbour(
    new: np.ndarray, masks: dict[int, np.ndarray], areas: dict[int, int], settings: Settings
) -> int | None:
    """The track next to a new object that lost area on this frame as a dividing mother would:
    the two together hold about the mother's area (within `division_mass`)."""
    area = int(new.sum())
    best, best_drop = None, settings.area_drop
    for track, mask in masks.items():
        before = areas.get(track)
        now = int(mask.sum())
        if not before or not now:
            continue
        drop = now / before
        kept = abs((now + area) / before - 1) <= settings.division_mass
        if drop < best_drop and kept and 0.4 <= area / now <= 2.5 and touches(mask, new, settings.touch_distance):
            best, best_drop = track, drop
    return best
