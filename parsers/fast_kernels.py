"""Compiled byte scanners of the fast text parser (numba): one pass over a chunk's lines.

Each kernel accepts exactly the shapes the reference regular expressions of
:mod:`parsers.textformats` and :mod:`parsers.fields` accept and marks everything else for the
reference code (status ``FALLBACK``), so it never decides a case differently from it; it only
decides the common cases quickly.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# line kinds
SKIP, EVENT, FALLBACK = 0, 1, 2
# value status
ABSENT, OK = 0, 1
# formats
TRACEFS, REPORT, PERF = 0, 1, 2
# value kinds
INT, HEX, PAREN, WORD, TAIL = 0, 1, 2, 3, 4

SP, TAB, NL, CR, HASH = 32, 9, 10, 13, 35
LBR, RBR, COLON, DASH, DOT, COMMA, LPAR, RPAR = 91, 93, 58, 45, 46, 44, 40, 41
INSTANCE_MAX = 64


@njit(cache=True, inline="always")
def _digit(c):
    return 48 <= c <= 57


@njit(cache=True, inline="always")
def _word(c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


@njit(cache=True, inline="always")
def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@njit(cache=True, inline="always")
def _space(c):
    """Bytes Python's ``\\s`` matches within a line."""
    return c == SP or c == TAB or c == 11 or c == 12 or c == CR or (28 <= c <= 31)


@njit(cache=True)
def strip_cr(buf, starts, ends):
    """Line ends with every trailing CR removed (as ``str.rstrip("\\r")``)."""
    out = ends.copy()
    for i in range(starts.size):
        while out[i] > starts[i] and buf[out[i] - 1] == CR:
            out[i] -= 1
    return out


