"""The fuzz classes: how a case is made from a seed (:func:`make_case`) and what must hold
when folio-replay reads it (:func:`run_case`).

Every class: only :class:`InputError` may escape (any other exception is a *traceback*), and
an input is either accepted or refused as one error. Per class:

* ``text``, ``gzip``: the fast parser and the reference parser both accept, with equal tables
  and lost-event markers, or both refuse (else a *difference*);
* ``tracedat``: the native decoder never crashes; where it reports no damaged page and
  ``trace-cmd report`` reads the file too (no ``[FAILED TO PARSE]`` event), both give the same
  events (every column but the raw ``fields``) and losses;
* ``stats``: every counter of an accepted bundle's deltas is the value its file holds (read
  here independently), else a *wrong value*;
* ``meta``: an accepted meta.json has a string kernel release and arch;
* ``costs``: an accepted table has finite op costs within the limit;
* ``outputs``: ``parse -o TARGET [--force]`` exits 0 or 2 (one line), never changes the input,
  a device, a fifo, a symlink or a directory it did not write, and leaves no temporary file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from folio_replay.errors import InputError, InputWarning

from . import mutators as mu
from . import seeds

_RELEASE = re.compile(r"^(?:Linux version\s+)?[0-9]+\.[0-9]+")
CLASSES = ("text", "gzip", "tracedat", "stats", "meta", "costs", "outputs")
TRACE_CMD_TIMEOUT = 20.0
# cases write and remove many small files: in memory where the machine has a tmpfs
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


class Failure(Exception):
    """An oracle violation: ``kind`` is traceback, difference or wrong."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


@dataclass
class Outcome:
    accepted: bool
    detail: str = ""


def rng_for(seed: int, cls: str, index: int) -> random.Random:
    return random.Random(f"{seed}:{cls}:{index}")


# ------------------------------------------------------------------------- making cases


