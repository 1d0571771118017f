"""Measured vs predicted MADV_PAGEOUT time, and the predicted vs measured speedup."""

from __future__ import annotations

import pandas as pd

PAGEOUT_KINDS = ("madvise_pageout", "process_madvise_pageout")


def pageout_calls(episodes: pd.DataFrame) -> set[int]:
    """The episodes that are MADV_PAGEOUT calls (madvise or process_madvise): each pays the
    call's own cost once (``pageout_call``)."""
    return set(episodes.loc[episodes["kind"].isin(PAGEOUT_KINDS), "episode"].tolist())


MEMCG_CALL_KINDS = ("memcg_reclaim", "proactive_reclaim")


def reclaim_calls(episodes: pd.DataFrame) -> dict[int, dict[str, int]]:
    """The calls of each episode whose own work a cost table prices beyond its folios
    (``{episode: {op: calls}}``): a MADV_PAGEOUT call's ``pageout_call``, once; the
    ``memcg_reclaim_call`` of every try_to_free_mem_cgroup_pages() call the trace shows (a
    memcg_reclaim begin/end pair: a memcg limit episode is one, with the pairs folded into it;
    a proactive write makes its ``nested`` pairs). Every model makes the calls the trace shows
    (each reclaims at least SWAP_CLUSTER_MAX pages or one PMD THP under either kernel)."""
    calls: dict[int, dict[str, int]] = {e: {"pageout_call": 1} for e in pageout_calls(episodes)}
    memcg = episodes[episodes["kind"].isin(MEMCG_CALL_KINDS)]
    for episode, kind, nested in zip(memcg["episode"], memcg["kind"], memcg["nested"]):
        count = int(nested) + (kind == "memcg_reclaim")
        if count:
            calls[int(episode)] = {"memcg_reclaim_call": count}
    return calls


def measured_pageout_ns(episodes: pd.DataFrame) -> int:
    """Total measured enter → exit time of the capture's MADV_PAGEOUT calls."""
    rows = episodes[episodes["kind"].isin(PAGEOUT_KINDS) & episodes["duration_ns"].notna()]
    return int(rows["duration_ns"].sum())


def predicted_pageout_ns(
    predictions: pd.DataFrame, episodes: pd.DataFrame, column: str = "traced_time_ns"
) -> dict[tuple[str, str], float]:
    """Predicted time of the capture's MADV_PAGEOUT calls per (model, arch) (the mean of the
    bounds): by default with the tracepoint records a capture writes priced in, comparable
    with a captured time (``column="time_ns"``: untraced). A (model, arch) without rows is
    absent (0 ns)."""
    pageout = predictions[predictions["episode"].isin(pageout_calls(episodes))]
    return {
        key: float(group.sum())
        for key, group in pageout.groupby(["model", "arch"], sort=False)[column]
    }


def speedup_row(label: str, predicted: float, measured: float) -> dict:
    """A speedup with its relative error (predicted / measured - 1)."""
    error = predicted / measured - 1 if measured else float("nan")
    return {
        "quantity": label,
        "predicted": predicted,
        "measured": measured,
        "error": error,
        "within_20pct": abs(error) <= 0.20,
    }


def timing_frame(
    predictions: pd.DataFrame, episodes: pd.DataFrame, model: str, arch: str, emulated: bool
) -> pd.DataFrame:
    """Predicted MADV_PAGEOUT time per model and arch next to the measured time.

    The measured time belongs to the captured kernel (``model``) on the captured ``arch``;
    ``error`` is given for that row only (predicted / measured - 1). The models price large
    folios only: a capture whose reclaim saw none (e.g. folios split before reclaim) has no
    rows.
    """
    measured = measured_pageout_ns(episodes)
    summed = predicted_pageout_ns(predictions, episodes)
    rows = []
    archs = sorted(predictions["arch"].unique())
    for each_model in sorted(predictions["model"].unique()):
        for each_arch in archs:
            predicted = summed.get((each_model, each_arch), 0.0)
            captured = each_model == model and each_arch == arch
            rows.append(
                {
                    "model": each_model,
                    "arch": each_arch,
                    "predicted_ns": predicted,
                    "measured_ns": measured if captured else None,
                    "error": predicted / measured - 1 if captured and measured else None,
                    "emulated": emulated,
                }
            )
    return pd.DataFrame(
        rows, columns=["model", "arch", "predicted_ns", "measured_ns", "error", "emulated"]
    )


def speedups(old, new) -> pd.DataFrame:
    """Predicted vs measured speedup of MADV_PAGEOUT from ``old``'s kernel to ``new``'s.

    Predicted from each capture on its own arch: the old capture replayed through the new
    kernel's model, and the new capture replayed through the old kernel's model; measured: the
    old capture's time over the new one's. Both captures must run the same scenario.
    """
    old_ns, new_ns = (
        measured_pageout_ns(old.recon.episodes),
        measured_pageout_ns(new.recon.episodes),
    )
    # a capture without a MADV_PAGEOUT call has no time to compare: not measurable (nan)
    measured = old_ns / new_ns if old_ns and new_ns else float("nan")
    rows = []
    for label, capture in (("from the old capture", old), ("from the new capture", new)):
        predicted = predicted_pageout_ns(capture.predictions, capture.recon.episodes)
        slow = predicted.get((old.model, capture.arch), 0.0)
        fast = predicted.get((new.model, capture.arch), 0.0)
        rows.append(
            speedup_row(
                f"{old.model}→{new.model} speedup {label}",
                slow / fast if fast else float("nan"),
                measured,
            )
        )
    return pd.DataFrame(rows).assign(emulated=old.emulated or new.emulated)
