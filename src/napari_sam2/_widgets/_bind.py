"""Two-way links between a Qt control and one field of the session's `Choices`.

The control writes the field when the user changes it; the control follows when the field is
set from elsewhere (a prompts file, a script, another panel's action)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QSpinBox

from ._session import Choices


def _link(
    choices: Choices,
    name: str,
    read: Callable[[], Any],
    show: Callable[[Any], None],
    changed: Any,
) -> None:
    def to_choices(*_: Any) -> None:
        setattr(choices, name, read())

    def to_control(value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the control was closed
            if read() != value:
                show(value)

    changed.connect(to_choices)
    getattr(choices.events, name).connect(to_control)
    setattr(choices, name, read())  # the control starts with the remembered or default value


def combo_data(combo: QComboBox, choices: Choices, name: str) -> None:
    """The combo's current item data <-> the field (an unknown value leaves the combo as it is)."""

    def show(value: Any) -> None:
        index = combo.findData(value)
        if index >= 0:
            combo.setCurrentIndex(index)

    _link(choices, name, combo.currentData, show, combo.currentIndexChanged)


def combo_text(combo: QComboBox, choices: Choices, name: str) -> None:
    def show(value: Any) -> None:
        index = combo.findText(str(value))
        if index >= 0:
            combo.setCurrentIndex(index)

    _link(choices, name, combo.currentText, show, combo.currentTextChanged)


def check(button: QAbstractButton, choices: Choices, name: str) -> None:
    _link(choices, name, button.isChecked, lambda v: button.setChecked(bool(v)), button.toggled)


def line(edit: QLineEdit, choices: Choices, name: str) -> None:
    _link(choices, name, edit.text, lambda v: edit.setText(str(v)), edit.textChanged)


def spin(box: QSpinBox, choices: Choices, name: str) -> None:
    _link(choices, name, box.value, lambda v: box.setValue(int(v)), box.valueChanged)
