"""Frames of a stack (z-stack or time-lapse) read lazily from any array-like, with prefetching.

Works on numpy arrays, memmaps, tifffile/zarr/dask arrays: only the frames asked for are read,
and one intensity normalisation, sampled from the whole stack, serves every frame.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .checks import ImageInputError
from .model_input import prepare_image
from .normalization import Normalization, auto_normalization


class FrameSource:
    """Frame i of `data` along `axis`, as float32 RGB (H, W, 3) in [0, 1].

    data: (N, H, W) or (N, H, W, C) with the stack axis at `axis` (moved to the front lazily);
    channel_axis / channels: as for `prepare_image`; normalization: 'auto' (percentiles
    sampled from the whole stack, once), a `Normalization`, or None (8-bit RGB as is).
    """

    def __init__(
        self,
        data: Any,
        axis: int = 0,
        normalization: str | Normalization | None = "auto",
        channels: Sequence[int] | None = None,
        channel_axis: int | None = None,
        prefetch: int = 2,
    ) -> None:
        if not hasattr(data, "shape") or not hasattr(data, "__getitem__"):
            data = np.asarray(data)
        ndim = len(data.shape)
        if ndim not in (3, 4):
            raise ImageInputError(
                f"a stack must be (N, H, W) or (N, H, W, C); got {ndim}-D data of shape "
                f"{tuple(data.shape)}. For 4-D (T, Z, Y, X) data, track one axis per index of the "
                "other (see `iterate_substacks`)."
            )
        self.data = data
        self.axis = axis % ndim
        self.channels = channels
        # The channel axis as seen in a single frame (after the stack axis is taken out).
        if channel_axis is not None:
            channel_axis %= ndim
            self.frame_channel_axis = channel_axis - (channel_axis > self.axis)
        else:
            self.frame_channel_axis = None
        if normalization == "auto":
            normalization = self._auto_normalization()
        self.normalization = normalization
        self.reads = 0  # frames read from `data` (for tests and diagnostics)
        self._prefetch = max(0, prefetch)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="frames") if prefetch else None
        self._pending: OrderedDict[int, Future] = OrderedDict()
        self._lock = threading.Lock()

    def _auto_normalization(self) -> Normalization:
        """`auto_normalization` of the whole stack; lazy arrays are sampled in place (the limits
        do not depend on the order of the axes)."""
        fca = self.frame_channel_axis
        if isinstance(self.data, np.ndarray) or self.axis == 0:
            stacked = np.moveaxis(self.data, self.axis, 0) if isinstance(self.data, np.ndarray) else self.data
            channel_axis = None if fca is None else fca + 1
        else:
            stacked, channel_axis = self.data, None if fca is None else fca + (fca >= self.axis)
        return auto_normalization(stacked, channels=self.channels, channel_axis=channel_axis)

    def __len__(self) -> int:
        return int(self.data.shape[self.axis])

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(H, W) of every frame."""
        shape = [s for i, s in enumerate(self.data.shape) if i != self.axis]
        if self.frame_channel_axis is not None:
            shape.pop(self.frame_channel_axis)
        elif len(shape) == 3:
            shape = shape[:2]
        return int(shape[0]), int(shape[1])

    def read(self, index: int) -> np.ndarray:
        """The raw frame `index` (one read of the underlying array)."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is outside the stack of {len(self)} frames")
        key = [slice(None)] * len(self.data.shape)
        key[self.axis] = index
        with self._lock:
            self.reads += 1
        return np.asarray(self.data[tuple(key)])

    def _load(self, index: int) -> np.ndarray:
        return prepare_image(
            self.read(index), self.normalization, channels=self.channels, channel_axis=self.frame_channel_axis
        )

    def get(self, index: int) -> np.ndarray:
        """Frame `index` ready for the model, from the prefetch queue when it is there."""
        future = self._pending.pop(index, None)
        return future.result() if future is not None else self._load(index)

    def prefetch(self, indices: Iterable[int]) -> None:
        """Start reading the next frames of `indices` in the background (at most `prefetch`)."""
        if self._pool is None:
            return
        for index in indices:
            if len(self._pending) >= self._prefetch:
                break
            if index not in self._pending and 0 <= index < len(self):
                self._pending[index] = self._pool.submit(self._load, index)

    def iterate(
        self, order: Sequence[int], skip: Callable[[int], bool] | None = None
    ) -> Iterator[tuple[int, np.ndarray | None]]:
        """(index, frame) in `order`, reading ahead on a background thread; frames for which
        `skip(index)` is true (e.g. already encoded) are not read and come as None."""
        order = list(order)
        for position, index in enumerate(order):
            upcoming = order[position : position + 1 + self._prefetch]
            self.prefetch([i for i in upcoming if skip is None or not skip(i)])
            if skip is not None and skip(index) and index not in self._pending:
                yield index, None
            else:
                yield index, self.get(index)

    def discard_pending(self) -> None:
        """Drop frames read ahead but not used (e.g. when a pass ends or is cancelled)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def close(self) -> None:
        """Drop prefetched frames and stop the reader thread."""
        self.discard_pending()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def iterate_substacks(data: Any, track_axis: int, other_axis: int) -> Iterator[tuple[int, Any, int]]:
    """For 4-D (e.g. T, Z, Y, X) data: (index, 3-D view, stack axis of the view) for each index of
    `other_axis`, so that propagation runs along `track_axis` for each of them."""
    if len(data.shape) != 4:
        raise ImageInputError(f"iterate_substacks needs 4-D data; got shape {tuple(data.shape)}.")
    track_axis, other_axis = track_axis % 4, other_axis % 4
    if track_axis == other_axis or max(track_axis, other_axis) > 1:
        raise ImageInputError("track_axis and other_axis must be the two leading axes, and differ.")
    for index in range(data.shape[other_axis]):
        key = [slice(None)] * 4
        key[other_axis] = index
        yield index, data[tuple(key)], track_axis - (track_axis > other_axis)
