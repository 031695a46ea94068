"""Cell Tracking Challenge (CTC) files: frame folders in, result folders out.

A result folder holds one `maskNNN.tif` per frame (uint16 labels, one label per track) and
`res_track.txt` with a line `L B E P` per track: label, first and last frame, parent (0 = none).
The challenge's rules, enforced by `ctc_tracks`: a label appears on every frame from B to E and
on no other; a parent ends before its daughters begin. A track with a gap is split at the gap
(the later part gets a new label with the earlier part as parent), as the challenge asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

Tracks = dict[int, tuple[int, int, int]]  # label -> (first frame, last frame, parent or 0)
FRAME_PATTERN = re.compile(r"^t(\d+)\.tiff?$", re.IGNORECASE)


def frame_files(folder: str | Path) -> list[Path]:
    """The `tNNN.tif` frames of a CTC sequence folder, in frame order."""
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if FRAME_PATTERN.match(p.name)), key=lambda p: int(FRAME_PATTERN.match(p.name)[1]))
    if not files:
        raise ValueError(f"{folder} holds no t*.tif frames: give a folder of tNNN.tif files or a stack file.")
    return files


class FrameFolder:
    """The frames of a CTC folder as a lazy (T, H, W) array: each frame is read when indexed."""

    def __init__(self, folder: str | Path) -> None:
        import tifffile

        self.files = frame_files(folder)
        first = tifffile.imread(self.files[0])
        self.shape = (len(self.files), *first.shape)
        self.dtype = first.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        import tifffile

        if isinstance(key, tuple):
            index, rest = key[0], key[1:]
        else:
            index, rest = key, ()
        if isinstance(index, slice):
            frames = np.stack([tifffile.imread(self.files[i]) for i in range(*index.indices(len(self)))])
            return frames[(slice(None), *rest)]
        return tifffile.imread(self.files[int(index)])[rest]

    def __array__(self, dtype=None, copy=None):
        data = self[:]
        return data if dtype is None else data.astype(dtype)


def read_tracks(path: str | Path) -> Tracks:
    """A `man_track.txt` / `res_track.txt` file as label -> (first, last, parent)."""
    rows = np.loadtxt(path, dtype=np.int64, ndmin=2)
    return {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def ctc_tracks(labels: np.ndarray, parents: Mapping[int, int] | None = None, first_frame: int = 0) -> tuple[np.ndarray, Tracks]:
    """Labels and tracks that follow the challenge's rules, from a (T, H, W) label movie and
    child -> parent links: labels with gaps are split (new labels, the earlier part as parent),
    parents that do not end before their child begins are dropped."""
    parents = dict(parents or {})
    labels = np.asarray(labels)
    frames_of: dict[int, list[int]] = {}
    for t in range(len(labels)):
        for label in np.unique(labels[t]):
            if label:
                frames_of.setdefault(int(label), []).append(t)
    out = labels.astype(np.uint32, copy=True)
    next_label = max(frames_of, default=0) + 1
    parts: dict[int, list[tuple[int, int, int]]] = {}  # original label -> (label, first, last)
    for label in sorted(frames_of):
        for k, (a, b) in enumerate(_runs(frames_of[label])):
            new = label
            if k:
                new, next_label = next_label, next_label + 1
                out[a : b + 1][labels[a : b + 1] == label] = new
            parts.setdefault(label, []).append((new, a, b))
    tracks: Tracks = {}
    for label, pieces in parts.items():
        for k, (new, a, b) in enumerate(pieces):
            if k:
                parent = pieces[k - 1][0]
            else:  # the parent's last part that ends before this track begins
                before = [n for n, _, e in parts.get(parents.get(label, 0), []) if e < a]
                parent = before[-1] if before else 0
            tracks[new] = (a + first_frame, b + first_frame, parent)
    return out, tracks


def _runs(frames: list[int]) -> list[tuple[int, int]]:
    runs = []
    start = prev = frames[0]
    for f in frames[1:]:
        if f != prev + 1:
            runs.append((start, prev))
            start = f
        prev = f
    runs.append((start, prev))
    return runs


def write_ctc(
    out_dir: str | Path,
    frames: Iterable[tuple[int, np.ndarray]],
    tracks: Tracks,
    overwrite: bool = False,
) -> Path:
    """Write `maskNNN.tif` for each (frame index, labels) and `res_track.txt` into `out_dir`.

    Give labels and tracks that follow the rules (`ctc_tracks`). An existing non-empty folder
    is not touched unless `overwrite` (then only mask*.tif and res_track.txt are replaced).
    """
    import tifffile

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} already exists and is not empty: choose another folder or pass --overwrite.")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for old in out.glob("mask*.tif"):
            old.unlink()
    frames = list(frames)
    digits = max(3, len(str(max((t for t, _ in frames), default=0))))
    for t, labels in frames:
        if labels.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError(f"frame {t} has labels above 65535, which the challenge's uint16 masks cannot hold.")
        tifffile.imwrite(out / f"mask{t:0{digits}d}.tif", labels.astype(np.uint16), compression="zlib")
    lines = [f"{label} {a} {b} {p}" for label, (a, b, p) in sorted(tracks.items())]
    (out / "res_track.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return out
