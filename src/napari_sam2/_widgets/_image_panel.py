"""Image section: the Image layer to segment, its channel and stack axes, and the normalisation."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from napari.layers import Image
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..images.checks import ImageInputError
from . import _bind, _notify
from ._choice_box import choice_box
from ._image_source import ImageSource
from ._layer_combo import LayerCombo
from ._session import Session

_tokens = itertools.count(1)
NORMALIZATIONS = (
    ("Auto (whole stack: the objects' median at mid-grey)", "percentiles"),
    ("Layer contrast limits", "contrast"),
)


def parse_channels(text: str) -> tuple[int, ...] | None:
    """'2, 0, 1' -> (2, 0, 1); '' -> None (the default channels)."""
    text = text.strip()
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", ",").split(",") if part)
    except ValueError:
        raise ImageInputError(
            f"Channels {text!r}: give up to three channel numbers separated by commas, "
            "e.g. 0 or 2,0,1."
        ) from None


class ImagePanel(QWidget):
    """Pick the image and say which axes hold channels and the stack; sets the session's source."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        viewer = session.viewer
        self.layer_combo = LayerCombo(viewer, Image)
        self.layer_combo.setToolTip(
            "The image to segment: any dtype, 2-D to 4-D (T, Z, Y, X), gray, RGB or multichannel."
        )
        self.channel_axis = QComboBox()
        self.channel_axis.setToolTip(
            "A leading axis that holds channels (e.g. C in (C, Z, Y, X)); "
            "RGB layers use their colours."
        )
        self.channels = QLineEdit()
        self.channels.setToolTip(
            "Up to three channel numbers used as red, green, blue (one is shown as gray)."
        )
        self.stack_axis = QComboBox()
        self.stack_axis.setToolTip(
            "The axis to propagate along (Z or T). Segmenting works on the current plane."
        )
        self.normalization = choice_box(
            NORMALIZATIONS,
            "How intensities become SAM 2 input: the 'auto' rule, computed once over the whole stack "
            "(the 1st percentile is black, twice the objects' median is white), or the layer's "
            "contrast limits and gamma as set now (press Re-read after changing them). If masks "
            "come out larger than bright objects, the objects are clipped white: raise the layer's "
            "upper contrast limit and use it. If dim objects are missed, lower the layer's gamma "
            "(e.g. 0.5) and use it.",
        )
        self.reread = QPushButton("Re-read contrast limits and gamma")
        self.reread.clicked.connect(self.rebuild)
        self.info = QLabel()
        self.info.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.layer_combo)
        form.addRow("Channel axis", self.channel_axis)
        form.addRow("Channels", self.channels)
        form.addRow("Stack axis", self.stack_axis)
        form.addRow("Intensities", self.normalization)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.reread)
        layout.addWidget(self.info)

        self._layer: Image | None = None
        self._filling = False
        choices = session.choices
        _bind.combo_data(self.channel_axis, choices, "channel_axis")
        _bind.line(self.channels, choices, "channels")
        _bind.combo_data(self.stack_axis, choices, "stack_axis")
        _bind.combo_data(self.normalization, choices, "normalization")
        self.layer_combo.layer_changed.connect(self._on_layer)
        self.channel_axis.currentIndexChanged.connect(self._on_channel_axis)
        self.channels.editingFinished.connect(self.rebuild)
        self.stack_axis.currentIndexChanged.connect(self.rebuild)
        self.normalization.currentIndexChanged.connect(self.rebuild)
        self._on_layer(self.layer_combo.layer())

    # ------------------------------------------------------------------ axes

    def _axis_name(self, layer: Image, dim: int) -> str:
        """'axis 0 (51)', or 'axis 0: z (51)' when the axis has a name; napari's default names
        ('0', '-3') are its positions, not names."""
        labels = self.session.viewer.dims.axis_labels
        offset = len(labels) - layer.ndim
        label = labels[dim + offset] if 0 <= dim + offset < len(labels) else ""
        named = label and not label.lstrip("-").isdigit()
        size = layer.data.shape[dim]
        return f"axis {dim}: {label} ({size})" if named else f"axis {dim} ({size})"

    def _on_layer(self, layer: Image | None) -> None:
        if self._layer is not None:
            self._layer.events.data.disconnect(self.rebuild)
        self._layer = layer
        if layer is not None:
            layer.events.data.connect(self.rebuild)
        self._filling = True
        try:
            self.channel_axis.clear()
            self.channel_axis.addItem("none", None)
            lead = range(layer.ndim - 2) if layer is not None and not layer.multiscale else range(0)
            if layer is not None and not layer.rgb:
                for d in lead:
                    self.channel_axis.addItem(self._axis_name(layer, d), d)
            self.channel_axis.setEnabled(layer is not None and not layer.rgb and len(lead) > 0)
            if layer is not None and len(lead) > 2 and not layer.rgb:
                self.channel_axis.setCurrentIndex(1)  # 5-D: the first axis must be channels
            self.channels.clear()
            self._fill_stack_axes()
        finally:
            self._filling = False
        self.rebuild()

    def _on_channel_axis(self, *_: Any) -> None:
        if self._filling:
            return
        self._filling = True
        try:
            self._fill_stack_axes()
        finally:
            self._filling = False
        self.rebuild()

    def _fill_stack_axes(self) -> None:
        layer = self._layer
        channel = self.channel_axis.currentData()
        self.stack_axis.clear()
        self.stack_axis.addItem("none (single planes)", None)
        if layer is None or layer.multiscale:
            return
        for d in range(layer.ndim - 2):
            if d != channel:
                self.stack_axis.addItem(self._axis_name(layer, d), d)
        if self.stack_axis.count() > 1:
            self.stack_axis.setCurrentIndex(1)
        self.channels.setEnabled(layer.rgb or channel is not None)

    # ------------------------------------------------------------------ source

    def rebuild(self, *_: Any) -> None:
        """A new ImageSource from the current choices (the old one's embeddings are dropped)."""
        if self._filling:
            return
        layer = self._layer
        self.reread.setVisible(self.normalization.currentData() == "contrast")
        if layer is None:
            self.info.setText(
                "Open an image (File > Open, or File > Open Sample > SAM 2 for microscopy)."
            )
            self.session.set_source(None, None)
            return
        try:
            if layer.multiscale:
                raise ImageInputError(
                    f"'{layer.name}' is a multiscale (pyramid) image; open its full-resolution "
                    "level as "
                    "a plain image layer to segment it."
                )
            source = ImageSource(
                layer.data,
                rgb=bool(layer.rgb),
                channel_dim=self.channel_axis.currentData(),
                channels=parse_channels(self.channels.text()),
                stack_dim=self.stack_axis.currentData(),
                normalization_mode=self.normalization.currentData(),
                contrast_limits=tuple(layer.contrast_limits),
                gamma=float(layer.gamma),
                token=next(_tokens),
            )
        except ImageInputError as err:
            _notify.error(str(err))
            self.info.setText(f"Cannot use this image: {err}")
            self.session.set_source(layer, None)
            return
        h, w = source.plane_shape
        text = f"{w} x {h} pixels, {layer.data.dtype}"
        if source.is_stack:
            text += f", {source.n_frames} planes along axis {source.stack_dim}"
        if source.channels is not None or source.channel_dim is not None:
            text += f", channels {source.channels or tuple(range(source.n_channels))}"
        limits = _limits_text(source, layer.data)
        self.info.setText(text + (f"; {limits}" if limits else "") + ".")
        self.session.set_source(layer, source)


IN_MEMORY_LIMIT = 512 * 2**20  # bytes: larger or lazy data shows its limits when first used


def _limits_text(source: ImageSource, data: Any) -> str:
    """'intensities 97-289 shown black to white' for in-memory images (computing the limits
    reads at most ~2M sampled pixels); '' for lazy or very large data and 8-bit RGB."""
    if not isinstance(data, np.ndarray) or data.nbytes > IN_MEMORY_LIMIT:
        return ""
    try:
        norm = source.normalization()
    except ImageInputError:
        return ""
    if norm.method == "uint8":
        return ""
    pairs = ", ".join(f"{lo:.4g}-{hi:.4g}" for lo, hi in zip(norm.low, norm.high))
    gamma = f", gamma {norm.gamma:.3g}" if norm.gamma != 1.0 else ""
    return f"intensities {pairs} shown black to white{gamma}"
