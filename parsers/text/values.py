"""Compiled readers of the typed values of the fast text parser (numba): every typed field of
every event of a chunk, in one pass over each event's field text.

They accept exactly the values the reference patterns of :mod:`folio_replay.parsers.text.fields`
accept, and mark an event for the reference code whenever a value has another shape.
"""

from __future__ import annotations

import numpy as np
from folio_replay.parsers._native.byteops import HIGH, ONES, load8, same_bytes
from folio_replay.parsers.text.scan import COLON, COMMA, DASH, LPAR, RPAR, SP, _digit, _space
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

# value kinds (events.toml ``value``)
INT, HEX, PAREN, WORD, TAIL = 0, 1, 2, 3, 4
# where a value goes: an int64 slot, a span of the text (as is, or without its blanks), a
# number for the column's map, or nowhere (the event is parsed by the reference code)
TO_INT, TO_SPAN, TO_SPAN_NO_BLANKS, TO_MAP, TO_REFERENCE = range(5)


# byte classes: blank (``\s``); a key may follow (``(?<=[\s,(])``); a value ends before
# (``(?=[\s,)]``); a word ends before (``[^\s,]+``)
_BLANK, _KEY_AFTER, _VALUE_END, _WORD_END = 1, 2, 4, 8


def _byte_classes() -> tuple[np.ndarray, np.ndarray]:
    """Per byte value: its classes (bits), and its value as a hex digit (-1: none)."""
    classes = np.zeros(256, np.uint8)
    hexval = np.full(256, -1, np.int8)
    for c in range(256):
        blank = _space(c)
        classes[c] = (
            _BLANK * blank
            | _KEY_AFTER * (blank or c in (COMMA, LPAR))
            | _VALUE_END * (blank or c in (COMMA, RPAR))
            | _WORD_END * (blank or c == COMMA)
        )
        if 48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70:
            hexval[c] = int(chr(c), 16)
    return classes, hexval


_CLASSES, _HEXVAL = _byte_classes()


def key_may_follow(c: int) -> bool:
    """Whether a key may start right after the byte ``c``."""
    return bool(_CLASSES[c] & _KEY_AFTER)


@njit(cache=True, inline="always")
def _next_of(buf, i, e, bit, other):
    """The first position in ``i..e-1`` whose byte has the class ``bit`` (``e``: none), for
    classes of blanks (all below "!"), commas and ``other``: eight bytes at a time, candidates
    (a byte below "!", a comma or ``other``) checked against the class table."""
    below = ONES * np.uint64(33)
    commas = ONES * np.uint64(COMMA)
    others = ONES * np.uint64(other)
    while i + 8 <= e:
        x = load8(buf, i)
        c = x ^ commas
        o = x ^ others
        found = ((x - below) & ~x | (c - ONES) & ~c | (o - ONES) & ~o) & HIGH
        while found:
            at = i + np.int64(trailing_zeros(found) >> np.uint64(3))  # type: ignore[call-arg]
            if _CLASSES[buf[at]] & bit:
                return at
            found &= found - np.uint64(1)
        i += 8
    while i < e and _CLASSES[buf[i]] & bit == 0:
        i += 1
    return i


@njit(cache=True, inline="always")
def _is_end(buf, pos, end):
    """The reference's value end ``(?=[\\s,)]|$)``."""
    return pos >= end or _CLASSES[buf[pos]] & _VALUE_END != 0


@njit(cache=True, inline="always")
def _number(buf, v, f1, kind):
    """(value, end, ok) of an ``int``/``hex`` value at ``v`` (int64 with the printed bits);
    the prefix is "0x" only, as in the reference pattern."""
    neg = False
    if kind == INT and v < f1 and buf[v] == DASH:
        neg = True
        v += 1
    hexa = kind == HEX
    if v + 2 < f1 and buf[v] == 48 and buf[v + 1] == 120 and _HEXVAL[buf[v + 2]] >= 0:
        hexa = True
        v += 2
    value = np.uint64(0)
    d = v
    if hexa:
        while d < f1 and _HEXVAL[buf[d]] >= 0:
            value = (value << np.uint64(4)) | np.uint64(_HEXVAL[buf[d]])
            d += 1
        if d - v > 16:
            return np.int64(0), d, False
    else:
        while d < f1 and _digit(buf[d]):
            value = value * np.uint64(10) + np.uint64(buf[d] - 48)
            d += 1
        if d - v > 19:
            return np.int64(0), d, False
    if d == v:
        return np.int64(0), d, False
    out = np.int64(value)
    if neg:
        if value > np.uint64(9223372036854775807):
            return np.int64(0), d, False
        out = -out
    return out, d, True


