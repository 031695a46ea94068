"""A combo box of fixed (label, value) choices: the label is shown, `currentData()` is the value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qtpy.QtWidgets import QComboBox


def choice_box(choices: Iterable[tuple[str, Any]], tip: str = "") -> QComboBox:
    """A QComboBox holding `choices` in order, the first selected, with an optional tooltip."""
    box = QComboBox()
    for label, value in choices:
        box.addItem(label, value)
    if tip:
        box.setToolTip(tip)
    return box
