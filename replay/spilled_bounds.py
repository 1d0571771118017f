"""The bounds of a streamed trace, spilled to disk as they grow.

A streamed replay sums the models' bounds per (model, arch, episode, owner, kind, folio size)
over the whole trace, and decides only at the end which models its report shows. Held in
memory they grow with the episodes (a row per episode for every model the report might show on
every arch: 27 rows per episode), and a memcg at its limit makes an episode per few folios.
:class:`SpilledBounds` keeps up to :data:`SPILL_ROWS` rows in memory, then writes them to a
Parquet file (one row group per model and arch), and reads back one model and
arch at a time (all at once when none were written): the sums a
:class:`~folio_replay.replay.predict.BoundsTable` of every segment gives.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from folio_replay.replay.costs.tables import CostTable
from folio_replay.replay.predict import (
    BOUND_COUNTERS,
    KEY_COLUMNS,
    PRIMITIVE_PREFIX,
    TIME_COLUMNS,
    BoundsTable,
)

__all__ = ["SPILL_ROWS", "SpilledBounds"]


SPILL_ROWS = 1 << 16  # bounds rows held in memory (about 25 MB) before they are written


class SpilledBounds:
    """Bounds tables of the folios of one trace, added in order; beyond ``spill_rows`` rows
    they are written to ``path``. The primitive op columns are those of ``tables`` (every op a
    table prices)."""

    def __init__(
        self, path: Path, tables: dict[str, CostTable], spill_rows: int = SPILL_ROWS
    ) -> None:
        ops = sorted({op for table in tables.values() for op in table.ops})
        self.schema = pa.schema(
            [
                *((name, pa.string()) for name in ("model", "arch")),
                ("episode", pa.int64()),
                ("pid", pa.int64()),
                ("kind", pa.string()),
                ("size_kb", pa.int64()),
                ("folios", pa.int64()),
                *(
                    (f"{counter}_{bound}", pa.int64())
                    for counter in BOUND_COUNTERS
                    for bound in ("low", "high")
                ),
                *((name, pa.float64()) for name in TIME_COLUMNS),
                *((PRIMITIVE_PREFIX + op, pa.float64()) for op in ops),
            ]
        )
        self.path, self.spill_rows = path, spill_rows
        self.archs = sorted(tables)
        self._held: list[pd.DataFrame] = []  # the rows not written yet, in order
        self._held_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._groups: dict[tuple[str, str], list[int]] = {}  # row groups per (model, arch)
        self._written = 0
        self._reading = False  # once read back, the file is complete

    def add(self, bounds: BoundsTable) -> None:
        """Add the rows of ``bounds``; write what is held once it is ``spill_rows`` rows.
        Nothing is added once :meth:`of` has read the rows back."""
        if self._reading:
            raise RuntimeError("bounds added after they were read back")
        if not len(bounds):
            return
        self._held.append(bounds.frame)
        self._held_rows += len(bounds)
        if self._held_rows >= self.spill_rows:
            self._spill()

    def _spill(self) -> None:
        """Write the held rows, one row group per model and arch (in their order)."""
        frame = pd.concat(self._held, ignore_index=True)
        frame = frame.reindex(columns=self.schema.names, fill_value=0)
        frame = frame.fillna({name: 0 for name in self.schema.names[len(KEY_COLUMNS) :]})
        self._held, self._held_rows = [], 0
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema)
        codes = frame.groupby(["model", "arch"], sort=False).ngroup().to_numpy()
        order = np.argsort(codes, kind="stable")
        table = pa.Table.from_pandas(frame, self.schema, preserve_index=False).take(order)
        starts = np.flatnonzero(np.diff(codes[order], prepend=-1))
        for start, end in zip(starts.tolist(), [*starts[1:].tolist(), len(order)]):
            combo = (str(frame["model"].iat[order[start]]), str(frame["arch"].iat[order[start]]))
            self._writer.write_table(table.slice(start, end - start), row_group_size=end - start)
            self._groups.setdefault(combo, []).append(self._written)
            self._written += 1

    def read(self, models: Collection[str]) -> Iterator[BoundsTable]:
        """The rows of ``models`` on every arch: in one table when none was written to disk
        (they fit in memory), else one table per model and arch, in sorted order."""
        if self._groups:
            for model in sorted(models):
                for arch in self.archs:
                    yield self.of(model, arch)
            return
        self._reading = True
        wanted = list(models)
        yield BoundsTable(*(f[f["model"].isin(wanted)] for f in self._held))

    def of(self, model: str, arch: str) -> BoundsTable:
        """The rows of ``model`` on ``arch``, equal keys summed in the order they were added."""
        self._reading = True
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        groups = self._groups.get((model, arch), [])
        written = pq.ParquetFile(self.path) if groups else None
        held = [f[(f["model"] == model) & (f["arch"] == arch)] for f in self._held]
        # the rows in the order they were added, summed key by key
        return BoundsTable(
            *(written.read_row_group(group).to_pandas() for group in groups if written), *held
        )

    def __enter__(self) -> SpilledBounds:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close and remove the file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.path.unlink(missing_ok=True)
