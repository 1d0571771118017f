"""folio-replay: what batched unmap of lazyfree large folios changes in a workload's reclaim."""

__version__ = "0.1.0"