@njit(cache=True)
def scan_lines(buf, starts, ends, fmt):
    """Per line: kind, comm range, pid, cpu, ts_ns, event range, start of the field text."""
    n = starts.size
    kind = np.zeros(n, np.int8)
    comm_s = np.zeros(n, np.int64)
    comm_e = np.zeros(n, np.int64)
    pid = np.zeros(n, np.int64)
    cpu = np.zeros(n, np.int64)
    ts = np.zeros(n, np.int64)
    ev_s = np.zeros(n, np.int64)
    ev_e = np.zeros(n, np.int64)
    fs = np.zeros(n, np.int64)
    for li in range(n):
        s = starts[li]
        e = ends[li]
        if e == s or buf[s] == HASH:
            continue
        kind[li] = FALLBACK
        p = s
        if fmt == REPORT:  # optional "INSTANCE: " prefix, [\w.-]+
            q = s
            while q < e and q - s <= INSTANCE_MAX and (_word(buf[q]) or buf[q] == DOT
                                                        or buf[q] == DASH):
                q += 1
            if q > s and q + 1 < e and buf[q] == COLON and buf[q + 1] == SP:
                p = q + 2
        lb = p
        while lb < e and buf[lb] != LBR:
            lb += 1
        if lb >= e:
            continue
        # blanks, pid digits and the separator before "["
        i = lb - 1
        while i >= p and buf[i] == SP:
            i -= 1
        if i == lb - 1:
            continue
        if fmt == TRACEFS and i >= p and buf[i] == RPAR:
            # options/record-tgid: "-PID (TGID) [CPU]", TGID digits or dashes, blank-padded
            t = i - 1
            while t >= p and buf[t] == SP:
                t -= 1
            mark = t
            if t >= p and buf[t] == DASH:
                while t >= p and buf[t] == DASH:
                    t -= 1
            else:
                while t >= p and _digit(buf[t]):
                    t -= 1
            if t == mark:
                continue
            while t >= p and buf[t] == SP:
                t -= 1
            if t < p or buf[t] != LPAR:
                continue
            i = t - 1
            if i < p or buf[i] != SP:
                continue
            while i >= p and buf[i] == SP:
                i -= 1
        j = i
        while j >= p and _digit(buf[j]):
            j -= 1
        if j == i or j < p or i - j > 10:
            continue
        v = 0
        for k in range(j + 1, i + 1):
            v = v * 10 + (buf[k] - 48)
        pid[li] = v
        if fmt == PERF:
            if buf[j] != SP:
                continue
            k = j
            while k >= p and buf[k] == SP:
                k -= 1
            if k < p:
                continue
            c_end = k + 1
        else:
            if buf[j] != DASH:
                continue
            c_end = j
        c_start = p
        while c_start < c_end and buf[c_start] == SP:
            c_start += 1
        if c_start < c_end and _space(buf[c_start]):
            continue
        comm_s[li] = c_start
        comm_e[li] = c_end
        # cpu
        rb = lb + 1
        v = 0
        while rb < e and _digit(buf[rb]) and rb - lb <= 6:
            v = v * 10 + (buf[rb] - 48)
            rb += 1
        if rb == lb + 1 or rb >= e or buf[rb] != RBR:
            continue
        cpu[li] = v
        # ": " after "]", then the timestamp before it
        c1 = rb + 1
        while c1 + 1 < e and not (buf[c1] == COLON and buf[c1 + 1] == SP):
            c1 += 1
        if c1 + 1 >= e:
            continue
        t = c1 - 1
        frac = 0
        scale = 1
        while t > rb and _digit(buf[t]):
            frac += (buf[t] - 48) * scale
            scale *= 10
            t -= 1
        flen = c1 - 1 - t
        if flen < 1 or flen > 9 or buf[t] != DOT:
            continue
        t -= 1
        sec_end = t
        while t > rb and _digit(buf[t]):
            t -= 1
        if t == sec_end or sec_end - t > 18 or buf[t] != SP:
            continue
        sec = 0
        for k in range(t + 1, sec_end + 1):
            sec = sec * 10 + (buf[k] - 48)
        pad = 1
        for _ in range(9 - flen):
            pad *= 10
        ts[li] = sec * 1000000000 + frac * pad
        # the gap between "]" and the timestamp: \s+ (tracefs: \s+(?:\S{4,5}\s+)?)
        g = rb + 1
        if buf[g] != SP:
            continue
        solid = 0
        runs = 0
        prev_solid = False
        for k in range(g, t + 1):
            c = buf[k]
            if c == SP:
                prev_solid = False
            elif _space(c):
                runs = 99  # other blanks: leave to the reference
            else:
                solid += 1
                if not prev_solid:
                    runs += 1
                prev_solid = True
        if fmt == TRACEFS:
            if not (solid == 0 or ((solid == 4 or solid == 5) and runs == 1)):
                continue
        elif solid != 0 or runs != 0:
            continue
        # event name and field text
        if fmt == PERF:
            b = c1 + 1
            while b < e and buf[b] == SP:
                b += 1
            sys_start = b
            while b < e and (_word(buf[b]) or buf[b] == DASH):
                b += 1
            if b == sys_start or b >= e or buf[b] != COLON:
                continue
            b += 1
        else:
            b = c1 + 2
        x = b
        while x < e and _word(buf[x]):
            x += 1
        if x == b or x >= e or buf[x] != COLON:
            continue
        ev_s[li] = b
        ev_e[li] = x
        f = x + 1
        while f < e and buf[f] == SP:
            f += 1
        if f < e and _space(buf[f]):
            continue
        fs[li] = f
        kind[li] = EVENT
    return kind, comm_s, comm_e, pid, cpu, ts, ev_s, ev_e, fs


@njit(cache=True, inline="always")
def _is_end(buf, pos, end):
    """The reference's value end ``(?=[\\s,)]|$)``."""
    if pos >= end:
        return True
    c = buf[pos]
    return _space(c) or c == COMMA or c == RPAR


@njit(cache=True)
def _number(buf, v, f1, kind):
    """(value, end, ok) of an ``int``/``hex`` value at ``v`` (int64 with the printed bits)."""
    neg = False
    if kind == INT and v < f1 and buf[v] == DASH:
        neg = True
        v += 1
    hexa = kind == HEX
    if v + 1 < f1 and buf[v] == 48 and (buf[v + 1] == 120 or buf[v + 1] == 88) \
            and v + 2 < f1 and _hexval(buf[v + 2]) >= 0:
        hexa = True
        v += 2
    value = np.uint64(0)
    d = v
    if hexa:
        while d < f1 and _hexval(buf[d]) >= 0:
            value = value * np.uint64(16) + np.uint64(_hexval(buf[d]))
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


