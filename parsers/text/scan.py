"""Compiled line scanners of the fast text parser (numba): newlines, the fixed prefix of each
line and its event name, in one pass over a chunk.

Each kernel accepts exactly the shapes the reference regular expressions of
:mod:`folio_replay.parsers.text.dialects` accept and marks everything else for the reference code
(kind
``FALLBACK``), so it never decides a case differently from it; it only decides the common cases
quickly.
"""

from __future__ import annotations

import numpy as np
from folio_replay.parsers._native.byteops import find, has_high, load8, same_bytes
from numba import njit

# line kinds: a tracefs syscall line is an event whose field text ends before its ")"
# (SYSCALL_ENTER) or runs to the end of the line (SYSCALL_EXIT)
SKIP, EVENT, FALLBACK, SYSCALL_ENTER, SYSCALL_EXIT = 0, 1, 2, 3, 4
SYS = np.frombuffer(b"sys_\0\0\0\0", np.uint8)  # padded: compared 8 bytes at a time
# formats
TRACEFS, REPORT, PERF = 0, 1, 2

SP, TAB, NL, CR, HASH = 32, 9, 10, 13, 35
LBR, RBR, COLON, DASH, DOT, COMMA, LPAR, RPAR, GT, SLASH, PLUS = (
    91,
    93,
    58,
    45,
    46,
    44,
    40,
    41,
    62,
    47,
    43,
)
INSTANCE_MAX = 64
INT32_MAX = (1 << 31) - 1
MAX_SEC, MAX_SEC_NS = divmod((1 << 63) - 1, 1_000_000_000)  # the latest int64 time stamp

# rows of the int64 work array that scan_events fills, one column per event line
LINE, TS, COMM_S, COMM_E, FIELDS_S, FIELDS_E = range(6)
# rows of its int32 work array
CPU, PID, CODE = range(3)


def _classes() -> np.ndarray:
    """Per byte value: bit 1 a word character (``\\w`` in ASCII), bit 2 a blank within a line
    (Python's ``\\s``)."""
    out = np.zeros(256, np.uint8)
    for c in range(256):
        ch = chr(c)
        out[c] = (c < 128 and (ch.isalnum() or ch == "_")) | 2 * (
            ch.isspace() and c != NL and c < 128
        )
    return out


_CLASS = _classes()


@njit(cache=True, inline="always")
def _digit(c):
    return 48 <= c <= 57


@njit(cache=True, inline="always")
def _word(c):
    return _CLASS[c] & 1 != 0


@njit(cache=True, inline="always")
def _space(c):
    """Bytes Python's ``\\s`` matches within a line."""
    return _CLASS[c] & 2 != 0


@njit(cache=True)
def line_ends(buf, nbytes, out):
    """Positions of the newlines in ``buf[:nbytes]`` into ``out``; their number, or -1 when
    ``out`` is too small."""
    k = 0
    i = find(buf, 0, nbytes, NL)
    while i < nbytes:
        if k == out.size:
            return -1
        out[k] = i
        k += 1
        i = find(buf, i + 1, nbytes, NL)
    return k


