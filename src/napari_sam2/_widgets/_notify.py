"""Messages to the user through napari's notifications, never a bare traceback."""

from __future__ import annotations

import logging

from napari.utils.notifications import show_error, show_info, show_warning

from ..checkpoints.files import CheckpointError
from ..engine.predictor import PromptError
from ..images.checks import ImageInputError
from ._plane_prompts import PromptProblem

log = logging.getLogger("napari_sam2")

# Errors whose message is written for the user and says what to do.
EXPECTED = (
    CheckpointError,
    ImageInputError,
    PromptError,
    PromptProblem,
    ValueError,
    KeyError,
    OSError,
)


def error(message: str) -> None:
    show_error(message)


def warning(message: str) -> None:
    show_warning(message)


def info(message: str) -> None:
    show_info(message)


def failure(what: str, exc: BaseException) -> str:
    """Report a failed job: the engine's own message, or the error's type and text for a bug;
    returns the message."""
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    if not isinstance(exc, EXPECTED):
        log.error("%s failed", what, exc_info=exc)
        text = f"{type(exc).__name__}: {text} (details in the log)"
    show_error(f"{what} failed: {text}")
    return text
