"""One-call functions for scripts and notebooks: arrays (or napari layers) in, label images out.

Points are (x, y) and boxes (x0, y0, x1, y1) in pixels; use `coordinates.napari_to_xy` for
napari's (row, col). For fine control use ImagePredictor, AutomaticMaskGenerator, StackTracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .engine.apply_prompts import (
    GivenMasks,
    add_to_tracker,
    is_given_mask,
    keep_given_masks,
    segment_object,
)
from .images.io import check_output_file, read_image, source_file
from .images.label_writer import LabelWriter
from .images.zarr_io import create_label_zarr, is_zarr_path
from .images.normalization import Normalization, auto_normalization
from .modeling.sam2 import SAM2Model
from .progress import Cancelled, ProgressCallback, StopCheck
from .prompt_file import (
    ObjectPrompts,
    Prompt,
    PromptSession,
    PromptsFileError,
    check_frame,
    check_frames,
    check_object_id,
    check_objects,
    prompt_from_dict,
)


def as_array(data: Any) -> Any:
    """The array of a napari layer (duck-typed: anything with `.data`), or `data` itself."""
    if not isinstance(data, np.ndarray) and hasattr(data, "data") and hasattr(data, "ndim"):
        data = data.data
        if isinstance(data, (list, tuple)):  # multiscale: the full-resolution level
            data = data[0]
    return data


def embedding_store(folder: str | Path | bool | None = True, max_gb: float | None = None):
    """An on-disk embedding cache (`engine.embedding_store.EmbeddingStore`) in `folder`; True:
    the user cache folder's `embeddings` (or $NAPARI_SAM2_EMBEDDINGS); None / False: none.
    Its size is bounded by `max_gb` (default $NAPARI_SAM2_EMBEDDINGS_GB, else 20 GB)."""
    import os

    from .engine.embedding_store import DEFAULT_MAX_BYTES, EmbeddingStore

    if folder is None or folder is False:
        return None
    if folder is True:
        from .checkpoints.cache import cache_dir

        folder = os.environ.get("NAPARI_SAM2_EMBEDDINGS") or cache_dir() / "embeddings"
    if max_gb is None and os.environ.get("NAPARI_SAM2_EMBEDDINGS_GB"):
        max_gb = float(os.environ["NAPARI_SAM2_EMBEDDINGS_GB"])
    return EmbeddingStore(folder, DEFAULT_MAX_BYTES if max_gb is None else int(max_gb * 1e9))


def _model(model: SAM2Model | str | None, device: str = "auto") -> SAM2Model:
    if isinstance(model, SAM2Model):
        return model
    from .checkpoints.loading import load_model

    return load_model(model, device=device)


def _normalization(
    spec: dict | str | Normalization | None, data: Any, channels=None, channel_axis: int | None = None
):
    """A Normalization from a prompts-file entry (or an object already), sampled from `data`."""
    if spec is None or isinstance(spec, Normalization):
        return spec
    if isinstance(spec, str):
        spec = {"method": spec}
    method = spec.get("method", "auto")
    if method == "none":
        return None
    if method == "limits":
        norm = Normalization.from_limits(spec["low"], spec["high"])
    elif method == "auto":
        norm = auto_normalization(data, channels=channels, channel_axis=channel_axis)
    elif method == "percentiles":
        norm = Normalization.from_percentiles(
            data, spec.get("low", 1.0), spec.get("high", 99.8), channels=channels, channel_axis=channel_axis
        )
    else:
        raise PromptsFileError(f"unknown normalization method {method!r}: use auto, percentiles, limits or none.")
    return norm.with_gamma(spec["gamma"]) if "gamma" in spec else norm


def segment_everything(
    image: Any,
    model: SAM2Model | str | None = None,
    precision: str = "auto",
    normalization: str | Normalization | None = "auto",
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    order: str = "quality",
    stack_axis: int | None = None,
    channels: Sequence[int] | None = None,
    **params: Any,
) -> np.ndarray:
    """Automatic segmentation of an image into a uint32 label image, or of every slice of a
    stack (`stack_axis`) into a label stack with one normalisation for the whole stack. AMG
    parameters as keyword arguments (points_per_side=32, pred_iou_thresh=...); `order` as in
    `AutomaticMaskGenerator.generate_labels`; `channels` as for `prepare_image` (channels last).
    Labels of different slices are not linked."""
    from .engine.automatic import AutomaticMaskGenerator

    generator = AutomaticMaskGenerator(_model(model), precision=precision, **params)
    data = as_array(image)
    if stack_axis is None:
        return generator.generate_labels(
            data, normalization, channels, progress=progress, should_stop=should_stop, order=order
        )
    data = np.moveaxis(data, stack_axis, 0) if isinstance(data, np.ndarray) else np.asarray(data).swapaxes(0, stack_axis)
    norm = auto_normalization(data, channels=channels) if normalization == "auto" else normalization
    labels = np.zeros((len(data), *data.shape[1:3]), dtype=np.uint32)
    for i in range(len(data)):
        plane_progress = None if progress is None else (lambda d, t, i=i: progress(i * t + d, len(data) * t))
        labels[i] = generator.generate_labels(
            np.asarray(data[i]), norm, channels, progress=plane_progress, should_stop=should_stop, order=order
        )
    return labels


def segment_objects(
    image: Any,
    session: PromptSession | dict[int, list[dict]],
    model: SAM2Model | str | None = None,
    precision: str = "auto",
    normalization: str | Normalization | None = "auto",
    stack_axis: int | None = None,
    channels: Sequence[int] | None = None,
    channel_axis: int | None = None,
    zoom: bool = False,
    embedding_cache: str | Path | bool | None = None,
    orientations: int | None = None,
) -> np.ndarray:
    """One mask per object and prompted frame (no propagation), as a label image or volume.

    session: a PromptSession, or {object id: [{"frame": 0, "points": [[x, y]], "labels": [1],
    "box": [...], "mask": ...}, ...]}. A 2-D image ignores `frame`; a stack needs `stack_axis`.
    channels / channel_axis: as for `prepare_image` (channel_axis counts in `image`'s axes).
    zoom: segment small objects on enlarged crops around them (`ImagePredictor.predict`).
    embedding_cache: a folder keeping image embeddings across runs (True: the user cache
    folder's, see `embedding_store`); None computes them each time.
    orientations: decode every prompt in the image's 1, 4 (flips) or 8 (flips and transposes)
    orientations and average the logits (`ImagePredictor`); None: the model's default.
    """
    from .engine.predictor import ImagePredictor

    session = _session(session)
    data, stack_axis = _channels_last(as_array(image), stack_axis, channel_axis)
    predictor = ImagePredictor(
        _model(model), precision=precision, embedding_store=embedding_store(embedding_cache), orientations=orientations
    )
    is_stack = stack_axis is not None
    norm = normalization
    if is_stack:
        data = np.moveaxis(np.asarray(data), stack_axis, 0)
        check_frames(session, len(data))
        if normalization == "auto":  # one normalisation for the whole stack
            norm = auto_normalization(data, channels=channels)
    frames = sorted({p.frame for o in session.objects for p in o.prompts}) if is_stack else [0]
    shape = data.shape[1:3] if is_stack else data.shape[:2]
    labels = np.zeros((len(data), *shape) if is_stack else shape, dtype=np.uint32)
    for frame in frames:
        predictor.set_image(data[frame] if is_stack else data, normalization=norm, channels=channels)
        target = labels[frame] if is_stack else labels
        for obj in session.objects:
            prompts = [p for p in obj.prompts if p.frame == frame or not is_stack]
            if not prompts:
                continue
            points, point_labels, box, mask = session.merged(prompts, shape)
            found, _ = segment_object(predictor, points, point_labels, box, mask, zoom=zoom)
            target[found & (target == 0)] = obj.id
    return labels


def propagate(
    stack: Any,
    session: PromptSession | dict[int, list[dict]],
    model: SAM2Model | str | None = None,
    out: np.ndarray | str | Path | None = None,
    direction: str = "both",
    precision: str = "auto",
    normalization: str | Normalization | None = "auto",
    stack_axis: int = 0,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    overwrite: bool = False,
    channels: Sequence[int] | None = None,
    channel_axis: int | None = None,
    embedding_cache: str | Path | bool | None = None,
    window: int | None = None,
) -> np.ndarray:
    """Track the prompted objects through a stack into a label volume (N, H, W).

    out: an array to write into, or a .tif path to stream to (a memory-mapped TIFF, so long
    movies never sit in memory); default a new array. Stopping keeps the frames done. A frame
    where an object is given by a mask alone keeps that mask exactly.
    embedding_cache: as for `segment_objects` (frames embedded before, e.g. by
    `napari-sam2 embed` or the napari dock, are read instead of computed).
    window: track objects smaller than half of it in windows of this many model-input pixels
    (many small objects cost far less; docs/tracking.md); None: whole frames.
    """
    from .engine.tracker import StackTracker

    session = _session(session)
    data = as_array(stack)
    if isinstance(out, (str, Path)):  # before any work: never write over the input
        check_output_file(out, [source_file(data)], overwrite)
    tracker = StackTracker(
        _model(model), data, precision=precision, normalization=normalization, axis=stack_axis,
        channels=channels, channel_axis=channel_axis, embedding_store=embedding_store(embedding_cache),
        window=window,
    )
    n = tracker.num_frames
    given = prompt_tracker(tracker, session)  # bad prompts fail before an output file exists
    volume = _output_volume(out, (n, *tracker.frame_hw), overwrite)
    writer = LabelWriter(volume)
    total = tracker.frames_in_passes(direction)
    for done, result in enumerate(tracker.propagate(direction), start=1):
        keep_given_masks(result, given)
        writer.write(result.frame, result.obj_ids, result.masks)
        if progress is not None:
            progress(done, total)
        if should_stop is not None and should_stop():
            raise Cancelled(f"stopped after {done} frames; they are in the output")
    if hasattr(volume, "flush"):
        volume.flush()
    return volume


def prompt_tracker(tracker, session: PromptSession) -> GivenMasks:
    """Give a StackTracker every object's prompts, merged per frame as `segment_objects` merges
    them; returns the masks given alone (kept exactly on their frames by `keep_given_masks`)."""
    given: GivenMasks = {}
    check_frames(session, tracker.num_frames)
    for obj in session.objects:
        for frame in sorted({p.frame for p in obj.prompts}):
            prompts = [p for p in obj.prompts if p.frame == frame]
            points, labels, box, mask = session.merged(prompts, tracker.frame_hw)
            add_to_tracker(tracker, frame, obj.id, points, labels, box, mask)
            if is_given_mask(points, box, mask):
                given[(frame, obj.id)] = mask
    return given


def run_session(
    session: PromptSession | str | Path,
    image: Any = None,
    model: SAM2Model | str | None = None,
    out: np.ndarray | str | Path | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    *,
    mode: str | None = None,
    stack_axis: int | None = None,
    direction: str | None = None,
    precision: str | None = None,
    device: str = "auto",
    zoom: bool | None = None,
    orientations: int | None = None,
) -> np.ndarray:
    """Replay a prompts file: the same image, model, normalisation and prompts give the same labels.

    The keyword arguments override the file's choices (None keeps them): mode 'segment' or
    'propagate', the stack axis, the direction, the precision, zoom and orientations (segment
    mode only; a file without orientations uses the model's default).
    """
    if not isinstance(session, PromptSession):
        session = PromptSession.load(session)
    if image is None:
        path = session.image.get("path")
        if not path:
            raise PromptsFileError("the prompts file names no image: pass image=...")
        image = Path(session.image.get("base", ".")) / path
    image_path = Path(image) if isinstance(image, (str, Path)) else None
    if image_path is not None:
        image = read_image(image_path)
    if isinstance(out, (str, Path)):  # before any work: never write over the input
        check_output_file(out, [image_path, source_file(as_array(image))], overwrite)
    spec = session.image
    ndim = len(as_array(image).shape)
    for name, value in (("stack_axis", stack_axis), ("channel_axis", spec.get("channel_axis"))):
        if value is not None and not -ndim <= int(value) < ndim:
            raise ValueError(f"{name}={value} is out of range for an image of {ndim} axes {tuple(as_array(image).shape)}.")
    data, axis, channel_axis = _at_position(
        as_array(image),
        spec.get("position") or {},
        spec.get("stack_axis") if stack_axis is None else stack_axis,
        spec.get("channel_axis"),
    )
    if model is None:
        model = _model_from_session(session, device)
    channels = spec.get("channels")
    norm = _normalization(session.normalization, data, channels, channel_axis)
    precision = precision or session.model.get("precision") or "auto"
    if mode is None:  # the file's mode; a file without a stack axis segments its one image
        mode = "segment" if axis is None else session.mode
    if mode == "segment":
        zoom = bool(session.model.get("zoom", False)) if zoom is None else zoom
        orientations = session.model.get("orientations") if orientations is None else orientations
        return segment_objects(
            data, session, model, precision, norm, axis, channels, channel_axis, zoom, orientations=orientations
        )
    direction = direction or session.propagation.get("direction", "both")
    return propagate(
        data, session, model, out, direction, precision, norm, 0 if axis is None else axis,
        progress, overwrite=overwrite, channels=channels, channel_axis=channel_axis,
    )


def _model_from_session(session: PromptSession, device: str = "auto") -> SAM2Model:
    from .checkpoints.loading import load_model

    spec = session.model
    return load_model(
        spec.get("checkpoint") or spec.get("name"), image_size=spec.get("image_size"), device=device
    )


def _session(session: PromptSession | dict) -> PromptSession:
    """A checked PromptSession: ids 1..2^32-1, frames >= 0, every object with prompts."""
    if isinstance(session, PromptSession):
        for obj in session.objects:
            check_object_id(obj.id, "prompts")
            for j, p in enumerate(obj.prompts):
                check_frame(p.frame, f"object {obj.id}, prompt {j}")
        check_objects(session.objects, "prompts")
        return session
    built = PromptSession()
    for key, prompts in session.items():
        obj_id = check_object_id(key, "prompts")
        where = f"object {obj_id}"
        if not prompts:
            built.objects.append(ObjectPrompts(obj_id, []))
        for j, p in enumerate(prompts):
            prompt = prompt_from_dict(asdict(p) if isinstance(p, Prompt) else p, f"{where}, prompt {j}")
            built.add(obj_id, prompt)
    check_objects(built.objects, "prompts")
    return built


def _channels_last(data: Any, stack_axis: int | None, channel_axis: int | None):
    """`data` with its channel axis (if any) moved last, and the stack axis renumbered."""
    if channel_axis is None:
        return data, stack_axis
    ndim = len(data.shape)
    channel_axis %= ndim
    if stack_axis is not None:
        stack_axis %= ndim
        stack_axis -= stack_axis > channel_axis
    return np.moveaxis(np.asarray(data), channel_axis, -1), stack_axis


def _at_position(data: Any, position: dict, stack_axis: int | None, channel_axis: int | None):
    """The sub-array at fixed indices of some axes ({axis: index}, e.g. the time point of a 4-D
    (T, Z, Y, X) session tracked along Z), with the stack and channel axes renumbered."""
    fixed = {int(axis): int(index) for axis, index in position.items()}
    if not fixed:
        return data, stack_axis, channel_axis
    key = tuple(fixed.get(axis, slice(None)) for axis in range(len(data.shape)))

    def renumber(axis: int | None) -> int | None:
        return None if axis is None else axis - sum(1 for f in fixed if f < axis)

    return data[key], renumber(stack_axis), renumber(channel_axis)


def _output_volume(out, shape: tuple[int, ...], overwrite: bool):
    if out is None:
        return np.zeros(shape, dtype=np.uint32)
    if isinstance(out, (str, Path)):
        import tifffile

        path = check_output_file(out, (), overwrite)
        if is_zarr_path(path):  # OME-Zarr, chunked per frame: frames are on disk as they finish
            return create_label_zarr(path, shape, np.uint32, overwrite=overwrite)
        return tifffile.memmap(path, shape=shape, dtype=np.uint32, photometric="minisblack")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}; the labels need {shape}.")
    return out
