"""Which binary field, read how, stands behind each ``key=`` of an event's printed text.

The text parsers find a typed value after its key (``pages=``, ``type=``, ``start: ``) in the
text the kernel or libtraceevent printed from the event's ``print fmt``.  To give the same
value from a trace.dat record, this module pairs each key of the print fmt's format string with
the argument printed there, and classifies the argument:

* ``num``      a field printed with a numeric conversion (``%d %u %ld %lx %p`` ...): its bits cast
               to the conversion's width and signedness, as printf does;
* ``symbolic`` ``__print_symbolic(REC->f, ...)``;  ``flags`` ``__print_flags(REC->f, "|", ...)``;
* ``letters``  a run of ``%s`` args ``REC->f & MASK ? "x" : "y"`` (``mm_lru_insertion`` flags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

_CONV = re.compile(
    r"%[-+ #0]*(?:\d+|\*)?(?:\.\d+)?(?P<len>hh|h|ll|l|z)?(?P<conv>[diouxXcsS]|p)"
    r"(?P<ext>(?<=p)[a-zA-Z]*)?"
)
_KEY_BEFORE = re.compile(r"(\w+)(?:=|: ?)(?:0x)?$")
_REC = re.compile(r"REC->(\w+)")
_ELSE_TEXT = re.compile(r":\s*\"([^\"]*)\"\s*\)?\s*$")
_LETTER = re.compile(r"REC->\w+\s*&\s*\w+\s*\?\s*\"")
# one whole per-bit letter argument (event_formats reads its mask and letters)
_LETTER_ARG = re.compile(
    r'REC->(\w+)\s*&\s*(?:0x[0-9a-fA-F]+|\d+)[uUlL]*\s*\?\s*"[^"]*"\s*:\s*"[^"]*"'
)
# "REC->pfn != -1UL ? REC->pfn : 0" (mm_page_alloc/free since 5.x): -1 prints as 0
_NEG1_ZERO = re.compile(r"REC->(\w+)\s*!=\s*-1\w*\s*\?\s*REC->\1\s*:\s*0\b")


@dataclass(frozen=True)
class Binding:
    """How the value printed after one key is computed from the record."""

    key: str
    kind: str  # num | symbolic | flags | letters | other
    field: str  # the REC-> field read
    width: int = 64  # num: printf's integer width
    signed: bool = True  # num: printf's signedness
    neg1_zero: bool = False  # num: "f != -1UL ? f : 0"
    zero: str | None = None  # flags: text printed for 0 by a "(f) ? ... : \"text\"" guard


@cache
def bindings(print_fmt: str) -> dict[str, Binding]:
    """Map each key of ``print_fmt`` ("" for a format that is one bare value) to its Binding;
    ``ValueError`` when the conversions and the arguments do not pair up (a damaged fmt)."""
    fmt, args = _split_print_fmt(print_fmt)
    out: dict[str, Binding] = {}
    convs = list(_CONV.finditer(fmt))
    if len(convs) != len(args):
        raise ValueError(f"print fmt has {len(convs)} conversions for {len(args)} arguments")
    i = 0
    while i < len(convs):
        m = convs[i]
        key_m = _KEY_BEFORE.search(fmt[: m.start()])
        key = key_m.group(1) if key_m else ("" if len(convs) == 1 else None)
        arg = args[i]
        # a run of %s conversions printed back to back belongs to the first one's key
        run = [arg]
        while (
            i + 1 < len(convs) and convs[i + 1].start() == convs[i].end() and m.group("conv") == "s"
        ):
            i += 1
            run.append(args[i])
        i += 1
        if key is None or key in out:
            continue
        out[key] = _classify(key, m, run)
    return out


def _classify(key: str, m: re.Match, run: list[str]) -> Binding:
    arg = run[0]
    rec = _REC.search(arg)
    if rec is None:
        return Binding(key, "other", "")
    field = rec.group(1)
    conv, length = m.group("conv"), m.group("len") or ""
    if "__print_symbolic" in arg:
        return Binding(key, "symbolic", field)
    if "__print_flags" in arg:
        # "(REC->f) ? __print_flags(REC->f, ...) : \"none\"" prints the else text for 0
        zero = _ELSE_TEXT.search(arg)
        return Binding(key, "flags", field, zero=zero.group(1) if zero else None)
    if conv == "s" and _LETTER.search(arg):
        letters = [_LETTER_ARG.fullmatch(a) for a in run]
        if not all(m is not None and m.group(1) == field for m in letters):
            raise ValueError(f"print fmt's per-bit letters of {key} cannot be read")
        return Binding(key, "letters", field)
    if conv in "dioux" and not m.group("ext"):
        width = (
            64 if length in ("l", "ll", "z") else 32 if length == "" else 16 if length == "h" else 8
        )
        return Binding(key, "num", field, width, conv in "di", _NEG1_ZERO.search(arg) is not None)
    if conv == "p":
        return Binding(key, "num", field, 64, False, _NEG1_ZERO.search(arg) is not None)
    return Binding(key, "other", field)


def _split_print_fmt(print_fmt: str) -> tuple[str, list[str]]:
    """``"fmt", arg, arg`` -> (fmt, [arg, ...]) with top-level commas splitting the args."""
    text = print_fmt.strip()
    if not text.startswith('"'):
        return "", []
    i, esc = 1, False
    while i < len(text):
        c = text[i]
        if esc:
            esc = False
        elif c == "\\":
            esc = True
        elif c == '"':
            break
        i += 1
    fmt = text[1:i]
    rest = text[i + 1 :].lstrip()
    if rest.startswith(","):
        rest = rest[1:]
    args, depth, start, in_str, esc = [], 0, 0, False, False
    for j, c in enumerate(rest):
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(rest[start:j].strip())
            start = j + 1
    if rest[start:].strip():
        args.append(rest[start:].strip())
    return fmt, args
