"""One bundle, end to end: reconstruct, recognise, replay through the models, validate."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
from folio_replay.replay.archs import ARCH_OF_MACHINE, ARCHS
from folio_replay.replay.models import MODELS
from folio_replay.replay.predict import (
    BoundsTable,
    load_tables,
    merge_bounds,
    predictions_frame,
    replay_folios,
)
from folio_replay.replay.recognise import recognise, release_of
from folio_replay.replay.reconstruct import Reconstruction, reconstruct
from folio_replay.replay.report import report_metadata, write_report
from folio_replay.replay.timing import reclaim_calls, timing_frame
from folio_replay.replay.validate import Facts, validate

from folio_replay import parsers
from folio_replay.errors import InputError
from folio_replay.progress import step


@dataclass
class Analysis:
    """Everything folio-replay says about one bundle."""

    bundle: parsers.Bundle
    trace: parsers.Trace
    recon: Reconstruction
    model: str  # the captured kernel's model
    model_evidence: str
    arch: str  # the captured arch, in the cost tables' names
    tables: dict
    bounds: BoundsTable
    predictions: pd.DataFrame

    @property
    def release(self) -> str:
        """The captured kernel's release."""
        return release_of(self.bundle.meta.get("kernel", ""))

    @property
    def emulated(self) -> bool:
        """Whether the capture ran under QEMU (its timings are emulation timings)."""
        return "qemu_command" in self.bundle.meta

    @cached_property
    def facts(self) -> Facts:
        """What validation needs of the reconstruction beyond the models' bounds."""
        return Facts.of(self.recon)

    def deltas(self) -> pd.DataFrame:
        """The bundle's stats deltas."""
        return self.bundle.stats_delta()

    @property
    def episodes(self) -> pd.DataFrame:
        """One row per reclaim episode (the report's ``episodes`` table)."""
        return self.recon.episodes

    @property
    def folios(self) -> pd.DataFrame:
        """One row per large folio per episode (the report's ``folios`` table)."""
        return self.recon.folios

    @property
    def has_stats(self) -> bool:
        """Whether the bundle has both stats trees (needed to validate)."""
        return has_stats(self.bundle)

    def validation(
        self, model: str | None = None, deltas: pd.DataFrame | None = None, check: str = "captured"
    ) -> pd.DataFrame:
        """``model`` (default: the captured one) against ``deltas`` (default: the bundle's)."""
        return validate(
            self.facts,
            self.bounds,
            self.deltas() if deltas is None else deltas,
            model or self.model,
            self.arch,
            check,
        )

    def cross_kernel(self, other: Analysis) -> pd.DataFrame:
        """This capture's folios replayed through ``other``'s kernel's model, against
        ``other``'s counters (a capture of the same scenario on another kernel)."""
        if not self.bounds.has(other.model, self.arch):
            self.bounds = merge_bounds(
                self.bounds,
                replay_folios(self.folios, [other.model], {self.arch: self.tables[self.arch]}),
            )
        return validate(
            self.facts,
            self.bounds,
            other.deltas(),
            other.model,
            self.arch,
            "cross-kernel",
            target=other.facts,
        )

    def timing(self) -> pd.DataFrame:
        """Predicted reclaim time per model and arch next to the measured one."""
        return timing_frame(self.predictions, self.episodes, self.model, self.arch, self.emulated)

    def write_report(self, target: str | Path, force: bool = False) -> Path:
        """Write the report directory (one Parquet file per table, README "Report files")."""
        digests = {arch: table.digest for arch, table in self.tables.items()}
        metadata = report_metadata(
            self.bundle.meta.get("kernel", ""),
            digests,
            self.emulated,
            f"{self.model}: {self.model_evidence}",
            self.trace.lost_events,
        )
        tables = {
            "events": self.trace.table,
            "folios": self.folios,
            "episodes": self.episodes,
            "lazyfree": self.recon.lazyfree,
            "partial": self.recon.partial,
            "predictions": self.predictions,
            "validation": self.validation() if self.has_stats else pd.DataFrame(),
            "timing": self.timing(),
        }
        return write_report(target, tables, metadata, force, inputs=[self.bundle.path])


def has_stats(bundle: parsers.Bundle) -> bool:
    """Whether ``bundle`` has both stats trees (needed to validate)."""
    return not {"stats/before", "stats/after"} & set(bundle.missing)


def captured_machine(bundle: parsers.Bundle) -> str:
    """The captured machine (``uname -m``) from the bundle's meta.json, one the tool knows."""
    machine = bundle.meta.get("arch")
    if machine is None and "meta.json" in bundle.missing:
        raise InputError(
            bundle.path,
            "no meta.json, and the trace does not say which machine recorded it: give "
            f"--machine ({', '.join(ARCH_OF_MACHINE)})",
        )
    if machine not in ARCH_OF_MACHINE:
        raise InputError(Path(bundle.path) / "meta.json", f"unknown or missing arch {machine!r}")
    return machine


def analyse(
    bundle: str | Path | parsers.Bundle,
    models: list[str] | None = None,
    archs: list[str] | None = None,
    costs: str | None = None,
) -> Analysis:
    """Reconstruct and replay one bundle (a path or a loaded :class:`Bundle`) through
    ``models`` (default: every default model) priced on ``archs`` (default: all)."""
    if not isinstance(bundle, parsers.Bundle):
        bundle = parsers.load_bundle(bundle)
    path = bundle.path
    with step(f"read {path}"):
        trace = bundle.read_trace()
    machine = captured_machine(bundle)
    with step("reconstruct episodes and folios"):
        recon = reconstruct(trace, machine, no_swap=bundle.no_swap_device)
    arch = ARCH_OF_MACHINE[machine]
    model, why = recognise(bundle.meta, recon, arch)
    wanted_archs = list(dict.fromkeys([arch, *(archs or ARCHS)]))
    wanted_models = list(
        dict.fromkeys([model, *(models or [name for name, m in MODELS.items() if m.default])])
    )
    tables = load_tables(wanted_archs, costs)
    with step(f"replay {len(recon.folios)} folio unmaps through the models"):
        bounds = replay_folios(recon.folios, wanted_models, tables)
    predictions = predictions_frame(bounds, tables, reclaim_calls(recon.episodes))
    return Analysis(bundle, trace, recon, model, why, arch, tables, bounds, predictions)