@cache
def _dat_regions(name: str) -> list[tuple[int, int]]:
    """Spans of a trace.dat seed worth hitting: header texts, formats, options, the CPU
    table, page headers, record headers and the common fields of records."""
    from folio_replay.parsers.tracedat.container import open_dat
    from folio_replay.parsers.tracedat.ring import decode_pages

    data = seeds.dat_seeds()[name]
    path = Path(tempfile.mkdtemp()) / "seed.dat"
    path.write_bytes(data)
    dat = open_dat(path)
    regions = [(0, 64)]
    at = data.find(b"header_page\0")
    if at >= 0:
        regions.append((at, at + 300))
    for _system, _text, offset in list(dat.formats._text.values())[:40]:
        regions.append((offset, offset + 2000))
    for buf in dat.buffers:
        for cpu in buf.cpus:
            if not cpu.pages.size:
                continue
            regions.append((cpu.file_offset - 64, cpu.file_offset + 64))
            if not cpu.mapped:
                continue
            for page in range(0, cpu.pages.size, dat.page_size):
                regions.append((cpu.file_offset + page, cpu.file_offset + page + 16))
            rec = decode_pages(str(path), cpu.pages, dat.page_size, dat.header_page, 0)
            for p in rec.payload[:: max(1, rec.payload.size // 200)].tolist():
                regions.append((cpu.file_offset + p - 8, cpu.file_offset + p + 16))
    shutil.rmtree(path.parent)
    return [(max(lo, 0), min(hi, len(data))) for lo, hi in regions]


@cache
def _stats_files() -> tuple[str, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        root = seeds.bundle_seed(Path(tmp) / "b")
        files = sorted(p.relative_to(root).as_posix() for p in (root / "stats").rglob("*"))
        files = [f for f in files if (root / f).is_file()]
    weighted = [f for f in files if f.endswith(("vmstat", "split_deferred", "enabled"))]
    return tuple(files + weighted * 8)


def make_case(cls: str, seed: int, index: int) -> dict:
    """The case ``index`` of class ``cls`` in the run with ``seed``: plain data."""
    rng = rng_for(seed, cls, index)
    if cls in ("text", "gzip"):
        texts = seeds.text_seeds()
        name = rng.choice(sorted(texts))
        if cls == "text" or rng.random() < 0.4:
            edits = mu.mutate_text(rng, texts[name], list(texts.values()))
            return {"class": cls, "seed": name, "text_edits": edits, "edits": []}
        data = seeds.gzip_seeds()[name]
        regions = [(0, 10), (len(data) - 8, len(data)), (10, len(data))]
        edits = mu.mutate_bytes(rng, data, regions)
        if rng.random() < 0.2:  # another member after this one
            edits.append([len(data), len(data), data[: rng.randrange(1, len(data))].hex()])
        return {"class": cls, "seed": name, "text_edits": [], "edits": edits}
    if cls == "tracedat":
        name = rng.choice(["small-v6", "small-v6", "small-v6", "lost-v7-zstd"])
        data = seeds.dat_seeds()[name]
        return {"class": cls, "seed": name, "edits": mu.mutate_bytes(rng, data, _dat_regions(name))}
    if cls == "stats":
        files = _stats_files()
        with tempfile.TemporaryDirectory() as tmp:
            root = seeds.bundle_seed(Path(tmp) / "b")
            edits = mu.mutate_tree(rng, list(files), lambda rel: (root / rel).read_bytes())
        return {"class": cls, "seed": "bundle", "edits": edits}
    if cls == "meta":
        return {"class": cls, "seed": "meta.json", "edits": mu.mutate_json(rng, seeds.meta_seed())}
    if cls == "costs":
        return {"class": cls, "seed": "x86.toml", "edits": mu.mutate_toml(rng, seeds.costs_seed())}
    if cls == "outputs":
        return {
            "class": cls,
            "seed": rng.choice(sorted(seeds.text_seeds())),
            "target": rng.choice(OUTPUT_TARGETS),
            "force": rng.random() < 0.7,
            "edits": [],
        }
    raise ValueError(f"unknown fuzz class {cls!r}")


def case_input(case: dict) -> bytes:
    """The bytes of a single-file case (text, gzip, tracedat, meta, costs)."""
    cls, name = case["class"], case["seed"]
    if cls in ("text", "gzip"):
        text = mu.apply(seeds.text_seeds()[name], case["text_edits"])
        if case["text_edits"] and cls == "gzip":
            return gzip.compress(text, mtime=0)
        return mu.apply(seeds.gzip_seeds()[name], case["edits"]) if cls == "gzip" else text
    base = {
        "tracedat": lambda: seeds.dat_seeds()[name],
        "meta": seeds.meta_seed,
        "costs": seeds.costs_seed,
    }[cls]()
    return mu.apply(base, case["edits"])


def seed_digest(case: dict) -> str:
    """sha256 of the seed a case was made from (a regression case holds it: a changed seed
    would replay its edits on other bytes)."""
    cls, name = case["class"], case["seed"]
    if cls in ("text", "outputs"):
        return seeds.digest(seeds.text_seeds()[name])
    if cls == "gzip":
        return seeds.digest(seeds.gzip_seeds()[name] + seeds.text_seeds()[name])
    if cls == "tracedat":
        return seeds.digest(seeds.dat_seeds()[name])
    if cls == "stats":
        return seeds.digest("\n".join(_stats_files()).encode())
    return seeds.digest(seeds.meta_seed() if cls == "meta" else seeds.costs_seed())


# ------------------------------------------------------------------------ running cases


def _guarded(read, *args):
    """(result or None, InputError or None, warnings); anything else is a traceback."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return read(*args), None, caught
        except InputError as err:
            return None, err, caught
        except Exception as err:
            raise Failure("traceback", f"{read.__module__}.{read.__name__}: {err!r}"[:500]) from err


def _text(path: Path) -> Outcome:
    from folio_replay.parsers.text.fast import read_text_fast
    from folio_replay.parsers.text.reference import read_text

    ref, ref_err, _ = _guarded(read_text, path)
    fast, fast_err, _ = _guarded(read_text_fast, path)
    if (ref is None) != (fast is None):
        accepted = "reference" if ref is not None else "fast"
        refused = fast_err if ref is not None else ref_err
        raise Failure("difference", f"only the {accepted} parser accepts ({refused})")
    if ref is None:
        same = ref_err.one_line() == fast_err.one_line()
        return Outcome(False, "" if same else f"errors differ: {ref_err} | {fast_err}")
    if not ref.table.equals(fast.table, check_metadata=True) or ref.lost != fast.lost:
        raise Failure("difference", "fast and reference tables differ")
    return Outcome(True)


def _tracedat(path: Path) -> Outcome:
    from folio_replay.parsers.tracedat.read import read_dat
    from folio_replay.parsers.tracedat.trace_cmd import read_dat as report_dat

    native, err, caught = _guarded(read_dat, path)
    if native is None:
        return Outcome(False, str(err))
    damaged = any(isinstance(w.message, InputWarning) for w in caught)
    if damaged or shutil.which("trace-cmd") is None:
        return Outcome(True, "damage reported" if damaged else "no trace-cmd")
    ref, _, _ = _guarded(report_dat, path, TRACE_CMD_TIMEOUT)
    if ref is None:
        return Outcome(True, "trace-cmd refuses")
    if pc.any(pc.match_substring(ref.table.column("fields"), "[FAILED TO PARSE]")).as_py():
        return Outcome(True, "trace-cmd cannot parse a format")  # its own error marker
    if ref.table.num_rows == 0 < native.table.num_rows:
        # trace-cmd 3.1.6 stops at a format it cannot parse (also one no record uses) and
        # prints no event, exit status 0: a refusal, though a silent one
        return Outcome(True, "trace-cmd prints no event")
    columns = [c for c in ref.table.column_names if c != "fields"]
    if not native.table.select(columns).equals(_plugin_reasons(ref.table).select(columns)):
        raise Failure("difference", f"{native.table.num_rows} native rows vs {ref.table.num_rows}")
    # trace-cmd reports a page's missed events at its first record: the losses before a page
    # without records go unreported there; the native decoder reports them (count unknown)
    extra = Counter((m.cpu, m.count) for m in native.lost)
    extra.subtract((m.cpu, m.count) for m in ref.lost)
    if any(n < 0 or (n > 0 and count is not None) for (_, count), n in extra.items()):
        raise Failure("difference", "lost-event markers differ from trace-cmd's")
    return Outcome(True)


def _plugin_reasons(table):
    """trace-cmd's tlb plugin prints tlb_flush's ``int reason`` unsigned; the kernel's
    ``(%d)`` (and the native decoder) signed: documented in parsers/tracedat/table.py."""
    import pyarrow as pa

    column = table.column("tlb_flush.reason").to_pylist()
    fixed = []
    for value in column:
        number = value.removeprefix("TLB_FLUSH_REASON_") if value else ""
        if number.isdigit() and int(number) >= 1 << 31:
            value = f"TLB_FLUSH_REASON_{int(number) - (1 << 32)}"
        fixed.append(value)
    at = table.schema.get_field_index("tlb_flush.reason")
    return table.set_column(at, "tlb_flush.reason", pa.array(fixed, pa.string()))


def _apply_tree(root: Path, edits: list) -> None:
    for rel, op, arg in edits:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif op != "bytes":
                path.unlink()
        if op == "bytes":
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            path.unlink(missing_ok=True)
            path.write_bytes(mu.apply(data, arg))
        elif op == "empty":
            path.write_bytes(b"")
        elif op == "symlink":
            path.symlink_to(arg)
        elif op == "fifo":
            os.mkfifo(path)
        elif op == "dir":
            path.mkdir()


@lru_cache(maxsize=8)
def _plain_list(path: Path, stamp: tuple) -> dict[str, list[str]]:
    """The values of each name of a ``name value`` file (``stamp``: its inode and times)."""
    values: dict[str, list[str]] = {}
    for line in path.read_bytes().decode("ascii", "replace").splitlines():
        words = line.split()
        if words:
            values.setdefault(words[0], []).extend(words[1:2])
    return values


def _plain_value(tree: Path, source: str, size_kb: int, counter: str) -> int | None:
    """A counter's value read back with no folio-replay code (None: not readable as one)."""
    if source in ("vmstat", "memcg"):
        path = tree / ("vmstat" if source == "vmstat" else "memcg/memory.stat")
        if not path.is_file():
            return None
        st = path.stat()
        values = _plain_list(path, (st.st_ino, st.st_mtime_ns, st.st_size)).get(counter, [])
        return int(values[0]) if len(values) == 1 else None
    rel = f"hugepages-{size_kb}kB/stats/{counter}" if source == "mthp" else counter
    try:
        return int((tree / rel).read_bytes().strip())
    except (OSError, ValueError):
        return None


def _stats(root: Path) -> Outcome:
    from folio_replay.parsers.bundle import load_bundle

    bundle, err, _ = _guarded(load_bundle, root)
    if bundle is None:
        return Outcome(False, str(err))
    deltas, err, _ = _guarded(bundle.stats_delta)
    if deltas is None:
        return Outcome(False, str(err))
    for row in deltas.itertuples(index=False):
        for side, value in (("before", row.before), ("after", row.after)):
            if value is None or value is pd.NA:
                continue
            plain = _plain_value(root / "stats" / side, row.source, row.size_kb, row.counter)
            if plain != int(value):
                raise Failure("wrong", f"{side} {row.source} {row.counter}: {value} vs {plain}")
    return Outcome(True)


def _meta(root: Path) -> Outcome:
    from folio_replay.parsers.bundle import load_bundle

    bundle, err, _ = _guarded(load_bundle, root)
    if bundle is None:
        return Outcome(False, str(err))
    kernel, arch = bundle.meta.get("kernel"), bundle.meta.get("arch")
    if not isinstance(kernel, str) or not _RELEASE.match(kernel.strip()):
        raise Failure("wrong", f"accepted kernel {kernel!r}"[:200])
    if not isinstance(arch, str) or not arch.strip():
        raise Failure("wrong", f"accepted arch {arch!r}"[:200])
    return Outcome(True)


def _costs(path: Path) -> Outcome:
    from folio_replay.replay.costs import tables

    table, err, _ = _guarded(tables.load_table, path)
    if table is None:
        return Outcome(False, str(err))
    for name, cost in table.ops.items():
        if not (math.isfinite(cost.ns) and 0 <= cost.ns <= tables.MAX_NS):
            raise Failure("wrong", f"accepted ops.{name}.ns = {cost.ns}")
    return Outcome(True)


# ------------------------------------------------------------------------------ outputs

OUTPUT_TARGETS = (
    "new",
    "existing-file",
    "the-input",
    "symlink-to-input",
    "inside-input-dir",
    "device",
    "fifo",
    "foreign-dir",
    "our-dir",
    "missing-parent",
    "dangling-symlink",
    "symlink-to-dev-null",
)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(
        [path, *path.rglob("*")] if path.is_dir() and not path.is_symlink() else [path]
    ):
        h.update(str(p).encode())
        if p.is_symlink():
            h.update(os.readlink(p).encode())
        elif p.is_file():
            h.update(p.read_bytes())
        elif p.exists():
            st = os.stat(p)
            h.update(f"{st.st_mode}:{st.st_rdev}".encode())
    return h.hexdigest()


def _outputs(case: dict, work: Path) -> Outcome:
    from click.testing import CliRunner

    from folio_replay.cli import main
    from folio_replay.outputs import MARKER

    inputs = work / "in"
    inputs.mkdir()
    trace = inputs / "trace.txt"
    trace.write_bytes(seeds.text_seeds()[case["seed"]])
    out = work / "out"
    out.mkdir()
    kind = case["target"]
    target = {
        "the-input": trace,
        "inside-input-dir": inputs / "events.parquet",
        "missing-parent": out / "absent" / "events.parquet",
    }.get(kind, out / "events.parquet")
    if kind == "existing-file":
        target.write_bytes(b"old\n")
    elif kind == "symlink-to-input":
        target.symlink_to(trace)
    elif kind == "device":
        if os.geteuid() != 0:
            return Outcome(True, "no mknod")
        os.mknod(target, 0o666 | 0o020000, os.makedev(1, 3))
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind in ("foreign-dir", "our-dir"):
        target.mkdir()
        (target / ("keep.txt" if kind == "foreign-dir" else MARKER)).write_text("x\n")
    elif kind == "dangling-symlink":
        target.symlink_to(work / "nowhere")
    elif kind == "symlink-to-dev-null":
        target.symlink_to("/dev/null")
    kept = {p: _digest(p) for p in (trace, target) if p.is_symlink() or p.exists()}
    args = ["parse", str(trace), "-o", str(target), *(["--force"] if case["force"] else [])]
    result = CliRunner().invoke(main, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise Failure("traceback", repr(result.exception)[:300])
    stderr = result.stderr.splitlines()
    if result.exit_code not in (0, 2):
        raise Failure("wrong", f"exit code {result.exit_code}")
    if result.exit_code == 2 and (
        len(stderr) != 1 or not stderr[0].startswith("folio-replay: error")
    ):
        raise Failure("wrong", f"refusal not one error line: {stderr}")
    leftovers = [p.name for p in (inputs, out, target.parent) for p in p.glob(".*.tmp")]
    if leftovers:
        raise Failure("wrong", f"temporary files left: {leftovers}")
    for path, digest in kept.items():
        replaced = path == target and result.exit_code == 0
        if not replaced and _digest(path) != digest:
            raise Failure("wrong", f"{path.name} changed ({kind}, exit {result.exit_code})")
    if result.exit_code == 0:
        if kind in (
            "the-input",
            "symlink-to-input",
            "device",
            "fifo",
            "foreign-dir",
            "symlink-to-dev-null",
            "missing-parent",
        ):
            raise Failure("wrong", f"wrote over {kind}")
        if target.is_symlink() or not target.is_file():
            raise Failure("wrong", f"{kind}: output is not a regular file")
    return Outcome(result.exit_code == 0, stderr[0] if stderr else "")


def run_case(case: dict) -> Outcome:
    """Run one case; :class:`Failure` when an oracle does not hold."""
    cls = case["class"]
    with tempfile.TemporaryDirectory(prefix="fuzz-", dir=SCRATCH) as tmp:
        work = Path(tmp)
        if cls == "outputs":
            return _outputs(case, work)
        if cls == "stats":
            root = seeds.bundle_seed(work / "bundle")
            _apply_tree(root, case["edits"])
            return _stats(root)
        if cls == "meta":  # a bundle of meta.json and an empty trace
            (work / "meta.json").write_bytes(case_input(case))
            (work / "trace.txt").write_bytes(b"")
            return _meta(work)
        name = {"text": "trace.txt", "gzip": "trace.txt.gz", "tracedat": "trace.dat"}
        path = work / name.get(cls, "table.toml")
        path.write_bytes(case_input(case))
        if cls in ("text", "gzip"):
            return _text(path)
        if cls == "tracedat":
            return _tracedat(path)
        return _costs(path)


def describe(case: dict) -> str:
    return json.dumps(case)[:200]
