"""Mutators: each turns a seed into a hostile input with a seeded ``random.Random`` and says
what it did as *edits*, plain data that replay the case without the mutator
(``regressions.json`` keeps them): ``[start, end, hex]`` byte replacements of a file, or
``[path, op, ...]`` changes of a file tree.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

Edit = list  # [start, end, hex] on bytes; [relpath, op, arg] on a tree

NUMBERS = [
    b"0",
    b"-1",
    b"1",
    b"2147483647",
    b"2147483648",
    b"4294967295",
    b"4294967296",
    b"4194305",
    b"9223372036",
    b"9223372037",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9" * 25,
    b"0" * 30 + b"1",
    b"0x7fffffff",
    b"0xffffffffffffffff",
    b"0x10000000000000000",
    b"0X10",
    b"1e300",
    b"nan",
    b"inf",
]
CHARS = [
    b" ",
    b"\t",
    b":",
    b"[",
    b"]",
    b"(",
    b")",
    b"-",
    b",",
    b"=",
    b".",
    b"#",
    b"\x00",
    b"\xff",
    b"\r",
    b"\n",
    "é".encode(),
    "\u00a0".encode(),
    "٣".encode(),
    b"\x1b",
    b"|",
]
TOML_VALUES = [
    *NUMBERS,
    *(b'"fast"', b"true", b"[]", b"{}", b"-0.0", b"1_000", b"0o17", b"+inf", b"-nan"),
    *(b"1e-400", b'"x86"'),
]
INTS = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFF,
    0x1000,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    4080,
    4096,
    8000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    1 << 32,
    1 << 62,
    1 << 63,
    (1 << 64) - 1,
    (1 << 31) | 4080,
    (3 << 30) | 4080,
]


def apply(data: bytes, edits: list[Edit]) -> bytes:
    """``data`` with byte edits applied in order."""
    out = bytearray(data)
    for start, end, new in edits:
        out[start:end] = bytes.fromhex(new)
    return bytes(out)


def _edit(start: int, end: int, new: bytes) -> Edit:
    return [start, end, new.hex()]


# ------------------------------------------------------------------------------ bytes


def _span(rng: random.Random, size: int, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
    hi = size if hi is None else min(hi, size)
    start = rng.randrange(lo, max(hi, lo + 1))
    return start, min(hi, start + rng.choice([1, 1, 2, 4, 8, 16, 64, 512]))


def byte_edit(rng: random.Random, data: bytes, lo: int = 0, hi: int | None = None) -> Edit:
    """One byte-level change within ``data[lo:hi]``."""
    size = len(data)
    hi = size if hi is None else min(hi, size)
    if hi <= lo:
        return _edit(size, size, rng.choice(CHARS))
    at = rng.randrange(lo, hi)
    kind = rng.randrange(9)
    if kind == 0:  # flip a bit
        return _edit(at, at + 1, bytes([data[at] ^ (1 << rng.randrange(8))]))
    if kind == 1:  # an interesting byte
        return _edit(at, at + 1, bytes([rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x0A])]))
    if kind == 2:  # an interesting little-endian integer
        width = rng.choice([2, 4, 8])
        value = rng.choice(INTS) & ((1 << (8 * width)) - 1)
        new = value.to_bytes(width, "little")
        return _edit(at, min(at + width, size), new)
    if kind == 3:  # delete
        start, end = _span(rng, size, lo, hi)
        return _edit(start, end, b"")
    if kind == 4:  # insert
        return _edit(at, at, bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 8]))))
    if kind == 5:  # duplicate
        start, end = _span(rng, size, lo, hi)
        return _edit(end, end, data[start:end])
    if kind == 6:  # truncate
        return _edit(at, size, b"")
    if kind == 7:  # copy a span from elsewhere over this place
        start, end = _span(rng, size)
        return _edit(at, min(at + end - start, size), data[start:end])
    return _edit(at, min(at + 4, size), bytes(4))  # zeros


def mutate_bytes(rng: random.Random, data: bytes, regions=None, count: int | None = None):
    """1-4 byte edits, each inside a region (start, end) drawn from ``regions`` if given."""
    edits: list[Edit] = []
    for _ in range(count or rng.choice([1, 1, 1, 2, 3, 4])):
        lo, hi = rng.choice(regions) if regions else (0, len(data))
        edit = byte_edit(rng, data, lo, hi)
        edits.append(edit)
        data = apply(data, [edit])
        if len(bytes.fromhex(edit[2])) != edit[1] - edit[0]:
            regions = None  # lengths changed: later offsets no longer hold
    return edits


# ------------------------------------------------------------------------------- text

_TOKEN = re.compile(rb"0[xX][0-9a-fA-F]+|-?[0-9]+(?:\.[0-9]+)?|[A-Za-z_]+")


def _line_spans(data: bytes) -> list[tuple[int, int]]:
    spans, start = [], 0
    for line in data.splitlines(keepends=True):
        spans.append((start, start + len(line)))
        start += len(line)
    return spans


def text_edit(rng: random.Random, data: bytes, donors: list[bytes]) -> Edit:
    """One change of a text trace: a token of a line, a character, a whole line."""
    spans = _line_spans(data) or [(0, 0)]
    start, end = rng.choice(spans)
    line = data[start:end]
    kind = rng.randrange(10)
    tokens = list(_TOKEN.finditer(line))
    if kind <= 3 and tokens:  # a number or word replaced
        token = rng.choice(tokens)
        new = rng.choice(NUMBERS) if kind <= 2 else rng.choice([b"", b"x" * 300, token[0] * 2])
        return _edit(start + token.start(), start + token.end(), new)
    if kind == 4:  # a character inserted
        at = rng.randrange(start, max(end, start + 1))
        return _edit(at, at, rng.choice(CHARS))
    if kind == 5 and end > start:  # a character deleted
        at = rng.randrange(start, end)
        return _edit(at, at + 1, b"")
    if kind == 6:  # the line doubled or dropped
        return _edit(end, end, line) if rng.random() < 0.5 else _edit(start, end, b"")
    if kind == 7:  # a line of another trace inserted
        donor = rng.choice(donors).splitlines(keepends=True) or [b"\n"]
        return _edit(start, start, rng.choice(donor))
    if kind == 8:  # the file cut
        return _edit(rng.randrange(start, max(end, start + 1)), len(data), b"")
    return byte_edit(rng, data, start, end)


def mutate_text(rng: random.Random, data: bytes, donors: list[bytes]) -> list[Edit]:
    edits: list[Edit] = []
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        edit = text_edit(rng, data, donors)
        edits.append(edit)
        data = apply(data, [edit])
    return edits


# --------------------------------------------------------------------------- trees


def mutate_tree(rng: random.Random, files: list[str], texts: Callable[[str], bytes]) -> list:
    """Changes of a stats tree: ``[relpath, op, arg]``; ops ``bytes`` (byte edits of the
    file), ``text`` (text edits), ``value`` (the file's value replaced), ``empty``,
    ``symlink`` (to a device), ``fifo``, ``remove``, ``dir`` (a directory in its place)."""
    edits = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        rel = rng.choice(files)
        kind = rng.choices(
            ["text", "value", "bytes", "empty", "symlink", "fifo", "remove", "dir"],
            [6, 5, 2, 2, 1, 1, 1, 1],
        )[0]
        data = texts(rel)
        if kind == "text":
            edits.append([rel, "bytes", mutate_text(rng, data, [data])])
        elif kind == "bytes":
            edits.append([rel, "bytes", mutate_bytes(rng, data)])
        elif kind == "value":
            spans = [m.span() for m in re.finditer(rb"-?[0-9]+", data)] or [(0, len(data))]
            start, end = rng.choice(spans)
            edits.append([rel, "bytes", [_edit(start, end, rng.choice(NUMBERS))]])
        elif kind == "symlink":
            edits.append([rel, "symlink", rng.choice(["/dev/zero", "/dev/null"])])
        else:
            edits.append([rel, kind, None])
    return edits


# --------------------------------------------------------------------------- JSON, TOML


def mutate_json(rng: random.Random, data: bytes) -> list[Edit]:
    """A key removed, retyped or doubled, or byte and text edits of the JSON."""
    kind = rng.randrange(4)
    if kind >= 2:
        return mutate_text(rng, data, [data]) if kind == 2 else mutate_bytes(rng, data)
    meta = json.loads(data)
    key = rng.choice(["kernel", "arch", "command", "name", *list(meta)[:12]])
    values = [
        None,
        0,
        -1,
        1 << 80,
        1.5e308,
        "",
        "x" * 5000,
        [],
        {},
        [1, 2],
        {"a": [None]},
        "7.2",
        "Linux version",
        "6.12.117-rc1",
        "\x00",
        ["a", 3],
    ]
    if kind == 0:
        meta.pop(key, None)
    else:
        meta[key] = rng.choice(values)
    return [_edit(0, len(data), json.dumps(meta, indent=2).encode())]


def mutate_toml(rng: random.Random, data: bytes) -> list[Edit]:
    """Values of a cost table replaced (numbers, strings, booleans), lines dropped or
    doubled, bytes changed."""
    if rng.random() < 0.2:
        return mutate_bytes(rng, data)
    edits = []
    for _ in range(rng.choice([1, 1, 2])):
        spans = [m.span(1) for m in re.finditer(rb"(?m)^\s*[\w.]+\s*=\s*(.+)$", data)]
        if not spans or rng.random() < 0.25:
            edit = text_edit(rng, data, [data])
        else:
            start, end = rng.choice(spans)
            new = rng.choice(TOML_VALUES)
            edit = _edit(start, end, new)
        edits.append(edit)
        data = apply(data, [edit])
    return edits
