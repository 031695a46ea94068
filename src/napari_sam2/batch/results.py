"""Closing an item: its record written, its result made, whether it worked or not."""

from __future__ import annotations

import time

from .inputs import InputError
from .plan import BatchItem
from .records import write_record
from .summary import ItemResult


def succeeded(item: BatchItem, objects: int, start: float) -> ItemResult:
    """The result of an item whose output was committed; its record marks it complete."""
    result = ItemResult(item.input, item.output, "ok", int(objects), time.perf_counter() - start)
    write_record(item, {"status": "ok", "objects": result.objects, "seconds": round(result.seconds, 3)})
    return result


def failed(item: BatchItem, error: BaseException | str, start: float | None = None) -> ItemResult:
    """The result of an item that could not be done, with a one-line reason."""
    message = error if isinstance(error, str) else describe(error)
    seconds = time.perf_counter() - start if start is not None else 0.0
    result = ItemResult(item.input, item.output, "failed", 0, seconds, message)
    try:
        write_record(item, {"status": "failed", "error": message})
    except OSError:  # the input vanished or the output folder is not writable: the summary says it
        pass
    return result


def describe(error: BaseException) -> str:
    """One line for the summary: the message of errors about the input, else the error type too."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(error, (InputError, ValueError, FileNotFoundError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