@njit(cache=True)
def _scan_line(buf, s, e, fmt):
    """(kind, comm start, comm end, pid, cpu, ts_ns, event start, event end, field text start)
    of the line ``buf[s:e]``."""
    if e == s or buf[s] == HASH:
        return SKIP, 0, 0, 0, 0, 0, 0, 0, 0
    p = s
    if fmt == REPORT:  # optional "INSTANCE: " prefix, [\w.-]+
        q = s
        while (
            q < e and q - s <= INSTANCE_MAX and (_word(buf[q]) or buf[q] == DOT or buf[q] == DASH)
        ):
            q += 1
        if q - s > INSTANCE_MAX:  # a longer name: the reference's pattern has no limit
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
        if q > s and q + 1 < e and buf[q] == COLON and buf[q + 1] == SP:
            p = q + 2
    lb = find(buf, p, e, LBR)
    if lb >= e:
        if fmt == REPORT:  # no "[CPU]": trace-cmd report -l
            return _report_latency(buf, p, e)
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    # blanks, pid digits and the separator before "["
    i = lb - 1
    while i >= p and buf[i] == SP:
        i -= 1
    if i == lb - 1:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
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
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
        while t >= p and buf[t] == SP:
            t -= 1
        if t < p or buf[t] != LPAR:
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
        i = t - 1
        if i < p or buf[i] != SP:
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
        while i >= p and buf[i] == SP:
            i -= 1
    j = i
    while j >= p and _digit(buf[j]):
        j -= 1
    if j == i or j < p or i - j > 10:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    v = 0
    for k in range(j + 1, i + 1):
        v = v * 10 + (buf[k] - 48)
    if v > INT32_MAX:  # the reference's error: beyond the int32 column
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    pid = v
    if fmt == PERF:
        if buf[j] == SLASH:
            # perf script -F +pid: "PID/TID"; the pid column is the thread's, as tracefs's
            k = j - 1
            while k >= p and _digit(buf[k]):
                k -= 1
            if k == j - 1 or k < p or j - 1 - k > 10:
                return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
            j = k
        if buf[j] != SP:
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
        k = j
        while k >= p and _space(buf[k]):  # the reference's \s+ between comm and pid
            k -= 1
        if k < p:
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
        c_end = k + 1
    else:
        if buf[j] != DASH:
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
        c_end = j
    c_start = p
    while c_start < c_end and buf[c_start] == SP:
        c_start += 1
    if c_start < c_end and _space(buf[c_start]):
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    # cpu
    rb = lb + 1
    v = 0
    while rb < e and _digit(buf[rb]) and rb - lb <= 6:
        v = v * 10 + (buf[rb] - 48)
        rb += 1
    if rb == lb + 1 or rb >= e or buf[rb] != RBR:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    cpu = v
    # ": " after "]", then the timestamp before it
    c1 = find(buf, rb + 1, e - 1, COLON)
    while c1 < e - 1 and buf[c1 + 1] != SP:
        c1 = find(buf, c1 + 1, e - 1, COLON)
    if c1 >= e - 1:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    t = c1 - 1
    frac = 0
    scale = 1
    while t > rb and _digit(buf[t]):
        frac += (buf[t] - 48) * scale
        scale *= 10
        t -= 1
    flen = c1 - 1 - t
    if flen < 1 or flen > 9 or buf[t] != DOT:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    t -= 1
    sec_end = t
    while t > rb and _digit(buf[t]):
        t -= 1
    if t == sec_end or sec_end - t > 18 or buf[t] != SP:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    sec = 0
    for k in range(t + 1, sec_end + 1):
        sec = sec * 10 + (buf[k] - 48)
    pad = 1
    for _ in range(9 - flen):
        pad *= 10
    if sec > MAX_SEC or (sec == MAX_SEC and frac * pad > MAX_SEC_NS):
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0  # beyond int64 ns: the reference's error
    ts = sec * 1000000000 + frac * pad
    # the gap between "]" and the timestamp: \s+ (tracefs: \s+(?:\S{4,5}\s+)?)
    g = rb + 1
    if buf[g] != SP:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
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
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    elif solid != 0 or runs != 0:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    # event name and field text
    if fmt == PERF:
        b = c1 + 1
        while b < e and buf[b] == SP:
            b += 1
        sys_start = b
        while b < e and (_word(buf[b]) or buf[b] == DASH):
            b += 1
        if b == sys_start or b >= e or buf[b] != COLON:
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
        b += 1
    else:
        b = c1 + 2
        while fmt == REPORT and b < e and buf[b] == SP:
            b += 1
        if fmt == REPORT and b + 1 < e and buf[b] == LPAR and buf[b + 1] == PLUS:
            # trace-cmd report --ts-diff: "(+NS)" and blanks before the event name
            d = b + 2
            while d < e and _digit(buf[d]):
                d += 1
            if d == b + 2 or d + 1 >= e or buf[d] != RPAR or buf[d + 1] != SP:
                return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
            b = d + 1
            while b < e and buf[b] == SP:
                b += 1
        if fmt == REPORT and b < e and _space(buf[b]):
            return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    return _event_part(buf, b, e, fmt, c_start, c_end, pid, cpu, ts)


@njit(cache=True, inline="always")
def _event_part(buf, b, e, fmt, c_start, c_end, pid, cpu, ts):
    """The line's event name from ``b`` (a word, then ":") and the start of its field text,
    with the prefix's values; a tracefs syscall line's by :func:`_syscall`."""
    x = b
    while x < e and _word(buf[x]):
        x += 1
    if x == b or x >= e:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    if buf[x] != COLON:
        if fmt == TRACEFS:
            return _syscall(buf, b, x, e, c_start, c_end, pid, cpu, ts)
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    f = x + 1
    while f < e and buf[f] == SP:
        f += 1
    if f < e and _space(buf[f]):
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    return EVENT, c_start, c_end, pid, cpu, ts, b, x, f


