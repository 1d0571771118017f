"""Which calls hold which folios (replay/reconstruct/coverage.py), against its definition
worked out pair by pair on the real bundles' ledgers and calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from folio_replay.replay.reconstruct.coverage import Coverage, live_counts, overlapping
from folio_replay.replay.reconstruct.lazyfree import madvise_calls
from folio_replay.replay.reconstruct.partial import _calls
from test_reconstruct import bundles, ids, recon_of

# x86_64 traces give folio addresses, aarch64 and riscv64 ones do not; partial-munmap makes
# 2,048 munmap calls over live folios, cow-after-fork two processes, mixed several sizes
CASES = [
    path
    for scenario in ("partial-munmap", "cow-after-fork-64k", "mixed")
    for path in bundles(scenario)
    if path.parent.name.startswith(("6.12.117", "7.3.4"))
]


def _definition(ledger: pd.DataFrame, calls: pd.DataFrame) -> np.ndarray:
    """Every (folio, call) pair, True where the call holds the folio: same process, the call
    while the folio was allocated, and the folio inside the range (or without an address)."""
    alloc = ledger["alloc_seq"].to_numpy()[:, None]
    end = ledger["end_seq"].to_numpy()
    end = np.where(end < 0, np.iinfo(np.int64).max, end)[:, None]
    address = ledger["address"].to_numpy(dtype=np.float64, na_value=np.nan)[:, None]
    size = ledger["size_kb"].to_numpy()[:, None] * 1024
    seq = calls["enter_seq"].to_numpy()[None, :]
    start = calls["range_start"].to_numpy()[None, :]
    limit = start + calls["range_len"].to_numpy()[None, :]
    same = ledger["process"].to_numpy()[:, None] == calls["process"].to_numpy()[None, :]
    inside = np.isnan(address) | ((address >= start) & (address + size <= limit))
    return same & (alloc < seq) & (seq < end) & inside


def _half_blind(ledger: pd.DataFrame) -> pd.DataFrame:
    """The ledger with every other folio's address removed: both kinds in one process."""
    address = ledger["address"].copy()
    address.iloc[::2] = pd.NA
    return ledger.assign(address=address)


def _ledgers_and_calls(path: Path) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    recon = recon_of(path)
    ledgers = [recon.ledger, _half_blind(recon.ledger)]
    calls = [madvise_calls(recon.events, "MADV_FREE"), _calls(recon.events)]
    return [(ledger, c) for ledger in ledgers for c in calls if not c.empty]


@pytest.mark.parametrize("path", CASES, ids=ids(CASES))
def test_coverage_answers_as_its_pairs_do(path: Path) -> None:
    cases = _ledgers_and_calls(path)
    assert cases
    for ledger, calls in cases:
        held = _definition(ledger, calls)
        assert held.any()
        coverage = Coverage(ledger, calls)
        folio, call = np.nonzero(held)
        addressed = ledger["address"].notna().to_numpy()
        # only the addressed folios' pairs are listed
        listed = set(zip(coverage.folio_idx.tolist(), coverage.call_idx.tolist()))
        assert listed == {(f, c) for f, c in zip(folio, call) if addressed[f]}
        assert coverage.call_counts().tolist() == held.sum(axis=0).tolist()
        sizes = ledger["size_kb"].to_numpy()
        expected = pd.DataFrame({"call": call, "size": sizes[folio]}).value_counts().sort_index()
        assert coverage.call_sizes().to_dict() == expected.to_dict()
        blind_held = held & ~addressed[:, None]
        assert coverage.all_addressed().tolist() == (~blind_held.any(axis=0)).tolist()
        seq = calls["enter_seq"].to_numpy()
        never = np.iinfo(np.int64).max
        first = np.where(held, seq[None, :], never).min(axis=1)
        assert coverage.first_seq().tolist() == first.tolist()
        rows = np.arange(len(ledger))
        last = np.where(held, np.arange(len(calls))[None, :], -1).max(axis=1)
        assert coverage.last_call(rows).tolist() == last.tolist()
        # the latest before each call's own seq, and before every folio's end
        for before in (np.full(len(ledger), int(np.median(seq))), ledger["end_seq"].to_numpy()):
            before = np.where(before < 0, never, before)
            expected_latest = np.where(held & (seq[None, :] < before[:, None]), seq, -1).max(axis=1)
            queried = np.append(rows, -1)  # a folio outside the ledger holds nothing
            got = coverage.latest_seq_before(queried, np.append(before, never))
            assert got.tolist() == [*expected_latest.tolist(), -1]


@pytest.mark.parametrize("path", CASES, ids=ids(CASES))
def test_live_counts_and_overlaps_as_their_pairs_do(path: Path) -> None:
    for ledger, calls in _ledgers_and_calls(path):
        alloc = ledger["alloc_seq"].to_numpy()[:, None]
        end = ledger["end_seq"].to_numpy()
        end = np.where(end < 0, np.iinfo(np.int64).max, end)[:, None]
        seq = calls["enter_seq"].to_numpy()[None, :]
        same = ledger["process"].to_numpy()[:, None] == calls["process"].to_numpy()[None, :]
        alive = same & (alloc < seq) & (seq < end)
        blind = ledger["address"].isna().to_numpy()
        for mask in (blind, ~blind, np.ones(len(ledger), dtype=bool)):
            assert live_counts(ledger, calls, mask).tolist() == alive[mask].sum(axis=0).tolist()
        first = ledger["address"].to_numpy(dtype=np.float64, na_value=np.nan)[:, None]
        last = first + ledger["size_kb"].to_numpy()[:, None] * 1024
        start = calls["range_start"].to_numpy()[None, :].astype(np.float64)
        stop = start + calls["range_len"].to_numpy()[None, :]
        expected = alive & (first < stop) & (last > start)
        folio, call = overlapping(ledger, calls)
        assert sorted(zip(folio.tolist(), call.tolist())) == sorted(
            zip(*(axis.tolist() for axis in np.nonzero(expected)))
        )


ADDRESSED = [path for path in CASES if path.parts[-3] == "x86_64"]


@pytest.mark.parametrize("path", ADDRESSED, ids=ids(ADDRESSED))
def test_pairs_listed_a_chunk_at_a_time_are_the_same(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidates are listed at most CHUNK_PAIRS at a time (bounded memory): tiny chunks give
    the same pairs."""
    import folio_replay.replay.reconstruct.coverage as coverage

    listed = 0
    for ledger, calls in _ledgers_and_calls(path):
        whole = overlapping(ledger, calls), Coverage(ledger, calls)
        monkeypatch.setattr(coverage, "CHUNK_PAIRS", 7)
        chunked = overlapping(ledger, calls), Coverage(ledger, calls)
        monkeypatch.undo()
        assert [x.tolist() for x in whole[0]] == [x.tolist() for x in chunked[0]]
        assert whole[1].folio_idx.tolist() == chunked[1].folio_idx.tolist()
        assert whole[1].call_idx.tolist() == chunked[1].call_idx.tolist()
        listed += len(whole[0][0]) + len(whole[1].folio_idx)
    assert listed > 7
