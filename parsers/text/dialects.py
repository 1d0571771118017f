"""The line syntax of the four text trace formats, and telling them apart.

* ``tracefs-trace``: the ``trace`` file of a tracefs instance: a ``#`` header, then one line per
  event ``COMM-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS``; the latency flags column
  (irqs-off/need-resched/...: 5 characters since 6.x, 4 before) is absent with
  ``options/irq-info`` off, and ``(TGID)`` follows the pid with ``options/record-tgid`` on.
* ``tracefs-pipe``: ``trace_pipe`` reads: the same lines without the header.
* ``trace-cmd-report``: ``trace-cmd report`` text: ``cpus=N`` first, lines prefixed with the
  instance name for ``extract -B`` buffers, the event name padded with blanks (after the time
  since the previous event, ``(+NS)``, with ``--ts-diff``); with ``-l`` (latency format) the
  CPU without brackets, followed by the latency flags, and the comm cut to 8 characters.
* ``perf-script``: ``perf script`` default text: ``COMM PID [CPU] TIMESTAMP: SYSTEM:EVENT: FIELDS``
  (``COMM PID/TID [CPU] ...`` with ``-F +pid``: the thread id is the pid column, as in tracefs;
  side-band ``PERF_RECORD_*`` lines other than lost events are skipped).

An event's ``fields`` are the text after ``EVENT:`` (trace-cmd's padding blanks removed); for
tracefs's own syscall lines, the text inside ``sys_NAME(...)`` or after ``sys_NAME -> ``.

Lost events without a marker: a tracefs ``trace`` file read after its ring buffer wrapped
says in its header ``# entries-in-buffer/entries-written: KEPT/WRITTEN``; the WRITTEN - KEPT
overwritten events count as lost, on no one CPU (a marker with cpu -1).

Lost-event markers: tracefs prints ``CPU:N [LOST K EVENTS]``, or ``CPU:N [LOST EVENTS]`` when
the count is unknown (kernel/trace/trace.c, print_trace_line); trace-cmd report prints ``CPU:N [K
EVENTS DROPPED]``, or ``CPU:N [EVENTS
DROPPED]`` when the count is unknown (trace-cmd, lib/trace-cmd/trace-input.c); ``perf script
--show-lost-events`` prints ``COMM PID [CPU] TIMESTAMP: PERF_RECORD_LOST lost K`` (without that
option perf only says "lost N chunks" on stderr: the text then carries no marker).
"""

from __future__ import annotations

import re

TRACEFS_TRACE = "tracefs-trace"
TRACEFS_PIPE = "tracefs-pipe"
TRACE_CMD_REPORT = "trace-cmd-report"
PERF_SCRIPT = "perf-script"

_TS = r"(?P<sec>\d+)\.(?P<frac>\d+):"

TRACEFS_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:\S{4,5}\s+)?" + _TS + r" (?P<body>.*)$"
)
REPORT_LINE = re.compile(
    r"^(?:(?P<instance>[\w.-]+): )?\s*(?P<comm>.*?)-(?P<pid>\d+)\s+"
    # "[CPU]"; trace-cmd report -l (latency format): "CPU" and the latency flags ("d..2."),
    # the comm cut to 8 characters
    r"(?:\[(?P<cpu>\d+)\]|(?P<latency_cpu>\d+)[^\s\d]\S*)\s+"
    + _TS
    # trace-cmd report --ts-diff: "(+NS)" first, blanks in its place on a CPU's first line
    + r" \s*(?:\(\+\d+\)\s+)?(?P<body>.*)$"
)
PERF_LINE = re.compile(
    r"^\s*(?P<comm>.*?)\s+(?:\d+/)?(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+"
    + _TS
    + r"\s+(?:[\w-]+):(?P<body>\w+:.*)$"
)

# The event part of a line: "NAME: FIELDS" (trace-cmd pads the blanks after the colon).
EVENT_BODY = re.compile(r"^(?P<event>\w+):\s*(?P<fields>.*)$")
# tracefs prints syscall events as "sys_NAME(ARGS)" and "sys_NAME -> RET"
# (kernel/trace/trace_syscalls.c, print_syscall_enter/print_syscall_exit).
SYSCALL_ENTER_BODY = re.compile(r"^sys_(?P<name>\w+)\((?P<fields>.*)\)$")
SYSCALL_EXIT_BODY = re.compile(r"^sys_(?P<name>\w+) -> (?P<fields>.*)$")

