"""Low-level helpers of the compiled readers: byte intrinsics for numba (:mod:`.byteops`),
page-table control of mapped trace files (:mod:`.mapped`) and buffer reuse (:mod:`.recycle`)."""
