"""The table of event names the fast text scanner looks names up in, filled with the 2323 real
event names of a trace.dat's format section (the kernel's format files: 3 to 40 bytes)."""

from __future__ import annotations

import numpy as np
import pytest
from folio_replay.parsers.schema import event_schema
from folio_replay.parsers.text import scan
from folio_replay.parsers.text.fast import padded
from folio_replay.parsers.text.names import EventNames
from folio_replay.parsers.text.typed import group_index
from folio_replay.parsers.tracedat.container import open_dat
from parse_fixtures import HOST


@pytest.fixture(scope="module")
def real_names() -> list[str]:
    table = open_dat(HOST / "trace-v6.dat").formats
    names = [f.name for f in (table.get(i) for i in range(4096)) if f is not None]
    assert len(names) == len(set(names)) == len(table) == 2323
    return names


def _spans(names: list[str]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The names one after the other in a padded buffer, and where each is."""
    ends = np.cumsum([len(n) for n in names])
    return padded("".join(names).encode()), list(
        zip((ends - [len(n) for n in names]).tolist(), ends.tolist())
    )


def _code(table: EventNames, buf: np.ndarray, start: int, end: int) -> int:
    return scan.find_name(
        buf, start, end, table.names, table.offsets, table.firsts, table.lasts, table.slots
    )


def test_every_name_found_under_its_code(real_names):
    table = EventNames()
    for name in real_names:  # the hash table grows from 64 to 8192 slots on the way
        table.add(name.encode())
    assert table.count == 2323 and table.slots.size == 8192
    buf, spans = _spans(real_names)
    assert [_code(table, buf, s, e) for s, e in spans] == list(range(len(real_names)))


def test_names_cut_short_are_not_found(real_names):
    """A name without its last byte is found only when that shorter name is itself one
    (names that agree in their first and last 8 bytes and length differ in the middle)."""
    table = EventNames()
    for name in real_names:
        table.add(name.encode())
    code = {name: i for i, name in enumerate(real_names)}
    buf, spans = _spans(real_names)
    found = [_code(table, buf, s, e - 1) for s, e in spans]
    assert found == [code.get(name[:-1], -1) for name in real_names]
    assert found.count(-1) > 2000


def test_names_not_added_yet_are_not_found(real_names):
    table = EventNames()
    for name in real_names[:100]:
        table.add(name.encode())
    buf, spans = _spans(real_names)
    assert [_code(table, buf, s, e) for s, e in spans[100:]] == [-1] * (len(real_names) - 100)


def test_groups_of_real_names(real_names):
    table = EventNames()
    for name in real_names:
        table.add(name.encode())
    group = {name: int(g) for name, g in zip(real_names, table.groups)}
    names = [g.name for g in event_schema().groups]
    assert group["rss_stat"] == names.index("rss_stat")
    assert group["mm_page_free_batched"] == names.index("page")
    assert group["sys_exit_madvise"] == names.index("syscall")
    assert group["mm_vmscan_direct_reclaim_begin"] == names.index("vmscan")
    assert group["sched_switch"] == -1
    assert list(table.groups) == [group_index(n) for n in real_names]
