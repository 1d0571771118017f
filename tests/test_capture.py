"""folio-replay capture on this machine: a real workload traced through a private tracefs
instance in a memory cgroup of its own, checked against the kernel's own counters; global tracing
state and cgroups left as found.

The capture tests need root and tracefs (skipped otherwise) and gcc for the workloads (skipped
without it); option checks, the cgroup placement on fake cgroup trees and the committed host
bundles are tested everywhere.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from folio_replay.parsers import load_bundle

from folio_replay.capture import default_events
from folio_replay.capture.cgroup import find_place
from folio_replay.capture.snapshot import mglru_state, swap_devices
from folio_replay.capture.tracefs import DEFAULT_TRACEFS, mounted_tracefs
from folio_replay.cli import main
from folio_replay.commands.capture import _size
from folio_replay.errors import InputError
from folio_replay.outputs import MARKER

REPO = Path(__file__).resolve().parents[1]
BENCH_SRC = REPO / "fixtures" / "lab" / "workload" / "folio_bench.c"
KINDS_SRC = REPO / "fixtures" / "host" / "workloads" / "host_kinds.c"
THP = Path("/sys/kernel/mm/transparent_hugepage")
MTHP64_ENABLED = THP / "hugepages-64kB" / "enabled"
_LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
MTHP_LOCK = _LOCK_DIR / "folio-replay-mthp.lock"
SIZE_KIB = 16384  # 16 MiB: 256 folios of 64 KiB
FOLIOS = SIZE_KIB // 64
PAGES = SIZE_KIB // 4
MADV_FREE, MADV_PAGEOUT = 8, 21
CLI = [
    sys.executable,
    "-c",
    "import sys; from folio_replay.cli import main; sys.exit(main(prog_name='folio-replay'))",
]
_TRACEFS = mounted_tracefs() or DEFAULT_TRACEFS
_HAS_TRACEFS = "\ttracefs\n" in Path("/proc/filesystems").read_text()

_CAN_CAPTURE = os.geteuid() == 0 and _HAS_TRACEFS
_WHY_NOT = "capture needs root" if os.geteuid() != 0 else "kernel without tracefs"
needs_capture = pytest.mark.skipif(not _CAN_CAPTURE, reason=_WHY_NOT)
# Keys capture added to meta.json after the first host bundles (6.18.44-fc-v669) were made.
META_KEYS_SINCE_V669 = {"mode", "command_pid", "cgroup", "mglru", "swaps"}


@pytest.fixture(scope="module", autouse=True)
def tracefs_mounted():
    """Mount tracefs for the module if it is not mounted (as capture would), unmount after."""
    if not _CAN_CAPTURE or mounted_tracefs() is not None:
        yield
        return
    subprocess.run(["mount", "-t", "tracefs", "nodev", str(DEFAULT_TRACEFS)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(DEFAULT_TRACEFS)], check=False)


# Top-level (global) tracing files capture must never change.
GLOBAL_FILES = (
    "tracing_on",
    "set_event",
    "set_event_pid",
    "current_tracer",
    "buffer_size_kb",
    "trace_clock",
    "options/event-fork",
    "events/enable",
    "tracing_cpumask",
)
_SYSCALL_MADVISE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[\d+\].*?\bsys_madvise\(start: (?P<start>0x[0-9a-f]+), "
    r"len_in: (?P<len>0x[0-9a-f]+), behavior: (?P<behavior>0x[0-9a-f]+|\d+)\)"
)
_LOST = re.compile(r"CPU:\d+ \[LOST (\d+) EVENTS\]")


def global_state() -> dict[str, str]:
    """The global tracing files and the list of instances, as text (instances of concurrent
    runs of this project's own capture tools excluded: each test checks its own by name)."""
    state = {
        name: (_TRACEFS / name).read_text() for name in GLOBAL_FILES if (_TRACEFS / name).exists()
    }
    state["instances"] = " ".join(
        sorted(
            p.name
            for p in (_TRACEFS / "instances").iterdir()
            if not p.name.startswith(("folio-replay-", "folio-fixture-"))
        )
    )
    return state


def instance_left(name_or_pid: str | int) -> bool:
    """Whether capture's instance (by name, or by the capture process's pid) still exists."""
    name = name_or_pid if isinstance(name_or_pid, str) else f"folio-replay-{name_or_pid}"
    return (_TRACEFS / "instances" / name).exists()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``folio-replay ARGS``; the result also carries the capture process's ``pid``."""
    proc = subprocess.Popen(
        [*CLI, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=300)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    done.pid = proc.pid
    return done


def stat_value(bundle: Path, when: str, rel: str) -> int:
    return int((bundle / "stats" / when / rel).read_text().split()[0])


def vmstat(bundle: Path, when: str) -> dict[str, int]:
    text = (bundle / "stats" / when / "vmstat").read_text()
    return {k: int(v) for k, v in (line.split() for line in text.splitlines())}


@pytest.fixture(scope="module")
def folio_bench(tmp_path_factory) -> Path:
    """The lab workload, compiled from the repo's C source."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed: cannot build fixtures/lab/workload/folio_bench.c")
    out = tmp_path_factory.mktemp("bench") / "folio_bench"
    subprocess.run([gcc, "-O2", "-o", str(out), str(BENCH_SRC)], check=True)
    return out


@pytest.fixture(scope="module")
def mthp64_always():
    """hugepages-64kB/enabled set to ``always`` for the module, then put back as found.

    Held under the lock fixtures/host/make_common.sh takes too, so that concurrent runs on one
    machine do not save each other's ``always`` as the value to restore.
    """
    with open(MTHP_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        previous = re.search(r"\[(\w+)\]", MTHP64_ENABLED.read_text()).group(1)
        MTHP64_ENABLED.write_text("always\n")
        try:
            yield
        finally:
            MTHP64_ENABLED.write_text(previous + "\n")


@pytest.fixture(scope="module")
def captured(tmp_path_factory, folio_bench, mthp64_always):
    """One capture of the clean-lazyfree microbench; global state recorded around it."""
    bundle = tmp_path_factory.mktemp("cap") / "microbench"
    before = global_state()
    done = run_cli(
        "capture", "-o", str(bundle), "--", str(folio_bench), "-m", "clean", "-s", str(SIZE_KIB)
    )
    after = global_state()
    assert done.returncode == 0, done.stderr
    return {
        "bundle": bundle,
        "meta": json.loads((bundle / "meta.json").read_text()),
        "done": done,
        "global_before": before,
        "global_after": after,
        "trace": gzip.decompress((bundle / "trace.txt.gz").read_bytes()).decode(),
    }


@needs_capture
def test_meta_records_machine_command_and_exit(captured, folio_bench):
    meta = captured["meta"]
    assert meta["kernel"] == Path("/proc/version").read_text().strip()
    assert meta["arch"] == platform.machine()
    assert meta["release"] == platform.release()
    assert meta["command"] == [str(folio_bench), "-m", "clean", "-s", str(SIZE_KIB)]
    assert meta["name"] == "microbench"
    assert meta["made_by"].startswith("folio-replay ") and "capture" in meta["made_by"]
    assert meta["exit_code"] == 0 and meta["exit_signal"] is None
    assert f"mode=clean size={SIZE_KIB * 1024} " in meta["stdout_tail"]
    # The workload's output also went through to the terminal.
    assert f"mode=clean size={SIZE_KIB * 1024} " in captured["done"].stdout
    assert meta["buffer_size_kb"] >= 8192
    assert 0 < meta["duration_ns"] == meta["monotonic_end_ns"] - meta["monotonic_start_ns"]


@needs_capture
def test_committed_host_bundles_have_what_capture_writes_now(captured):
    """fixtures/bundles/host was made with this command (fixtures/host/make_host_*.sh): the
    same meta keys (plus the script's `setup` note; the first bundles lack the keys added since)
    and the same kinds of files."""
    host = sorted((REPO / "fixtures" / "bundles" / "host").glob("*/*/meta.json"))
    assert host, "no host bundle committed"
    fresh = captured["bundle"]
    fresh_files = {
        p.relative_to(fresh).as_posix()
        for p in fresh.rglob("*")
        if p.is_file() and p.name != MARKER
    }
    for meta_path in host:
        meta = json.loads(meta_path.read_text())
        keys = set(captured["meta"]) | {"setup"}
        if "mode" not in meta:
            keys -= META_KEYS_SINCE_V669
        assert set(meta) == keys, meta_path
        script = re.match(r"(fixtures/host/make_[\w-]+\.sh): folio-replay ", meta["made_by"])
        assert script and (REPO / script[1]).is_file(), meta["made_by"]
        # lost-events overran its ring buffer on purpose (tests/test_lost_meta.py)
        lost = meta["lost_events"]["total"]
        assert meta["exit_code"] == 0 and (lost > 0) == (meta_path.parent.name == "lost-events")
        files = {
            p.relative_to(meta_path.parent).as_posix()
            for p in meta_path.parent.rglob("*")
            if p.is_file() and p.name != MARKER
        }
        assert {
            "meta.json",
            "trace.txt.gz",
            "stats/before/vmstat",
            "stats/after/vmstat",
            "stats/before/hugepages-64kB/stats/split_deferred",
        } <= files
        assert {f.split("/", 1)[0] for f in files} == {f.split("/", 1)[0] for f in fresh_files}


@needs_capture
def test_events_enabled_are_the_defaults_this_kernel_has(captured):
    meta = captured["meta"]
    events = _TRACEFS / "events"
    for pattern in default_events():
        system, _, name = pattern.partition(":")
        present = sorted(
            f"{system}:{p.name}" for p in (events / system).glob(name) if (p / "enable").exists()
        )
        if present:
            assert set(present) <= set(meta["events_enabled"]), pattern
        else:
            assert pattern in meta["events_missing"]
    assert "tlb:tlb_flush" in meta["events_enabled"] or "tlb:tlb_flush" in meta["events_missing"]


@needs_capture
def test_trace_holds_the_workloads_madvise_calls(captured):
    meta = captured["meta"]
    calls = [m for m in map(_SYSCALL_MADVISE.match, captured["trace"].splitlines()) if m]
    ours = [
        (int(m["behavior"], 0), int(m["len"], 16))
        for m in calls
        if int(m["pid"]) == meta["pid_filter"]["command"]
    ]
    assert ours == [(MADV_FREE, SIZE_KIB * 1024), (MADV_PAGEOUT, SIZE_KIB * 1024)]
    # The pid filter kept other processes out: every madvise is the workload's.
    assert len(calls) == len(ours)


@needs_capture
def test_pageout_unmapped_whole_folios_on_a_batching_kernel(captured):
    """The workload's MM_ANONPAGES steps inside MADV_PAGEOUT: one 64 KiB step per folio where
    lazyfree folios are unmapped in one batch (Linux >= 6.15, 354dffd29575), one 4 KiB step per
    page before."""
    pid = str(captured["meta"]["pid_filter"]["command"])
    steps, inside, last = [], False, None
    for line in captured["trace"].splitlines():
        if f"-{pid} " not in line:
            continue
        if "sys_madvise(" in line:
            inside = line.rstrip().endswith(f"behavior: {hex(MADV_PAGEOUT)})")
        elif "sys_madvise ->" in line:
            inside = False
        match = re.search(r"rss_stat: .*type=MM_ANONPAGES size=(\d+)B", line)
        if match:
            size = int(match.group(1))
            if inside and last is not None:
                steps.append(last - size)
            last = size
    batching = tuple(map(int, platform.release().split(".")[:2])) >= (6, 15)
    assert steps == ([64 * 1024] * FOLIOS if batching else [4096] * PAGES)


@needs_capture
def test_pid_filter_holds_the_command_and_kswapd(captured):
    meta = captured["meta"]
    kswapd = sorted(
        int(p.parent.name)
        for p in Path("/proc").glob("[0-9]*/comm")
        if re.fullmatch(r"kswapd\d+(:\d+)?", p.read_text().strip())
    )
    assert meta["pid_filter"]["kswapd"] == kswapd
    assert meta["pid_filter"]["event_fork"] is True
    kept = {meta["pid_filter"]["command"], *kswapd}
    events = re.findall(r"^\s*.+?-(\d+)\s+\[\d+\]\s+\S+\s+[\d.]+: (\w+)", captured["trace"], re.M)
    assert meta["pid_filter"]["command"] in {int(pid) for pid, _ in events}
    # Other tasks show up only in tlb_flush: the flush on a switch INTO the command runs in
    # switch_mm() while `current` is still the previous task, after the pid filter has
    # already admitted the next one.
    assert {name for pid, name in events if int(pid) not in kept} <= {"tlb_flush"}


@needs_capture
def test_stats_before_after_match_the_workload(captured):
    bundle = captured["bundle"]
    rel = "hugepages-64kB/stats/anon_fault_alloc"
    assert stat_value(bundle, "after", rel) - stat_value(bundle, "before", rel) >= FOLIOS
    for when in ("before", "after"):
        assert (bundle / "stats" / when / "hugepages-64kB" / "enabled").read_text().strip()
        assert (bundle / "stats" / when / "hugepages-64kB" / "stats" / "split_deferred").exists()
    assert "[always]" in (bundle / "stats" / "before" / "hugepages-64kB" / "enabled").read_text()
    delta = {
        k: vmstat(bundle, "after")[k] - vmstat(bundle, "before")[k]
        for k in ("pglazyfree", "pglazyfreed")
    }
    assert delta["pglazyfree"] >= PAGES  # MADV_FREE marked the whole region lazyfree
    assert delta["pglazyfreed"] >= PAGES  # MADV_PAGEOUT discarded it, clean


def _header_entries(trace: str) -> tuple[int, int]:
    """(entries in buffer, entries written) from the ``trace`` header."""
    match = re.search(r"^# entries-in-buffer/entries-written: (\d+)/(\d+)", trace, re.M)
    return int(match.group(1)), int(match.group(2))


@needs_capture
def test_event_count_and_lost_events_agree_with_the_trace_text(captured):
    meta = captured["meta"]
    lines = [
        line
        for line in captured["trace"].splitlines()
        if line.strip() and not line.startswith("#") and not _LOST.search(line)
    ]
    in_buffer, written = _header_entries(captured["trace"])
    assert meta["event_lines"] == len(lines) == in_buffer
    markers = sum(int(n) for n in _LOST.findall(captured["trace"]))
    assert meta["lost_events"]["total"] == max(markers, written - in_buffer)


@needs_capture
def test_overflowing_buffer_reports_lost_events(tmp_path, folio_bench, mthp64_always):
    """16 KiB per CPU cannot hold a 16 MiB run: the kernel overwrites the oldest events, the
    trace text has no marker for them, and meta + the warning still count every one."""
    bundle = tmp_path / "overflow"
    done = run_cli(
        "capture",
        "--buffer-kb",
        "16",
        "-o",
        str(bundle),
        "--",
        str(folio_bench),
        "-m",
        "clean",
        "-s",
        str(SIZE_KIB),
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((bundle / "meta.json").read_text())
    trace = gzip.decompress((bundle / "trace.txt.gz").read_bytes()).decode()
    in_buffer, written = _header_entries(trace)
    lost = meta["lost_events"]
    assert written > in_buffer == meta["event_lines"]
    assert lost["total"] == written - in_buffer == sum(lost["overrun_per_cpu"].values())
    assert f"warning: {lost['total']} events lost; retry with a larger --buffer-kb" in done.stderr


@needs_capture
def test_no_instance_left_and_global_state_unchanged(captured):
    assert not instance_left(captured["meta"]["instance"])
    assert captured["global_after"] == captured["global_before"]
    assert not [p for p in captured["bundle"].parent.iterdir() if p.name.startswith(".")]


@needs_capture
def test_failing_command_still_gives_a_bundle(tmp_path):
    bundle = tmp_path / "fails"
    done = run_cli(
        "capture",
        "--event",
        "sched:sched_process_exec",
        "-o",
        str(bundle),
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    )
    assert done.returncode == 3, done.stderr  # capture exits with the command's status
    meta = json.loads((bundle / "meta.json").read_text())
    assert (meta["exit_code"], meta["exit_signal"]) == (3, None)
    assert meta["stdout_tail"] == "out\n" and meta["stderr_tail"] == "err\n"
    assert "exit code 3" in done.stderr
    assert not instance_left(done.pid)
    assert (bundle / "stats" / "after" / "vmstat").exists()
    # The extra event is on, and the command's exec (after the filter was set) is in the trace.
    assert "sched:sched_process_exec" in meta["events_enabled"]
    trace = gzip.decompress((bundle / "trace.txt.gz").read_bytes()).decode()
    execs = re.findall(r"-(\d+)\s+\[\d+\].*sched_process_exec: filename=(\S+)", trace)
    assert [int(pid) for pid, _ in execs] == [meta["pid_filter"]["command"]]
    assert execs[0][1].endswith("/sh")


@needs_capture
def test_existing_bundle_refused_without_force(tmp_path):
    """An existing bundle is replaced only with --force, and only a directory folio-replay
    wrote: --force never removes a directory of the user's."""
    bundle = tmp_path / "kept"
    bundle.mkdir()
    (bundle / "mine").write_text("user data")
    done = run_cli("capture", "-o", str(bundle), "--", "true")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"folio-replay: error: {bundle}: already exists (use --force to replace it)"
    ]
    done = run_cli("capture", "--force", "-o", str(bundle), "--", "true")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"folio-replay: error: {bundle}: is a directory folio-replay did not write (no "
        f"{MARKER} file): refusing to replace it"
    ]
    assert (bundle / "mine").read_text() == "user data"
    ours = tmp_path / "ours"
    assert run_cli("capture", "-o", str(ours), "--", "true").returncode == 0
    done = run_cli("capture", "--force", "-o", str(ours), "--", "echo", "again")
    assert done.returncode == 0, done.stderr
    assert json.loads((ours / "meta.json").read_text())["command"] == ["echo", "again"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "ours"]


@needs_capture
def test_unknown_event_is_an_input_error(tmp_path):
    done = run_cli(
        "capture", "--event", "nosuchsystem:nosuchevent", "-o", str(tmp_path / "b"), "--", "true"
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no such event on this kernel: nosuchsystem:nosuchevent" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists() and not instance_left(done.pid)


@needs_capture
def test_unknown_command_is_an_input_error(tmp_path):
    done = run_cli("capture", "-o", str(tmp_path / "b"), "--", "no-such-command-here", "-x")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "folio-replay: error: no-such-command-here: command not found or not executable"
    ]
    assert not (tmp_path / "b").exists() and not instance_left(done.pid)


@needs_capture
def test_no_tracefs_is_a_one_line_error(tmp_path):
    fake = tmp_path / "not-tracefs"
    fake.mkdir()
    done = run_cli("capture", "--tracefs", str(fake), "-o", str(tmp_path / "b"), "--", "true")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"folio-replay: error: {fake}: no tracefs here (no instances/ directory)"
    ]


