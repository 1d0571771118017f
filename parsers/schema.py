"""The event table's schema, loaded from the data file ``parsers/events.toml``.

Fixed columns first (``ts_ns`` ... ``fields``), then one typed column ``<group>.<field>`` per
field of each group, in the data file's order.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

EVENTS_TOML = Path(__file__).with_name("events.toml")

FIXED_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("ts_ns", pa.int64()),
    ("cpu", pa.int32()),
    ("pid", pa.int32()),
    ("comm", pa.string()),
    ("event", pa.string()),
    ("line", pa.int64()),
    ("fields", pa.string()),
)

ARROW_TYPES = {"int64": pa.int64(), "string": pa.string()}
VALUE_KINDS = ("int", "hex", "word", "paren", "flags")

# Schema metadata keys of the event table.
META_LOST_EVENTS = b"folio_replay.lost_events"
META_FORMAT = b"folio_replay.format"
META_SOURCE = b"folio_replay.source"


@dataclass(frozen=True)
class FieldSpec:
    """One typed column: how its value is found in an event's text and what it becomes."""

    group: str
    name: str
    type: str
    key: str
    value: str
    suffix: str = ""
    optional: bool = False
    map: dict[int, str] | None = None
    unknown: str = ""

    @property
    def column(self) -> str:
        """The column name, ``<group>.<field>``."""
        return f"{self.group}.{self.name}"

    def symbol(self, number: int) -> str:
        """The symbolic name of ``number`` from the field's map (``unknown`` pattern if absent)."""
        assert self.map is not None
        return self.map.get(number, self.unknown.format(n=number))


@dataclass(frozen=True)
class GroupSpec:
    """A group of typed columns shared by a set of events."""

    name: str
    events: tuple[str, ...]
    event_prefixes: tuple[str, ...]
    fields: tuple[FieldSpec, ...]

    def covers(self, event: str) -> bool:
        """Whether ``event`` (bare tracepoint name) has this group's typed columns."""
        return event in self.events or event.startswith(self.event_prefixes)


@dataclass(frozen=True)
class EventSchema:
    """The whole data file: groups, and the syntax constants of the text formats."""

    groups: tuple[GroupSpec, ...]
    syscall_enter_prefix: str
    syscall_exit_prefix: str

    def group_of(self, event: str) -> GroupSpec | None:
        """The group whose typed columns ``event`` fills, or None (raw ``fields`` only)."""
        for group in self.groups:
            if group.covers(event):
                return group
        return None

    @property
    def typed_fields(self) -> tuple[FieldSpec, ...]:
        """Every typed column, in table order."""
        return tuple(f for g in self.groups for f in g.fields)


def _parse_schema(data: dict) -> EventSchema:
    maps = data.get("maps", {})
    groups = []
    for gname, g in data["groups"].items():
        fields = []
        for f in g["fields"]:
            if f["type"] not in ARROW_TYPES or f["value"] not in VALUE_KINDS:
                raise ValueError(f"{EVENTS_TOML}: bad type/value in {gname}.{f['name']}")
            table = maps[f["map"]] if "map" in f else None
            fields.append(
                FieldSpec(
                    group=gname,
                    name=f["name"],
                    type=f["type"],
                    key=f["key"],
                    value=f["value"],
                    suffix=f.get("suffix", ""),
                    optional=f.get("optional", False),
                    map={int(k): v for k, v in table["names"].items()} if table else None,
                    unknown=table["unknown"] if table else "",
                )
            )
        groups.append(
            GroupSpec(
                gname, tuple(g.get("events", ())), tuple(g.get("event_prefixes", ())), tuple(fields)
            )
        )
    syntax = data["syntax"]
    return EventSchema(tuple(groups), syntax["syscall_enter_prefix"], syntax["syscall_exit_prefix"])


@lru_cache(maxsize=1)
def event_schema() -> EventSchema:
    """The event formats of ``parsers/events.toml`` (loaded once)."""
    with EVENTS_TOML.open("rb") as fh:
        return _parse_schema(tomllib.load(fh))


def event_table_schema() -> pa.Schema:
    """Arrow schema of the event table: fixed columns, then every typed column."""
    cols = [pa.field(name, typ) for name, typ in FIXED_COLUMNS]
    cols += [pa.field(f.column, ARROW_TYPES[f.type]) for f in event_schema().typed_fields]
    return pa.schema(cols)
