"""A trace.dat read a second time, by trace-cmd's own library through its Python bindings
(``ctracecmd``, the SWIG module of trace-cmd's source; ``.ci/build-tracecmd-python`` builds it
for the running Python), and compared record by record with the native reader.

Without the bindings :func:`bindings` is ``None`` and nothing else changes. Each record is
compared on its time, CPU, pid, command name, event name and every field value (the native
reader's ``fields`` text holds them all, ``name=0x...``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pandas as pd

from folio_replay.parsers.trace import read_trace

__all__ = ["CrossCheck", "bindings", "cross_check", "native_records", "tracecmd_records"]

KEYS = ["ts_ns", "cpu", "pid", "comm", "event", "values"]


def bindings() -> ModuleType | None:
    """trace-cmd's ``ctracecmd`` module, or ``None`` where it does not import."""
    try:
        return importlib.import_module("ctracecmd")
    except ImportError:
        return None


def _values(tc: ModuleType, event, record) -> tuple[tuple[str, int], ...]:
    """Every field of ``record`` as (name, unsigned value), in format order."""
    values = []
    field = event.format.fields
    while field:
        failed, value = tc.tep_read_number_field(field, record.data)
        if not failed:
            values.append((field.name, value & ((1 << (8 * min(field.size, 8))) - 1)))
        field = field.next
    return tuple(values)


def _buffer(tc: ModuleType, handle) -> list[tuple]:
    """Every record of one buffer (the top one or an instance), in time order."""
    tep = tc.tracecmd_get_tep(handle)
    rows = []
    while not isinstance(read := tc.tracecmd_read_next_data(handle), int):
        record, cpu = read
        event = tc.tep_find_event(tep, tc.tep_data_type(tep, record))
        pid = tc.tep_data_pid(tep, record)
        rows.append(
            (
                record.ts,
                cpu,
                pid,
                tc.tep_data_comm_from_pid(tep, pid),
                event.name,
                _values(tc, event, record),
            )
        )
        tc.tracecmd_free_record(record)
    return rows


def tracecmd_records(path: str | Path) -> pd.DataFrame:
    """The records of every buffer of ``path`` as libtracecmd reads them."""
    tc = bindings()
    if tc is None:
        raise RuntimeError("trace-cmd's Python bindings (ctracecmd) do not import")
    handle = tc.tracecmd_open(str(path), 0)
    if handle is None:
        raise RuntimeError(f"libtracecmd cannot open {path}")
    try:
        rows = _buffer(tc, handle)
        for index in range(tc.tracecmd_buffer_instances(handle)):
            rows += _buffer(tc, tc.tracecmd_buffer_instance_handle(handle, index))
    finally:
        tc.tracecmd_close(handle)
    return _ordered(pd.DataFrame(rows, columns=KEYS))


def _parse_fields(text: str) -> tuple[tuple[str, int], ...]:
    """``name=0x...`` pairs of the native reader's ``fields`` text; values that are not
    numbers (strings, arrays) are left out, as libtracecmd's number reads leave them."""
    values = []
    for pair in text.split():
        name, _, value = pair.partition("=")
        try:
            values.append((name, int(value, 0)))
        except ValueError:
            continue
    return tuple(values)


def native_records(path: str | Path) -> pd.DataFrame:
    """The records of ``path`` as the native reader decodes them."""
    table = read_trace(path).table.select(["ts_ns", "cpu", "pid", "comm", "event", "fields"])
    frame = table.to_pandas()
    frame["values"] = frame.pop("fields").map(_parse_fields)
    return _ordered(frame[KEYS])


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted by time, then CPU, then content: both readers' orders of equal times agree."""
    frame = frame.astype({"ts_ns": "int64", "cpu": "int64", "pid": "int64"})
    content = frame[["pid", "comm", "event", "values"]].astype(str).agg("|".join, axis=1)
    return (
        frame.assign(_content=content)
        .sort_values(["ts_ns", "cpu", "_content"])
        .drop(columns="_content")
        .reset_index(drop=True)
    )


@dataclass
class CrossCheck:
    """Both readers' records of one trace.dat and where they differ."""

    native: pd.DataFrame
    tracecmd: pd.DataFrame

    @property
    def differences(self) -> pd.DataFrame:
        """Rows (by position in time order) where the readers disagree, with both sides."""
        rows = max(len(self.native), len(self.tracecmd))
        native = self.native.reindex(range(rows))
        other = self.tracecmd.reindex(range(rows))
        differ = ~(native.astype(str) == other.astype(str)).all(axis=1)
        return native[differ].merge(
            other[differ], left_index=True, right_index=True, suffixes=("_native", "_tracecmd")
        )

    def summary(self) -> str:
        """One line: records agreeing out of the records read."""
        agree = max(len(self.native), len(self.tracecmd)) - len(self.differences)
        return (
            f"libtracecmd cross-check: {agree}/{len(self.native)} records agree "
            f"(libtracecmd read {len(self.tracecmd)})"
        )


def cross_check(path: str | Path) -> CrossCheck:
    """Read ``path`` with both readers (needs :func:`bindings`)."""
    return CrossCheck(native_records(path), tracecmd_records(path))
