"""The newline search of the fast text reader (eight bytes at a time) on real trace text, at
every alignment, against numpy."""

from __future__ import annotations

import gzip

import numpy as np
from folio_replay.parsers.text import scan
from folio_replay.parsers.text.fast import padded
from parse_fixtures import HOST


def test_line_ends_at_every_alignment():
    data = gzip.decompress((HOST / "perf.txt.gz").read_bytes())[:20_000]
    for shift in range(9):
        text = data[shift:]
        want = np.flatnonzero(np.frombuffer(text, np.uint8) == scan.NL)
        out = np.empty(want.size + 1, np.int64)
        for nbytes in (len(text), int(want[-1]), int(want[-1]) + 1):
            count = scan.line_ends(padded(text), nbytes, out)
            assert out[:count].tolist() == want[want < nbytes].tolist()
    assert want.size == 141  # lines of the first 20,000 bytes of the perf script fixture


def test_line_ends_says_when_out_is_too_small():
    text = gzip.decompress((HOST / "perf.txt.gz").read_bytes())[:20_000]
    lines = text.count(b"\n")
    assert scan.line_ends(padded(text), len(text), np.empty(lines, np.int64)) == lines
    assert scan.line_ends(padded(text), len(text), np.empty(lines - 1, np.int64)) == -1
