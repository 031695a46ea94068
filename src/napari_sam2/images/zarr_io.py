"""Label images as OME-Zarr (NGFF 0.4: a zarr v2 group with one full-resolution level "0").

A label volume (N, H, W) is chunked one frame per chunk, so frames written as they finish are
on disk at once and an interrupted run keeps them; napari opens the folder with its built-in
reader (as an image layer: 'Convert to labels', or the napari-ome-zarr plugin, which reads the
'image-label' metadata, opens it as labels).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ZARR_SUFFIX = ".zarr"
NGFF_VERSION = "0.4"


def is_zarr_path(path: str | Path) -> bool:
    """True for outputs that should be written as OME-Zarr (a name ending in .zarr)."""
    return str(path).rstrip("/\\").lower().endswith(ZARR_SUFFIX)


def create_label_zarr(
    path: str | Path,
    shape: tuple[int, ...],
    dtype: Any = np.uint32,
    first_axis: str = "z",
    overwrite: bool = False,
    name: str | None = None,
) -> Any:
    """An empty (all 0) OME-Zarr label image at `path`, chunked per frame; returns its zarr array
    to fill (`array[frame] = plane`). first_axis: 'z' or 't', the name of a volume's first axis;
    name: the image's name in the metadata (default: the folder's stem)."""
    import zarr

    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
        _remove(path)
    group = zarr.open_group(str(path), mode="w", **_v2())
    chunks = tuple(shape) if len(shape) == 2 else (1, *shape[1:])
    create = getattr(group, "create_array", None) or group.create_dataset
    array = create("0", shape=tuple(shape), chunks=chunks, dtype=np.dtype(dtype), fill_value=0)
    group.attrs.update(_ngff_attrs(len(shape), first_axis, name or path.stem))
    return array


def write_label_zarr(path: str | Path, labels: np.ndarray, first_axis: str = "z") -> None:
    """A whole label image or volume as OME-Zarr, written under a temporary name and renamed
    (an existing `path` is replaced: callers check `overwrite` first)."""
    path = Path(path)
    part = _part_name(path)
    try:
        array = create_label_zarr(part, labels.shape, labels.dtype, first_axis, name=path.stem)
        array[...] = labels
        replace_label_zarr(part, path)
    finally:
        if part.exists():
            shutil.rmtree(part, ignore_errors=True)


def replace_label_zarr(part: str | Path, path: str | Path) -> None:
    """Rename the finished zarr folder `part` to `path`, replacing a zarr folder there (callers
    check `overwrite` first; anything else at `path` is refused). The old output is renamed to a
    hidden `.part` name before the new one takes its place, so an interruption leaves the old or
    the new output whole (and at most a `.part` folder), never a mix of the two."""
    part, path = Path(part), Path(path)
    old = None
    if path.exists() or path.is_symlink():
        if not is_zarr_folder(path) or path.is_symlink():
            raise FileExistsError(f"{path} exists and is not a zarr folder; choose another output.")
        old = _part_name(path)
        os.rename(path, old)
    try:
        os.rename(part, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_label_zarr(path: str | Path) -> np.ndarray:
    """The full-resolution labels of an OME-Zarr label image (or of a bare zarr array)."""
    import zarr

    node = zarr.open(str(path), mode="r")
    return np.asarray(node[...] if hasattr(node, "shape") else node["0"][...])


def is_zarr_folder(path: str | Path) -> bool:
    """A folder that zarr wrote (a group or an array, format 2 or 3): the only folders that are
    ever deleted or replaced."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in (".zgroup", ".zattrs", ".zarray", "zarr.json"))


def _remove(path: Path) -> None:
    if not is_zarr_folder(path) or path.is_symlink():
        raise FileExistsError(f"{path} exists and is not a zarr folder; choose another output.")
    shutil.rmtree(path)


def _part_name(path: Path) -> Path:
    """A unique hidden temporary name beside `path`."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")


def _v2() -> dict:
    """OME-Zarr 0.4 is zarr format 2 (zarr-python 3 writes format 3 unless asked)."""
    import zarr

    return {"zarr_format": 2} if int(zarr.__version__.split(".")[0]) >= 3 else {}


def _ngff_attrs(ndim: int, first_axis: str, name: str) -> dict:
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    if ndim == 3:
        axes.insert(0, {"name": first_axis, "type": "time" if first_axis == "t" else "space"})
    return {
        "multiscales": [{
            "version": NGFF_VERSION,
            "name": name,
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * ndim}]}],
        }],
        "image-label": {"version": NGFF_VERSION},
    }
