"""Helpers shared by the parser tests: the real fixture files and an independent line reader.

The reader here deliberately does not use the parser's regular expressions: it splits lines
into blank-separated tokens, finds the timestamp token and takes the event name after it.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path

from folio_replay.parsers.bundle import TRACE_FILES

REPO = Path(__file__).resolve().parents[1]
HOST = REPO / "fixtures" / "host"
BUNDLES = REPO / "fixtures" / "bundles"
BUNDLE_DIRS = sorted(p.parent for p in BUNDLES.glob("*/*/*/meta.json"))
LAB_ARCHES = ("x86_64", "aarch64", "riscv64")  # fixtures/bundles/<arch>/: lab captures


# the scenarios of the first lab runs: one process, one MADV_PAGEOUT (fixtures/lab/scenarios.toml)
FIRST_LAB_SCENARIOS = (
    "microbench",
    "redirty-first-64k",
    "redirty-last-64k",
    "pmd-clean",
    "pmd-redirty",
    "partial-munmap",
    "mixed",
)


def region_kb(meta: dict) -> int:
    """A lab workload's region (folio_bench -s KiB): 128 MiB in the first lab runs, 32 MiB in
    the runs of every release (lab.py --size-kib), 16 MiB in the later scenarios."""
    command = meta["command"]
    return int(command[command.index("-s") + 1])


def lab_bundle_dirs(scenario: str = "*") -> list[Path]:
    """Lab bundles (fixtures/bundles/<arch>/<release>/<scenario>) of ``scenario`` (a glob)."""
    return sorted(
        p.parent for arch in LAB_ARCHES for p in (BUNDLES / arch).glob(f"*/{scenario}/meta.json")
    )


def bundle_ids(paths: list[Path]) -> list[str]:
    """Test ids of bundle directories: arch/release/scenario."""
    return [str(p.relative_to(BUNDLES)) for p in paths]


def trace_fixtures() -> list[Path]:
    """Every real trace fixture: host text and trace.dat files, and every bundle's trace."""
    files = sorted(HOST.glob("*.txt.gz")) + sorted(HOST.glob("*.dat"))
    for name in TRACE_FILES:
        files += sorted(BUNDLES.glob(f"**/{name}"))
    return files


def fixture_id(path: Path) -> str:
    return str(path.relative_to(REPO / "fixtures"))


def fixture_meta(path: Path) -> dict | None:
    """How a fixture was made: a bundle's meta.json, or the host NAME.json side file."""
    if (path.parent / "meta.json").is_file():
        return json.loads((path.parent / "meta.json").read_text())
    stem = path.name.split(".")[0]
    for candidate in (stem, stem.replace("report", "trace", 1)):
        side = path.parent / f"{candidate}.json"
        if side.is_file():
            return json.loads(side.read_text())
    return None


def raw_lines(path: Path) -> list[str]:
    """The text lines of a fixture (for trace.dat: ``trace-cmd report`` text)."""
    if path.suffix == ".dat":
        out = subprocess.run(
            [shutil.which("trace-cmd") or "trace-cmd", "report", "-i", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.splitlines()
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def is_marker(line: str) -> bool:
    return "[LOST" in line or "EVENTS DROPPED]" in line or " PERF_RECORD_LOST lost " in line


def is_skipped(line: str) -> bool:
    """Header, comment and trace-cmd preamble lines, and perf's side-band records other than
    lost events (no event)."""
    return (
        not line.strip()
        or line.startswith("#")
        or line.startswith("cpus=")
        or line.startswith("version = ")
        or (": PERF_RECORD_" in line and "PERF_RECORD_LOST" not in line)
    )


def timestamp_index(tokens: list[str]) -> int:
    """Index of the first token of the form SECONDS.FRACTION: ."""
    for i, token in enumerate(tokens):
        if token.endswith(":") and token.count(".") == 1 and token[:-1].replace(".", "").isdigit():
            return i
    raise AssertionError(f"no timestamp in {tokens}")


def event_name(line: str) -> str:
    """The bare event name of an event line."""
    tokens = line.split()
    i = timestamp_index(tokens)
    if tokens[i + 1].startswith("(+") and tokens[i + 1].endswith(")"):
        i += 1  # trace-cmd report --ts-diff: "(+NS)" after the timestamp
    name = tokens[i + 1]
    if "(" in name:  # tracefs "sys_madvise(start: ..."
        return "sys_enter_" + name.split("(")[0].removeprefix("sys_")
    if len(tokens) > i + 2 and tokens[i + 2] == "->":  # tracefs "sys_madvise -> 0x0"
        return "sys_exit_" + name.removeprefix("sys_")
    return name.rstrip(":").split(":")[-1]  # "tlb_flush:" or perf "tlb:tlb_flush:"


def timestamp_ns(line: str) -> int:
    tokens = line.split()
    return int(Decimal(tokens[timestamp_index(tokens)][:-1]) * 1_000_000_000)


def independent_counts(lines: list[str]) -> tuple[Counter, int, list[str]]:
    """(events per name, sum of lost-event counts (markers, and what a tracefs header says
    was overwritten), the event lines in order)."""
    counts: Counter = Counter()
    lost = 0
    events = []
    for line in lines:
        if line.startswith("#") and "entries-in-buffer/entries-written:" in line:
            # a tracefs header: the events the ring buffer overwrote
            in_buffer, written = line.split(":", 1)[1].split()[0].split("/")
            lost += int(written) - int(in_buffer)
            continue
        if is_skipped(line):
            continue
        if is_marker(line):
            if "PERF_RECORD_LOST" in line:
                lost += int(line.split()[-1])
                continue
            numbers = [int(t) for t in line.replace("[", " ").split() if t.isdigit()]
            lost += numbers[0] if numbers else 0
            continue
        counts[event_name(line)] += 1
        events.append(line)
    return counts, lost, events
