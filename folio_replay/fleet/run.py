"""Running a fleet on Dask: one task per bundle, on a local cluster or a running scheduler."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from folio_replay.errors import InputError
from folio_replay.fleet.bundles import bundle_id, find_bundles
from folio_replay.fleet.dataset import STATUS_COLUMNS, open_dataset
from folio_replay.fleet.rows import ROW_SCHEMA, one_line, replay
from folio_replay.progress import Steps
from folio_replay.replay.archs import ARCHS
from folio_replay.replay.models import MODELS
from folio_replay.replay.predict import load_tables

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["CONNECT_TIMEOUT", "fleet_settings", "local_client", "run_fleet"]

CONNECT_TIMEOUT = "10s"  # to reach a running scheduler


def fleet_settings(
    models: list[str] | None = None, archs: list[str] | None = None, costs: str | None = None
) -> dict:
    """What every row of a dataset is made with: the models, the archs and the cost tables'
    digests (the default models and archs spelled out)."""
    default = [name for name, model in MODELS.items() if model.default]
    tables = load_tables(list(ARCHS), costs)
    return {
        "models": sorted(models or default),
        "archs": sorted(archs or ARCHS),
        "cost_tables": {arch: tables[arch].digest for arch in sorted(tables)},
    }


def _cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def _client(scheduler: str | Client | None, workers: int | None) -> Iterator[Client]:
    """A Dask client: ``scheduler`` itself when it is one, connected to the scheduler at that
    address, or to a local cluster of ``workers`` processes (default: one per CPU)."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            "dask.distributed", "not installed: pip install 'folio-replay[fleet]'"
        ) from None
    if isinstance(scheduler, Client):
        yield scheduler
    elif scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, ValueError, TimeoutError) as err:
            raise InputError(
                scheduler, f"cannot reach the Dask scheduler: {one_line(err)}"
            ) from None
        with client:
            yield client
    else:
        with local_client(workers or _cpus()) as client:
            yield client


@contextmanager
def local_client(workers: int) -> Iterator[Client]:
    """A client of a local cluster of ``workers`` single-threaded processes on the loopback
    interface, its HTTP server on a free port (two fleets at once: no 'port 8787 in use')."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _failed(path: Path, bundle: str, err: Exception) -> tuple[pa.Table, dict]:
    """The status of a bundle whose task did not return (its worker died, the scheduler went)."""
    status = {"bundle": str(path), "bundle_id": bundle, "rows": 0, "warnings": []}
    return ROW_SCHEMA.empty_table(), {**status, "status": f"task failed: {one_line(err)}"}


def run_fleet(
    sources: Iterable[str | Path],
    dataset: str | Path,
    models: list[str] | None = None,
    archs: list[str] | None = None,
    costs: str | Path | None = None,
    scheduler: str | Client | None = None,
    workers: int | None = None,
    force: bool = False,
    steps: Steps | None = None,
) -> pd.DataFrame:
    """Replay the bundles ``sources`` name (see :func:`find_bundles`), each as a Dask task,
    into the fleet dataset ``dataset``; bundles already done there are skipped unless
    ``force``. ``scheduler``: a running scheduler's address or a connected client (default:
    a local cluster of ``workers`` processes). Returns the run's status table: one row per
    bundle, ``run`` replayed or skipped."""
    bundles = find_bundles(sources)
    costs = str(Path(costs).resolve()) if costs else None
    settings = fleet_settings(models, archs, costs)
    store = open_dataset(dataset, settings, force, bundles)
    ids = {path: bundle_id(path) for path in bundles}
    earlier = {path: store.status(ids[path]) or {} for path in bundles}
    todo = [path for path in bundles if force or earlier[path].get("status") != "ok"]
    replayed: dict[Path, dict] = {}
    if todo:
        with _client(scheduler, workers) as client:
            futures = client.map(
                replay,
                [str(path) for path in todo],
                [ids[path] for path in todo],
                models=models,
                archs=archs,
                costs=costs,
                digests=settings["cost_tables"],
                pure=False,
            )
            where = {future.key: path for future, path in zip(futures, todo)}
            from distributed import as_completed

            results: Iterable = as_completed(futures)
            del futures  # as_completed lets each go once yielded: results leave once written
            if steps is not None:
                results = steps.track(results, f"replay {len(todo)} bundles", total=len(todo))
            for future in results:
                path = where[future.key]
                try:
                    rows, status = future.result()
                except Exception as err:  # the task did not return: the bundle's error
                    rows, status = _failed(path, ids[path], err)
                store.write(rows, status)
                replayed[path] = status
    table = [
        {
            "warnings": [],
            **(replayed.get(path) or earlier[path]),
            "run": "replayed" if path in replayed else "skipped",
        }
        for path in bundles
    ]
    return pd.DataFrame(table, columns=["run", *STATUS_COLUMNS])