TRACEFS_LOST = re.compile(r"^CPU:(?P<cpu>\d+) \[LOST (?:(?P<count>\d+) )?EVENTS\]$")
REPORT_LOST = re.compile(r"^(?:[\w.-]+: )?CPU:(?P<cpu>\d+) \[(?:(?P<count>\d+) )?EVENTS DROPPED\]$")
PERF_LOST = re.compile(
    r"^\s*.*?\s+(?:\d+/)?\d+\s+\[(?P<cpu>\d+)\]\s+"
    + _TS
    + r"\s+PERF_RECORD_LOST lost (?P<count>\d+)$"
)
# perf's side-band records, printed with --show-task-events, --show-mmap-events,
# --show-switch-events and the like (tools/perf/builtin-script.c, "PERF_RECORD_<TYPE>"): no
# tracepoint event, skipped (PERF_RECORD_LOST is the lost-events marker above).
PERF_SIDEBAND = re.compile(
    r"^\s*.*?\s+(?:-?\d+/)?-?\d+\s+\[(?P<cpu>\d+)\]\s+" + _TS + r"\s+PERF_RECORD_(?!LOST)\w+"
)
# The tracefs ``trace`` header's count of the events in the buffer and of all those written
# since it was last cleared (kernel/trace/trace.c, print_event_info()): the difference was
# overwritten when the ring buffer wrapped, with no [LOST] marker in the text.
ENTRIES_HEADER = re.compile(
    r"^#\s*entries-in-buffer/entries-written:\s*(?P<kept>\d+)/(?P<written>\d+)"
)
# Lines trace-cmd report prints before the events.
REPORT_HEADER = re.compile(r"^(?:cpus=\d+|version = \d+)$")

LINE_PATTERNS = {
    TRACEFS_TRACE: TRACEFS_LINE,
    TRACEFS_PIPE: TRACEFS_LINE,
    TRACE_CMD_REPORT: REPORT_LINE,
    PERF_SCRIPT: PERF_LINE,
}
LOST_PATTERNS = {
    TRACEFS_TRACE: TRACEFS_LOST,
    TRACEFS_PIPE: TRACEFS_LOST,
    TRACE_CMD_REPORT: REPORT_LOST,
    PERF_SCRIPT: PERF_LOST,
}


def overwritten(line: str) -> int:
    """Events the ring buffer overwrote, from a tracefs ``trace`` header line (0 for any other
    line)."""
    match = ENTRIES_HEADER.match(line)
    return max(0, int(match["written"]) - int(match["kept"])) if match else 0


def is_comment(line: str) -> bool:
    """A header or comment line (``#`` first), which carries no event."""
    return line.startswith("#")


# A tracefs or trace-cmd report line whose time stamp has no fraction: a trace clock that
# counts cycles or ticks (counter, uptime, x86-tsc) prints " %12llu" (kernel/trace/trace.c,
# trace_print_time() with in_ns 0).
COUNTED_TIME_LINE = re.compile(
    r"^(?:[\w.-]+: )?\s*.*?-\d+\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[\d+\]\s+(?:\S{4,5}\s+)?\d+: "
)


def unknown_format(line: str) -> str:
    """Why the first event line ``line`` of a text trace of no known format is refused."""
    if COUNTED_TIME_LINE.match(line):
        return (
            "time stamps without a fraction: the trace clock counts cycles or ticks (counter, "
            "uptime, x86-tsc), not nanoseconds; trace with trace_clock local, mono or boot"
        )
    return "unknown format (not tracefs, trace-cmd report or perf script text)"


def detect(lines: list[str], saw_tracer_header: bool) -> str | None:
    """The format of a text trace from its first non-comment lines, or None if unknown.

    ``saw_tracer_header`` says whether the ``#`` header had tracefs's ``# tracer:`` line,
    which tells a ``trace`` read from a ``trace_pipe`` read.
    """
    for line in lines:
        if REPORT_HEADER.match(line) or REPORT_LOST.match(line):
            return TRACE_CMD_REPORT
        if PERF_LINE.match(line) or PERF_LOST.match(line) or PERF_SIDEBAND.match(line):
            return PERF_SCRIPT
        if TRACEFS_LINE.match(line) or TRACEFS_LOST.match(line):
            return TRACEFS_TRACE if saw_tracer_header else TRACEFS_PIPE
    return None
