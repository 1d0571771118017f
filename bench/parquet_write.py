"""What writing event tables to Parquet costs, per event and per column, on one thread.

``folio-replay parse`` of a trace.dat decodes at 11 M events/s (bench/run.py) but writes
Parquet at about 2.5 M events/s: this benchmark says where the writing time goes and what the
writer's options change. It decodes a trace.dat built from the v6 host fixture
(:func:`bench.make_inputs.make_dat`) into the event tables ``parse`` writes (one per batch),
then times, best of 3 on one thread (the tables in memory, the file on the page cache):

* the shipped writer options (:func:`folio_replay.parsers.parquet.event_write_options`);
* the same with other row-group sizes, write batch and page sizes, data page v2 and codecs;
* each column alone, summed into the columns an event fills and the ones it leaves null.

Prints a Markdown section; ``--write`` puts it in ``bench/RESULTS.md`` between its markers.

Usage: python -m bench.parquet_write [--copies 68] [--write]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from folio_replay.parsers.parquet import event_write_options
from folio_replay.parsers.stream import EventChunks

from bench.make_inputs import make_dat
from bench.run import DAT_FIXTURE, machine, write_section

BEGIN, END = "<!-- bench/parquet_write.py: begin -->", "<!-- bench/parquet_write.py: end -->"
VARIANTS = {
    "shipped options (one row group per batch)": {},
    "row groups of 4 batches": {"group": 4},
    "one row group for the file": {"group": 0},
    "write_batch_size 65536": {"write_batch_size": 65536},
    "data_page_size 1 MiB": {"data_page_size": 1 << 20},
    "data page v2": {"data_page_version": "2.0"},
    "no compression": {"compression": "none"},
    "lz4": {"compression": "lz4"},
    "zstd": {"compression": "zstd"},
}


def write_seconds(tables: list[pa.Table], path: Path, group: int = 1, **options) -> float:
    """Best of 3 wall seconds to write ``tables`` (``group`` of them per row group, 0: all)."""
    schema = tables[0].schema
    group = group or len(tables)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with pq.ParquetWriter(path, schema, **{**event_write_options(schema), **options}) as w:
            for i in range(0, len(tables), group):
                table = pa.concat_tables(tables[i : i + group])
                w.write_table(table, row_group_size=table.num_rows)
        best = min(best, time.perf_counter() - start)
    return best


def column_seconds(tables: list[pa.Table], path: Path) -> dict[str, tuple[float, float]]:
    """Per column: (seconds to write it alone, share of its rows that are null)."""
    out = {}
    rows = sum(t.num_rows for t in tables)
    for name in tables[0].column_names:
        alone = [t.select([name]) for t in tables]
        nulls = sum(t.column(0).null_count for t in alone) / rows
        out[name] = (write_seconds(alone, path), nulls)
    return out


def section(events: int, batches: int, variants: dict, columns: dict, started: str) -> str:
    shipped = variants["shipped options (one row group per batch)"]
    null_cols = {n: s for n, (s, nulls) in columns.items() if nulls == 1.0}
    some = {n: s for n, (s, nulls) in columns.items() if nulls < 1.0}
    lines = [
        BEGIN,
        "## Parquet writing (`bench/parquet_write.py`)",
        "",
        f"Latest run: {started}, `python -m bench.parquet_write --write`.",
        "",
        f"Machine: {machine()}.",
        "",
        f"{events:,} events of the v6 trace.dat fixture repeated, decoded into the {batches} "
        "event tables `folio-replay parse` writes (one per batch), written on one thread from "
        "memory (best of 3):",
        "",
        "| writer | s | M events/s | file MiB |",
        "|---|---:|---:|---:|",
    ]
    for label, (seconds, mib) in variants.items():
        lines.append(f"| {label} | {seconds:.3f} | {events / seconds / 1e6:.2f} | {mib:.1f} |")
    lines += [
        "",
        f"Each of the {len(columns)} columns written alone: the {len(some)} columns some event "
        f"fills take {sum(some.values()):.3f} s, the {len(null_cols)} columns no event of this "
        f"trace fills {sum(null_cols.values()):.3f} s (their definition levels are written row by "
        f"row all the same); the largest: "
        + ", ".join(f"`{n}` {s:.3f} s" for n, s in sorted(some.items(), key=lambda kv: -kv[1])[:4])
        + ".",
        "",
        f"So one core writes at most ~{events / shipped[0] / 1e6:.1f} M events/s whatever the "
        "options, and the decoding (11 M events/s on both vCPUs, 7 M on one: bench/run.py) "
        "shares the two vCPUs with it: even with the writing spread over both, 2 vCPUs give at "
        f"most 2 / (1/7 + 1/{events / shipped[0] / 1e6:.1f}) = "
        f"{2 / (1 / 7.0 + shipped[0] / events * 1e6):.1f} M events/s, below issue 13's 5 M.",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=68, help="fixture copies (~15 k events)")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="folio-parquet-") as work:
        dat, out = Path(work) / "trace.dat", Path(work) / "events.parquet"
        make_dat(str(DAT_FIXTURE), str(dat), args.copies)
        tables = [t.replace_schema_metadata(None) for t in EventChunks(str(dat))]
        events = sum(t.num_rows for t in tables)
        variants = {}
        for label, options in VARIANTS.items():
            seconds = write_seconds(tables, out, **options)
            variants[label] = (seconds, os.path.getsize(out) / 2**20)
        columns = column_seconds(tables, out)
    text = section(events, len(tables), variants, columns, started)
    print(text)
    if args.write:
        write_section(text, BEGIN, END)


if __name__ == "__main__":
    main()
