"""One binary field value as the text trace shows it (for the typed string columns of
trace.dat tables): printf's integer casts, ``__print_symbolic`` names, libtraceevent's
``__print_flags`` and per-bit letters, read back the way the schema's value kind reads them.
"""

from __future__ import annotations

from folio_replay.parsers.schema import FieldSpec
from folio_replay.parsers.tracedat.event_formats import EventFormat
from folio_replay.parsers.tracedat.printfmt import Binding


def printf_cast(value: int, b: Binding) -> int:
    """Cast like printf's conversion: keep ``b.width`` bits, signed or not (64-bit as is)."""
    if b.width >= 64:
        return value
    value &= (1 << b.width) - 1
    if b.signed and value >= 1 << (b.width - 1):
        value -= 1 << b.width
    return value


def shown_value(value: int, b: Binding, fmt: EventFormat, spec: FieldSpec) -> str:
    """``value`` (the field's bits, sign-extended per the format) as the column holds it."""
    if spec.map is not None:
        return spec.symbol(printf_cast(value, b) if b.kind == "num" else value)
    if b.kind == "symbolic":  # a value the map lacks: 0x%llx of the field's bytes (libtraceevent)
        field = fmt.field(b.field)
        bits = 8 * field.size if field else 64
        text = fmt.symbolic.get(b.field, {}).get(value, f"0x{value & (1 << bits) - 1:x}")
    elif b.kind == "flags":
        # a flag table the print fmt does not let us read: only leftover bits, as hex
        flags = fmt.flags.get(b.field, ("|", []))
        text = b.zero if value == 0 and b.zero is not None else print_flags(value, *flags)
    elif b.kind == "letters":
        letters = fmt.letters.get(b.field, [])
        text = "".join(yes if value & mask else no for mask, yes, no in letters)
    else:
        text = str(printf_cast(value, b))
    if spec.value == "word":
        text = text.replace(",", " ").split(" ", 1)[0]
    elif spec.value == "flags":
        text = text.replace(" ", "")
    return text


def print_flags(value: int, delim: str, pairs: list[tuple[int, str]]) -> str:
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
