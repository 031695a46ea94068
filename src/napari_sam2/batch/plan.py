"""Turning inputs into work items: where each output goes, which prompts it uses, and which
are already complete from an earlier run (resume)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..images.zarr_io import is_zarr_folder, is_zarr_path
from .inputs import prompts_beside
from .outputs import remove_parts
from .records import input_stamp, output_state
from .spec import OUTPUT_SUFFIXES, BatchError, BatchSpec
from .summary import ItemResult


@dataclass(frozen=True)
class BatchItem:
    """One input to process: small and picklable, so it can be sent to a dask worker."""

    index: int  # position in the batch (the summary keeps input order)
    input: str
    output: str
    prompts: str | None
    settings: str  # the spec's fingerprint, written into the output's record
    stamp: list[list[int]]  # input_stamp when planned


def output_names(paths: list[Path], suffix: str = OUTPUT_SUFFIXES["tif"]) -> list[str]:
    """`<stem>_labels.tif` (or another `suffix`) for each input; inputs whose stems collide get
    their parent folders' names in front (`plate1__A01_labels.tif`) until the names are unique."""
    def name(path: Path, depth: int) -> str:
        parts = [*path.parent.parts[len(path.parent.parts) - depth:], path.stem] if depth else [path.stem]
        return "__".join(parts) + suffix

    depth = [0] * len(paths)
    while True:
        names = [name(p, d) for p, d in zip(paths, depth)]
        counts = Counter(names)
        clashes = [i for i, n in enumerate(names) if counts[n] > 1]
        if not clashes:
            return names
        grown = False
        for i in clashes:
            if depth[i] < len(paths[i].parent.parts):
                depth[i] += 1
                grown = True
        if not grown:
            raise BatchError(f"two inputs would write the same output {names[clashes[0]]}.")


def plan_items(
    paths: list[Path], output_dir: Path, spec: BatchSpec, overwrite: bool
) -> tuple[list[BatchItem], list[ItemResult]]:
    """(items to process, results of inputs skipped as complete). An existing output that an
    earlier batch did not make from the same input with the same settings is an error unless
    `overwrite`; `overwrite` also redoes complete ones. An output that is an input is always an
    error. Nothing is deleted until every check has passed."""
    fingerprint = spec.fingerprint()
    shared = Path(spec.prompts).resolve() if spec.prompts else None
    if shared is not None and not shared.is_file():
        raise BatchError(f"No prompts file at {shared}.")
    todo, skipped, clashes = [], [], []
    inputs = {p.resolve() for p in paths}
    for index, (path, name) in enumerate(zip(paths, output_names(paths, spec.output_suffix))):
        output = output_dir / name
        if output.resolve() in inputs:
            raise BatchError(
                f"the output {output} would replace the input of that name; an input is never "
                "overwritten: choose another output folder."
            )
        prompts = (prompts_beside(path) or shared) if spec.mode != "everything" else None
        prompts = str(prompts) if prompts else None
        item = BatchItem(index, str(path), str(output), prompts, fingerprint, input_stamp(str(path), prompts))
        state, record = output_state(item)
        if state == "complete" and not overwrite:
            skipped.append(ItemResult(str(path), str(output), "skipped", int(record.get("objects", 0))))
            continue
        if state == "foreign" and not overwrite:
            clashes.append(output)
        if output.exists() and not _replaceable(output):
            raise BatchError(
                f"{output} exists and is not a label {'zarr folder' if is_zarr_path(output) else 'file'}; "
                "move it away or choose another output folder."
            )
        todo.append(item)
    if clashes:  # refused before anything is touched
        raise FileExistsError(
            f"{len(clashes)} output(s) exist from other inputs or settings (first: {clashes[0]}); "
            "pass overwrite=True (--overwrite) to replace them, or use another output folder."
        )
    for item in todo:  # left by a killed run (this run holds the folder: no other writer)
        remove_parts(Path(item.output))
    return todo, skipped


def _replaceable(output: Path) -> bool:
    """Whether an existing output can be replaced by the new one: a file for TIFFs; for OME-Zarr
    a zarr folder (no other folder is ever deleted)."""
    return is_zarr_folder(output) if is_zarr_path(output) else output.is_file()
