"""A fuzz worker process: reads one JSON request per line on stdin (``{"class", "seed",
"index"}`` to make a case, or ``{"case": {...}}`` to replay one), runs it and writes one JSON
result per line on stdout. Run by :mod:`.run`, which watches it for crashes and hangs."""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback

from .targets import Failure, make_case, run_case

# A crafted size must not make a case allocate without bound: beyond this much data the
# allocation fails (MemoryError: a traceback) instead of taking the machine's memory.
DATA_LIMIT = 6 << 30


def main() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (DATA_LIMIT, DATA_LIMIT))
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the code under test prints stays off the protocol
    for line in sys.stdin:
        request = json.loads(line)
        case = request.get("case") or make_case(request["class"], request["seed"], request["index"])
        start = time.monotonic()
        try:
            outcome = run_case(case)
            status = "accepted" if outcome.accepted else "refused"
            detail = outcome.detail
        except Failure as failure:
            status, detail = failure.kind, failure.detail
        except BaseException as err:
            status, detail = (
                "traceback",
                "harness: " + "".join(traceback.format_exception_only(err)).strip()[:500],
            )
        result = {
            "status": status,
            "detail": detail,
            "case": case,
            "seconds": round(time.monotonic() - start, 4),
            "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
        out.write(json.dumps(result) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
