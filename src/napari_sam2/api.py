"""One-call functions for scripts and notebooks: arrays (or napari layers) in, label images out.

Points are (x, y) and boxes (x0, y0, x1, y1) in pixels; use `image_input.napari_to_xy` for
napari's (row, col). For fine control use ImagePredictor, AutomaticMaskGenerator, StackTracker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .image_input import Normalization
from .label_writer import LabelWriter
from .modeling.sam2 import SAM2Model
from .progress import Cancelled, ProgressCallback, StopCheck
from .prompts import Prompt, PromptSession, PromptsFileError


def as_array(data: Any) -> Any:
    """The array of a napari layer (duck-typed: anything with `.data`), or `data` itself."""
    if not isinstance(data, np.ndarray) and hasattr(data, "data") and hasattr(data, "ndim"):
        data = data.data
        if isinstance(data, (list, tuple)):  # multiscale: the full-resolution level
            data = data[0]
    return data


def _model(model: SAM2Model | str | None, device: str = "auto") -> SAM2Model:
    if isinstance(model, SAM2Model):
        return model
    from .loading import load_model

    return load_model(model, device=device)


def _normalization(spec: dict | str | Normalization | None, data: Any, channels=None):
    """A Normalization from a prompts-file entry (or an object already), sampled from `data`."""
    if spec is None or isinstance(spec, Normalization):
        return spec
    if isinstance(spec, str):
        spec = {"method": spec}
    method = spec.get("method", "auto")
    if method == "none":
        return None
    if method == "limits":
        return Normalization.from_limits(spec["low"], spec["high"])
    if method in ("auto", "percentiles"):
        if method == "auto" and np.dtype(data.dtype) == np.uint8 and data.shape[-1] in (3, 4):
            return "auto"
        return Normalization.from_percentiles(data, spec.get("low", 1.0), spec.get("high", 99.8), channels=channels)
    raise PromptsFileError(f"unknown normalization method {method!r}: use auto, percentiles, limits or none.")


def segment_everything(
    image: Any,
    model: SAM2Model | str | None = None,
    precision: str = "auto",
    normalization: str | Normalization | None = "auto",
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    **params: Any,
) -> np.ndarray:
    """Automatic segmentation of a 2-D image into a uint32 label image (AMG parameters as
    keyword arguments, e.g. points_per_side=32, pred_iou_thresh=0.8)."""
    from .automatic import AutomaticMaskGenerator

    generator = AutomaticMaskGenerator(_model(model), precision=precision, **params)
    return generator.generate_labels(as_array(image), normalization, progress=progress, should_stop=should_stop)


def segment_objects(
    image: Any,
    session: PromptSession | dict[int, list[dict]],
    model: SAM2Model | str | None = None,
    precision: str = "auto",
    normalization: str | Normalization | None = "auto",
    stack_axis: int | None = None,
) -> np.ndarray:
    """One mask per object and prompted frame (no propagation), as a label image or volume.

    session: a PromptSession, or {object id: [{"frame": 0, "points": [[x, y]], "labels": [1],
    "box": [...]}, ...]}. A 2-D image ignores `frame`; a stack needs `stack_axis`.
    """
    from .predictor import ImagePredictor

    session = _session(session)
    data = as_array(image)
    predictor = ImagePredictor(_model(model), precision=precision)
    is_stack = stack_axis is not None
    norm = normalization
    if is_stack:
        data = np.moveaxis(np.asarray(data), stack_axis, 0)
        if normalization == "auto" and data.dtype != np.uint8:
            norm = Normalization.from_percentiles(data)  # one normalisation for the whole stack
    frames = sorted({p.frame for o in session.objects for p in o.prompts}) if is_stack else [0]
    shape = data.shape[1:3] if is_stack else data.shape[:2]
    labels = np.zeros((len(data), *shape) if is_stack else shape, dtype=np.uint32)
    for frame in frames:
        predictor.set_image(data[frame] if is_stack else data, normalization=norm)
        target = labels[frame] if is_stack else labels
        for obj in session.objects:
            prompts = [p for p in obj.prompts if p.frame == frame or not is_stack]
            if not prompts:
                continue
            points, point_labels, box = _merge(prompts)
            single_click = box is None and points is not None and len(points) == 1
            result = predictor.predict(points=points, labels=point_labels, box=box, multimask_output=single_click)
            mask = result.masks[result.best]
            target[mask & (target == 0)] = obj.id
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
) -> np.ndarray:
    """Track the prompted objects through a stack into a label volume (N, H, W).

    out: an array to write into, or a .tif path to stream to (a memory-mapped TIFF, so long
    movies never sit in memory); default a new array. Stopping keeps the frames done.
    """
    from .tracker import StackTracker

    session = _session(session)
    data = as_array(stack)
    tracker = StackTracker(_model(model), data, precision=precision, normalization=normalization, axis=stack_axis)
    n = tracker.num_frames
    volume = _output_volume(out, (n, *tracker.frame_hw), overwrite)
    for obj in session.objects:
        for prompt in obj.prompts:
            _add(tracker, session, obj.id, prompt)
    writer = LabelWriter(volume)
    total = n + (1 if direction == "both" else 0)
    for done, _ in enumerate(tracker.propagate(direction, writer=writer), start=1):
        if progress is not None:
            progress(done, total)
        if should_stop is not None and should_stop():
            raise Cancelled(f"stopped after {done} frames; they are in the output")
    if hasattr(volume, "flush"):
        volume.flush()
    return volume


def run_session(
    session: PromptSession | str | Path,
    image: Any = None,
    model: SAM2Model | str | None = None,
    out: np.ndarray | str | Path | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> np.ndarray:
    """Replay a prompts file: the same image, model, normalisation and prompts give the same labels."""
    if not isinstance(session, PromptSession):
        session = PromptSession.load(session)
    if image is None:
        path = session.image.get("path")
        if not path:
            raise PromptsFileError("the prompts file names no image: pass image=...")
        image = _read_image(Path(session.image.get("base", ".")) / path)
    data = as_array(image)
    if model is None:
        model = _model_from_session(session)
    axis = session.image.get("stack_axis")
    channels = session.image.get("channels")
    norm = _normalization(session.normalization, data, channels)
    precision = session.model.get("precision", "auto")
    if session.mode == "segment" or axis is None:
        return segment_objects(data, session, model, precision, norm, stack_axis=axis)
    direction = session.propagation.get("direction", "both")
    return propagate(data, session, model, out, direction, precision, norm, axis, progress, overwrite=overwrite)


def _model_from_session(session: PromptSession) -> SAM2Model:
    from .loading import load_model

    spec = session.model
    return load_model(spec.get("checkpoint") or spec.get("name"), image_size=spec.get("image_size"))


def _session(session: PromptSession | dict) -> PromptSession:
    if isinstance(session, PromptSession):
        return session
    built = PromptSession()
    for obj_id, prompts in session.items():
        for p in prompts:
            built.add(int(obj_id), p if isinstance(p, Prompt) else Prompt(**p))
    return built


def _merge(prompts: list[Prompt]):
    points, labels, box = [], [], None
    for p in prompts:
        if p.points:
            points += p.points
            labels += p.labels or [1] * len(p.points)
        if p.box is not None:
            box = p.box
    return (points or None), (labels or None), box


def _add(tracker, session: PromptSession, obj_id: int, prompt: Prompt) -> None:
    if prompt.mask is not None:
        tracker.add_mask(prompt.frame, obj_id, session.mask_array(prompt, tracker.frame_hw))
    elif prompt.box is not None:
        tracker.add_box(prompt.frame, obj_id, prompt.box, prompt.points, prompt.labels)
    else:
        tracker.add_points(prompt.frame, obj_id, prompt.points, prompt.labels, clear=False)


def _output_volume(out, shape: tuple[int, ...], overwrite: bool):
    if out is None:
        return np.zeros(shape, dtype=np.uint32)
    if isinstance(out, (str, Path)):
        import tifffile

        path = Path(out)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
        return tifffile.memmap(path, shape=shape, dtype=np.uint32, photometric="minisblack")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}; the labels need {shape}.")
    return out


def _read_image(path: Path) -> np.ndarray:
    """A TIFF (as a lazy memmap where possible) or a common image format."""
    if not path.exists():
        raise FileNotFoundError(f"No image at {path}.")
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            return tifffile.memmap(path, mode="r")
        except ValueError:  # compressed or tiled: read it
            return tifffile.imread(path)
    from skimage import io

    return io.imread(path)

