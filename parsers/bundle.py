"""A capture bundle: ``meta.json``, a trace file, ``stats/before`` and ``stats/after``.

A bundle missing parts still loads; :attr:`Bundle.missing` names what it lacks and nothing is
filled in for it. What is there is checked: ``meta.json`` must be a JSON object (each key
once) whose ``kernel`` (the /proc/version line or the release) and ``arch`` are strings, and
``command`` and ``name``, when given, of their types; a stats file that cannot be read is
reported (a warning) and skipped, an error only when the validation needs it
(:meth:`Bundle.stats_delta`); a trace that is not a regular file is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from folio_replay.parsers.files import file_kind
from folio_replay.parsers.limits import META_JSON_BYTES
from folio_replay.parsers.stats import (
    STATS_COLUMNS,
    Problem,
    StatsTree,
    check_validated,
    load_tree,
    stats_delta,
)
from folio_replay.parsers.table import LostMarker, Trace
from folio_replay.parsers.trace import read_trace

from folio_replay.errors import InputError, warn
from folio_replay.outputs import note_input

__all__ = ["META_REQUIRED", "TRACE_FILES", "Bundle", "load_bundle"]

# Trace files a bundle may hold, in the order one is chosen.
TRACE_FILES = ("trace.txt.gz", "trace.txt", "trace.dat", "perf.txt.gz", "perf.txt")
META_REQUIRED = ("kernel", "arch", "command", "name")
# meta.json keys whose absence is an error (nothing can be replayed without them), and what
# each holds
META_NEEDED = {
    "kernel": "the captured kernel's /proc/version line or release",
    "arch": "the captured machine (uname -m)",
}
_RELEASE = re.compile(r"^(?:Linux version\s+)?[0-9]+\.[0-9]+")


@dataclass
class Bundle:
    """One capture bundle directory, loaded."""

    path: Path
    meta: dict
    trace_path: Path | None
    stats_before: pd.DataFrame
    stats_after: pd.DataFrame
    settings_before: dict[str, str] = field(default_factory=dict)
    settings_after: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)  # stats files not read, and why
    trees: dict[str, StatsTree] = field(default_factory=dict, repr=False)  # by side

    def stats_delta(self) -> pd.DataFrame:
        """Counters before, after and their delta (needs both stats trees, and every counter
        the validation compares read on both sides)."""
        for side in ("stats/before", "stats/after"):
            if side in self.missing:
                raise InputError(self.path, f"bundle has no {side}: no stats deltas")
        check_validated(self.trees["before"], self.trees["after"])
        return stats_delta(self.stats_before, self.stats_after)

    def with_machine(self, machine: str) -> Bundle:
        """This bundle with its capture's machine (``uname -m``) given by the user, where
        neither meta.json nor the trace says it; one that says another is an error."""
        said = self.meta.get("arch")
        if said is not None and said != machine:
            raise InputError(self.path, f"the capture's machine is {said}, not {machine}")
        return replace(self, meta={**self.meta, "arch": machine})

    @property
    def no_swap_device(self) -> bool:
        """Whether the capture had no swap device at all, before and after (meta.json
        ``swaps``, which ``folio-replay capture`` reads from /proc/swaps); False when not
        recorded."""
        swaps = self.meta.get("swaps")
        return isinstance(swaps, dict) and swaps.get("before") == [] == swaps.get("after")

    def read_trace(self) -> Trace:
        """The bundle's trace parsed into the event table, with the losses meta.json records
        beyond the trace's own markers (:meth:`unmarked_losses`)."""
        if self.trace_path is None:
            raise InputError(self.path, "bundle has no trace file (" + ", ".join(TRACE_FILES) + ")")
        trace = read_trace(self.trace_path)
        trace.lost.extend(self.unmarked_losses(trace.lost))
        return trace

    def unmarked_losses(self, markers: list[LostMarker]) -> list[LostMarker]:
        """Events the capture recorded lost per CPU (meta.json ``lost_events``: the ring
        buffer's overrun and dropped counts from per_cpu/cpuN/stats) beyond what the trace's
        ``markers`` count: a tracefs ``trace`` file read after the buffer overran has no
        [LOST] marker, only fewer entries (its header's entries-written count says how many:
        a marker of cpu -1, which meta.json's counts are then compared with in total). One
        marker per such CPU, at line 0 (meta.json)."""
        lost = self.meta.get("lost_events")
        if not isinstance(lost, dict):
            return []
        reported: dict[int, int] = {}
        for key in ("overrun_per_cpu", "dropped_per_cpu"):
            per_cpu = lost.get(key)
            for cpu, count in per_cpu.items() if isinstance(per_cpu, dict) else ():
                # the kernel's counters are unsigned longs; beyond int64 a count is not one
                if str(cpu).isdigit() and isinstance(count, int) and 0 < count < 1 << 63:
                    reported[int(cpu)] = reported.get(int(cpu), 0) + count
        marked: dict[int, int] = {}
        for marker in markers:
            marked[marker.cpu] = marked.get(marker.cpu, 0) + (marker.count or 0)
        if -1 in marked:  # the trace's header counts the overwritten events of all CPUs
            beyond = sum(reported.values()) - sum(marked.values())
            return [LostMarker(0, -1, beyond)] if beyond > 0 else []
        return [
            LostMarker(0, cpu, count - marked.get(cpu, 0))
            for cpu, count in sorted(reported.items())
            if count > marked.get(cpu, 0)
        ]