@njit(cache=True, inline="always")
def _digits(buf, k, e, most):
    """The decimal number of at most ``most`` digits at ``buf[k:]`` and where it ends."""
    start = k
    v = 0
    while k < e and _digit(buf[k]) and k - start < most:
        v = v * 10 + (buf[k] - 48)
        k += 1
    return v, k


@njit(cache=True)
def _report_latency(buf, p, e):
    """A ``trace-cmd report -l`` line from ``p`` (after any instance prefix), as the
    reference's REPORT_LINE reads it: "COMM-PID CPUFLAGS SEC.FRAC: EVENT: FIELDS" (the CPU's
    digits then latency flags that start with no digit); anything else is left to the
    reference (FALLBACK), including a "-" before the pid's that is followed by digits."""
    c_start = p
    while c_start < e and buf[c_start] == SP:
        c_start += 1
    if c_start < e and _space(buf[c_start]):
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    d = find(buf, c_start, e, DASH)
    while d < e and not (d + 1 < e and _digit(buf[d + 1])):
        d = find(buf, d + 1, e, DASH)  # the lazy comm passes a "-" without digits after it
    if d >= e:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    pid, k = _digits(buf, d + 1, e, 10)
    if k >= e or buf[k] != SP or pid > INT32_MAX:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    while k < e and buf[k] == SP:
        k += 1
    cpu_start = k
    cpu, k = _digits(buf, k, e, 6)
    if k == cpu_start or k >= e or _digit(buf[k]) or _space(buf[k]) or buf[k] == SP:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    while k < e and buf[k] != SP and not _space(buf[k]):  # the latency flags
        k += 1
    if k >= e or buf[k] != SP:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    while k < e and buf[k] == SP:
        k += 1
    sec_start = k
    sec, k = _digits(buf, k, e, 18)
    if k == sec_start or k >= e or buf[k] != DOT:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    frac, end = _digits(buf, k + 1, e, 9)
    flen = end - (k + 1)
    k = end
    if flen == 0 or k + 1 >= e or buf[k] != COLON or buf[k + 1] != SP:
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    pad = 1
    for _ in range(9 - flen):
        pad *= 10
    if sec > MAX_SEC or (sec == MAX_SEC and frac * pad > MAX_SEC_NS):
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    # blanks or "(+NS)" before the event name: no word there, the reference's
    return _event_part(buf, k + 2, e, REPORT, c_start, d, pid, cpu, sec * 1000000000 + frac * pad)


@njit(cache=True, inline="always")
def _syscall(buf, b, x, e, c_start, c_end, pid, cpu, ts):
    """A tracefs syscall line's event part ``buf[b:e]`` (kernel/trace/trace_syscalls.c
    print_syscall_enter / print_syscall_exit), as the reference's SYSCALL_ENTER_BODY
    ``sys_NAME(ARGS)`` and SYSCALL_EXIT_BODY ``sys_NAME -> RET`` read it; ``buf[b:x]`` is the
    word before the first other byte. The name range returned includes the "(" or " ->" that
    tells enter from exit (:class:`folio_replay.parsers.text.names.EventNames` names them
    ``sys_enter_NAME`` / ``sys_exit_NAME``)."""
    if x - b <= 4 or not same_bytes(buf, b, SYS, 0, 4):
        return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0
    if buf[x] == LPAR and e - 1 > x and buf[e - 1] == RPAR:
        return SYSCALL_ENTER, c_start, c_end, pid, cpu, ts, b, x + 1, x + 1
    if x + 3 < e and buf[x] == SP and buf[x + 1] == DASH and buf[x + 2] == GT and buf[x + 3] == SP:
        return SYSCALL_EXIT, c_start, c_end, pid, cpu, ts, b, x + 3, x + 4
    return FALLBACK, 0, 0, 0, 0, 0, 0, 0, 0


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
        kind[li], comm_s[li], comm_e[li], pid[li], cpu[li], ts[li], ev_s[li], ev_e[li], fs[li] = (
            _scan_line(buf, starts[li], ends[li], fmt)
        )
    return kind, comm_s, comm_e, pid, cpu, ts, ev_s, ev_e, fs


