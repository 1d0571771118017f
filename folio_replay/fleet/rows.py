"""One bundle's rows of a fleet dataset, made where a Dask worker runs: the bundle is replayed
there and only its summary rows (a few dozen) and its status go back to the client."""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pyarrow as pa

from folio_replay.errors import InputError, InputWarning
from folio_replay.present.validate import mismatches
from folio_replay.replay.analysis import Analysis, analyse

__all__ = [
    "FILE_SCHEMA",
    "PARTITIONS",
    "ROW_SCHEMA",
    "bundle_rows",
    "kernel_series",
    "one_line",
    "replay",
]

# The dataset's partition keys, in directory order (arch=…/kernel_series=…/model=…).
PARTITIONS = ("arch", "kernel_series", "model")
SIZE_TYPE = pa.struct(
    [
        ("size_kb", pa.int64()),
        ("folios", pa.int64()),
        ("split_deferred_low", pa.int64()),
        ("split_deferred_high", pa.int64()),
    ]
)
# The columns of each Parquet file (the partition keys are in its directory names).
FILE_SCHEMA = pa.schema(
    [
        ("bundle", pa.string()),  # the bundle directory, resolved
        ("bundle_id", pa.string()),
        ("release", pa.string()),
        ("captured_model", pa.string()),
        ("captured", pa.bool_()),  # model == captured_model
        ("hypothetical", pa.bool_()),  # a what-if model no kernel runs
        ("folios", pa.int64()),  # large folio unmaps replayed
        ("split_deferred_low", pa.int64()),
        ("split_deferred_high", pa.int64()),
        ("time_ns", pa.float64()),  # predicted reclaim time (cost tables, without tracing)
        ("time_ns_low", pa.float64()),
        ("time_ns_high", pa.float64()),
        ("traced_time_ns", pa.float64()),  # the same with the tracepoints a capture writes
        ("speedup", pa.float64()),  # the captured model's time_ns over this model's
        ("sizes", pa.list_(SIZE_TYPE)),  # per folio size
    ]
)
ROW_SCHEMA = pa.schema([(name, pa.string()) for name in PARTITIONS] + list(FILE_SCHEMA))
_SERIES = re.compile(r"[0-9]+\.[0-9]+")
_TOTALS = [
    "folios",
    "split_deferred_low",
    "split_deferred_high",
    "time_ns",
    "time_ns_low",
    "time_ns_high",
    "traced_time_ns",
]


def kernel_series(release: str) -> str:
    """``6.12`` of ``6.12.117+deb13-cloud-amd64``."""
    match = _SERIES.match(release)
    return match[0] if match else "unknown"


def bundle_rows(analysis: Analysis, bundle_id: str) -> pa.Table:
    """One row per priced arch and model (:data:`ROW_SCHEMA`): the bundle's predicted
    split_deferred and reclaim time, and the speedup over the captured kernel's model."""
    predictions = analysis.predictions
    if predictions.empty:
        return ROW_SCHEMA.empty_table()
    keys = ["arch", "model"]
    totals = predictions.groupby(keys, as_index=False, sort=True)[_TOTALS].sum()
    base = totals[totals["model"] == analysis.model].set_index("arch")["time_ns"]
    speedup = totals["arch"].map(base) / totals["time_ns"]
    totals["speedup"] = speedup.where(np.isfinite(speedup))
    totals["hypothetical"] = totals["model"].map(predictions.groupby("model")["hypothetical"].any())
    sizes = predictions.groupby([*keys, "size_kb"], as_index=False, sort=True)[
        ["folios", "split_deferred_low", "split_deferred_high"]
    ].sum()
    per_size = {
        key: group.drop(columns=keys).to_dict("records")
        for key, group in sizes.groupby(keys, sort=False)
    }
    rows = totals.assign(
        kernel_series=kernel_series(analysis.release),
        bundle=str(analysis.bundle.path.resolve()),
        bundle_id=bundle_id,
        release=analysis.release,
        captured_model=analysis.model,
        captured=totals["model"] == analysis.model,
        sizes=[per_size[key] for key in zip(totals["arch"], totals["model"])],
    )
    table = pa.Table.from_pandas(rows[ROW_SCHEMA.names], schema=ROW_SCHEMA, preserve_index=False)
    return table.replace_schema_metadata()  # no pandas metadata: half of a one-row file


def _validation(analysis: Analysis) -> str:
    """``match``, ``N mismatches`` or why the captured model was not validated."""
    if not analysis.has_stats:
        return "not validated: no stats"
    try:
        bad = mismatches(analysis.validation())
    except InputError as err:
        return f"not validated: {err.one_line()}"
    return f"{bad} mismatches" if bad else "match"


def _check_tables(analysis: Analysis, digests: dict[str, str]) -> None:
    """Refuse an analysis priced with other cost tables than ``digests``."""
    for arch, table in analysis.tables.items():
        if arch in digests and table.digest != digests[arch]:
            raise InputError(
                table.path,
                f"this {arch} cost table is not the one the fleet started with "
                f"(sha256 {table.digest[:12]}…, not {digests[arch][:12]}…): edited during the "
                "run, or the worker's install differs",
            )


def one_line(err: BaseException) -> str:
    """An error as one line: ``FILE:LINE: message`` for bad input, else its type and text."""
    if isinstance(err, InputError):
        return err.one_line()
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def replay(
    path: str,
    bundle_id: str,
    models: list[str] | None = None,
    archs: list[str] | None = None,
    costs: str | None = None,
    digests: dict[str, str] | None = None,
) -> tuple[pa.Table, dict]:
    """Replay one bundle (a Dask task): its rows and its status (``status`` is ``ok`` or the
    bundle's one-line error; a bad bundle is reported, never raised). ``digests``: the cost
    tables' the rows must be priced with (by arch), so that a table edited during the run or a
    worker with other tables gives an error, not rows priced otherwise. Input warnings are
    kept in the status (one worker thread per process keeps them apart)."""
    start = time.monotonic()
    status: dict = {"bundle": path, "bundle_id": bundle_id, "status": "ok"}
    rows = ROW_SCHEMA.empty_table()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        try:
            analysis = analyse(path, models, archs, costs)
            _check_tables(analysis, digests or {})
            rows = bundle_rows(analysis, bundle_id)
            status.update(
                release=analysis.release,
                kernel_series=kernel_series(analysis.release),
                arch=analysis.arch,
                captured_model=analysis.model,
                lost_events=int(analysis.trace.lost_events),
                validation=_validation(analysis),
            )
        except Exception as err:  # a bad bundle must not stop the fleet
            status["status"] = one_line(err)
    status["warnings"] = [
        warning.message.one_line()
        for warning in caught
        if isinstance(warning.message, InputWarning)
    ]
    status["rows"] = rows.num_rows
    status["seconds"] = round(time.monotonic() - start, 3)
    return rows, status