@needs_capture
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_mounts_tracefs_when_unmounted_and_unmounts_it_after(tmp_path):
    """In a private mount namespace with every tracefs unmounted, capture mounts tracefs at
    /sys/kernel/tracing, captures, and leaves it unmounted again."""
    bundle = tmp_path / "mounted"
    cli = shlex.join(CLI)
    script = (
        "awk '$3 == \"tracefs\" {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount\n"
        "grep -c ' tracefs ' /proc/mounts\n"
        f"{cli} capture -o '{bundle}' -- true || exit $?\n"
        "grep -c ' tracefs ' /proc/mounts\n"
        "exit 0\n"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0"]  # no tracefs before, none left after
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["tracefs"] == "/sys/kernel/tracing" and meta["exit_code"] == 0
    assert not instance_left(meta["instance"])


def _python_runs_as_nobody() -> bool:
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *CLI, "--version"],
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0


def test_not_root_is_a_one_line_error(tmp_path, monkeypatch):
    if shutil.which("setpriv") and _python_runs_as_nobody():
        done = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                *CLI,
                "capture",
                "-o",
                str(tmp_path / "b"),
                "--",
                "true",
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        code, err = done.returncode, done.stderr
    else:  # python is not reachable as nobody: fake the uid in-process
        monkeypatch.setattr(os, "geteuid", lambda: 65534)
        try:
            runner = CliRunner(mix_stderr=False)
        except TypeError:  # click >= 8.2 always keeps stderr apart
            runner = CliRunner()
        result = runner.invoke(main, ["capture", "-o", str(tmp_path / "b"), "--", "true"])
        code, err = result.exit_code, result.stderr
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "folio-replay: error: /sys/kernel/tracing: capture needs root to use tracefs "
        "(running as uid 65534)"
    ]