def _unique_keys(meta_path: Path):
    """A JSON object hook refusing a key given twice."""

    def hook(pairs: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                raise InputError(meta_path, f"key {key!r} given twice")
            out[key] = value
        return out

    return hook


def _line_of(text: str, key: str) -> int | None:
    """The line of ``"key":`` in the JSON text (the first), if any."""
    at = text.find(json.dumps(key) + ":")
    return text.count("\n", 0, at) + 1 if at >= 0 else None


def _check_meta(meta_path: Path, text: str, meta: dict) -> None:
    """Each key the tools read: present when needed, of its type."""
    for key, holds in META_NEEDED.items():
        if key not in meta:
            raise InputError(meta_path, f"no {key!r} key ({holds})")
    kernel, arch = meta["kernel"], meta["arch"]
    if not isinstance(kernel, str) or not _RELEASE.match(kernel.strip()):
        raise InputError(
            meta_path,
            f"'kernel' must be a /proc/version line or a release such as 6.12.117, not "
            f"{json.dumps(kernel)[:60]}",
            line=_line_of(text, "kernel"),
        )
    if not isinstance(arch, str) or not arch.strip():
        raise InputError(
            meta_path,
            f"'arch' must be a machine name such as x86_64, not {json.dumps(arch)[:60]}",
            line=_line_of(text, "arch"),
        )
    command = meta.get("command", [])
    if not (
        isinstance(command, str)
        or (isinstance(command, list) and all(isinstance(word, str) for word in command))
    ):
        raise InputError(
            meta_path, "'command' must be a list of strings", line=_line_of(text, "command")
        )
    if not isinstance(meta.get("name", ""), str):
        raise InputError(meta_path, "'name' must be a string", line=_line_of(text, "name"))


def _load_meta(path: Path, missing: list[str]) -> dict:
    meta_path = path / "meta.json"
    kind = file_kind(meta_path)
    if kind == "missing":
        missing.append("meta.json")
        return {}
    if kind is not None:
        raise InputError(meta_path, f"is {kind}, not a regular file: not read")
    with open(meta_path, "rb") as fh:
        raw = fh.read(META_JSON_BYTES + 1)
    if len(raw) > META_JSON_BYTES:
        raise InputError(meta_path, f"larger than {META_JSON_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        meta = json.loads(text, object_pairs_hook=_unique_keys(meta_path))
    except UnicodeDecodeError as err:
        raise InputError(meta_path, "not UTF-8 text", offset=err.start) from None
    except json.JSONDecodeError as err:
        raise InputError(meta_path, f"invalid JSON: {err.msg}", line=err.lineno) from None
    except (ValueError, RecursionError) as err:  # a number of too many digits, deep nesting
        raise InputError(meta_path, f"invalid JSON: {str(err)[:80]}") from None
    if not isinstance(meta, dict):
        raise InputError(meta_path, "not a JSON object", line=1)
    _check_meta(meta_path, text, meta)
    missing += [f"meta.json:{key}" for key in META_REQUIRED if key not in meta]
    return meta


def _trace_path(path: Path) -> Path | None:
    """The bundle's trace file (the first of :data:`TRACE_FILES` present), which must be a
    regular file."""
    for name in TRACE_FILES:
        kind = file_kind(path / name)
        if kind is None:
            return path / name
        if kind != "missing":
            raise InputError(path / name, f"trace file is {kind}, not a regular file: not read")
    return None


def _load_stats(path: Path, side: str, missing: list[str]) -> StatsTree:
    tree = path / "stats" / side
    if not tree.is_dir():
        missing.append(f"stats/{side}")
        return StatsTree(tree, pd.DataFrame(columns=STATS_COLUMNS))
    if file_kind(tree / "vmstat") == "missing":
        missing.append(f"stats/{side}/vmstat")
    loaded = load_tree(tree)
    for problem in loaded.problems.values():
        warn(problem.path, f"{problem.reason}: skipped")
    return loaded


# The tracepoint only x86 emits: tlb:tlb_flush (trace_tlb_flush() is called from
# arch/x86/mm/tlb.c alone; the arm64 and riscv captures have none). Not page_fault_user: riscv
# has it too (the 7.2 riscv64 lab captures).
X86_EVENTS = re.compile(rb"[ :]tlb_flush: ")
X86_EVIDENCE = "x86's tlb_flush tracepoint in the trace's first MiB"
TEXT_HEAD_BYTES = 1 << 20


def _x86_events_in_head(path: Path) -> bool:
    """Whether a text trace's first MiB holds the event only x86 emits (its machine, then)."""
    from folio_replay.parsers.text.reference import open_text

    try:
        with open_text(path) as raw:
            head = raw.read(TEXT_HEAD_BYTES)
    except (OSError, EOFError):  # a damaged gzip stream: the parse names it
        return False
    return X86_EVENTS.search(head) is not None


def _trace_file_meta(path: Path) -> dict:
    """What a bare trace file says of its capture: a trace.dat's UNAME option (trace-cmd
    record writes "SYSNAME NODENAME RELEASE MACHINE") gives the release and the machine; a
    text trace says neither."""
    from folio_replay.parsers.text.reference import PERF_DATA_MAGIC, binary_data
    from folio_replay.parsers.tracedat.container import is_trace_dat, open_dat

    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as err:
        raise InputError(path, f"cannot read the trace file: {err.strerror or err}") from None
    if head.startswith(PERF_DATA_MAGIC):
        raise InputError(path, binary_data(head), offset=0)
    meta: dict = {"name": path.name, "made_by": f"the trace file {path.name}, no bundle"}
    if not is_trace_dat(head):
        if _x86_events_in_head(path):
            meta["arch"] = "x86_64"
            meta["arch_evidence"] = X86_EVIDENCE
        return meta
    words = open_dat(path).uname.split()
    if len(words) >= 4:
        meta.update(kernel=words[2], release=words[2], arch=words[3])
    return meta


def _trace_file_bundle(path: Path) -> Bundle:
    """A trace file given where a bundle is expected: a bundle of that trace alone (no
    meta.json, no stats: nothing to validate against)."""
    if file_kind(path) is not None:
        raise InputError(path, "not a bundle directory or a regular trace file")
    note_input(path)
    empty = pd.DataFrame(columns=STATS_COLUMNS)
    return Bundle(
        path,
        _trace_file_meta(path),
        path,
        empty,
        empty.copy(),
        missing=["meta.json", "stats/before", "stats/after"],
        trees={side: StatsTree(path, empty) for side in ("before", "after")},
    )


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle directory, or a trace file as a bundle of that trace alone; what it lacks
    is listed in ``.missing``, the stats files skipped in ``.skipped`` (each also a
    warning)."""
    path = Path(path)
    if path.is_file():
        return _trace_file_bundle(path)
    if not path.is_dir():
        raise InputError(path, "not a bundle directory")
    note_input(path)
    missing: list[str] = []
    meta = _load_meta(path, missing)
    trace_path = _trace_path(path)
    if trace_path is None:
        missing.append("trace")
    before = _load_stats(path, "before", missing)
    after = _load_stats(path, "after", missing)
    return Bundle(
        path,
        meta,
        trace_path,
        before.table,
        after.table,
        before.settings,
        after.settings,
        missing,
        [*before.problems.values(), *after.problems.values()],
        {"before": before, "after": after},
    )
