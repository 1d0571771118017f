"""trace.dat -> the event table: ring records gathered per event type and rendered with numpy
and compiled loops (:mod:`parsers.tracedat_kernels`).

The typed columns are computed from the binary fields the way the text shows them: each
schema key (``parsers/formats/events.toml``) is found in the event's ``print fmt`` and read
through its argument (:mod:`parsers.tracedat_printfmt`): numbers cast as printf casts them,
``__print_symbolic``/``__print_flags`` names and per-bit letters from the format file.

What differs from the parse of ``trace-cmd report -t`` text of the same file (checked event by
event in tests/test_tracedat.py; every other column is equal):

* ``fields`` holds the record's own binary fields, lossless, as ``name=0x<hex>`` (big-endian
  hex of the field's bytes; arrays in byte order; ``__data_loc`` fields as their 4-byte
  location word, their dynamic data is not copied), not the print-fmt text (trace-cmd's
  plugins also change that text, e.g. ``pages=`` for the kernel's ``pages:``);
* a lost-events marker's ``line`` is the ordinal of the first record after the loss (in the
  report it is the marker's own line of text); see :mod:`parsers.tracedat_read`.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pyarrow as pa

from folio_replay.errors import InputError
from parsers import schema
from parsers import tracedat_kernels as tk
from parsers.fast_arrays import IntColumns, null_column
from parsers.tracedat import DatFile
from parsers.tracedat_formats import EventFormat, Field
from parsers.tracedat_printfmt import Binding, bindings


def render(path: str, dat: DatFile, data: np.ndarray, ts: np.ndarray, cpu: np.ndarray,
           payload: np.ndarray, length: np.ndarray, first_line: int) -> pa.Table:
    """Build the event table of records whose payloads start at ``payload`` in ``data``."""
    n = ts.size
    spec = schema.formats()
    out_schema = schema.event_table_schema()
    ctype = tk.gather_u(data, payload, 0, 2, False)
    pid = tk.gather_u(data, payload, 4, 4, True).astype(np.int32)
    ints = IntColumns(n)
    strs = _LazyCodes(n)
    dicts: dict[str, dict[str, int]] = {f.column: {} for f in spec.typed_fields
                                        if f.type == "string"}
    event_code = np.zeros(n, np.int32)
    event_names: list[str] = []
    per_type = []
    type_codes, type_ids = pd.factorize(ctype)
    by_type = np.argsort(type_codes.astype(np.uint16), kind="stable")   # radix sort (u16 ids)
    bounds = np.searchsorted(type_codes[by_type], np.arange(len(type_ids) + 1))
    for i, t in enumerate(type_ids):
        fmt = dat.formats.get(int(t))
        rows = by_type[bounds[i]:bounds[i + 1]]
        if fmt is None:
            raise InputError(path, f"record of unknown event type {int(t)} (no format in file)",
                             offset=int(payload[rows[0]]))
        event_code[rows] = len(event_names)
        event_names.append(fmt.name)
        short = length[rows] < fmt.record_size
        if short.any():
            raise InputError(path, f"{fmt.name} record shorter than its format",
                             offset=int(payload[rows[np.argmax(short)]]))
        starts = payload[rows]
        group = spec.group_of(fmt.name)
        if group is not None:
            _typed(fmt, group, data, starts, rows, ints, strs, dicts)
        per_type.append((fmt, rows, starts))
    comm_codes, comm_dict = _comms(dat, pid)
    cols = {
        "ts_ns": pa.array(ts, pa.int64()),
        "cpu": pa.array(cpu, pa.int32()),
        "pid": pa.array(pid, pa.int32()),
        "comm": _dict_strings(comm_codes, comm_dict),
        "event": _dict_strings(event_code, event_names),
        "line": pa.array(np.arange(first_line, first_line + n, dtype=np.int64)),
        "fields": _fields_text(n, data, per_type),
    }
    for f in spec.typed_fields:
        if f.type == "int64":
            cols[f.column] = ints.array(f.column)
    for col, names in dicts.items():
        cols[col] = (_dict_strings(strs[col], list(names)) if col in strs.cols
                     else null_column(n, pa.string()))
    return pa.table([cols[f.name] for f in out_schema], schema=out_schema)


class _LazyCodes:
    """Full-length dictionary codes of string columns (-1 = null), allocated when first used."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cols: dict[str, np.ndarray] = {}

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.cols:
            self.cols[column] = np.full(self.n, -1, np.int32)
        return self.cols[column]


def _read_field(data: np.ndarray, starts: np.ndarray, f: Field) -> np.ndarray:
    """The field's value as int64: sign- or zero-extended per the format, 8 bytes as bits."""
    if f.size not in (1, 2, 4, 8):
        raise ValueError(f"field {f.name} of size {f.size} is not a number")
    return tk.gather_u(data, starts, f.offset, f.size, f.signed)


