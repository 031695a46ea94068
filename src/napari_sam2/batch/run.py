"""`run_batch`: the batch API, on this machine or on a dask cluster."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..checkpoints.file_lock import exclusive
from ..images.io import check_writable_folder
from ..progress import ProgressCallback
from .inputs import find_inputs
from .outputs import remove_parts
from .plan import plan_items
from .records import FOLDER
from .spec import BatchError, BatchSpec
from .summary import BatchSummary, ItemResult


def run_batch(
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    mode: str = "everything",
    model: Any = None,
    *,
    prompts: str | Path | None = None,
    direction: str = "both",
    device: str = "auto",
    precision: str = "auto",
    image_size: int | None = None,
    batch_size: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    local_cluster: int | bool = False,
    overwrite: bool = False,
    output_format: str = "tif",
    progress: ProgressCallback | None = None,
    **amg: Any,
) -> BatchSummary:
    """Segment many images and stacks into `<name>_labels.tif` files in `output_dir`, beside
    batch_summary.csv / .json (input, output, status, objects, seconds, error, worker).
    output_format 'zarr' writes OME-Zarr label folders, `<name>_labels.zarr`, instead.

    inputs: files, folders and glob patterns of TIFF / PNG / JPEG images and stacks.
    mode: 'everything' (automatic masks of each image or slice; `amg` keyword arguments such as
        points_per_side=32 go to AutomaticMaskGenerator), 'prompts' (the objects of a prompts
        file on their prompted frames) or 'propagate' (track through each stack; the objects of
        its prompts file, else those segmented on frame 0). An input's own prompts file is
        `<stem>.prompts.json` (or .csv) beside it; `prompts` is used by inputs without one.
    model: preset name, checkpoint path or None for the default; on this machine also a loaded
        model. batch_size: images per encoder pass (default: what fits in memory).
    client / scheduler / local_cluster: run on a dask cluster, through a Client, a scheduler
        address ('tcp://host:8786'), or a LocalCluster of that many worker processes.
    Inputs whose outputs are complete from an earlier run with the same settings are skipped;
    other existing outputs are an error unless `overwrite`. An input that fails is recorded and
    the rest goes on. progress(done, total) is called as each input finishes.
    """
    started = time.perf_counter()
    on_cluster = client is not None or bool(scheduler) or bool(local_cluster)
    loaded = None if model is None or isinstance(model, (str, Path)) else model
    if loaded is not None and on_cluster:
        raise BatchError(
            "on a cluster, give the model as a preset name or checkpoint path: workers load it themselves."
        )
    spec = BatchSpec(
        mode=mode,
        model=_model_name(model, loaded),
        device=device,
        precision=precision,
        image_size=image_size,
        prompts=str(prompts) if prompts is not None else None,
        direction=direction,
        amg=dict(amg),
        output_format=output_format,
    )
    if batch_size is not None and batch_size < 1:
        raise BatchError(f"batch_size must be at least 1, not {batch_size}.")
    output_dir = Path(output_dir)
    paths = find_inputs(inputs, exclude=output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise BatchError(f"the output folder {output_dir} is a file; name a folder for the label files.")
    check_writable_folder(output_dir / FOLDER)
    with _one_batch_at_a_time(output_dir):
        return _run(paths, output_dir, spec, overwrite, loaded, on_cluster, client, scheduler, local_cluster,
                    batch_size, device, image_size, progress, started)


@contextlib.contextmanager
def _one_batch_at_a_time(output_dir: Path) -> Iterator[None]:
    """Hold the output folder for this run. A second batch on the same folder is refused before
    it touches anything (the first one's unfinished outputs stay its own); the lock goes with
    its holder, so a killed batch leaves none behind."""
    def refuse() -> None:
        raise BatchError(
            f"another batch is writing to {output_dir}; wait for it to finish (running the same "
            "command again then resumes), or choose another output folder."
        )

    with exclusive(output_dir / FOLDER / "running.lock", while_waiting=refuse):
        yield


def _run(paths, output_dir, spec, overwrite, loaded, on_cluster, client, scheduler, local_cluster,
         batch_size, device, image_size, progress, started) -> BatchSummary:
    items, skipped = plan_items(paths, output_dir.resolve(), spec, overwrite)
    results: list[ItemResult] = list(skipped)

    def emit(result: ItemResult) -> None:
        results.append(result)
        if progress is not None:
            progress(len(results) - len(skipped), len(items))

    if items:
        if on_cluster:
            from .cluster import cluster_client, run_on_cluster

            with cluster_client(client, scheduler, local_cluster) as dask_client:
                run_on_cluster(items, spec, dask_client, batch_size, emit)
        else:
            from ..checkpoints.loading import load_model
            from .engine import Engine
            from .work import process_items

            if loaded is None:  # loaded here for this run only (workers keep theirs: models.py)
                loaded = load_model(spec.model, device=device, image_size=image_size)
            process_items(items, Engine(loaded, spec), batch_size, emit)
    for item in items:
        remove_parts(Path(item.output))
    order = {str(p): i for i, p in enumerate(paths)}
    results.sort(key=lambda r: order.get(r.input, len(order)))
    summary = BatchSummary(results, time.perf_counter() - started, {**spec.settings(), "device": device})
    summary.write(output_dir)
    return summary


def _model_name(model: Any, loaded: Any) -> str | None:
    """The model as the spec records it: an absolute path for files (workers may run elsewhere
    in the file system), a preset name, or the loaded model's preset."""
    if loaded is not None:
        return loaded.config.name
    if model is None:
        return None
    path = Path(model)
    return str(path.resolve()) if path.is_file() else str(model)
