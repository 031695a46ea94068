"""Running a batch on a dask.distributed cluster: one task per input (per stack when tracking),
the model loaded once per worker, outputs written by the workers, results gathered here.

A worker that dies takes its running tasks with it; the scheduler re-runs them on the other
workers (up to `distributed.scheduler.allowed-failures` times), and since outputs are written
atomically and deterministically, a re-run gives the same files.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .plan import BatchItem
from .results import failed
from .spec import BatchError, BatchSpec
from .summary import ItemResult

Emit = Callable[[ItemResult], None]


def _distributed():
    try:
        import distributed
    except ImportError:
        raise BatchError(
            "running on a cluster needs dask.distributed: pip install 'napari-sam2[batch]'."
        ) from None
    return distributed


@contextmanager
def cluster_client(
    client: Any = None, scheduler: str | None = None, local_cluster: int | bool = False
) -> Iterator[Any]:
    """The client to use: `client` as given, a new one connected to the `scheduler` address, or
    one of a LocalCluster of `local_cluster` single-threaded worker processes started here
    (True: one per CPU core).
    Clients and clusters made here are closed at the end."""
    if client is not None:
        yield client
        return
    distributed = _distributed()
    if scheduler:
        try:
            made = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as err:
            raise BatchError(f"cannot reach the dask scheduler at {scheduler}: {err}") from None
        try:
            yield made
        finally:
            made.close()
        return
    workers = (os.cpu_count() or 1) if local_cluster is True else int(local_cluster)
    if workers < 1:
        raise BatchError(f"a local cluster needs at least one worker, not {local_cluster}.")
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    try:
        with distributed.Client(cluster) as made:
            yield made
    finally:
        cluster.close()


def run_task(item: BatchItem, spec: BatchSpec, batch_size: int | None) -> ItemResult:
    """The task a worker runs for one input."""
    from distributed import get_worker

    from .work import process_item

    result = process_item(item, spec, batch_size)
    try:
        result.worker = get_worker().address
    except ValueError:  # run outside a worker (e.g. a synchronous scheduler)
        pass
    return result


def run_on_cluster(
    items: Sequence[BatchItem], spec: BatchSpec, client: Any, batch_size: int | None, emit: Emit
) -> None:
    """Submit one task per item and report each result as it arrives. A task that keeps
    killing its workers is reported failed, the others go on."""
    distributed = _distributed()
    run = uuid.uuid4().hex[:8]
    futures = {
        client.submit(run_task, item, spec, batch_size, key=f"napari-sam2-batch-{run}-{item.index}",
                      pure=False): item
        for item in items
    }
    for future in distributed.as_completed(futures):
        item = futures[future]
        try:
            result = future.result()
        except Exception as err:  # KilledWorker, or a worker that could not unpickle the task
            result = failed(item, f"the task failed on the cluster: {type(err).__name__}: {err}")
        future.release()
        emit(result)