def _printf_cast(vals: np.ndarray, b: Binding) -> np.ndarray:
    """Cast like printf's conversion: keep ``b.width`` bits, signed or not (64-bit as bits)."""
    if b.width >= 64:
        return vals
    mask = (1 << b.width) - 1
    v = vals & mask
    if b.signed:
        v = np.where(v >= (1 << (b.width - 1)), v - (1 << b.width), v)
    return v


def _typed(fmt: EventFormat, group, data: np.ndarray, starts: np.ndarray, rows: np.ndarray,
           ints: IntColumns, strs: dict, dicts: dict) -> None:
    """Fill the group's typed columns for the rows of one event type."""
    binds = _bindings_of(fmt)
    for spec in group.fields:
        b = binds.get(spec.key)
        if b is None or b.kind == "other":
            continue
        f = fmt.field(b.field)
        if f is None or f.is_array or f.is_data_loc:
            continue
        vals = _read_field(data, starts, f)
        if spec.type == "int64":
            if b.kind != "num":
                continue
            if b.neg1_zero:
                vals = np.where(vals == -1, 0, vals)
            ints.write(spec.group, spec.column, rows, _printf_cast(vals, b))
            continue
        # string columns: render each distinct value once (hash factorisation, no sort)
        inverse, uniq = pd.factorize(vals)
        texts = [_render_one(int(u), b, fmt, spec) for u in uniq]
        table = dicts[spec.column]
        codes = np.array([table.setdefault(s, len(table)) for s in texts], dtype=np.int32)
        strs[spec.column][rows] = codes[inverse]


def _render_one(value: int, b: Binding, fmt: EventFormat, spec) -> str:
    """One value as the text shows it, read back the way the schema's value kind reads it."""
    if spec.map is not None:
        return spec.symbol(_printf_cast(np.array([value]), b)[0] if b.kind == "num" else value)
    if b.kind == "symbolic":
        text = fmt.symbolic.get(b.field, {}).get(value, str(value))
    elif b.kind == "flags":
        text = b.zero if value == 0 and b.zero is not None else _print_flags(
            value, *fmt.flags[b.field])
    elif b.kind == "letters":
        text = "".join(yes if value & mask else no for mask, yes, no in fmt.letters[b.field])
    else:
        text = str(int(_printf_cast(np.array([value]), b)[0]))
    if spec.value == "word":
        text = text.replace(",", " ").split(" ", 1)[0]
    elif spec.value == "flags":
        text = text.replace(" ", "")
    return text


def _print_flags(value: int, delim: str, pairs: list[tuple[int, str]]) -> str:
    """libtraceevent's ``__print_flags``: names of set masks in order, then leftover bits."""
    value &= (1 << 64) - 1
    if value == 0:
        return next((name for mask, name in pairs if mask == 0), "")
    parts = []
    for mask, name in pairs:
        if mask > 0 and value & mask == mask:
            parts.append(name)
            value &= ~mask
    if value:
        parts.append(f"0x{value:x}")
    return delim.join(parts)


def _bindings_of(fmt: EventFormat) -> dict[str, Binding]:
    return bindings(fmt.print_fmt)


def _fields_text(n: int, data: np.ndarray, per_type: list) -> pa.Array:
    """``name=0x<hex> ...`` of every record: the record's own fields, lossless."""
    widths = np.zeros(n, np.int64)
    layouts = []
    for fmt, rows, starts in per_type:
        labels = [(" " if i else "") + f.name + "=0x" for i, f in enumerate(fmt.fields)]
        label_bytes = np.frombuffer("".join(labels).encode(), np.uint8)
        label_ends = np.cumsum([len(x) for x in labels]).astype(np.int64)
        f_off = np.array([f.offset for f in fmt.fields], np.int64)
        f_size = np.array([f.size for f in fmt.fields], np.int64)
        f_rev = np.array([not (f.is_array or f.is_data_loc) for f in fmt.fields], np.bool_)
        widths[rows] = label_bytes.size + 2 * int(f_size.sum())
        layouts.append((rows, starts, label_bytes, label_ends, f_off, f_size, f_rev))
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(widths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    for rows, starts, label_bytes, label_ends, f_off, f_size, f_rev in layouts:
        tk.hex_fields(data, starts, rows, out, offsets, label_bytes, label_ends, f_off, f_size,
                      f_rev)
    if offsets[-1] < 2**31:   # the usual case: 32-bit offsets, no copy
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)),
                                           pa.py_buffer(out))
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out))
    return arr.cast(pa.string())


def _comms(dat: DatFile, pid: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Command names as trace-cmd shows them: saved cmdlines, ``<idle>`` for 0, else ``<...>``."""
    inverse, uniq = pd.factorize(pid)
    names = [("<idle>" if p == 0 else dat.cmdlines.get(int(p), "<...>")) for p in uniq]
    return inverse.astype(np.int32), names


def _dict_strings(codes: np.ndarray, names: list[str]) -> pa.Array:
    """Strings from codes into ``names`` (code -1 = null)."""
    missing = codes < 0
    if missing.all():
        return null_column(codes.size, pa.string())
    indices = pa.array(codes, pa.int32(), mask=missing if missing.any() else None)
    return pa.array(names, pa.string()).take(indices)
