"""Long jobs in napari thread workers, with a progress bar, an ETA and a Cancel button.

A job function takes a `JobControl` first. It may be a generator: every value it yields is handed
to `on_yield` on the GUI thread (that is where results are written into layers), and it should
check `control.stop_requested` between steps so that Cancel stops it within one step.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..progress import Cancelled
from . import _notify


class JobControl:
    """What a running job sees: a stop flag and a thread-safe progress report."""

    def __init__(self, relay: _Relay) -> None:
        self._stop = threading.Event()
        self._relay = relay

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def report(self, done: float, total: float) -> None:
        """Progress from any thread; the bar and ETA update on the GUI thread."""
        self._relay.progress.emit(float(done), float(total))


class _Relay(QObject):
    progress = Signal(float, float)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class JobPanel(QWidget):
    """One long job at a time: its title, a progress bar with ETA, and Cancel. Hidden when idle."""

    started = Signal()
    finished = Signal()

    def __init__(
        self, unit: str = "steps", scale: float = 1.0, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.unit = unit
        self.scale = scale  # progress is shown as done * scale (e.g. bytes as MB)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.bar = QProgressBar()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this job; what is already done is kept.")
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addLayout(row)
        self._relay = _Relay(self)
        self._relay.progress.connect(self._on_progress)
        self.worker: Any = None
        self.control: JobControl | None = None
        running: dict[str, JobControl | None] = {"control": None}
        self._running = running  # closing the widget stops its job (the lambda must not hold self)
        self.destroyed.connect(lambda *_: running["control"] and running["control"].request_stop())
        self._title = ""
        self._t0 = 0.0
        self.activity: progress | None = None  # the mirror in napari's activity panel
        self.setVisible(False)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(
        self,
        title: str,
        func: Callable[..., Any],
        *args: Any,
        on_yield: Callable[[Any], None] | None = None,
        on_return: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_finish: Callable[[str], None] | None = None,
    ) -> Any:
        """Run `func(control, *args)` in a worker thread; returns the (started) worker.

        on_error(message) gets the whole error message (also shown as a notification);
        on_finish(outcome) runs last on the GUI thread: outcome is 'done', 'cancelled' or 'failed'.
        """
        if self.busy:
            raise RuntimeError(f"{self._title} is still running.")
        control = JobControl(self._relay)
        worker = create_worker(func, control, *args, _start_thread=False, _ignore_errors=True)
        self.worker, self.control, self._title = worker, control, title
        self._running["control"] = control
        if on_yield is not None and inspect.isgeneratorfunction(func):
            worker.yielded.connect(on_yield)  # yielded work is done: kept even after Cancel
        if on_return is not None:
            worker.returned.connect(
                lambda value: None if control.stop_requested else on_return(value)
            )
        failed = []

        def errored(exc: BaseException) -> None:
            if isinstance(exc, Cancelled) and control.stop_requested:
                return  # stopped on request: not a failure
            failed.append(exc)
            message = _notify.failure(title, exc)
            if on_error is not None:
                on_error(message)

        worker.errored.connect(errored)

        def done() -> None:
            outcome = "failed" if failed else "cancelled" if control.stop_requested else "done"
            try:
                self.worker = self.control = self._running["control"] = None
                self._close_activity()
                self.setVisible(False)
                if on_finish is not None:
                    on_finish(outcome)
                self.finished.emit()
            except RuntimeError:  # the widget was closed while the job ran
                pass

        worker.finished.connect(done)
        self._close_activity()
        self.activity = progress(total=0, desc=title)
        self._t0 = time.perf_counter()
        self.bar.setRange(0, 0)  # busy until the first report
        self.label.setText(f"{title}…")
        self.cancel_button.setEnabled(True)
        self.setVisible(True)
        self.started.emit()
        worker.start()
        return worker

    def _mirror(self, done: float, total: float) -> None:
        """The same progress in napari's activity panel (bottom right of the window), which is
        in sight however far the dock is scrolled."""
        bar = self.activity
        if bar is None:
            return
        steps = 1000
        if bar.total != steps:
            bar.total = steps
        bar.update(int(steps * min(done, total) / total) - bar.n)

    def _close_activity(self) -> None:
        bar, self.activity = self.activity, None
        if bar is not None:
            bar.close()

    def cancel(self) -> None:
        """Ask the running job to stop at its next step."""
        if self.control is not None:
            self.control.request_stop()
            self.cancel_button.setEnabled(False)
            self.label.setText(f"{self._title}: cancelling…")

    def _on_progress(self, done: float, total: float) -> None:
        if self.control is None or self.control.stop_requested:
            return
        if total <= 0:
            self.bar.setRange(0, 0)
            return
        self.bar.setRange(0, 1000)
        self.bar.setValue(int(1000 * min(done, total) / total))
        elapsed = time.perf_counter() - self._t0
        shown, of = done * self.scale, total * self.scale
        digits = 0 if self.scale == 1 else 1
        if self.scale == 1 and done != int(done):  # within a step: "40 % of 1 plane"
            unit = self.unit[:-1] if total == 1 and self.unit.endswith("s") else self.unit
            text = f"{self._title}: {100 * done / total:.0f} % of {total:g} {unit}"
        else:
            text = f"{self._title}: {shown:.{digits}f} of {of:.{digits}f} {self.unit} done"
        self._mirror(done, total)
        if done > 0:
            per = elapsed / done
            text += f" · {per:.2f} s each · about {format_seconds(per * (total - done))} left"
        self.label.setText(text)


def run_short(
    title: str,
    func: Callable[..., Any],
    *args: Any,
    on_return: Callable[[Any], None],
    on_finish: Callable[[], None] | None = None,
) -> Any:
    """Run a short job (an embedding, a decoder pass) in a worker; errors become notifications."""
    worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True)
    worker.returned.connect(on_return)
    worker.errored.connect(lambda exc: _notify.failure(title, exc))
    if on_finish is not None:
        worker.finished.connect(on_finish)
    worker.start()
    return worker
