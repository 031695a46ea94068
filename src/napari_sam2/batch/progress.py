"""A text progress line for batches: inputs done, rate and time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class BatchProgress:
    """A progress(done, total) callback drawing `label  12/40  30%  2.1 s/input  ETA 0:58` on a
    stream: one line redrawn in a terminal, otherwise a line every 10%."""

    def __init__(self, label: str = "batch", stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = time.monotonic()
        self._last_tenth = -1
        self._width = 0

    def __call__(self, done: int, total: int) -> None:
        finished = done >= total
        line = self.line(done, total, time.monotonic() - self._start)
        if self.interactive:
            self.stream.write("\r" + line.ljust(self._width) + ("\n" if finished else ""))
            self._width = len(line)
        else:
            tenth = 10 * done // max(total, 1)
            if tenth == self._last_tenth and not finished:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def line(self, done: int, total: int, elapsed: float) -> str:
        percent = 100 * done / total if total else 100.0
        text = f"{self.label}  {done}/{total}  {percent:3.0f}%"
        if done:
            each = elapsed / done
            text += f"  {each:.1f} s/input  ETA {_clock(each * (total - done))}"
        return text


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