@njit(cache=True, inline="always")
def name_words(buf, s, e):
    """The first and the last 8 bytes of the name ``buf[s:e]`` (shorter names: its bytes,
    twice); with its length they tell names of up to 16 bytes apart."""
    x = load8(buf, s)
    if e - s >= 8:
        return x, load8(buf, e - 8)
    x &= (np.uint64(1) << np.uint64(8 * (e - s))) - np.uint64(1)
    return x, x


@njit(cache=True, inline="always")
def slot_of(first, last, n, mask):
    """The home slot of a name with words ``first``, ``last`` and length ``n``."""
    h = first * np.uint64(0x9E3779B97F4A7C15) + last * np.uint64(0xC2B2AE3D27D4EB4F) + np.uint64(n)
    return np.int64((h ^ (h >> np.uint64(29))) & np.uint64(mask))


@njit(cache=True)
def rehash(names, name_off, count, size):
    """A fresh open-addressing table of ``size`` slots (a power of two) for the first ``count``
    names."""
    slots = np.full(size, -1, np.int32)
    for c in range(count):
        first, last = name_words(names, name_off[c], name_off[c + 1])
        i = slot_of(first, last, name_off[c + 1] - name_off[c], size - 1)
        while slots[i] >= 0:
            i = (i + 1) & (size - 1)
        slots[i] = c
    return slots


@njit(cache=True)
def find_name(buf, s, e, names, name_off, firsts, lasts, slots):
    """The code of the name ``buf[s:e]`` in the table of :func:`scan_events` (-1: none).
    Not inlined into the scanner: inlined (numba IR inlining of a loop that returns), the scan
    took twice as long."""
    n = e - s
    first, last = name_words(buf, s, e)
    mask = slots.size - 1
    i = slot_of(first, last, n, mask)
    while slots[i] >= 0:
        c = slots[i]
        if (
            firsts[c] == first
            and lasts[c] == last
            and name_off[c + 1] - name_off[c] == n
            and (n <= 16 or same_bytes(names, name_off[c], buf, s, n))
        ):
            return c
        i = (i + 1) & mask
    return -1


@njit(cache=True)
def scan_events(
    buf,
    ends,
    fmt,
    ascii_only,
    line,
    ne,
    ns,
    names,
    name_off,
    firsts,
    lasts,
    slots,
    rows,
    small,
    slow,
):
    """The lines of a chunk (``ends``: its newlines) from ``line`` on into the work arrays, after
    the ``ne`` events and ``ns`` slow lines already there: event lines into ``rows`` (int64:
    LINE ... FIELDS_E) and ``small`` (int32: CPU, PID, CODE), one column per event in line
    order; the indices of the lines left to the reference code into ``slow``.  Unless the
    chunk is ``ascii_only``, lines with other UTF-8 go to the reference code: its patterns'
    ``\\s``, ``\\d`` and ``\\w`` also match non-ASCII characters (U+00A0 is a blank).

    CODE numbers the event name in the table of distinct names
    (:mod:`folio_replay.parsers.text.names`:
    bytes ``names[name_off[c]:name_off[c + 1]]``, words ``firsts``/``lasts`` of
    :func:`name_words`, hash table ``slots``).  Trailing CRs are dropped as the reference drops
    them.  Stops at a name not in the table, for the caller to add it and call again from
    there.  Returns (where it stopped, events, slow lines, start and end of the new name).
    """
    for li in range(line, ends.size):
        s = ends[li - 1] + 1 if li else 0
        e = ends[li]
        while e > s and buf[e - 1] == CR:
            e -= 1
        kind, cs, ce, pid, cpu, ts, es, ee, f = _scan_line(buf, s, e, fmt)
        if kind == SKIP:
            continue
        if not ascii_only and has_high(buf, s, e):
            kind = FALLBACK
        if kind == FALLBACK:
            slow[ns] = li
            ns += 1
            continue
        code = find_name(buf, es, ee, names, name_off, firsts, lasts, slots)
        if code < 0:
            return li, ne, ns, es, ee
        rows[LINE, ne] = li
        rows[TS, ne] = ts
        rows[COMM_S, ne] = cs
        rows[COMM_E, ne] = ce
        rows[FIELDS_S, ne] = f
        rows[FIELDS_E, ne] = e - 1 if kind == SYSCALL_ENTER else e
        small[CPU, ne] = cpu
        small[PID, ne] = pid
        small[CODE, ne] = code
        ne += 1
    return ends.size, ne, ns, 0, 0
