"""A report directory (``folio-replay replay -o``) read back: its tables and what its metadata
says (kernel, captured model, lost events, timings)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from folio_replay.errors import InputError

__all__ = ["ALL_TABLES", "SUMMARY_TABLES", "Report", "load_report"]

# The tables a summary reads (the events and folios tables are read only when asked for: they
# grow with the trace; their row counts come from the Parquet footers).
SUMMARY_TABLES = (
    "episodes",
    "lazyfree",
    "partial",
    "predictions",
    "validation",
    "timing",
)
ALL_TABLES = (*SUMMARY_TABLES, "folios")


@dataclass
class Report:
    """The tables of one report directory (a missing table is an empty frame) and its
    ``folio_replay.*`` metadata."""

    path: Path
    tables: dict[str, pd.DataFrame]
    meta: dict[str, str]

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    def rows(self, name: str) -> int:
        """The rows of table ``name``, read or not (0 when the report has no such file)."""
        if name in self.tables:
            return len(self.tables[name])
        file = self.path / f"{name}.parquet"
        return pq.read_metadata(file).num_rows if file.is_file() else 0

    @cached_property
    def predicted_models(self) -> list[str]:
        """The models the predictions hold, in the order they first occur."""
        return self._distinct("predictions", "model")

    @cached_property
    def priced_archs(self) -> list[str]:
        """The archs the predictions are priced on, in the order they first occur."""
        return self._distinct("predictions", "arch")

    @cached_property
    def marked_hypothetical(self) -> set[str] | None:
        """The models the predictions mark ``hypothetical`` (what-ifs); None when they have
        no such column."""
        predictions = self["predictions"]
        if "hypothetical" not in predictions:
            return None
        marked = predictions["hypothetical"].fillna(False).astype(bool)
        return set(predictions.loc[marked, "model"].unique())

    def _distinct(self, name: str, column: str) -> list[str]:
        table = self[name]
        return [str(v) for v in table[column].unique()] if len(table) else []

    @property
    def name(self) -> str:
        """What the report is of: its directory's name."""
        return self.path.name

    @property
    def kernel(self) -> str:
        """The captured kernel's ``/proc/version`` line."""
        return self.meta.get("kernel", "")

    @property
    def release(self) -> str:
        """The captured kernel's release."""
        words = self.kernel.split()  # "Linux version 6.12.117+deb13-cloud-amd64 (...) ..."
        return words[2] if words[:2] == ["Linux", "version"] and len(words) > 2 else self.kernel

    @property
    def captured_model(self) -> str:
        """The captured kernel's model."""
        return self.meta.get("captured_model", "").split(":", 1)[0]

    @property
    def model_evidence(self) -> str:
        """Why the captured kernel runs that model."""
        return self.meta.get("captured_model", "").partition(": ")[2]

    @property
    def captured_arch(self) -> str | None:
        """The captured arch (cost tables' name): validation's arch, else the timing row that
        has a measured time; ``None`` when neither says."""
        validation = self["validation"]
        if len(validation):
            return str(validation["arch"].iloc[0])
        timing = self["timing"]
        if len(timing) and "measured_ns" in timing:
            measured = timing[timing["measured_ns"].notna()]
            if len(measured):
                return str(measured["arch"].iloc[0])
        return None

    @property
    def lost_events(self) -> int:
        """Events the trace lost."""
        return int(self.meta.get("lost_events", "0") or 0)

    @property
    def emulated(self) -> bool:
        """Whether the measured times are QEMU TCG emulation timings."""
        return "emulation" in self.meta.get("timings", "")


def _meta(path: Path) -> dict[str, str]:
    metadata = pq.read_schema(path).metadata or {}
    prefix = b"folio_replay."
    return {
        key[len(prefix) :].decode(): value.decode()
        for key, value in metadata.items()
        if key.startswith(prefix)
    }


def load_report(path: str | Path, tables: tuple[str, ...] = SUMMARY_TABLES) -> Report:
    """Read ``tables`` of the report directory ``path``."""
    path = Path(path)
    if not (path / "predictions.parquet").is_file():
        raise InputError(path, "not a report directory (no predictions.parquet)")
    frames = {
        name: pq.read_table(path / f"{name}.parquet").to_pandas()
        for name in tables
        if (path / f"{name}.parquet").is_file()
    }
    return Report(path, frames, _meta(path / "predictions.parquet"))
