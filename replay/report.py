"""Write a report directory of Parquet tables (schema: README.md, "Report files").

Each file carries key-value metadata: the tool version, the captured kernel and the cost-table
digests. The directory is written through :func:`folio_replay.outputs.replace_dir`.
"""

from __future__ import annotations

import base64
import json
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from folio_replay.parsers.parquet import EventParquetWriter

from folio_replay import __version__
from folio_replay.outputs import replace_dir

TABLES = (
    "events",
    "folios",
    "episodes",
    "lazyfree",
    "partial",
    "predictions",
    "validation",
    "timing",
)
SCHEMA_TOML = Path(__file__).with_name("report_schema.toml")
ARROW_TYPES = {
    "int64": pa.int64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "double": pa.float64(),
}


@cache
def report_schema(name: str) -> pa.Schema:
    """The Arrow schema of report table ``name`` (replay/report_schema.toml)."""
    columns = tomllib.loads(SCHEMA_TOML.read_text())["tables"][name]["columns"]
    return pa.schema([(column, ARROW_TYPES[kind]) for column, kind, _ in columns])


def report_metadata(
    kernel: str, digests: dict[str, str], emulated: bool, model: str, lost_events: int
) -> dict[bytes, bytes]:
    """The key-value metadata stored in every report file."""
    return {
        b"folio_replay.version": __version__.encode(),
        b"folio_replay.kernel": kernel.encode(),
        b"folio_replay.captured_model": model.encode(),
        b"folio_replay.lost_events": str(lost_events).encode(),
        b"folio_replay.cost_tables": json.dumps(digests, sort_keys=True).encode(),
        b"folio_replay.timings": (
            b"QEMU TCG emulation timings, not hardware costs"
            if emulated
            else b"measured on the captured machine"
        ),
    }


def _arrow(name: str, table: pd.DataFrame | pa.Table, metadata: dict[bytes, bytes]) -> pa.Table:
    """``table`` as Arrow (a DataFrame cast to its documented schema) with ``metadata``."""
    if isinstance(table, pd.DataFrame):
        schema = report_schema(name)
        columns = [
            _column(table[f.name], f.type) if f.name in table else pa.nulls(len(table), f.type)
            for f in schema
        ]
        table = pa.Table.from_arrays(columns, schema=schema)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})


def _column(values: pd.Series, kind: pa.DataType) -> pa.Array:
    """One DataFrame column as an Arrow array of the documented type (missing values null)."""
    try:
        return pa.array(values, from_pandas=True).cast(kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        objects = values.astype(object)
        return pa.array(objects.where(objects.notna(), None).tolist(), type=kind)


class ReportWriter:
    """The report's tables written a part at a time (a streamed replay appends segment after
    segment) into a directory; the metadata, known at the end, goes into every file on
    :meth:`close`. A table never given is written empty, with its schema. Used as a context
    manager, an error inside stops the writing (:meth:`abort`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.writers: dict[str, pq.ParquetWriter | EventParquetWriter] = {}

    def add(self, name: str, table: pd.DataFrame | pa.Table) -> None:
        """Append ``table`` (a DataFrame cast to the documented schema) to ``name``."""
        arrow = _arrow(name, table, {}).replace_schema_metadata(None)
        writer = self.writers.get(name)
        if writer is None:
            path = self.directory / f"{name}.parquet"
            # the event table: its encodings, written while the next segment is reconstructed
            writer = self.writers[name] = (
                EventParquetWriter(path, arrow.schema)
                if name == "events"
                else pq.ParquetWriter(path, arrow.schema)
            )
        writer.write_table(arrow)

    def close(self, metadata: dict[bytes, bytes], events_metadata: dict[bytes, bytes]) -> None:
        """Write the tables not given empty, add ``metadata`` to every file (and the event
        table's own, ``events_metadata``, to events.parquet) and close them."""
        for name in TABLES:
            if name not in self.writers and name != "events":
                self.add(name, pd.DataFrame())
        for name, writer in self.writers.items():
            extra = events_metadata if name == "events" else {}
            pairs = {key.decode(): value.decode() for key, value in {**extra, **metadata}.items()}
            # The stored Arrow schema (written when the file was opened, before the metadata
            # was known) is replaced by one that carries it, so pq.read_schema() sees it too.
            schema = writer.schema.with_metadata(pairs)
            pairs["ARROW:schema"] = base64.b64encode(schema.serialize().to_pybytes()).decode()
            writer.add_key_value_metadata(pairs)
            writer.close()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: object) -> None:
        if error is not None:
            self.abort()

    def abort(self) -> None:
        """Stop writing (after an error): the event table's thread ends, the files are left
        to the caller's cleanup."""
        for writer in self.writers.values():
            if isinstance(writer, EventParquetWriter):
                writer.abort()


def write_report(
    target: str | Path,
    tables: dict[str, pd.DataFrame | pa.Table],
    metadata: dict[bytes, bytes],
    force: bool,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Write ``tables`` as ``<name>.parquet`` files into the directory ``target`` (through a
    temporary directory, see :mod:`folio_replay.outputs`; ``inputs`` are never replaced)."""

    def write(staging: Path) -> None:
        events_metadata: dict[bytes, bytes] = {}
        with ReportWriter(staging) as writer:
            for name, table in tables.items():
                if isinstance(table, pa.Table) and table.schema.metadata:
                    events_metadata = dict(table.schema.metadata)
                writer.add(name, table)
            writer.close(metadata, events_metadata)

    return replace_dir(Path(target), write, force, inputs)
