#!/usr/bin/env python3
"""Where a MADV_PAGEOUT call's time goes, from ``perf record -g`` samples (perf_pageout.sh).

``perf_agg.py KIND SCRIPT BENCH_OUT PERIOD_NS FOLIOS_PER_CALL BASE_US_PER_CALL`` reads
``perf script -F comm,tid,time,ip,sym`` output (SCRIPT), keeps the samples whose kernel stack
holds ``madvise_pageout``, and prints one CSV row per kernel function (inclusive and self): its
share of those samples, and that share of the call time measured without perf
(BASE_US_PER_CALL, the mean of the untraced runs) per call and per folio. Sampling slows the
calls (about +22% at a 200 us period here), so the shares, not the sampled times, are kept.
BENCH_OUT is unmap_bench's output of the profiled run (its ``pageout_ns=`` lines count the
calls). Writes CSV to stdout: kind,function,how,share,us_per_call,us_per_folio.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter

MIN_SHARE = 0.002  # functions below 0.2% of the samples are left out


def stacks(script: str) -> list[list[str]]:
    """The kernel frames (leaf first) of each sample inside madvise_pageout()."""
    out = []
    with open(script) as fh:
        for block in fh.read().split("\n\n"):
            lines = block.strip().split("\n")
            frames = [
                parts[1]
                for parts in (line.split() for line in lines[1:])
                if len(parts) >= 2 and parts[0].startswith("ffffffff")
            ]
            if "madvise_pageout" in frames:
                out.append(frames[: frames.index("madvise_pageout") + 1])
    return out


def main() -> None:
    kind, script, bench, _period, folios, base = sys.argv[1:7]
    with open(bench) as fh:
        calls = sum("pageout_ns=" in line for line in fh)
    samples = stacks(script)
    inclusive: Counter = Counter()
    own: Counter = Counter()
    for frames in samples:
        own[frames[0]] += 1
        inclusive.update(set(frames))
    writer = csv.writer(sys.stdout)
    writer.writerow(["kind", "function", "how", "share", "us_per_call", "us_per_folio"])
    for how, counts in (("inclusive", inclusive), ("self", own)):
        for function, n in counts.most_common():
            share = n / len(samples)
            if share < MIN_SHARE:
                break
            us = share * float(base)
            per_folio = us / int(folios)
            writer.writerow([kind, function, how, f"{share:.5f}", f"{us:.3f}", f"{per_folio:.4f}"])
    print(f"{kind}: {calls} calls, {len(samples)} samples in madvise_pageout", file=sys.stderr)


if __name__ == "__main__":
    main()
