"""Compiled helpers of the typed columns, on real values: the codes of distinct numbers (as
the mapped columns use them) for the page frame numbers of a real trace."""

from __future__ import annotations

import numpy as np
from folio_replay.parsers.text import values as fv
from folio_replay.parsers.text.reference import read_text
from parse_fixtures import HOST


def test_distinct_codes_of_real_pfns():
    """321 distinct numbers in 606 valid rows of 2031 (the hash table grows from 64 slots to
    256 and 1024 on the way), nulls skipped."""
    pfn = read_text(HOST / "tracefs-trace.txt.gz").table.column("page.pfn").combine_chunks()
    valid = pfn.is_valid().to_numpy(zero_copy_only=False)
    numbers = pfn.fill_null(0).to_numpy()
    bits = np.packbits(valid, bitorder="little")
    codes, distinct = fv.distinct_codes(numbers, bits)
    first = {}
    for x in numbers[valid].tolist():
        first.setdefault(x, len(first))
    assert distinct.tolist() == list(first)
    assert codes.tolist() == [first[x] if ok else -1 for x, ok in zip(numbers.tolist(), valid)]
    assert (len(first), int(valid.sum()), valid.size) == (321, 606, 2031)
