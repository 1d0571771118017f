"""trace-cmd's own library (its Python bindings, built by .ci/build-tracecmd-python) against
the native trace.dat reader, record by record, on the real host trace.dat fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from folio_replay.crosscheck import CrossCheck, bindings, cross_check

HOST = Path(__file__).resolve().parent.parent / "fixtures" / "host"
DATS = sorted(HOST.glob("*.dat"))
# records per file: the event lines `trace-cmd report` (3.1.6) printed for it
# (fixtures/host/report-*.txt.gz; trace-smp-v7-zstd.json: cpu1=11729 cpu0=11407)
RECORDS = {
    "lost.dat": 599,
    "trace-smp-v7-zstd.dat": 11729 + 11407,
    "trace-v6.dat": 14860,
    "trace-v7-zstd.dat": 14860,
    "trace-v7.dat": 14860,
}

pytestmark = pytest.mark.skipif(
    bindings() is None,
    reason="trace-cmd's Python bindings (ctracecmd) do not import: .ci/build-tracecmd-python "
    "builds them",
)


@pytest.mark.parametrize("dat", DATS, ids=[p.name for p in DATS])
def test_libtracecmd_and_the_native_reader_agree_on_every_record(dat: Path) -> None:
    check = cross_check(dat)
    records = RECORDS[dat.name]
    assert len(check.tracecmd) == len(check.native) == records
    assert check.differences.empty, check.differences.head()
    assert check.summary() == (
        f"libtracecmd cross-check: {records}/{records} records agree (libtracecmd read {records})"
    )
    # every field of every record is compared, not just the common ones
    assert check.native["values"].map(len).sum() > 2 * len(check.native)


def test_a_changed_value_is_found() -> None:
    check = cross_check(HOST / "trace-v6.dat")
    changed = check.tracecmd.copy()
    name, value = changed.at[100, "values"][0]
    changed.at[100, "values"] = ((name, value + 1), *changed.at[100, "values"][1:])
    changed.at[200, "pid"] += 1
    differences = CrossCheck(check.native, changed).differences
    assert differences.index.tolist() == [100, 200]


def test_parse_cross_check_prints_the_agreement(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from folio_replay.cli import main

    dat = HOST / "trace-smp-v7-zstd.dat"
    out = tmp_path / "events.parquet"
    result = CliRunner().invoke(main, ["parse", str(dat), "-o", str(out), "--cross-check"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "libtracecmd cross-check: 23136/23136 records agree (libtracecmd read 23136)"
    )
