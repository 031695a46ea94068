"""Shared helpers for the benchmark scripts: timing, peak memory, table printing, the oracle."""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.parity.oracle


def have_oracle() -> bool:
    try:
        import sam2  # noqa: F401
    except ImportError:
        return False
    return True


def time_call(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Best wall time in seconds of `fn()` after `warmup` untimed calls (the minimum is the
    estimate least disturbed by other work on the machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    """Best time of each function, calling them in turn, so that slow phases of a shared
    machine hit all of them alike."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def print_table(title: str, header: list[str], rows: list[list[object]]) -> str:
    """Print (and return) a Markdown table."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def machine_line() -> str:
    import platform

    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {platform.processor() or platform.machine()}"
    )
