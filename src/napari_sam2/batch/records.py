"""One small record per output, written after it, that says it is complete: what resume reads.

Records live in a hidden folder of the output folder, so the outputs stay a plain set of TIFFs.
An output counts as complete when its record says 'ok' for the same input file and prompts file
(path, size and modification time) and the same settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .outputs import write_json

if TYPE_CHECKING:
    from .plan import BatchItem

FOLDER = ".napari-sam2-batch"


def record_path(output: Path) -> Path:
    return output.parent / FOLDER / f"{output.name}.json"


def input_stamp(input_path: str, prompts: str | None) -> list[list[int]]:
    """What tells that an input changed: size and modification time (ns) of the input file and
    of its prompts file."""
    stamps = []
    for path in (input_path, prompts):
        if path is not None:
            stat = Path(path).stat()
            stamps.append([stat.st_size, stat.st_mtime_ns])
    return stamps


def write_record(item: BatchItem, result: dict[str, Any]) -> None:
    write_json(record_path(Path(item.output)), {
        "input": item.input,
        "prompts": item.prompts,
        "input_stamp": item.stamp,  # as planned: a file changed while it ran is redone next time
        "settings": item.settings,
        **result,
    })


def read_record(output: Path) -> dict[str, Any] | None:
    try:
        return json.loads(record_path(output).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def output_state(item: BatchItem) -> tuple[str, dict[str, Any] | None]:
    """(state, record) of an item's output: 'absent'; 'complete' (done for this input as it is
    now, with these settings); 'stale' (made by a batch from this input with these settings,
    but the input changed or the try failed: redo it); 'foreign' (anything else: keep it unless
    the user asks to overwrite)."""
    output = Path(item.output)
    if not output.exists():
        return "absent", None
    record = read_record(output)
    if record is None or record.get("settings") != item.settings or record.get("input") != item.input:
        return "foreign", record
    if record.get("status") == "ok" and record.get("input_stamp") == item.stamp:
        return "complete", record
    return "stale", record
