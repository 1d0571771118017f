"""Event format files (``events/<system>/<event>/format``) as stored in a trace.dat.

A format names the event's binary fields (offset, size, signedness) and its ``print fmt``: the
printf format and arguments the kernel uses for the text trace.  The decoder reads values from
the fields and, to render them the way the text shows them, the parts of ``print fmt`` that map
numbers to words: ``__print_symbolic(REC->f, {v, "name"}, ...)``, ``__print_flags(REC->f, "|",
{mask, "NAME"}, ...)`` and per-bit letters ``REC->f & 0x2u ? "a" : "f"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from folio_replay.parsers.limits import PAGE_SIZE_MAX
from folio_replay.parsers.tracedat.cexpr import c_int

from folio_replay.errors import InputError

_FIELD = re.compile(
    r"field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>-?\d+);)?"
)
# the lines of a format's field list (libtraceevent's event_read_fields stops the whole format
# at anything else: trace-cmd then prints the event as [FAILED TO PARSE])
_FIELD_LINE = re.compile(r"[ \t]*" + _FIELD.pattern + r"[ \t]*")
_FIELDS = re.compile(r"^format:[ \t]*\n(?P<block>.*?)\n[ \t]*print fmt:", re.M | re.S)
_NAME = re.compile(r"^name:\s*(\S+)", re.M)
_ID = re.compile(r"^ID:\s*(\d{1,9})\b", re.M)
_PRINT = re.compile(r"^print fmt:\s*(.*)$", re.M | re.S)


@dataclass(frozen=True)
class Field:
    """One binary field of an event record."""

    name: str
    decl: str  # the C declaration as written, e.g. "unsigned long pfn"
    offset: int
    size: int
    signed: bool

    @property
    def is_data_loc(self) -> bool:
        """``__data_loc`` fields hold (length << 16 | offset) of dynamic data."""
        return self.decl.startswith("__data_loc")

    @property
    def is_array(self) -> bool:
        return "[" in self.decl and not self.is_data_loc

    @property
    def is_char_array(self) -> bool:
        return self.is_array and self.decl.split()[0] == "char"


@dataclass
class EventFormat:
    """The parsed format of one event."""

    system: str
    name: str
    id: int
    fields: list[Field]  # the event's own fields (common_* left out)
    common: list[Field]
    print_fmt: str
    symbolic: dict[str, dict[int, str]] = field(default_factory=dict)
    flags: dict[str, tuple[str, list[tuple[int, str]]]] = field(default_factory=dict)
    letters: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def record_size(self) -> int:
        """Bytes of the fixed part of the record (end of the last field)."""
        return max((f.offset + f.size for f in self.fields + self.common), default=0)


class FormatTable:
    """Event formats by id, parsed when first asked for (a file stores ~2000, a trace uses few);
    ``path`` and each format's offset name the place of a bad one."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self._text: dict[int, tuple[str, str, int]] = {}
        self._parsed: dict[int, EventFormat] = {}

    def add(self, system: str, text: str, offset: int = 0) -> None:
        """Keep one format file's text (found at ``offset``) under its ``ID:``;
        ``ValueError`` if it has none."""
        ident = _ID.search(text)
        if ident is None:
            raise ValueError("format without ID")
        self._text[int(ident.group(1))] = (system, text, offset)

    def offset(self, ident: int) -> int:
        """Where the format of ``ident`` is in the file."""
        return self._text[ident][2]

    def get(self, ident: int) -> EventFormat | None:
        """The parsed format of event ``ident``, or None if the file has none; a format that
        does not parse is an :class:`InputError` at its offset."""
        if ident not in self._parsed:
            if ident not in self._text:
                return None
            system, text, offset = self._text[ident]
            try:
                self._parsed[ident] = parse_format(system, text)
            except ValueError as err:
                raise InputError(self.path, f"bad event format: {err}", offset=offset) from None
        return self._parsed[ident]

    def __len__(self) -> int:
        return len(self._text)


