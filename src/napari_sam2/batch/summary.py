"""The result of each input and of the whole batch, as a table (CSV) and a JSON file."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .outputs import part_name, write_json

STATUSES = ("ok", "failed", "skipped")
COLUMNS = ("input", "output", "status", "objects", "seconds", "error", "worker")
CSV_NAME = "batch_summary.csv"
JSON_NAME = "batch_summary.json"


@dataclass
class ItemResult:
    """One input: status 'ok', 'failed' (error says why) or 'skipped' (complete from an earlier
    run); objects found; seconds spent on it in this run; the dask worker that did it."""

    input: str
    output: str
    status: str
    objects: int = 0
    seconds: float = 0.0
    error: str = ""
    worker: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchSummary:
    """Every input's result in input order, the settings, and the wall time of the batch."""

    results: list[ItemResult]
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    csv_path: Path | None = None
    json_path: Path | None = None

    def by_status(self, status: str) -> list[ItemResult]:
        return [r for r in self.results if r.status == status]

    @property
    def ok(self) -> list[ItemResult]:
        return self.by_status("ok")

    @property
    def failed(self) -> list[ItemResult]:
        return self.by_status("failed")

    @property
    def skipped(self) -> list[ItemResult]:
        return self.by_status("skipped")

    @property
    def images_per_minute(self) -> float:
        """Inputs processed (ok) per minute of wall time in this run."""
        return 60.0 * len(self.ok) / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, int]:
        return {s: len(self.by_status(s)) for s in STATUSES}

    def line(self) -> str:
        c = self.counts()
        return (f"{len(self.results)} inputs: {c['ok']} ok, {c['failed']} failed, {c['skipped']} skipped "
                f"in {self.seconds:.1f} s ({self.images_per_minute:.1f} per minute)")

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in self.results:
            writer.writerow({**r.to_dict(), "seconds": f"{r.seconds:.3f}"})
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "seconds": round(self.seconds, 3),
            "images_per_minute": round(self.images_per_minute, 3),
            "settings": self.settings,
            "inputs": [r.to_dict() for r in self.results],
        }

    def write(self, folder: str | Path) -> None:
        """batch_summary.csv and batch_summary.json in `folder`, each written atomically."""
        folder = Path(folder)
        self.csv_path, self.json_path = folder / CSV_NAME, folder / JSON_NAME
        part = part_name(self.csv_path)
        part.write_text(self.to_csv())
        os.replace(part, self.csv_path)
        write_json(self.json_path, self.to_dict())
