"""Building the event table row by row, and the parse result that carries it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from folio_replay.parsers.schema import (
    FIXED_COLUMNS,
    META_FORMAT,
    META_LOST_EVENTS,
    META_SOURCE,
    event_schema,
    event_table_schema,
)

if TYPE_CHECKING:
    import pandas as pd

META_LOST_MARKERS = b"folio_replay.lost_markers"


@dataclass(frozen=True)
class LostMarker:
    """A lost-event marker: the tracer dropped ``count`` events on ``cpu`` (None: count unknown)."""

    line: int
    cpu: int
    count: int | None


class EventTableBuilder:
    """Collects events and builds the event table (typed columns are filled sparsely)."""

    def __init__(self) -> None:
        self.ts_ns: list[int] = []
        self.cpu: list[int] = []
        self.pid: list[int] = []
        self.comm: list[str] = []
        self.event: list[str] = []
        self.line: list[int] = []
        self.fields: list[str] = []
        self.typed: dict[str, dict[int, int | str]] = {
            spec.column: {} for spec in event_schema().typed_fields
        }

    def add(
        self,
        ts_ns: int,
        cpu: int,
        pid: int,
        comm: str,
        event: str,
        line: int,
        fields: str,
        typed: dict[str, int | str | None],
    ) -> None:
        """Append one event; ``typed`` maps typed column names to values (None = absent)."""
        row = len(self.ts_ns)
        self.ts_ns.append(ts_ns)
        self.cpu.append(cpu)
        self.pid.append(pid)
        self.comm.append(comm)
        self.event.append(event)
        self.line.append(line)
        self.fields.append(fields)
        for column, value in typed.items():
            if value is not None:
                self.typed[column][row] = value

    def finish(self, path: str, fmt: str, lost: list[LostMarker]) -> pa.Table:
        """The event table, with format, source and lost events in the schema metadata."""
        schema = event_table_schema()
        rows = len(self.ts_ns)
        columns = [self.ts_ns, self.cpu, self.pid, self.comm, self.event, self.line, self.fields]
        for values in self.typed.values():
            dense: list[int | str | None] = [None] * rows
            for row, value in values.items():
                dense[row] = value
            columns.append(dense)
        arrays = [pa.array(values, type=f.type) for values, f in zip(columns, schema)]
        metadata = {
            META_FORMAT: fmt.encode(),
            META_SOURCE: path.encode(),
            META_LOST_EVENTS: str(sum(m.count or 0 for m in lost)).encode(),
            META_LOST_MARKERS: json.dumps([m.__dict__ for m in lost]).encode(),
        }
        return pa.Table.from_arrays(arrays, schema=schema.with_metadata(metadata))


def _pandas_types() -> dict:
    """Arrow type -> pandas nullable dtype (pandas is imported when a DataFrame is asked for:
    reading and writing traces do not need it)."""
    import pandas as pd

    return {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.string(): pd.StringDtype()}


class LostCounts:
    """Totals of a ``lost`` list of :class:`LostMarker` (for the classes that hold one)."""

    lost: list[LostMarker]

    @property
    def lost_events(self) -> int:
        """Events the tracer reported lost (markers whose count is known)."""
        return sum(m.count or 0 for m in self.lost)

    @property
    def lost_unknown(self) -> int:
        """Lost-event markers that give no count (trace-cmd's ``[EVENTS DROPPED]``)."""
        return sum(1 for m in self.lost if m.count is None)


@dataclass
class Trace(LostCounts):
    """A parsed trace: the event table (Arrow), where it came from, and the lost-event markers.

    ``events`` is the whole table as a DataFrame; ``df(event)`` one event's rows with only the
    columns that event fills (LISA's one-DataFrame-per-event view).
    """

    table: pa.Table
    path: str
    format: str
    lost: list[LostMarker] = field(default_factory=list)
    _events: pd.DataFrame | None = field(default=None, init=False, repr=False, compare=False)

    def event_counts(self) -> dict[str, int]:
        """Number of events per event name, most frequent first."""
        counts = self.table.column("event").value_counts().to_pylist()
        pairs = sorted(((c["values"], c["counts"]) for c in counts), key=lambda p: (-p[1], p[0]))
        return dict(pairs)

    def to_pandas(self) -> pd.DataFrame:
        """The event table as a DataFrame with nullable integer and string columns."""
        return self.table.to_pandas(types_mapper=_pandas_types().get)

    @property
    def events(self) -> pd.DataFrame:
        """The whole event table as a DataFrame (built once, then shared: do not modify it)."""
        if self._events is None:
            self._events = self.to_pandas()
        return self._events

    def df(self, event: str) -> pd.DataFrame:
        """The rows of ``event`` (a tracepoint name such as ``rss_stat``), with the fixed
        columns but ``event`` and the event's own typed columns, named without their group
        prefix (``rss_stat.size`` -> ``size``)."""
        group = event_schema().group_of(event)
        typed = [f.column for f in group.fields] if group else []
        fixed = [name for name, _ in FIXED_COLUMNS if name != "event"]
        import pyarrow.compute as pc  # 30 ms to import: not on `parse`'s path

        rows = self.table.filter(pc.equal(self.table.column("event"), event))
        frame = rows.select(fixed + typed).to_pandas(types_mapper=_pandas_types().get)
        return frame.rename(columns={column: column.split(".", 1)[1] for column in typed})

    def to_parquet(self, path: str | Path, force: bool = False) -> Path:
        """Write the event table (with its schema metadata) to the Parquet file ``path``,
        through a temporary file and a rename; an existing file is kept unless ``force``."""
        from folio_replay.outputs import replace_file

        return replace_file(Path(path), lambda tmp: pq.write_table(self.table, tmp), force)
