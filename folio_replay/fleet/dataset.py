"""A fleet dataset on disk: hive-partitioned Parquet rows, a status per bundle, its settings.

Every file is written through :mod:`folio_replay.outputs` (a temporary name, then a rename),
a bundle's row files first and its status last: a bundle counts as done once its status says
``ok``. Only files a bundle's earlier status names are ever removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import partial, reduce
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from folio_replay.errors import InputError
from folio_replay.fleet.rows import PARTITIONS, ROW_SCHEMA
from folio_replay.outputs import check_target, replace_dir, replace_file

__all__ = [
    "SETTINGS",
    "STATUS",
    "STATUS_COLUMNS",
    "FleetDataset",
    "load_rows",
    "load_status",
    "open_dataset",
]

SETTINGS = "_fleet.json"  # the models, archs and cost tables every row was made with
STATUS = "_status"  # one JSON file per bundle: STATUS/<bundle_id>.json
STATUS_COLUMNS = (
    "bundle",
    "bundle_id",
    "status",
    "release",
    "kernel_series",
    "arch",
    "captured_model",
    "rows",
    "validation",
    "lost_events",
    "warnings",
    "seconds",
)
# Files read at a time: a dataset keeps each file's metadata and a table a chunk per file
# (1.2 GiB for 18,000 one-row files read at once; 60 MiB this way).
READ_FILES = 256
_VALUE = re.compile(r"[A-Za-z0-9._-]+")
_FILE = re.compile(r"arch=[^/]+/kernel_series=[^/]+/model=[^/]+/([0-9a-f]{16})\.parquet")
_HIVE = ds.partitioning(pa.schema([(name, pa.string()) for name in PARTITIONS]), flavor="hive")


def _read_json(path: Path) -> dict | None:
    """A JSON object written by folio-replay, or None when there is none (or not one)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _partitions(rows: pa.Table) -> Iterator[tuple[tuple[str, ...], pa.Table]]:
    """``rows`` split by partition keys, each part without the key columns."""
    columns = [rows[name].to_pylist() for name in PARTITIONS]
    for key in sorted(set(zip(*columns))):
        if not all(_VALUE.fullmatch(value) for value in key):
            raise ValueError(f"partition key {key} is not a plain name")
        masks = (pc.equal(rows[name], value) for name, value in zip(PARTITIONS, key))
        yield key, rows.filter(reduce(pc.and_, masks)).drop_columns(list(PARTITIONS))


class FleetDataset:
    """An opened fleet dataset (see :func:`open_dataset`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._root = path.resolve()

    def status(self, bundle_id: str) -> dict | None:
        """The bundle's status as last written, if any."""
        return _read_json(self.path / STATUS / f"{bundle_id}.json")

    def _inside(self, relative: str) -> Path:
        """``relative`` under the dataset, refused when a symlink leads it outside."""
        target = self.path / relative
        if self._root not in target.resolve().parents:
            raise InputError(target, "leads outside the dataset: refusing to write it")
        return target

    def _remove(self, relative: str, bundle_id: str) -> None:
        """Remove a row file of the bundle (an earlier run's), and its emptied directories."""
        match = _FILE.fullmatch(relative)
        if match is None or match[1] != bundle_id:
            return
        target = self._inside(relative)
        if target.is_file() and not target.is_symlink():
            target.unlink()
        for directory in list(target.parents)[:3]:
            if any(directory.iterdir()):
                break
            directory.rmdir()

    def write(self, rows: pa.Table, status: dict) -> None:
        """Write one bundle's rows (a file per partition) and then its status; files of an
        earlier run of the bundle that this one did not rewrite are removed."""
        bundle_id = status["bundle_id"]
        earlier = (self.status(bundle_id) or {}).get("files", [])
        files = []
        for key, part in _partitions(rows):
            relative = "/".join(f"{n}={v}" for n, v in zip(PARTITIONS, key))
            relative += f"/{bundle_id}.parquet"
            target = self._inside(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            # one row: statistics and the Arrow schema (the Parquet types say the same) would
            # make up half of the file
            write = partial(pq.write_table, part, store_schema=False, write_statistics=False)
            replace_file(target, write, force=True)
            files.append(relative)
        for relative in set(earlier) - set(files):
            self._remove(str(relative), bundle_id)
        status_dir = self._inside(STATUS)
        status_dir.mkdir(exist_ok=True)
        record = {**status, "files": files}
        replace_file(
            status_dir / f"{bundle_id}.json", lambda tmp: _write_json(tmp, record), force=True
        )


def open_dataset(
    path: str | Path, settings: dict, force: bool = False, inputs: Iterable[Path] = ()
) -> FleetDataset:
    """The fleet dataset at ``path``, made empty when there is none. An existing one must have
    been written by folio-replay (:mod:`folio_replay.outputs`' marker rules) with the same
    ``settings``; else, or when it is no fleet dataset, it is replaced only with ``force``."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        check_target(path, True, inputs, directory=True)
        found = _read_json(path / SETTINGS)
        if found == settings:
            return FleetDataset(path)
        if not force:
            if found is None:
                why = f"is not a fleet dataset (no {SETTINGS})"
            else:
                other = ", ".join(key for key in settings if settings[key] != found.get(key))
                why = f"was made with other {other or 'settings'}"
            raise InputError(path, f"{why}: use another dataset, or --force to replace it")
    replace_dir(path, lambda tmp: _write_json(tmp / SETTINGS, settings), force, inputs)
    return FleetDataset(path)


def load_status(path: str | Path) -> pd.DataFrame:
    """The status of every bundle in the fleet dataset at ``path`` (:data:`STATUS_COLUMNS`)."""
    records = [_read_json(file) for file in sorted((Path(path) / STATUS).glob("*.json"))]
    return pd.DataFrame([record for record in records if record], columns=list(STATUS_COLUMNS))


def load_rows(path: str | Path) -> pd.DataFrame:
    """The rows of the fleet dataset at ``path``: those of the files that the bundles whose
    status is ``ok`` wrote (:data:`~folio_replay.fleet.rows.ROW_SCHEMA`; partition keys as
    strings). Files other than these (a bundle's cut short, not folio-replay's) are not read."""
    root = Path(path)
    records = [_read_json(file) or {} for file in sorted((root / STATUS).glob("*.json"))]
    files = [
        str(root / relative)
        for record in records
        if record.get("status") == "ok"
        for relative in record.get("files", [])
        if _FILE.fullmatch(str(relative))
    ]
    parts = [
        ds.dataset(
            files[start : start + READ_FILES],
            format="parquet",
            partitioning=_HIVE,
            partition_base_dir=str(root),
            schema=ROW_SCHEMA,
        )
        .to_table()
        .combine_chunks()
        for start in range(0, len(files), READ_FILES)
    ]
    return pa.concat_tables([ROW_SCHEMA.empty_table(), *parts]).to_pandas()
