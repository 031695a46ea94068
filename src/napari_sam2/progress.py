"""How long-running work reports progress and is asked to stop, and a text bar to show it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

ProgressCallback = Callable[[int, int], None]  # (done, total)
StopCheck = Callable[[], bool]  # True when the caller wants the work to stop


class Cancelled(Exception):
    """Raised when long-running work was asked to stop; what was finished is kept by the caller."""


class TextProgress:
    """A progress callback that draws `label  12.3/156.0 MB  8%  4.1 MB/s` on a stream: one line
    redrawn in a terminal, otherwise a line every 10%."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start: tuple[float, int] | None = None
        self._last_draw = 0.0
        self._width = 0
        self._last_tenth = -1
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = (now, done)
        finished = total > 0 and done >= total
        if self._finished or (finished and self._last_tenth < 0 and done == self._start[1]):
            return  # nothing was downloaded while we watched: stay quiet
        tenth = 10 * done // total if total else 0
        if self.interactive:
            if not finished and now - self._last_draw < 0.2:
                return
            line = self._line(done, total, now)
            self.stream.write("\r" + line.ljust(self._width) + ("\n" if finished else ""))
            self._width = len(line)  # a shorter next line blanks what this one leaves
        else:
            if tenth == self._last_tenth and not finished:
                return
            self.stream.write(self._line(done, total, now) + "\n")
        self.stream.flush()
        self._last_draw, self._last_tenth, self._finished = now, tenth, finished

    def _line(self, done: int, total: int, now: float) -> str:
        started, first = self._start or (now, done)
        speed = (done - first) / max(now - started, 1e-6) / 1e6
        percent = f"{100 * done / total:3.0f}%" if total else ""
        return f"{self.label}  {done / 1e6:.1f}/{total / 1e6:.1f} MB  {percent}  {speed:.1f} MB/s"