def _place(m: re.Match) -> tuple[int, int]:
    """(offset, size) of a ``field:`` line; ``ValueError`` beyond the largest page."""
    off, size = m.group("off"), m.group("size")
    if len(off) > 9 or len(size) > 9 or int(off) + int(size) > PAGE_SIZE_MAX:
        raise ValueError(f"field at offset {off} of size {size} is beyond any ring-buffer page")
    return int(off), int(size)


def parse_header_page(text: str) -> dict[str, tuple[int, int]]:
    """``header_page`` text -> {field name: (offset, size)} (timestamp, commit, data ...);
    ``ValueError`` when it lacks a field or places one beyond any page."""
    out: dict[str, tuple[int, int]] = {}
    for m in _FIELD.finditer(text):
        name = _decl_name(m.group("decl"))
        out.setdefault(name, _place(m))
    if "commit" not in out or "data" not in out:
        raise ValueError("header_page lacks commit or data")
    return out


def parse_format(system: str, text: str) -> EventFormat:
    """Parse one format file's text; ``ValueError`` when it is not one."""
    name, ident = _NAME.search(text), _ID.search(text)
    if not name or not ident:
        raise ValueError("format without name or ID")
    fields: list[Field] = []
    common: list[Field] = []
    for m in _field_lines(text):
        decl = m.group("decl").strip()
        signed = m.group("signed")
        offset, size = _place(m)
        f = Field(
            _decl_name(decl),
            decl,
            offset,
            size,
            signed is not None and signed.lstrip("-0") != "",
        )
        (common if f.name.startswith("common_") else fields).append(f)
    pm = _PRINT.search(text)
    fmt = EventFormat(
        system,
        name.group(1),
        int(ident.group(1)),
        fields,
        common,
        pm.group(1).strip() if pm else "",
    )
    _analyse_print_fmt(fmt)
    return fmt


def _field_lines(text: str) -> list[re.Match]:
    """The field lines of a format (``ValueError`` when a line of its field list is not one)."""
    block = _FIELDS.search(text)
    if block is None:
        raise ValueError("format without a field list and print fmt")
    out = []
    for line in block["block"].split("\n"):
        if not line.strip():
            continue
        m = _FIELD_LINE.fullmatch(line)
        if m is None:
            raise ValueError(f"not a field line: {line[:60]!r}")
        out.append(m)
    return out


def _decl_name(decl: str) -> str:
    """The field name of a C declaration: ``char comm[16]`` -> ``comm``."""
    decl = decl.split("[", 1)[0].strip()
    return re.split(r"[\s*]+", decl)[-1]


_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->(\w+)\s*,")
_FLAGS = re.compile(r"__print_flags\(\s*(?:\(\w[\w ]*\))?\s*REC->(\w+)\s*,\s*\"([^\"]*)\"\s*,")
_PAIR = re.compile(r"\{\s*([^{}]+?)\s*,\s*\"([^\"]*)\"\s*\}")
_LETTER = re.compile(
    r"REC->(\w+)\s*&\s*(0x[0-9a-fA-F]+|\d+)[uUlL]*\s*\?\s*\"([^\"]*)\"\s*:\s*"
    r"\"([^\"]*)\""
)


def _analyse_print_fmt(fmt: EventFormat) -> None:
    """Fill ``symbolic``, ``flags`` and ``letters`` from the print fmt."""
    pf = fmt.print_fmt
    for m in _SYMBOLIC.finditer(pf):
        try:
            pairs = [(c_int(v), s) for v, s in _PAIR.findall(_call_body(pf, m.end()))]
        except ValueError:
            continue  # a map over names this module cannot evaluate: the field stays numeric
        fmt.symbolic[m.group(1)] = dict(pairs)
    for m in _FLAGS.finditer(pf):
        try:
            pairs = [(c_int(v), s) for v, s in _PAIR.findall(_call_body(pf, m.end()))]
        except ValueError:
            continue
        fmt.flags[m.group(1)] = (m.group(2), pairs)
    for m in _LETTER.finditer(pf):
        try:
            mask = c_int(m.group(2))
        except ValueError:
            continue
        fmt.letters.setdefault(m.group(1), []).append((mask, m.group(3), m.group(4)))


def _call_body(text: str, start: int) -> str:
    """The text from ``start`` to the ``)`` closing the call whose arguments begin there."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return text[start:]