def _start_capture(bundle: Path, *command: str) -> subprocess.Popen:
    """Start a capture and wait until its instance traces the running command."""
    proc = subprocess.Popen(
        [*CLI, "capture", "-o", str(bundle), "--", *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = _TRACEFS / "instances" / f"folio-replay-{proc.pid}" / "set_event_pid"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if pid_file.read_text().strip():
                break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the capture never started tracing")
    time.sleep(0.3)  # let the command exec
    return proc


@needs_capture
def test_ctrl_c_stops_the_command_and_still_writes_the_bundle(tmp_path):
    bundle = tmp_path / "interrupted"
    proc = _start_capture(bundle, "sleep", "60")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT, err  # as a shell reports a killed command
    meta = json.loads((bundle / "meta.json").read_text())
    assert (meta["exit_code"], meta["exit_signal"]) == (None, signal.SIGINT)
    assert meta["duration_ns"] < 30e9
    assert not instance_left(proc.pid)
    assert not Path(meta["cgroup"]["path"]).exists()


@needs_capture
def test_second_ctrl_c_aborts_without_a_bundle(tmp_path):
    bundle = tmp_path / "aborted"
    proc = _start_capture(bundle, "sh", "-c", "trap '' INT; exec sleep 60")
    proc.send_signal(signal.SIGINT)  # ignored by the command
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert not bundle.exists() and list(tmp_path.iterdir()) == []
    assert not instance_left(proc.pid)
    assert not (find_place().parent / f"folio-replay-{proc.pid}").exists()


@needs_capture
def test_sigterm_stops_the_command_and_removes_instance_and_cgroup(tmp_path):
    bundle = tmp_path / "terminated"
    proc = _start_capture(bundle, "sleep", "60")
    group = find_place().parent / f"folio-replay-{proc.pid}"
    assert group.is_dir()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert not bundle.exists() and list(tmp_path.iterdir()) == []
    assert not instance_left(proc.pid) and not group.exists()


# --- the command's memory cgroup, --memory-limit, --system --------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("200M", 200 << 20),
        ("200MiB", 200 << 20),
        ("1G", 1 << 30),
        ("64k", 64 << 10),
        ("4096", 4096),
    ],
)
def test_memory_limit_sizes(text, size):
    assert _size(None, None, text) == size