@njit(cache=True, inline="always")
def _paren_number(buf, v, f1):
    """``(-?\\d+)`` then ``)`` and a value end at ``v``: (value, ok)."""
    neg = v < f1 and buf[v] == DASH
    d = v + 1 if neg else v
    start = d
    value = np.int64(0)
    while d < f1 and _digit(buf[d]) and d - start < 18:
        value = value * 10 + (buf[d] - 48)
        d += 1
    if d == start or d >= f1 or buf[d] != RPAR or not _is_end(buf, d + 1, f1):
        return np.int64(0), False
    return (-value if neg else value), True


@njit(cache=True, inline="always")
def _find_keys(
    buf,
    f0,
    f1,
    first,
    last,
    by_first,
    same_first,
    keys,
    key_ends,
    kinds,
    skips,
    suffixes,
    suffix_ends,
    where,
    value,
    parsed,
):
    """Where the value of each field ``first..last-1`` starts in ``buf[f0:f1]`` (-1: absent).

    Field k has key ``keys[key_ends[k-1]:key_ends[k]]`` (empty: the whole text); the keys that
    start with byte b are those of fields ``by_first[b]``, ``same_first[by_first[b]]``, ...
    (-1 ends).  A key is found at the first place where it starts the text or follows a
    blank, comma or "(" and is followed by "=" or ":" (": " skips the blank), as the reference
    pattern's look-behind demands.  The number of a field with ``skips[k]`` (an int or hex
    value whose characters and suffix hold no blank, comma or "(") is read at once into
    ``value[k]`` (``parsed[k]`` set), and the search goes on after it: no key can start
    within it.  Returns False when
    such a number is not of the reference's shape (the event goes to the reference code).
    """
    left = 0
    for k in range(first, last):
        k0 = key_ends[k - 1] if k else 0
        where[k] = -1 if key_ends[k] > k0 else f0
        parsed[k] = False
        if where[k] < 0:
            left += 1
    i = f0
    while left and i < f1:
        hit = -1
        k = by_first[buf[i]]
        while k >= 0:
            k0 = key_ends[k - 1] if k else 0
            klen = key_ends[k] - k0
            if where[k] < 0 and i + klen < f1 and same_bytes(buf, i, keys, k0, klen):
                sep = buf[i + klen]
                if sep == 61 or sep == COLON:
                    v = i + klen + 1
                    if sep == COLON and v < f1 and buf[v] == SP:
                        v += 1
                    where[k] = v
                    left -= 1
                    hit = k
            k = same_first[k]
        if hit >= 0 and skips[hit]:
            s0 = suffix_ends[hit - 1] if hit else 0
            val, d, good = _number(buf, where[hit], f1, kinds[hit])
            for m in range(s0, suffix_ends[hit]):
                if not good or d >= f1 or buf[d] != suffixes[m]:
                    good = False
                    break
                d += 1
            if not good or not _is_end(buf, d, f1):
                return False
            value[hit] = val
            parsed[hit] = True
            i = d
        i = _next_of(buf, i, f1, _KEY_AFTER, LPAR) + 1
    return True


@njit(cache=True, inline="always")
def _value(buf, v, f1, kind, whole, suffixes, s0, s1):
    """(number or span end, ok) of a value of ``kind`` at ``v``: the number of an int, hex or
    paren value (with its suffix ``suffixes[s0:s1]``), the end of a word or tail value."""
    if kind == WORD:
        d = _next_of(buf, v, f1, _WORD_END, COMMA)
        return d, d > v
    if kind == TAIL:
        return f1, True
    if kind == PAREN:
        x = v
        while x + 2 < f1:
            if buf[x] == SP and buf[x + 1] == LPAR:
                val, good = _paren_number(buf, x + 2, f1)
                if good:
                    return val, True
            x += 1
        return np.int64(0), False
    val, d, good = _number(buf, v, f1, kind)
    if not good:
        return val, False
    for m in range(s0, s1):
        if d >= f1 or buf[d] != suffixes[m]:
            return val, False
        d += 1
    if whole:
        while d < f1 and _CLASSES[buf[d]] & _BLANK:
            d += 1
        return val, d == f1
    return val, _is_end(buf, d, f1)


