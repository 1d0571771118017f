"""One measured reader, run in its own process by ``bench/run.py`` (so that its peak RSS is its
own): prints the number of events it read.

    python -m bench.tool fast-text|reference-text|naive-regex|native-dat|stream FILE [OUT]
"""

from __future__ import annotations

import re
import sys

# The naive baseline: one regular expression per line, a dict per event (what a first script
# does); the tracefs/trace_pipe line layout of parsers/textformats.py without its variants.
NAIVE_LINE = re.compile(r"^\s*(.*?)-(\d+)\s+\[(\d+)\]\s+\S*\s*(\d+)\.(\d+): (\w+): (.*)$")
NAIVE_FIELD = re.compile(r"(\w+)[=:]\s?(\S+)")


def naive_regex(path: str) -> int:
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            m = NAIVE_LINE.match(line)
            if m:
                comm, pid, cpu, sec, frac, event, fields = m.groups()
                events.append({"comm": comm, "pid": int(pid), "cpu": int(cpu),
                               "ts_ns": int(sec) * 10**9 + int(frac.ljust(9, "0")),
                               "event": event, **dict(NAIVE_FIELD.findall(fields))})
    return len(events)


def main(argv: list[str]) -> None:
    what, path = argv[0], argv[1]
    if what == "fast-text":
        from parsers.fast import read_text_fast
        n = read_text_fast(path).table.num_rows
    elif what == "reference-text":
        from parsers.text import read_text
        n = read_text(path).table.num_rows
    elif what == "naive-regex":
        n = naive_regex(path)
    elif what == "native-dat":
        from parsers.tracedat_table import read_dat
        n = read_dat(path).table.num_rows
    elif what == "stream":
        from parsers.stream import stream_parquet
        n = stream_parquet(path, argv[2], force=True, progress=False).rows
    else:
        raise SystemExit(f"unknown reader {what}")
    print(n)


if __name__ == "__main__":
    main(sys.argv[1:])
