"""Typed values of one event, read from its field text as ``parsers/events.toml`` says."""

from __future__ import annotations

import re

from folio_replay.parsers.schema import FieldSpec, GroupSpec

# The value patterns of events.toml's ``value`` kinds; each must end at a blank, a comma,
# a closing parenthesis (tracefs syscall text) or the end of the text.
_VALUE_PATTERNS = {
    "int": r"(?P<v>-?(?:0x[0-9a-fA-F]+|\d+))",
    "hex": r"(?P<v>(?:0x)?[0-9a-fA-F]+)",
    "word": r"(?P<v>[^\s,]+)",
    "paren": r".*? \((?P<v>-?\d+)\)",
    "flags": r"(?P<v>.*)",
}
_END = r"(?=[\s,)]|$)"
_INT64_WRAP = 1 << 64
_INT64_MAX = (1 << 63) - 1


class FieldError(ValueError):
    """A typed field that the event's text lacks or prints in an unexpected way."""


_patterns: dict[str, re.Pattern[str]] = {}


def _pattern(spec: FieldSpec) -> re.Pattern[str]:
    """The compiled search pattern of ``spec`` (built once per column)."""
    if spec.column not in _patterns:
        _patterns[spec.column] = _compile(spec)
    return _patterns[spec.column]


def _compile(spec: FieldSpec) -> re.Pattern[str]:
    value = _VALUE_PATTERNS[spec.value] + re.escape(spec.suffix)
    if spec.key == "":
        return re.compile(r"\s*" + value + r"\s*$")
    return re.compile(r"(?:^|(?<=[\s,(]))" + re.escape(spec.key) + r"(?:=|: ?)" + value + _END)


def _number(text: str, hexadecimal: bool) -> int:
    """The int64 with the same 64 bits as the printed (possibly unsigned) number; a number
    beyond 64 bits (unsigned, or signed when negative) is an error."""
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    hexa = hexadecimal or digits.startswith("0x")
    digits = (digits.removeprefix("0x") if hexa else digits).lstrip("0") or "0"
    if len(digits) > (16 if hexa else 20):
        raise FieldError(f"{text[:40]} does not fit in 64 bits")
    number = int(digits, 16 if hexa else 10)
    if negative:
        number = -number
    if not -(1 << 63) <= number < _INT64_WRAP:
        raise FieldError(f"{text} does not fit in 64 bits")
    return number - _INT64_WRAP if number > _INT64_MAX else number


def read_field(spec: FieldSpec, text: str) -> int | str | None:
    """The typed value of ``spec`` in an event's field text (None if its optional key is absent)."""
    match = _pattern(spec).search(text)
    if match is None:
        if spec.optional:
            return None
        raise FieldError(
            f"no {spec.key or 'value'!r} of the form events.toml gives for {spec.column}"
        )
    raw = match.group("v")
    if spec.value in ("int", "hex", "paren"):
        number = _number(raw, spec.value == "hex")  # "paren" numbers print as %d
        return spec.symbol(number) if spec.map is not None else number
    if spec.value == "flags":
        return raw.replace(" ", "")
    return raw


def read_group(group: GroupSpec, text: str) -> dict[str, int | str | None]:
    """Every typed column of ``group`` read from one event's field text."""
    return {spec.column: read_field(spec, text) for spec in group.fields}