@njit(cache=True)
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


@njit(cache=True)
def compact_strings(buf, starts, ends):
    """Arrow string buffers of ``buf[starts[i]:ends[i]]``: (int32 offsets, bytes)."""
    n = starts.size
    offsets = np.empty(n + 1, np.int32)
    total = 0
    offsets[0] = 0
    for r in range(n):
        length = ends[r] - starts[r]
        if length > 0:
            total += length
        offsets[r + 1] = total
    data = np.empty(total, np.uint8)
    for r in range(n):
        o = offsets[r]
        e = offsets[r + 1]
        data[o:e] = buf[starts[r]:starts[r] + (e - o)]
    return offsets, data


@njit(cache=True)
def read_group(buf, fstart, fend, keys, key_ends, kinds, suffixes, suffix_ends):
    """Every typed field of one group over many rows, in one pass over each row's text.

    Field k has key ``keys[key_ends[k-1]:key_ends[k]]`` (empty: the whole text), value kind
    ``kinds[k]`` and suffix ``suffixes[suffix_ends[k-1]:suffix_ends[k]]``.  A key is found at
    the first place where it starts the text or follows a blank, comma or "(" and is followed
    by "=" or ":" (": " skips the blank), as the reference pattern's look-behind demands.
    Returns (values, value starts, value ends, status), each (rows, fields); numbers go to
    values, word and tail values to their spans.
    """
    n = fstart.size
    nk = kinds.size
    values = np.zeros((n, nk), np.int64)
    vs = np.zeros((n, nk), np.int64)
    ve = np.zeros((n, nk), np.int64)
    status = np.zeros((n, nk), np.int8)
    where = np.empty(nk, np.int64)
    for r in range(n):
        f0 = fstart[r]
        f1 = fend[r]
        for k in range(nk):
            where[k] = -1 if key_ends[k] > (key_ends[k - 1] if k else 0) else f0
        left = 0
        for k in range(nk):
            if where[k] < 0:
                left += 1
        i = f0
        while left and i < f1:
            if i == f0 or _space(buf[i - 1]) or buf[i - 1] == COMMA or buf[i - 1] == LPAR:
                for k in range(nk):
                    if where[k] >= 0:
                        continue
                    k0 = key_ends[k - 1] if k else 0
                    klen = key_ends[k] - k0
                    if i + klen >= f1:
                        continue
                    match = True
                    for m in range(klen):
                        if buf[i + m] != keys[k0 + m]:
                            match = False
                            break
                    if match:
                        sep = buf[i + klen]
                        if sep == 61 or sep == COLON:
                            v = i + klen + 1
                            if sep == COLON and v < f1 and buf[v] == SP:
                                v += 1
                            where[k] = v
                            left -= 1
            i += 1
        for k in range(nk):
            v = where[k]
            if v < 0:
                continue
            kind = kinds[k]
            whole = key_ends[k] == (key_ends[k - 1] if k else 0)
            if kind == WORD or kind == TAIL:
                d = f1
                if kind == WORD:
                    d = v
                    while d < f1 and not _space(buf[d]) and buf[d] != COMMA:
                        d += 1
                    if d == v:
                        status[r, k] = FALLBACK
                        continue
                vs[r, k] = v
                ve[r, k] = d
                status[r, k] = OK
                continue
            if kind == PAREN:
                status[r, k] = FALLBACK
                x = v
                while x + 2 < f1:
                    if buf[x] == SP and buf[x + 1] == LPAR:
                        val, good = _paren_number(buf, x + 2, f1)
                        if good:
                            values[r, k] = val
                            status[r, k] = OK
                            break
                    x += 1
                continue
            val, d, good = _number(buf, v, f1, kind)
            if good:
                s0 = suffix_ends[k - 1] if k else 0
                for m in range(s0, suffix_ends[k]):
                    if d >= f1 or buf[d] != suffixes[m]:
                        good = False
                        break
                    d += 1
            if good:
                if whole:
                    while d < f1 and _space(buf[d]):
                        d += 1
                    good = d == f1
                else:
                    good = _is_end(buf, d, f1)
            if good:
                values[r, k] = val
                status[r, k] = OK
            else:
                status[r, k] = FALLBACK
    return values, vs, ve, status
