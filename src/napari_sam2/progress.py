"""How long-running work reports progress and is asked to stop, and a text bar to show it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

ProgressCallback = Callable[[int, int], None]  # (done, total)
StopCheck = Callable[[], bool]  # True when the caller wants the work to stop


class Cancelled(Exception):
    """Raised when long-running work was asked to stop; what was finished is kept by the caller."""


class TextProgress:
    """A progress(done, total) callback drawn as a tqdm bar on stderr (or `stream`).

    unit="B" shows bytes (MB, MB/s); other units show counts with rate and time left. A bar that
    is already complete at its first call (nothing to do) stays quiet.
    """

    def __init__(self, label: str, stream: TextIO | None = None, unit: str = "B") -> None:
        self.label, self.unit = label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.postfix = ""  # shown after the counts, e.g. the current loss
        self._bar = None
        self._closed = False

    def __call__(self, done: int, total: int) -> None:
        if self._closed:
            return
        if self._bar is None:
            if total and done >= total:
                self._closed = True
                return
            from tqdm import tqdm

            interactive = bool(getattr(self.stream, "isatty", lambda: False)())
            self._bar = tqdm(
                total=total or None, initial=done, desc=self.label, unit=self.unit, file=self.stream,
                unit_scale=self.unit == "B", unit_divisor=1000, dynamic_ncols=interactive,
                mininterval=0.2 if interactive else 10.0, ascii=not interactive, leave=True,
            )
        bar = self._bar
        if self.postfix:
            bar.set_postfix_str(self.postfix, refresh=False)
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()
            self._closed = True