@pytest.mark.parametrize("text", ["0", "1X", "-5M", "M", "1.5G"])
def test_bad_memory_limit_is_a_one_line_error(tmp_path, text):
    done = run_cli("capture", "--memory-limit", text, "-o", str(tmp_path / "b"), "--", "true")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"folio-replay: error: --memory-limit: {text!r} is not a size (e.g. 200M, 1G, 209715200)"
    ]


def test_memory_limit_needs_the_cgroup_mode(tmp_path):
    done = run_cli(
        "capture", "--system", "--memory-limit", "1G", "-o", str(tmp_path / "b"), "--", "true"
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "folio-replay: error: --memory-limit: needs the capture's cgroup: not with --system"
    ]
    assert not (tmp_path / "b").exists()


def _fake_cgroups(tmp_path: Path, mounts: list[str], own: list[str]) -> tuple[Path, Path]:
    """A /proc/mounts and a /proc/self/cgroup for find_place."""
    (tmp_path / "mounts").write_text("".join(f"{line}\n" for line in mounts))
    (tmp_path / "cgroup").write_text("".join(f"{line}\n" for line in own))
    return tmp_path / "mounts", tmp_path / "cgroup"


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")


def test_cgroup_v1_group_goes_inside_our_own_memory_cgroup(tmp_path):
    """This machine's layout: cgroup2 without the memory controller, v1 memory mounted."""
    v1, v2 = tmp_path / "memory", tmp_path / "unified"
    _tree(v1, {"jobs/ours/cgroup.procs": ""})
    _tree(v2, {"cgroup.controllers": "", "cgroup.subtree_control": ""})
    place = find_place(
        *_fake_cgroups(
            tmp_path,
            [f"cgroup2 {v2} cgroup2 rw 0 0", f"cgroup {v1} cgroup rw,relatime,memory 0 0"],
            ["4:memory:/jobs/ours", "1:cpu:/", "0::/"],
        )
    )
    assert (place.version, place.parent, place.home) == (1, v1 / "jobs/ours", v1 / "jobs/ours")
    assert not place.enable_memory


