"""Track objects through a z-stack or time-lapse with SAM 2's memory, streaming and bounded.

Same per-frame algorithm as the official video predictor (conditioning frames, a memory bank of
seven frames, object pointers with temporal encodings, bf16 memories), with these differences:
- frames are read lazily from the arrays the user has (no JPEG folders, nothing loaded up front);
- objects that share a frame's memory layout run in one batched forward;
- objects can be added at any frame, also after tracking started;
- a correction (prompts on an already tracked frame) becomes a conditioning frame, so that
  propagating again respects it (`corrections_as_conditioning=False` gives the official behaviour);
- only memories that attention can still read are kept, so memory use does not grow with the
  length of the stack (the official keeps every frame's memory);
- masks of different objects do not overlap (`non_overlapping=True`, each pixel goes to the
  object with the highest logit), and small holes are filled on every device;
- an object ends where its object score (presence, size, continuity, ownership, contrast:
  `object_ending.py`) stays low after its prompt, and is no longer tracked in that pass; each
  object is then tracked outward from its own prompts (`passes.py`). `ending=None` gives the
  official behaviour: objects never end, and every object is tracked on every frame;
- with `window`, small objects are tracked in a window around their last mask (`windows.py`), so
  that many objects cost far less than the same number of whole-frame passes (off by default).
- with `memory=False`, each object is found from its own mask on the frame before alone, without
  memory attention (`carried.py`): a hundred objects cost about three times one.
Points are (x, y) and boxes (x0, y0, x1, y1) in pixels of a frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..images.frames import FrameSource
from ..images.label_writer import LabelWriter
from ..images.normalization import Normalization
from ..modeling.prompt_encoder import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT
from ..modeling.sam2 import NO_OBJECT_SCORE, FrameOutput, ImageFeatures, SAM2Model
from .carried import track_by_clicks
from .embedding_store import EmbeddingStore
from .frame_features import FrameFeatures
from .memory_bank import frames_to_keep
from .object_ending import EndingState, ObjectEnding, end_objects, shown_elsewhere
from .object_memory import (
    FrameState,
    TrackedObject,
    condition_in_windows,
    condition_on_memories,
    group_by_layout,
    window_for,
    window_layout,
)
from .passes import in_pass, pass_limits, plan_passes
from .postprocess import LOGIT_CLAMP, with_holes_filled
from .precision import compute_precision, resolve_precision
from .prompt_checks import PromptError, check_labels, check_points, clip_boxes
from .quantize import model_for_precision
from .track_result import TrackResult, track_result
from .windows import GridWindow

DIRECTIONS = ("both", "forward", "backward")


class StackTracker:
    """Prompt objects on some frames of a stack, then `propagate` them through it."""

    def __init__(
        self,
        model: SAM2Model,
        frames: Any,
        precision: str = "auto",
        normalization: str | Normalization | None = "auto",
        axis: int = 0,
        channels: Sequence[int] | None = None,
        channel_axis: int | None = None,
        corrections_as_conditioning: bool = True,
        non_overlapping: bool = True,
        fill_hole_area: int = 8,
        feature_cache: int = 2,
        compile: bool = False,
        embedding_store: EmbeddingStore | None = None,
        ending: ObjectEnding | None = ObjectEnding(),
        window: int | None = None,
        memory: bool = True,
    ) -> None:
        """window: the largest window, in model-input pixels (a multiple of 16): each object that
        spans at most half of it is tracked in the smallest window (128, 256 ... pixels) around
        its last mask that it spans at most half of (`windows.py`); None: whole frames.
        memory=False: each object is found from its mask on the frame before alone (a click at
        its deepest point and its logits, `carried.py`): no memory attention, for many objects."""
        if window is not None and (window % 16 or window < 64 or window > model.image_size):
            raise ValueError(
                f"window must be a multiple of 16 pixels between 64 and the model's input size "
                f"{model.image_size}, or None for whole frames; got {window}."
            )
        self.window = None if window is None else window // 16
        if compile:
            from .compiled import compile_model

            compile_model(model)
        self.model = model.eval()
        self.device = model.device
        self.dtype = resolve_precision(precision, self.device, model)
        self.model = model_for_precision(self.model, self.dtype)  # int8: a quantised copy
        self.frames = frames if isinstance(frames, FrameSource) else FrameSource(
            frames, axis=axis, normalization=normalization, channels=channels, channel_axis=channel_axis
        )
        # frames' embeddings on disk (shared with the dock) and the last few in memory
        self._features = FrameFeatures(
            self.model, self.frames, self.dtype, feature_cache, embedding_store,
            keep_grays=ending is not None and ending.contrast,
        )
        self.num_frames = len(self.frames)
        self.frame_hw = self.frames.frame_shape
        self.corrections_as_conditioning = corrections_as_conditioning
        self.non_overlapping = non_overlapping
        self.fill_hole_area = fill_hole_area
        self._objects: dict[int, TrackedObject] = {}
        self.ending = ending
        self._ending: dict[int, EndingState] = {}  # per object, for the current pass
        self.memory = memory

    # ------------------------------------------------------------------ objects and prompts

    @property
    def obj_ids(self) -> list[int]:
        return list(self._objects)

    def add_points(
        self, frame: int, obj_id: int, points: Any, labels: Any = None, clear: bool = True
    ) -> TrackResult:
        """Clicks on `frame` for object `obj_id`: (N, 2) (x, y) pixels, labels 1/0 (default 1).
        clear=False adds them to the clicks already on that frame."""
        h, w = self.frame_hw
        pts = check_points(points, h, w)
        lab = check_labels(labels, len(pts))
        return self._add_prompt(frame, obj_id, pts, lab, clear)

    def add_box(
        self, frame: int, obj_id: int, box: Any, points: Any = None, labels: Any = None
    ) -> TrackResult:
        """A box (x0, y0, x1, y1) pixels on `frame`, optionally with clicks."""
        h, w = self.frame_hw
        corners = clip_boxes(np.asarray(box, dtype=np.float64).reshape(1, 4), h, w).reshape(2, 2)
        pts, lab = corners, np.array([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT])
        if points is not None:
            extra = check_points(points, h, w)
            pts = np.concatenate([pts, extra])
            lab = np.concatenate([lab, check_labels(labels, len(extra))])
        return self._add_prompt(frame, obj_id, pts, lab, clear=True)

    def add_mask(self, frame: int, obj_id: int, mask: Any) -> TrackResult:
        """A binary (H, W) mask of the object on `frame`."""
        self._check_frame(frame)
        mask = np.asarray(mask)
        if mask.shape != self.frame_hw:
            raise PromptError(f"mask has shape {mask.shape}; frames are {self.frame_hw}.")
        obj = self._objects.setdefault(obj_id, TrackedObject(obj_id))
        obj.points.pop(frame, None)
        size = self.model.image_size
        m = torch.as_tensor(mask > 0, dtype=torch.float32, device=self.device)[None, None]
        if tuple(m.shape[-2:]) != (size, size):
            m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        features = self._features.get(frame)
        with torch.inference_mode(), compute_precision(self.device, self.dtype):
            out = self.model.mask_as_output(features.embedding, features.high_res, m.to(self.model.dtype))
        self._store_prompt_output(obj, frame, out)
        return self._frame_result(frame, [obj_id], [out.low_res_masks.float()], [out.iou], [out.object_score])

    def segment_boxes(self, frame: int, boxes: Any) -> tuple[np.ndarray, np.ndarray]:
        """Masks (K, H, W) and predicted IoU (K,) for boxes (x0, y0, x1, y1) on `frame` from the
        image alone (no memory, nothing stored): how new objects are found while tracking."""
        h, w = self.frame_hw
        boxes = clip_boxes(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), h, w)
        if len(boxes) == 0:
            return np.zeros((0, h, w), bool), np.zeros(0)
        size = self.model.image_size
        scale = np.array([size / w, size / h])
        coords = torch.as_tensor(boxes.reshape(-1, 2, 2) * scale, dtype=torch.float32, device=self.device)
        labels = torch.tensor([[LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]], dtype=torch.int32, device=self.device)
        features = self._features.get(frame)
        with torch.inference_mode(), compute_precision(self.device, self.dtype):
            embedding = self.model.add_no_memory(features.embedding)
            out = self.model.decode_frame(embedding, features.high_res, coords, labels.expand(len(boxes), -1))
        out = with_holes_filled(out, self.fill_hole_area)
        full = F.interpolate(out.low_res_masks.float(), size=self.frame_hw, mode="bilinear", align_corners=False)
        return (full[:, 0] > 0).cpu().numpy(), out.iou.float().reshape(-1).cpu().numpy()

    def remove_object(self, obj_id: int) -> None:
        if self._objects.pop(obj_id, None) is None:
            raise KeyError(f"no object {obj_id}; objects are {self.obj_ids}")
        self._ending.pop(obj_id, None)

    def reset(self) -> None:
        """Forget all objects, prompts and memories (cached frame features are kept)."""
        self._objects.clear()
        self._ending.clear()

    def _add_prompt(self, frame: int, obj_id: int, pts: np.ndarray, lab: np.ndarray, clear: bool) -> TrackResult:
        self._check_frame(frame)
        obj = self._objects.setdefault(obj_id, TrackedObject(obj_id))
        h, w = self.frame_hw
        size = self.model.image_size
        coords = torch.as_tensor(pts * np.array([size / w, size / h]), dtype=torch.float32, device=self.device)[None]
        labels = torch.as_tensor(lab, dtype=torch.int32, device=self.device)[None]
        if not clear and frame in obj.points:
            old_coords, old_labels = obj.points[frame]
            coords, labels = torch.cat([old_coords, coords], 1), torch.cat([old_labels, labels], 1)
        obj.points[frame] = (coords, labels)
        initial = frame not in obj.direction
        reverse = obj.direction.get(frame, False)
        previous = obj.cond.get(frame) or obj.tracked.get(frame)
        prior = previous.low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP) if previous is not None else None
        features = self._features.get(frame)
        with torch.inference_mode(), compute_precision(self.device, self.dtype):
            if initial or not self.memory:
                embedding = self.model.add_no_memory(features.embedding)
            else:
                embedding = condition_on_memories(self.model, [obj], frame, features, reverse, self.num_frames)
            multimask = labels.shape[1] <= 1
            out = self.model.decode_frame(embedding, features.high_res, coords, labels, prior, multimask)
        out = with_holes_filled(out, self.fill_hole_area)
        self._store_prompt_output(obj, frame, out, conditioning=initial or self.corrections_as_conditioning)
        return self._frame_result(frame, [obj_id], [out.low_res_masks.float()], [out.iou], [out.object_score])

    def _store_prompt_output(self, obj: TrackedObject, frame: int, out: FrameOutput, conditioning: bool = True) -> None:
        state = FrameState(out.low_res_masks.float(), out.obj_ptr.float(), out.object_score.float(), out.iou.float(), True)
        if conditioning:
            obj.cond[frame] = state
            obj.tracked.pop(frame, None)
        else:
            obj.tracked[frame] = state

    def _check_frame(self, frame: int) -> None:
        if not 0 <= frame < self.num_frames:
            raise PromptError(f"frame {frame} is outside the stack (0..{self.num_frames - 1}).")

    # ------------------------------------------------------------------ propagation

    def propagate(
        self,
        direction: str = "both",
        start: int | None = None,
        stop: int | tuple[int, int] | None = None,
        writer: LabelWriter | None = None,
    ) -> Iterator[TrackResult]:
        """Yield each frame's result while tracking all objects, frame by frame.

        start: first frame (default: the first prompted frame); stop: last frame, inclusive
        (for 'both' a (low, high) pair; default: the ends of the stack). 'both' runs forward,
        then backward from `start` again (with objects that end, from the latest first prompt:
        `passes.py`), so frames between are yielded twice. Stop iterating to cancel: every frame
        already yielded (and written to `writer`) stays done.
        """
        passes = self._plan(direction, start, stop)
        self._encode_prompt_memories()
        try:
            for order, reverse in passes:
                self._ending.clear()
                for frame, rgb in self.frames.iterate(order, skip=self._features.__contains__):
                    result = self._track_frame(frame, rgb, reverse, direction == "both")
                    if writer is not None:
                        writer.write(frame, result.obj_ids, result.masks)
                    yield result
                self.frames.discard_pending()
        finally:
            self.frames.discard_pending()

    def frames_in_passes(self, direction: str = "both", start: int | None = None, stop=None) -> int:
        """How many results `propagate` with these arguments yields (for progress)."""
        return sum(len(order) for order, _ in self._plan(direction, start, stop))

    def _plan(self, direction: str, start: int | None, stop) -> list[tuple[range, bool]]:
        """The passes of a propagation, after checking that it can run."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        if not self._objects:
            raise PromptError("Nothing to propagate: add points, a box or a mask first.")
        unprompted = [o.obj_id for o in self._objects.values() if not o.cond and not o.tracked]
        if unprompted:
            raise PromptError(f"objects {unprompted} have no prompts.")
        if not any(o.cond for o in self._objects.values()):
            raise PromptError("every object needs at least one prompted frame to start from.")
        start = min(f for o in self._objects.values() for f in o.cond) if start is None else start
        self._check_frame(start)
        low, high = pass_limits(direction, start, stop, self.num_frames)
        return plan_passes(self._objects.values(), direction, start, low, high, self.ending is not None)

    def track(self, frame: int, reverse: bool = False, rgb: np.ndarray | None = None) -> TrackResult:
        """Track every object on one frame from the frames tracked before it, for callers that
        choose the order themselves (track_everything); ending states carry over between calls.
        rgb: the frame as `self.frames.get(frame)` gives it, when the caller has read it."""
        self._check_frame(frame)
        self._encode_prompt_memories()
        return self._track_frame(frame, rgb, reverse, None)

    @torch.inference_mode()
    def _encode_prompt_memories(self) -> None:
        """Memories of prompted frames, from their stored low-res masks (as the official does)."""
        for obj in self._objects.values():
            for frame in obj.cond:
                obj.direction.setdefault(frame, False)
            if not self.memory:
                continue
            for frame, state in [*obj.cond.items(), *obj.tracked.items()]:
                if state.maskmem is None:
                    features = self._features.get(frame)
                    state.maskmem = self._encode(state, features)

    def _encode(self, state: FrameState, features: ImageFeatures) -> torch.Tensor:
        """The bf16 memory of one object on one frame (prompted frames from the binarised mask)."""
        with compute_precision(self.device, self.dtype):
            maskmem, _ = self.model.encode_memory(
                features.embedding, self.model.upscale(state.low_res), state.score, binarize=state.from_prompt
            )
        return maskmem.to(torch.bfloat16)

    @torch.inference_mode()
    def _track_frame(self, frame: int, rgb: np.ndarray | None, reverse: bool, both: bool | None) -> TrackResult:
        """One frame's result for the objects this pass tracks there (`passes.in_pass`; both=None:
        every object)."""
        features = self._features.get(frame, rgb)
        states: dict[int, FrameState] = {}
        ended = {i for i, st in self._ending.items() if st.ended}
        outward = both is not None and self.ending is not None
        here = [o for o in self._objects.values() if frame in o.cond or not outward or in_pass(o, frame, reverse, both)]
        to_track = [o for o in here if frame not in o.cond and o.obj_id not in ended]
        if not self.memory:
            found = track_by_clicks(
                self.model, to_track, frame, features, reverse, self.window, self.dtype, self.fill_hole_area
            )
            for obj in to_track:
                obj.tracked[frame] = states[obj.obj_id] = found[obj.obj_id]
            to_track = []
        for group in group_by_layout(self.model, to_track, frame, reverse, self.num_frames):
            grid = self.model.config.feat_size
            windows = [
                None if self.window is None else window_for(obj, frame, reverse, self.window, grid) for obj in group
            ]
            whole = [obj for obj, w in zip(group, windows) if w is None]
            if whole:
                self._track_whole(whole, frame, features, reverse, states)
            batches: dict[tuple, list] = {}  # same window size and same sizes of memories
            for obj, w in zip(group, windows):
                if w is not None:
                    batches.setdefault(window_layout(self.model, obj, w, frame, reverse, self.num_frames), []).append((obj, w))
            for inside in batches.values():
                self._track_in_windows(inside, frame, features, reverse, states)
        for obj in here:
            if frame in obj.cond:
                states[obj.obj_id] = obj.cond[frame]
            obj.direction[frame] = reverse
            keep = frames_to_keep(obj.tracked, obj.cond, frame, self.model.config.max_obj_ptrs_in_encoder - 1)
            for dropped in set(obj.tracked) - keep:
                del obj.tracked[dropped]
        ids = [o.obj_id for o in here]
        low_res = {i: s.low_res for i, s in states.items()}
        if rgb is not None and self._features.keep_grays:
            self._features.gray(frame, rgb)
        gray = self._features.gray if self._features.keep_grays else None
        scores = end_objects(
            frame, self._objects, low_res, states, self._ending, self.ending, self.non_overlapping, reverse, gray,
            shown_elsewhere(self._objects.values(), frame, states),
        )
        side = self.model.image_size // 4
        blank = torch.full((1, 1, side, side), NO_OBJECT_SCORE, device=self.device)
        zero = torch.zeros(1, 1, device=self.device)
        return self._frame_result(
            frame, ids, [low_res.get(i, blank) for i in ids],
            [states[i].iou if i in states else zero for i in ids],
            [states[i].score if i in states else zero + NO_OBJECT_SCORE for i in ids],
            [scores.get(i, 0.0) for i in ids], [i in self._ending and self._ending[i].ended for i in ids],
        )

    def _track_whole(
        self, group: list[TrackedObject], frame: int, features: ImageFeatures, reverse: bool, states: dict
    ) -> None:
        """Track objects that share a memory layout over the whole frame, as one batch."""
        with compute_precision(self.device, self.dtype):
            embedding = condition_on_memories(self.model, group, frame, features, reverse, self.num_frames)
            out = self.model.decode_frame(embedding, [f.expand(len(group), -1, -1, -1) for f in features.high_res], multimask_output=True)
            maskmem, _ = self.model.encode_memory(
                features.embedding.expand(len(group), -1, -1, -1), out.high_res_masks, out.object_score
            )
        self._store_tracked(group, frame, with_holes_filled(out, self.fill_hole_area), maskmem, states)

    def _track_in_windows(
        self, inside: list[tuple[TrackedObject, GridWindow]], frame: int, features: ImageFeatures, reverse: bool, states: dict
    ) -> None:
        """Track objects that share a memory layout, each in its window, as one batch."""
        group, windows = [o for o, _ in inside], [w for _, w in inside]
        pe = self.model.sam_prompt_encoder.dense_pe()
        with compute_precision(self.device, self.dtype):
            embedding, raw, high_res = condition_in_windows(
                self.model, group, frame, features, reverse, self.num_frames, windows
            )
            image_pe = torch.cat([w.crop(pe) for w in windows]).to(embedding.dtype)
            out = self.model.decode_frame(embedding, high_res, multimask_output=True, image_pe=image_pe)
            maskmem, _ = self.model.encode_memory(raw, out.high_res_masks, out.object_score)
        out = with_holes_filled(out, self.fill_hole_area)
        out.low_res_masks = torch.cat([w.paste(out.low_res_masks[i : i + 1].float()) for i, w in enumerate(windows)])
        self._store_tracked(group, frame, out, maskmem, states, windows)

    def _store_tracked(self, group, frame, out: FrameOutput, maskmem, states, windows=None) -> None:
        for i, obj in enumerate(group):
            state = FrameState(
                out.low_res_masks[i : i + 1].float(), out.obj_ptr[i : i + 1].float(),
                out.object_score[i : i + 1].float(), out.iou[i : i + 1].float(), False,
                maskmem[i : i + 1].to(torch.bfloat16), None if windows is None else windows[i],
            )
            obj.tracked[frame] = state
            states[obj.obj_id] = state

    def _frame_result(self, frame, obj_ids, low_res, iou, score, object_scores=None, ended=None) -> TrackResult:
        return track_result(
            frame, obj_ids, low_res, iou, score, self.frame_hw, self.non_overlapping, object_scores, ended
        )
