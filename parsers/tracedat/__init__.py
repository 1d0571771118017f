"""trace-cmd's binary ``trace.dat`` (versions 6 and 7, zstd sections), decoded natively.

:mod:`.container` reads the file's sections, :mod:`.event_formats` and :mod:`.printfmt` the
event formats and print fmts, :mod:`.ring` and :mod:`.walk` the ring-buffer pages,
:mod:`.layout`, :mod:`.render`, :mod:`.values` and :mod:`.table` turn records into the event
table, :mod:`.read` streams a file batch by batch. :mod:`.trace_cmd` is the reference reading
through ``trace-cmd report``.
"""