def test_cgroup_v2_group_goes_under_the_nearest_ancestor_delegating_memory(tmp_path):
    v1, v2 = tmp_path / "memory", tmp_path / "cg2"
    _tree(v1, {"cgroup.procs": ""})
    _tree(
        v2,
        {
            "cgroup.controllers": "cpu io memory pids",
            "cgroup.subtree_control": "cpu memory pids",
            "user.slice/cgroup.subtree_control": "memory pids",
            "user.slice/session.scope/cgroup.subtree_control": "",
        },
    )
    place = find_place(
        *_fake_cgroups(
            tmp_path,
            [f"cgroup {v1} cgroup rw,memory 0 0", f"cgroup2 {v2} cgroup2 rw,nsdelegate 0 0"],
            ["4:memory:/", "0::/user.slice/session.scope"],
        )
    )
    assert (place.version, place.parent) == (2, v2 / "user.slice")
    assert place.home == v2 / "user.slice" / "session.scope"  # leftover tasks go back there
    assert not place.enable_memory


def test_cgroup_v2_root_without_memory_delegated_gets_it_for_the_capture(tmp_path):
    v2 = tmp_path / "cg2"
    _tree(v2, {"cgroup.controllers": "cpu memory", "cgroup.subtree_control": "cpu"})
    place = find_place(*_fake_cgroups(tmp_path, [f"cgroup2 {v2} cgroup2 rw 0 0"], ["0::/"]))
    assert (place.version, place.parent, place.home, place.enable_memory) == (2, v2, v2, True)


