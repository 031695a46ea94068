"""How long-running work reports progress and is asked to stop."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]  # (done, total)
StopCheck = Callable[[], bool]  # True when the caller wants the work to stop


class Cancelled(Exception):
    """Raised when long-running work was asked to stop; what was finished is kept by the caller."""
