"""Text traces (tracefs ``trace``/``trace_pipe``, ``trace-cmd report``, ``perf script``).

:mod:`.reference` is the reference parser (one regular expression per line, the ground truth);
:mod:`.fast` reads the same table with compiled scanners (:mod:`.chunks`, :mod:`.scan`,
:mod:`.typed`, :mod:`.values`, :mod:`.strings`, :mod:`.names`, :mod:`.nulls`) and falls back to
the reference code for every line shape it does not decide itself. :mod:`.dialects` holds the
line syntax of each text format; :mod:`.fields` reads one event's typed values.
"""