def test_no_memory_controller_is_a_one_line_error(tmp_path):
    v2 = tmp_path / "cg2"
    _tree(v2, {"cgroup.controllers": "cpu io", "cgroup.subtree_control": "cpu"})
    mounts, own = _fake_cgroups(tmp_path, [f"cgroup2 {v2} cgroup2 rw 0 0"], ["0::/"])
    with pytest.raises(InputError) as err:
        find_place(mounts, own)
    assert err.value.one_line() == (
        f"{mounts}: no memory cgroup controller mounted (v1 or v2); use --system"
    )


@pytest.fixture(scope="module")
def host_kinds(tmp_path_factory) -> Path:
    """The host bundles' workload, compiled from fixtures/host/workloads/host_kinds.c."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed: cannot build fixtures/host/workloads/host_kinds.c")
    out = tmp_path_factory.mktemp("kinds") / "host_kinds"
    subprocess.run([gcc, "-O2", "-o", str(out), str(KINDS_SRC)], check=True)
    return out


def _own_memory_cgroup(pid: int | str = "self") -> str:
    """The memory cgroup path of a process (v1 memory line, else the v2 line)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    paths = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in lines}
    return next((path for names, path in paths.items() if "memory" in names.split(",")), paths[""])


@needs_capture
def test_command_runs_in_a_memory_cgroup_of_its_own(tmp_path):
    bundle = tmp_path / "cgroup"
    done = run_cli(
        "capture",
        "--memory-limit",
        "64M",
        "-o",
        str(bundle),
        "--",
        "sh",
        "-c",
        'cat /proc/self/cgroup; echo "env=$FOLIO_REPLAY_CGROUP"',
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((bundle / "meta.json").read_text())
    group = meta["cgroup"]
    assert meta["mode"] == "cgroup" and group["version"] in (1, 2)
    assert group["limit_bytes"] == 64 << 20
    assert group["limit_file"] == (
        "memory.max" if group["version"] == 2 else "memory.limit_in_bytes"
    )
    assert Path(group["path"]).name == f"folio-replay-{done.pid}"
    assert f"env={group['path']}\n" in meta["stdout_tail"]
    # The command's own /proc/self/cgroup names the group (relative to its hierarchy's mount).
    hierarchy = "memory" if group["version"] == 1 else ""
    line = next(x for x in meta["stdout_tail"].splitlines() if x.split(":")[1:2] == [hierarchy])
    assert group["path"].endswith(line.split(":", 2)[2])
    assert not Path(group["path"]).exists() and group["moved_out_at_end"] == 0
    assert meta["mglru"] == mglru_state()
    assert meta["swaps"] == {"before": swap_devices(), "after": swap_devices()}
    assert meta["command_pid"] == meta["pid_filter"]["command"]
    loaded = load_bundle(bundle)
    assert not loaded.missing
    memcg = loaded.stats_delta().query("source == 'memcg'")
    assert len(memcg) > 5 and set(memcg["size_kb"]) == {0}


@needs_capture
def test_memory_limit_makes_the_charges_reclaim_lazyfree_folios(tmp_path, host_kinds):
    """16 MiB made lazyfree, then 16 MiB more touched, in a group limited to 24 MiB: the
    command's own faults reclaim the group (memcg reclaim, lazyfree folios discarded)."""
    bundle = tmp_path / "limited"
    done = run_cli(
        "capture",
        "--memory-limit",
        "24M",
        "-o",
        str(bundle),
        "--",
        str(host_kinds),
        "lazyfree-pressure",
        "-s",
        "16",
        "-e",
        "16",
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((bundle / "meta.json").read_text())
    trace = gzip.decompress((bundle / "trace.txt.gz").read_bytes()).decode()
    pid = meta["command_pid"]
    begins = re.findall(rf"-{pid}\s+\[.*mm_vmscan_memcg_reclaim_begin: ", trace)
    ends = re.findall(rf"-{pid}\s+\[.*mm_vmscan_memcg_reclaim_end: nr_reclaimed=(\d+)", trace)
    assert begins and len(begins) == len(ends)
    assert re.search(rf"-{pid}\s+\[.*mm_vmscan_lru_shrink_inactive: ", trace)
    before, after = vmstat(bundle, "before"), vmstat(bundle, "after")
    assert after["pglazyfreed"] > before["pglazyfreed"]


@needs_capture
def test_leftover_tasks_are_moved_out_and_the_cgroup_removed(tmp_path):
    bundle = tmp_path / "leftover"
    done = run_cli(
        "capture", "-o", str(bundle), "--", "sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((bundle / "meta.json").read_text())
    sleeper = int(meta["stdout_tail"].split()[0])
    try:
        assert meta["cgroup"]["moved_out_at_end"] == 1
        assert not Path(meta["cgroup"]["path"]).exists()
        # Back in the cgroup the capture ran in (the same as this test's).
        assert _own_memory_cgroup(sleeper) == _own_memory_cgroup()
    finally:
        os.kill(sleeper, signal.SIGKILL)


@needs_capture
def test_system_mode_traces_every_pid_without_a_cgroup(tmp_path):
    """An untraced-by-default process (started here, outside the capture) writes in a loop:
    --system traces its write() calls; the cgroup mode's pid filter keeps them out."""
    writer = subprocess.Popen(
        ["sh", "-c", "while :; do echo x; sleep 0.02; done"], stdout=subprocess.DEVNULL
    )
    try:
        bundles = {mode: tmp_path / mode for mode in ("system", "cgroup")}
        for mode, bundle in bundles.items():
            flags = ["--system"] if mode == "system" else []
            done = run_cli("capture", *flags, "-o", str(bundle), "--", "sleep", "0.5")
            assert done.returncode == 0, done.stderr
    finally:
        writer.kill()
        writer.wait()
    meta = json.loads((bundles["system"] / "meta.json").read_text())
    assert meta["mode"] == "system" and meta["pid_filter"] is None and meta["cgroup"] is None
    assert not (bundles["system"] / "stats" / "before" / "memcg").exists()
    writes = {}
    for mode, bundle in bundles.items():
        trace = gzip.decompress((bundle / "trace.txt.gz").read_bytes()).decode()
        writes[mode] = len(re.findall(rf"-{writer.pid}\s+\[.*sys_write\(fd: 1,", trace))
    assert writes["system"] > 5 and writes["cgroup"] == 0


# --- the committed host bundles of fixtures/host/make_host_kinds.sh (what the kernel did) -------

KINDS = (
    "memcg-limit-lazyfree",
    "force-empty",
    "process-madvise",
    "file-pageout",
    "busy-microbench",
    "jemalloc-memcg",
    "go-memcg",
    "swap-pageout",
    "mixed-kinds",
    "pmd-clean",
    "pmd-redirty",
)
_HOST_BUNDLES = REPO / "fixtures" / "bundles" / "host"


def _kind(name: str) -> Path:
    found = sorted(_HOST_BUNDLES.glob(f"*/{name}/meta.json"))
    assert len(found) == 1, f"{name}: {found}"
    return found[0].parent


def _deltas(bundle: Path) -> dict[tuple[str, int, str], int]:
    """(source, size_kb, counter) -> after - before."""
    table = load_bundle(bundle).stats_delta().dropna(subset=["delta"])
    return {(row.source, row.size_kb, row.counter): int(row.delta) for row in table.itertuples()}


def _trace(bundle: Path) -> str:
    return gzip.decompress((bundle / "trace.txt.gz").read_bytes()).decode()


def _events(trace: str, event: str, pid: int | None = None) -> list[str]:
    who = r"\d+" if pid is None else str(pid)
    return re.findall(rf"^\s*.+?-{who}\s+\[\d+\].*?: {event}[:(](.*)$", trace, re.M)


@pytest.mark.parametrize("name", KINDS)
def test_host_kind_bundle_is_small_complete_and_says_how_it_was_made(name):
    bundle = _kind(name)
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["made_by"].startswith("fixtures/host/make_host_kinds.sh: folio-replay ")
    assert "restored afterwards" in meta["setup"].split(";")[0]
    assert (meta["exit_code"], meta["lost_events"]["total"], meta["mode"]) == (0, 0, "cgroup")
    assert meta["cgroup"]["version"] == 1 and meta["mglru"] == "absent"
    assert not load_bundle(bundle).missing
    assert ("memcg", 0, "pgfault") in _deltas(bundle)
    assert sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) < 3_000_000


def test_host_kind_bundles_stay_under_20_mb_together():
    sizes = [p.stat().st_size for name in KINDS for p in _kind(name).rglob("*") if p.is_file()]
    assert sum(sizes) < 20_000_000


def test_memcg_limit_reclaimed_lazyfree_folios_from_the_file_lru():
    """128 MiB of 64 KiB folios made lazyfree, then 128 MiB more touched under a 200 MiB
    limit: the faults' charges reclaimed lazyfree folios (only as many as the limit needed),
    from the file LRU where MADV_FREE put them; some 64 KiB faults fell back to 4 KiB."""
    bundle = _kind("memcg-limit-lazyfree")
    meta, delta = json.loads((bundle / "meta.json").read_text()), _deltas(bundle)
    trace = _trace(bundle)
    assert meta["cgroup"]["limit_bytes"] == 200 << 20 and meta["swaps"]["before"] == []
    assert delta[("vmstat", 0, "pglazyfree")] >= 32768
    assert 0 < delta[("vmstat", 0, "pglazyfreed")] < 32768
    pid = meta["command_pid"]
    begins = _events(trace, "mm_vmscan_memcg_reclaim_begin", pid)
    assert begins and len(begins) == len(_events(trace, "mm_vmscan_memcg_reclaim_end", pid))
    flags = {f.split("flags=")[1] for f in _events(trace, "mm_vmscan_lru_shrink_inactive", pid)}
    assert flags == {"RECLAIM_WB_FILE|RECLAIM_WB_ASYNC"}
    assert delta[("mthp", 64, "anon_fault_fallback_charge")] > 0


def test_force_empty_written_by_the_shell_reclaimed_every_lazyfree_folio():
    bundle = _kind("force-empty")
    trace = _trace(bundle)
    writes = re.findall(r"^\s*sh-(\d+)\s+\[.*sys_write\(fd: 1, buf: \w+, count: 2\)", trace, re.M)
    assert len(writes) == 1  # `echo 0 > memory.force_empty`
    assert len(_events(trace, "mm_vmscan_memcg_reclaim_begin", int(writes[0]))) > 100
    assert _deltas(bundle)[("vmstat", 0, "pglazyfreed")] >= 32768


def test_process_madvise_pages_out_the_other_process_folios_in_the_callers_context():
    bundle = _kind("process-madvise")
    trace = _trace(bundle)
    (caller,) = {int(p) for p in re.findall(r"-(\d+)\s+\[.*sys_process_madvise\(", trace)}
    (victim,) = {int(p) for p in re.findall(r"-(\d+)\s+\[.*sys_madvise\(.*behavior: 8\)", trace)}
    assert caller != victim
    assert len(_events(trace, "mm_vmscan_reclaim_pages", caller)) == 64
    # The victim's MM_ANONPAGES drop in the caller's events, for a mm that is not current.
    assert len(re.findall(rf"-{caller}\s+\[.*rss_stat: \S+ curr=0 type=MM_ANONPAGES", trace)) > 2000
    assert _deltas(bundle)[("vmstat", 0, "pglazyfreed")] >= 32768


def test_swap_pageout_swapped_whole_64k_folios_out_unmapping_them_per_pte():
    bundle = _kind("swap-pageout")
    meta, delta = json.loads((bundle / "meta.json").read_text()), _deltas(bundle)
    trace = _trace(bundle)
    assert [d["filename"] for d in meta["swaps"]["before"]] == ["/dev/zram0"]
    assert delta[("mthp", 64, "swpout")] == 2048 and delta[("vmstat", 0, "pswpout")] >= 32768
    writes = _events(trace, "mm_vmscan_write_folio", meta["command_pid"])
    assert len(writes) == 2048 and all("RECLAIM_WB_ANON" in w for w in writes)
    assert len(_events(trace, "tlb_flush", meta["command_pid"])) > 32768  # one per page


def test_file_pageout_dropped_page_cache_folios_of_every_size():
    bundle = _kind("file-pageout")
    trace = _trace(bundle)
    orders = [int(o) for o in re.findall(r"delete_from_page_cache: .* order=(\d+)", trace)]
    assert {0, 2, 4, 6, 8, 9} <= set(orders)
    assert sum(4 << o for o in orders) == 128 << 10  # KiB: the whole file
    assert _deltas(bundle)[("vmstat", 0, "thp_split_pmd")] >= orders.count(9)


def test_mixed_kinds_reclaimed_each_kind_its_own_way():
    bundle = _kind("mixed-kinds")
    delta, trace = _deltas(bundle), _trace(bundle)
    assert delta[("vmstat", 0, "pglazyfreed")] >= 16384
    assert delta[("vmstat", 0, "pswpout")] >= 16384 and delta[("mthp", 64, "swpout")] >= 1024
    assert len(re.findall(r"sys_madvise\(.*behavior: 0x15\)", trace)) == 3  # MADV_PAGEOUT
    assert _events(trace, "mm_filemap_delete_from_page_cache")


def test_busy_microbench_counters_are_contaminated_by_untraced_processes():
    """The microbench's own folios are discarded whole (no partial unmap in its trace), yet
    split_deferred and the fault counters moved: the disturbers outside the cgroup did it."""
    bundle = _kind("busy-microbench")
    delta, trace = _deltas(bundle), _trace(bundle)
    assert delta[("vmstat", 0, "pglazyfreed")] >= 2 * 65536
    assert delta[("mthp", 64, "split_deferred")] > 0 and delta[("vmstat", 0, "thp_split_pmd")] > 0
    assert delta[("mthp", 64, "anon_fault_alloc")] > 2 * 4096
    assert not re.findall(r"sys_madvise\(.*behavior: 4\)", trace)  # no MADV_DONTNEED
    munmaps = re.findall(r"sys_munmap\(addr: \w+, len: (0x[0-9a-f]+)\)", trace)
    assert all(int(n, 16) % (64 << 10) == 0 for n in munmaps)


@pytest.mark.parametrize(
    ("name", "freer"), [("jemalloc-memcg", "jemalloc_bg_thd"), ("go-memcg", "go_churn")]
)
def test_allocator_returned_memory_with_madv_free_and_the_limit_reclaimed_it(name, freer):
    bundle = _kind(name)
    trace = _trace(bundle)
    frees = re.findall(rf"^\s*{freer}-\d+\s+\[.*sys_madvise\(.*behavior: 8\)", trace, re.M)
    assert len(frees) > 50
    assert _events(trace, "mm_vmscan_memcg_reclaim_begin")
    assert _deltas(bundle)[("vmstat", 0, "pglazyfreed")] > 0
