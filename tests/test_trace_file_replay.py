"""``folio-replay replay TRACE``: a trace file without its bundle (recorded by trace-cmd or perf
rather than by ``folio-replay capture``) replays as a bundle of that trace alone: a trace.dat
names its release and machine (trace-cmd's UNAME option), a text trace needs ``--machine``;
with no counters there is nothing to validate against."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from folio_replay.parsers.bundle import load_bundle
from folio_replay.replay.recognise import PREFERENCE, decide

from folio_replay.cli import main

HOST = Path(__file__).resolve().parent.parent / "fixtures" / "host"
BUNDLES = HOST.parent / "bundles"


def _replay(tmp_path: Path, *args: str):
    return CliRunner().invoke(main, ["replay", *args, "-o", str(tmp_path / "r")])


def test_a_trace_dat_alone_names_its_release_and_machine(tmp_path: Path) -> None:
    """trace-v6.dat (fixtures/host/make_dat.sh: the 128 MiB 64 KiB lazyfree microbench on
    6.18.44): its UNAME option says the release and x86_64; its 2048 folios replay, the per-PTE
    kernel's split_deferred predicted for each, and validation says there are no stats."""
    bundle = load_bundle(HOST / "trace-v6.dat")
    assert (bundle.meta["release"], bundle.meta["arch"]) == ("6.18.44-fc-v669", "x86_64")
    assert {"meta.json", "stats/before", "stats/after"} <= set(bundle.missing)
    result = _replay(tmp_path, str(HOST / "trace-v6.dat"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{HOST / 'trace-v6.dat'}: 6.18.44-fc-v669 (x86), captured kernel")
    assert "split_deferred, batched-partial-pmd-split → unbatched: 64K 0 → 2048" in lines
    assert "no stats in the bundle, nothing to check" in result.output
    folios = pd.read_parquet(tmp_path / "r" / "folios.parquet")
    assert len(folios) == 2048 and set(folios["size_kb"]) == {64}


def test_a_text_trace_alone_needs_its_machine_unless_x86s_tlb_flush_says_it(tmp_path: Path) -> None:
    """A text trace says neither release nor machine, but only x86 emits tlb_flush: the
    two-thread perf script text (tlb_flush among its events) replays as x86 without
    --machine; an aarch64 lab trace alone is a one-line error that asks for --machine, and
    with it replays, release unknown, the captured model the trace's own."""
    perf = str(HOST / "perf-threads-pid.txt.gz")
    assert load_bundle(perf).meta["arch"] == "x86_64"
    result = _replay(tmp_path, perf)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{perf}: release unknown (x86), captured kernel runs ")
    assert "release not known (no kernel line: a trace without its bundle); the trace's " in (
        result.output
    )
    assert len(pd.read_parquet(tmp_path / "r" / "folios.parquet")) == 2048
    arm64 = str(BUNDLES / "aarch64" / "6.12.117+deb13-cloud-arm64" / "microbench" / "trace.txt.gz")
    result = _replay(tmp_path, arm64, "--force")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"folio-replay: error: {arm64}: no meta.json, and the trace does not say which machine "
        "recorded it: give --machine (x86_64, aarch64, arm64, riscv64)"
    )
    assert "Traceback" not in result.output
    result = _replay(tmp_path, arm64, "--machine", "aarch64", "--force")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{arm64}: release unknown (arm64), captured kernel runs ")
    assert "split_deferred" in result.output


def test_the_machine_a_text_trace_names_is_never_wrong() -> None:
    """Every fixture bundle's text trace read alone: where tlb_flush names x86 it is the
    bundle's own machine (meta.json); the others name none (riscv has page_fault_user too:
    not taken as x86's)."""
    said = {}
    for trace in sorted(BUNDLES.glob("**/trace.txt.gz")):
        own = load_bundle(trace.parent).meta["arch"]
        said[trace] = (own, load_bundle(trace).meta.get("arch"))
    assert all(inferred in (None, own) for own, inferred in said.values())
    inferred = {own for own, named in said.values() if named}
    assert inferred == {"x86_64"}
    assert {own for own, named in said.values() if named is None} >= {"aarch64", "riscv64"}


def test_machine_contradicting_the_trace_is_refused(tmp_path: Path) -> None:
    result = _replay(tmp_path, str(HOST / "trace-v6.dat"), "--machine", "aarch64")
    assert result.exit_code == 2
    assert "the capture's machine is x86_64, not aarch64" in result.output
    assert not (tmp_path / "r").exists()


def test_release_unknown_and_nothing_to_check_is_said_to_be_assumed() -> None:
    from collections import Counter

    model, why = decide({}, {name: Counter() for name in PREFERENCE})
    assert model == PREFERENCE[0] and why.endswith(
        "no large-folio unmap in the trace to check: assumed"
    )


def test_a_perf_data_file_is_named_with_the_command_that_prints_it(tmp_path: Path) -> None:
    """perf record's binary file (its magic, then binary data) given to replay or parse: one
    line that names it and says how to make the text; no traceback."""
    data = tmp_path / "perf.data"
    data.write_bytes(b"PERFILE2" + bytes(range(256)) * 4)
    for args in (
        ["replay", str(data), "-o", str(tmp_path / "r")],
        ["parse", str(data), "-o", str(tmp_path / "p.parquet")],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert (
            result.output.strip()
            .splitlines()[-1]
            .endswith("a perf.data file (binary): give the text `perf script -i FILE` prints")
        ), result.output


def test_validate_says_a_trace_file_alone_has_no_counters(tmp_path: Path) -> None:
    trace = str(HOST / "trace-v6.dat")
    result = CliRunner().invoke(main, ["validate", trace])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"folio-replay: error: {trace}: a trace file alone has no counters to validate against: "
        "validate needs a bundle directory (stats before and after); replay the trace instead"
    )
