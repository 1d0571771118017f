"""One measured reader, run in its own process by ``bench/run.py`` (so that its peak RSS is its
own): prints the number of events it read and the seconds the reading took in the process
(after imports, and after one small real fixture was read to load the compiled kernels).

    python -m bench.tool READER FILE

Readers: ``fast-text`` and ``native-dat`` build the whole table in memory (``read_trace``);
``text-batches`` and ``dat-batches`` decode the same tables a chunk at a time and drop each
as it comes (what ``folio-replay parse`` and any streaming consumer do: memory stays bounded
and is reused); ``dat-batches-1t`` is ``dat-batches`` with one render thread;
``reference-text``, ``naive-regex``. (``folio-replay parse`` itself is timed as a whole command
by ``bench/run.py``.)
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

WARM_TEXT = Path(__file__).resolve().parents[1] / "fixtures/host/tracefs-trace.txt.gz"
WARM_DAT = Path(__file__).resolve().parents[1] / "fixtures/host/trace-v6.dat"

# The naive baseline: one regular expression per line, a dict per event (what a first script
# does); the tracefs/trace_pipe line layout of parsers/text/dialects.py without its variants.
NAIVE_LINE = re.compile(r"^\s*(.*?)-(\d+)\s+\[(\d+)\]\s+\S*\s*(\d+)\.(\d+): (\w+): (.*)$")
NAIVE_FIELD = re.compile(r"(\w+)[=:]\s?(\S+)")


def naive_regex(path: str) -> int:
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            m = NAIVE_LINE.match(line)
            if m:
                comm, pid, cpu, sec, frac, event, fields = m.groups()
                events.append(
                    {
                        "comm": comm,
                        "pid": int(pid),
                        "cpu": int(cpu),
                        "ts_ns": int(sec) * 10**9 + int(frac.ljust(9, "0")),
                        "event": event,
                        **dict(NAIVE_FIELD.findall(fields)),
                    }
                )
    return len(events)


def main(argv: list[str]) -> None:
    what, path = argv[0], argv[1]
    if what == "fast-text":
        from folio_replay.parsers.text.fast import read_text_fast

        read_text_fast(WARM_TEXT)
        run = lambda: read_text_fast(path).table.num_rows  # noqa: E731
    elif what == "reference-text":
        from folio_replay.parsers.text.reference import read_text

        run = lambda: read_text(path).table.num_rows  # noqa: E731
    elif what == "naive-regex":
        run = lambda: naive_regex(path)  # noqa: E731
    elif what == "text-batches":
        from folio_replay.parsers.text.fast import parse_chunks, read_text_fast

        read_text_fast(WARM_TEXT)
        run = lambda: sum(t.num_rows for t in parse_chunks(path).tables)  # noqa: E731
    elif what in ("dat-batches", "dat-batches-1t"):
        from folio_replay.parsers.tracedat import table as tracedat_table
        from folio_replay.parsers.tracedat.read import DatBatches, read_dat

        if what == "dat-batches-1t":
            tracedat_table.RENDER_THREADS = 1
        read_dat(WARM_DAT)
        run = lambda: sum(t.num_rows for t in DatBatches(path))  # noqa: E731
    elif what == "native-dat":
        from folio_replay.parsers.tracedat.read import read_dat

        read_dat(WARM_DAT)
        run = lambda: read_dat(path).table.num_rows  # noqa: E731
    else:
        raise SystemExit(f"unknown reader {what}")
    start = time.perf_counter()
    n = run()
    print(n, f"{time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
