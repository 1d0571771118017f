"""Per-architecture cost tables (``<arch>.toml``, op vocabulary ``ops.toml``) and their fitting.

:mod:`.tables` loads and checks a table and prices an unmap with it; :mod:`.calibrate` fits a
table's op costs to measured reclaim times (groups of ops in ``calibration.toml``).
"""

from folio_replay.replay.costs.tables import CostTable, OpCost, load_table

__all__ = ["CostTable", "OpCost", "load_table"]
