"""What the compiled trace.dat renderer does with each event type: the layout tables.

For every event type met in a file, :class:`Layout` holds, as flat numpy arrays the compiled
loops of :mod:`folio_replay.parsers.tracedat.kernels` index by the type's *slot*:

* the event-name code;
* one *int op* per typed int64 column the type fills: the binary field to read (offset, size,
  signedness), printf's cast (width, signedness, ``f != -1 ? f : 0``), the shared value buffer
  and the column;
* one *string op* per typed string column: the field and the column; each distinct (op,
  value) is rendered once in Python (symbolic names, flags, letters, as
  :mod:`folio_replay.parsers.tracedat.values` shows them) and given a code in the file's string
  pool;
* the ``fields`` text layout: labels ``name=0x`` and the field bytes printed as hex.

Typed int columns of different groups are valid on disjoint rows (an event has one group), so
a group's k-th int column is written to shared value buffer k; each column keeps its own
validity bitmap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from folio_replay.parsers import schema
from folio_replay.parsers.tracedat.event_formats import EventFormat
from folio_replay.parsers.tracedat.kernels import TYPE_IDS
from folio_replay.parsers.tracedat.printfmt import Binding, bindings

LABEL_PAD = 8  # zero bytes after the labels (read 8 bytes at a time)


@dataclass
class StringOp:
    """A string column filled from one field of one event type: how to show its values."""

    fmt: EventFormat
    binding: Binding
    spec: schema.FieldSpec


def _grow(arr: np.ndarray, values: list) -> np.ndarray:
    return np.concatenate([arr, np.asarray(values, arr.dtype)]) if values else arr


@dataclass
class Layout:
    """Per-slot render tables of one file's event types (grown as new types are met)."""

    int_columns: list[str] = field(default_factory=list)  # typed int64 columns, table order
    str_columns: list[str] = field(default_factory=list)  # typed string columns, table order
    slot_of_type: np.ndarray = field(default_factory=lambda: np.full(TYPE_IDS, -1, np.int32))
    event_names: list[str] = field(default_factory=list)  # the slot's event name
    # int ops of slot s: int_ops[int_start[s]:int_start[s + 1]], columns: field offset, size,
    # signed, printf width, printf signed, neg1_zero, shared buffer, column
    int_start: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    int_ops: np.ndarray = field(default_factory=lambda: np.zeros((0, 8), np.int64))
    # string ops of slot s: str_ops[str_start[s]:str_start[s + 1]], columns: field offset,
    # size, signed, column
    str_start: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    str_ops: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    str_info: list[StringOp] = field(default_factory=list)
    # ``fields`` text of slot s: fields hex_start[s]:hex_start[s + 1] of hex_fields (label end
    # in hex_labels, offset, size, most-significant-first); text width per slot
    hex_start: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    hex_fields: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    hex_labels: np.ndarray = field(default_factory=lambda: np.zeros(LABEL_PAD, np.uint8))
    _labels: bytearray = field(default_factory=bytearray)
    text_width: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    int_buffers: int = 0
    buffer_of: dict[int, int] = field(default_factory=dict)  # int column -> value buffer

    def __post_init__(self) -> None:
        for f in schema.event_schema().typed_fields:
            (self.int_columns if f.type == "int64" else self.str_columns).append(f.column)

    def add(self, fmt: EventFormat) -> None:
        """Give event type ``fmt`` a slot; ``ValueError`` when the print fmt of an event with
        typed columns cannot be read (it pairs conversions and arguments wrongly, reads a
        field the format lacks, or holds symbolic or flag values that do not evaluate)."""
        ints, strs = self._typed_ops(fmt)
        self.slot_of_type[fmt.id] = len(self.event_names)
        self.event_names.append(fmt.name)
        self.int_ops = np.concatenate([self.int_ops, np.asarray(ints, np.int64).reshape(-1, 8)])
        self.int_start = _grow(self.int_start, [len(self.int_ops)])
        self.str_ops = np.concatenate([self.str_ops, np.asarray(strs, np.int64).reshape(-1, 4)])
        self.str_start = _grow(self.str_start, [len(self.str_ops)])
        self._add_text(fmt)

    def _typed_ops(self, fmt: EventFormat) -> tuple[list, list]:
        """The int and string ops of ``fmt``'s group (none for an event without one)."""
        group = schema.event_schema().group_of(fmt.name)
        ints: list[list[int]] = []
        strs: list[list[int]] = []
        if group is None:
            return ints, strs
        binds = bindings(fmt.print_fmt)
        # an int column's shared buffer: its place among its group's int columns
        int_place = {
            f.column: k for k, f in enumerate(f for f in group.fields if f.type == "int64")
        }
        for spec in group.fields:
            b = binds.get(spec.key)
            if b is None:
                continue  # a key this kernel's event does not print: the column stays null
            if b.kind == "other":
                raise ValueError(f"print fmt prints {spec.key} from no field it can read")
            f = fmt.field(b.field)
            if f is None:
                raise ValueError(f"print fmt reads REC->{b.field}, which the format lacks")
            if (b.kind == "symbolic" and b.field not in fmt.symbolic) or (
                b.kind == "flags" and b.field not in fmt.flags
            ):
                raise ValueError(f"print fmt's {b.kind} values of {b.field} cannot be evaluated")
            if f.is_array or f.is_data_loc or f.size not in (1, 2, 4, 8):
                continue
            if spec.type == "int64":
                if b.kind == "num":
                    column = self.int_columns.index(spec.column)
                    ints.append(
                        [
                            f.offset,
                            f.size,
                            f.signed,
                            b.width,
                            b.signed,
                            b.neg1_zero,
                            int_place[spec.column],
                            column,
                        ]
                    )
                    self.buffer_of[column] = int_place[spec.column]
            else:
                strs.append([f.offset, f.size, f.signed, self.str_columns.index(spec.column)])
                self.str_info.append(StringOp(fmt, b, spec))
        self.int_buffers = max(self.int_buffers, len(int_place))
        return ints, strs

    def _add_text(self, fmt: EventFormat) -> None:
        """``name=0x<hex>`` of every own field: labels, and the bytes printed per field."""
        rows = []
        width = 0
        for i, f in enumerate(fmt.fields):
            label = ((" " if i else "") + f.name + "=0x").encode()
            self._labels += label
            number = not (f.is_array or f.is_data_loc) and f.size in (1, 2, 4, 8)
            rows.append([len(self._labels), f.offset, f.size, number])
            width += len(label) + 2 * f.size
        self.hex_fields = np.concatenate(
            [self.hex_fields, np.asarray(rows, np.int64).reshape(-1, 4)]
        )
        self.hex_start = _grow(self.hex_start, [len(self.hex_fields)])
        self.text_width = _grow(self.text_width, [width])
        self.hex_labels = np.frombuffer(bytes(self._labels) + bytes(LABEL_PAD), np.uint8)
