"""What the widget wrote into the output labels, object by object: the prompts each commit and
propagation used, so that a saved prompts file says how the labels were made (pure, no napari)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._image_source import ImageSource, PlaneIndex
from ._plane_prompts import ObjectPrompt

Plan = list[tuple[PlaneIndex, int, ObjectPrompt]]  # (plane, object id, its prompts there)


@dataclass
class ObjectRecord:
    """Each object's prompts per plane; whether the last run was a propagation, and its
    direction."""

    prompts: dict[int, dict[PlaneIndex, ObjectPrompt]] = field(default_factory=dict)
    propagated: bool = False
    direction: str = "both"

    def put(self, plan: Plan) -> None:
        """Remember the prompts an object was written with (replacing those of that plane)."""
        for index, obj_id, prompt in plan:
            self.prompts.setdefault(obj_id, {})[index] = replace(prompt, obj_id=obj_id)

    def clear(self) -> None:
        self.prompts.clear()
        self.propagated = False

    def ids(self) -> list[int]:
        return sorted(self.prompts)

    def on_line(self, source: ImageSource, index: PlaneIndex) -> Plan:
        """The recorded prompts on the planes of the stack through `index`."""
        return [
            (plane, obj_id, prompt)
            for obj_id in self.ids()
            for plane, prompt in sorted(self.prompts[obj_id].items())
            if source.same_line(plane, index)
        ]

    def prune(self, source: ImageSource, labels: Any) -> None:
        """Forget objects that are no longer on any of their prompted planes of `labels` (undone
        or erased); with no labels layer, forget everything."""
        if labels is None or tuple(labels.shape) != source.labels_shape:
            self.clear()
            return
        for obj_id in self.ids():
            planes = self.prompts[obj_id]
            if not any(
                (np.asarray(labels[source.labels_plane_key(p)]) == obj_id).any() for p in planes
            ):
                del self.prompts[obj_id]
