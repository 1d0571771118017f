"""Fleets: many bundles replayed as Dask tasks into one hive-partitioned Parquet dataset.

::

    from folio_replay.fleet import load_rows, run_fleet, summarise
    status = run_fleet(["captures/"], "fleet-ds")       # a local cluster, one worker per CPU
    summary = summarise(load_rows("fleet-ds"))

The dataset (``DATASET/``), written through :mod:`folio_replay.outputs`:

* ``arch=A/kernel_series=S/model=M/<bundle_id>.parquet``: one bundle's row for that priced
  arch (``x86``, ``arm64``, ``riscv``), captured kernel series (``6.12``) and model
  (:data:`~folio_replay.fleet.rows.FILE_SCHEMA`: ``bundle``, ``release``,
  ``captured_model``, folios, ``split_deferred`` bounds, ``time_ns``, ``speedup``, per-size
  ``sizes``, ...). The partition keys are strings: tell readers that infer types (Polars:
  ``hive_schema``) that ``kernel_series`` is one, or 6.10 reads as 6.1.
* ``_status/<bundle_id>.json``: ``status`` ``ok`` or the bundle's one-line error, and its
  release, captured model, validation, warnings, the files it wrote.
* ``_fleet.json``: the models, archs and cost tables every row was made with.

A bundle's id is its resolved path and its meta.json's digest. Readers that skip names
starting with ``_`` or ``.`` (pyarrow, pandas) or that glob ``**/*.parquet`` (DuckDB, Polars)
see the rows only.
"""

from __future__ import annotations

from folio_replay.fleet.bundles import bundle_id, find_bundles
from folio_replay.fleet.dataset import FleetDataset, load_rows, load_status, open_dataset
from folio_replay.fleet.rows import FILE_SCHEMA, PARTITIONS, ROW_SCHEMA, bundle_rows, replay
from folio_replay.fleet.run import fleet_settings, run_fleet
from folio_replay.fleet.summary import fleet_tables, summarise

__all__ = [
    "FILE_SCHEMA",
    "PARTITIONS",
    "ROW_SCHEMA",
    "FleetDataset",
    "bundle_id",
    "bundle_rows",
    "find_bundles",
    "fleet_settings",
    "fleet_tables",
    "load_rows",
    "load_status",
    "open_dataset",
    "replay",
    "run_fleet",
    "summarise",
]