@njit(cache=True)
def group_rows(codes, group_of_code, slots_of_group, order):
    """The events of each group, in event order: ``order[bounds[g]:bounds[g+1]]`` (a counting
    sort; events of no group are left out).  Returns (bounds, the most int64 slots a group of
    these events needs)."""
    groups = slots_of_group.size
    bounds = np.zeros(groups + 1, np.int64)
    for r in range(codes.size):
        g = group_of_code[codes[r]]
        if g >= 0:
            bounds[g + 1] += 1
    need = 0
    for g in range(groups):
        if bounds[g + 1] and slots_of_group[g] > need:
            need = slots_of_group[g]
        bounds[g + 1] += bounds[g]
    fill = bounds[:-1].copy()
    for r in range(codes.size):
        g = group_of_code[codes[r]]
        if g >= 0:
            order[fill[g]] = r
            fill[g] += 1
    return bounds, need


@njit(cache=True)
def read_typed(
    buf,
    fstart,
    fend,
    order,
    bounds,
    group_first,
    by_first,
    same_first,
    keys,
    key_ends,
    kinds,
    skips,
    suffixes,
    suffix_ends,
    optional,
    dest,
    dest_slot,
    ints,
    spans,
    bitmaps,
    nvalid,
    fallback,
):
    """Every typed field of the events with field text ``buf[fstart[r]:fend[r]]``, group by
    group (``order``, ``bounds``: :func:`group_rows`), into columns.

    The fields of group g are ``group_first[g]..group_first[g+1]-1`` (kinds, keys, suffixes as
    :func:`_find_keys` and :func:`_value` read them); field c goes to ``dest[c]``, slot
    ``dest_slot[c]``.  Int values go to row ``dest_slot`` of ``ints`` (slots, events), shared
    by the groups (an event has one group); spans (start, end) and map numbers to
    ``spans[slot]`` / ``spans[slot + 1]``.  A valid value sets its event's bit in
    ``bitmaps[c]`` (Arrow validity) and counts in ``nvalid[c]``; an event with a value of
    another shape, or without a required key, is marked in ``fallback`` (zeroed here).
    Returns the number of events marked.
    """
    fallback[: fstart.size] = 0
    where = np.empty(kinds.size, np.int64)
    value = np.empty(kinds.size, np.int64)
    parsed = np.zeros(kinds.size, np.bool_)
    marked = 0
    for g in range(bounds.size - 1):
        first = group_first[g]
        last = group_first[g + 1]
        for i in range(bounds[g], bounds[g + 1]):
            r = order[i]
            f0 = fstart[r]
            f1 = fend[r]
            bad = not _find_keys(
                buf,
                f0,
                f1,
                first,
                last,
                by_first[g],
                same_first,
                keys,
                key_ends,
                kinds,
                skips,
                suffixes,
                suffix_ends,
                where,
                value,
                parsed,
            )
            for c in range(first, last):
                if bad:
                    break
                v = where[c]
                if v < 0:
                    bad = not optional[c]
                    continue
                to = dest[c]
                if to == TO_REFERENCE:
                    bad = True
                    continue
                if parsed[c]:
                    val = value[c]
                else:
                    k0 = key_ends[c - 1] if c else 0
                    s0 = suffix_ends[c - 1] if c else 0
                    val, good = _value(
                        buf, v, f1, kinds[c], key_ends[c] == k0, suffixes, s0, suffix_ends[c]
                    )
                    if not good:
                        bad = True
                        continue
                slot = dest_slot[c]
                if to == TO_INT:
                    ints[slot, r] = val
                elif to == TO_MAP:
                    spans[slot, r] = val
                else:
                    spans[slot, r] = v
                    spans[slot + 1, r] = val
                bitmaps[c, r >> 3] |= np.uint8(1 << (r & 7))
                nvalid[c] += 1
            if bad:
                fallback[r] = 1
                marked += 1
    return marked


@njit(cache=True)
def distinct_codes(numbers, bits):
    """Codes of the numbers where the Arrow validity ``bits`` has a bit (-1 elsewhere), in
    order of first appearance, and the distinct numbers (an open-addressing hash table, made
    four times larger and filled again whenever it is half full)."""
    n = numbers.size
    codes = np.full(n, -1, np.int32)
    size = 64
    while True:
        slots = np.full(size, -1, np.int64)
        seen = np.empty(size // 2, np.int64)
        count = 0
        for r in range(n):
            if bits[r >> 3] >> (r & 7) & 1 == 0:
                continue
            x = numbers[r]
            i = np.int64(np.uint64(x) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(40)) & (size - 1)
            while slots[i] >= 0 and seen[slots[i]] != x:
                i = (i + 1) & (size - 1)
            if slots[i] < 0:
                if count == size // 2:
                    break
                slots[i] = count
                seen[count] = x
                count += 1
            codes[r] = slots[i]
        else:
            return codes, seen[:count]
        size *= 4
