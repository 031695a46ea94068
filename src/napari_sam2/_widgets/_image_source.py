"""An image layer's data seen as planes to segment: which axes are channels, stack and plane.

Pure numpy (no napari): the widgets build an `ImageSource` from a layer's data and the user's axis
choices, then ask it for planes, stacks and the shape of matching label layers. "Dims" are the
layer's napari dimensions (an RGB layer's colour axis is not one); "plane index" is the position
on every leading dim that is neither a channel nor one of the two plane (row, col) dims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..images.checks import ImageInputError
from ..images.normalization import Normalization, auto_normalization

PlaneIndex = tuple[int, ...]
NORMALIZATION_MODES = ("percentiles", "contrast")


@dataclass
class ImageSource:
    """Planes of `data` for SAM 2.

    rgb: the last data axis holds colours (napari's `rgb` layers); channel_dim: a leading dim that
    holds channels (e.g. 0 for (C, Z, Y, X)); channels: the 1-3 channel indices used as R, G, B;
    stack_dim: the dim that propagation runs along; contrast_limits and gamma (the layer's):
    used when normalization_mode == 'contrast'.
    """

    data: Any = field(repr=False)
    rgb: bool = False
    channel_dim: int | None = None
    channels: tuple[int, ...] | None = None
    stack_dim: int | None = None
    normalization_mode: str = "percentiles"
    contrast_limits: tuple[float, float] | None = None
    gamma: float = 1.0
    token: int = 0
    _normalization: Normalization | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        ndim = self.ndim
        if ndim < 2:
            raise ImageInputError(f"The image is {ndim}-D; SAM 2 needs at least 2-D (Y, X) images.")
        if self.rgb and self.channel_dim is not None:
            raise ImageInputError(
                "An RGB layer keeps its colours on the last axis: leave 'channel axis' empty."
            )
        if self.channel_dim is not None and not 0 <= self.channel_dim < ndim - 2:
            raise ImageInputError(
                f"Channel axis {self.channel_dim} must be one of the leading axes 0..{ndim - 3} "
                "(the last two axes are the image plane)."
            )
        if len(self.leading) > 2:
            raise ImageInputError(
                f"The image has {len(self.leading) + 2} spatial/time axes; "
                "up to 4-D (T, Z, Y, X) is "
                "supported. Choose a channel axis or reduce the data first."
            )
        if self.stack_dim is not None and self.stack_dim not in self.leading:
            raise ImageInputError(
                f"Axis {self.stack_dim} cannot be the stack axis: choose one of {self.leading}."
            )
        if self.normalization_mode not in NORMALIZATION_MODES:
            raise ImageInputError(f"Unknown normalisation {self.normalization_mode!r}.")
        n = self.n_channels
        if self.channels is not None:
            if not 1 <= len(self.channels) <= 3:
                raise ImageInputError(f"Choose 1 to 3 channels, not {len(self.channels)}.")
            bad = [c for c in self.channels if not 0 <= c < n]
            if bad:
                raise ImageInputError(
                    f"Channel(s) {bad} do not exist: this image has channels 0..{n - 1}."
                )
        elif self.channel_dim is not None and n > 3:
            self.channels = (0,)

    # ------------------------------------------------------------------ geometry

    @property
    def ndim(self) -> int:
        """Number of napari dims of the layer."""
        return len(self.data.shape) - int(self.rgb)

    @property
    def dims_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[: self.ndim])

    @property
    def leading(self) -> tuple[int, ...]:
        """Dims that index planes: neither channel nor row/col."""
        return tuple(d for d in range(self.ndim - 2) if d != self.channel_dim)

    @property
    def plane_shape(self) -> tuple[int, int]:
        shape = self.dims_shape
        return shape[-2], shape[-1]

    @property
    def n_channels(self) -> int:
        if self.rgb:
            return int(self.data.shape[-1])
        if self.channel_dim is not None:
            return int(self.data.shape[self.channel_dim])
        return 1

    @property
    def labels_shape(self) -> tuple[int, ...]:
        """Shape of a label layer matching this image (no channel axis)."""
        return tuple(s for d, s in enumerate(self.dims_shape) if d != self.channel_dim)

    def labels_dims(self) -> tuple[int, ...]:
        """The layer dims that a matching label layer keeps, in order."""
        return tuple(d for d in range(self.ndim) if d != self.channel_dim)

    @property
    def is_stack(self) -> bool:
        return self.stack_dim is not None

    @property
    def n_frames(self) -> int:
        return int(self.dims_shape[self.stack_dim]) if self.stack_dim is not None else 1

    # ------------------------------------------------------------------ positions

    def plane_index(self, position: Sequence[float]) -> PlaneIndex:
        """The plane holding a position given in the layer's data coordinates (one per dim)."""
        position = np.asarray(position, dtype=float)
        if position.shape[-1] != self.ndim:
            raise ImageInputError(
                f"A position with {position.shape[-1]} coordinates does not fit "
                f"a {self.ndim}-D image."
            )
        shape = self.dims_shape
        return tuple(int(np.clip(np.round(position[d]), 0, shape[d] - 1)) for d in self.leading)

    def plane_indices(self, positions: np.ndarray) -> list[PlaneIndex]:
        """`plane_index` of each row of an (N, ndim) array."""
        return [
            self.plane_index(p) for p in np.asarray(positions, dtype=float).reshape(-1, self.ndim)
        ]

    def frame_of(self, index: PlaneIndex) -> int:
        """Position of a plane along the stack dim."""
        if self.stack_dim is None:
            raise ImageInputError("This image has no stack axis.")
        return index[self.leading.index(self.stack_dim)]

    def with_frame(self, index: PlaneIndex, frame: int) -> PlaneIndex:
        """The plane at `frame` on the stack dim, with every other leading dim as in `index`."""
        k = self.leading.index(self.stack_dim)
        return tuple(frame if i == k else v for i, v in enumerate(index))

    def same_line(self, a: PlaneIndex, b: PlaneIndex) -> bool:
        """True when two planes differ at most along the stack dim."""
        k = self.leading.index(self.stack_dim) if self.stack_dim is not None else -1
        return all(x == y for i, (x, y) in enumerate(zip(a, b, strict=True)) if i != k)

    def labels_index(
        self, index: PlaneIndex, rows: np.ndarray, cols: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Fancy indices into a matching label layer for pixels (rows, cols) of a plane."""
        n = len(rows)
        lead = [np.full(n, v, dtype=np.intp) for v in index]
        return (*lead, np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp))

    def labels_plane_key(self, index: PlaneIndex) -> tuple:
        """A basic index selecting one plane of a matching label layer."""
        return (*index, slice(None), slice(None))

    # ------------------------------------------------------------------ pixels

    def plane(self, index: PlaneIndex) -> np.ndarray:
        """Raw pixels of one plane, (H, W) or channels-last (H, W, k) with the chosen channels."""
        key: list[Any] = [slice(None)] * len(self.data.shape)
        for d, v in zip(self.leading, index, strict=True):
            key[d] = v
        if self.channel_dim is not None:
            chosen = self.channels or tuple(range(self.n_channels))
            parts = []
            for c in chosen:
                key[self.channel_dim] = c
                parts.append(np.asarray(self.data[tuple(key)]))
            return np.stack(parts, axis=-1)
        pixels = np.asarray(self.data[tuple(key)])
        if self.rgb and self.channels is not None:
            pixels = pixels[..., list(self.channels)]
        return pixels

    def stack(self, index: PlaneIndex) -> StackView:
        """The planes along the stack dim through `index`, read lazily, for the tracker."""
        if self.stack_dim is None:
            raise ImageInputError(
                "This image has no stack axis: propagation needs a 3-D (Z or T) or 4-D image."
            )
        return StackView(self, index)

    def normalization(self) -> Normalization:
        """Intensity limits for every plane, computed once (stack percentiles or contrast)."""
        if self._normalization is None:
            self._normalization = self._compute_normalization()
        return self._normalization

    def _compute_normalization(self) -> Normalization:
        if self.normalization_mode == "contrast":
            if self.contrast_limits is None:
                raise ImageInputError(
                    "The layer has no contrast limits; use percentile normalisation."
                )
            low, high = (float(v) for v in self.contrast_limits)
            return Normalization.from_limits(low, high, self.gamma)
        channel_axis = len(self.data.shape) - 1 if self.rgb else self.channel_dim
        return auto_normalization(self.data, channels=self.channels or None, channel_axis=channel_axis)


class StackView:
    """Frames (N, H, W) or (N, H, W, k) along a source's stack dim, read one plane at a time."""

    def __init__(self, source: ImageSource, index: PlaneIndex) -> None:
        self.source = source
        self.index = index
        first = source.plane(source.with_frame(index, 0))
        self.dtype = first.dtype
        self.shape = (source.n_frames, *first.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        frame = key[0] if isinstance(key, tuple) else key
        if not isinstance(frame, (int, np.integer)):
            raise TypeError("StackView reads one frame at a time: index it with an integer.")
        rest = key[1:] if isinstance(key, tuple) else ()
        plane = self.source.plane(self.source.with_frame(self.index, int(frame)))
        return plane[rest] if rest else plane
