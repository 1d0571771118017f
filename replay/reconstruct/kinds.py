"""Each folio's kind when reclaim met it, decided from the trace, with the evidence.

Kinds (folio flags of mm/rmap.c try_to_unmap_one() and mm/vmscan.c shrink_folio_list()):
- ``file``: a page-cache folio (``mm_filemap_add_to_page_cache`` of its pfn and order, or
  LRU flags ``f``);
- ``shmem``: a shmem/tmpfs folio (page cache, LRU flags ``f`` with ``b`` swap-backed);
- ``lazyfree``: an anonymous folio a MADV_FREE of its process covered (madvise_free_pte_range()
  clears swapbacked), not redirtied and kept by reclaim since (try_to_unmap_one() sets
  swapbacked again) and not written to swap in the episode;
- ``swapbacked``: an anonymous folio that is not lazyfree: written to swap in the episode
  (``mm_vmscan_write_folio`` of its pfn), kept after a redirty, or never covered by a MADV_FREE
  of a traced process;
- ``undecided``: anonymous, and the trace holds no syscall events to tell lazyfree from
  swap-backed: replayed as each (bounds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.coverage import Coverage
from folio_replay.replay.reconstruct.episodes import Windows
from folio_replay.replay.reconstruct.events import EventArrays
from folio_replay.replay.reconstruct.joins import codes, equals, latest_before
from folio_replay.replay.reconstruct.prior import Prior
from folio_replay.replay.reconstruct.rss import MEMBERS

__all__ = ["KINDS", "KindEvidence", "member_of_kind"]

KINDS = ("lazyfree", "swapbacked", "file", "shmem", "undecided")
_MEMBER = {
    "lazyfree": MEMBERS.index("MM_ANONPAGES"),
    "swapbacked": MEMBERS.index("MM_ANONPAGES"),
    "undecided": MEMBERS.index("MM_ANONPAGES"),
    "file": MEMBERS.index("MM_FILEPAGES"),
    "shmem": MEMBERS.index("MM_SHMEMPAGES"),
}


def member_of_kind(kinds: np.ndarray) -> np.ndarray:
    """The rss_stat counter (index into MEMBERS) a folio of each kind is counted in."""
    return np.array([_MEMBER[k] for k in kinds.tolist()], dtype=np.int64)


@dataclass
class KindEvidence:
    """What the trace says about folio kinds: MADV_FREE calls covering each ledger folio,
    swap writes per episode, and whether syscalls were traced at all."""

    events: EventArrays
    ledger: pd.DataFrame
    freed: Coverage  # the MADV_FREE calls that hold each ledger folio
    syscalls_traced: bool
    lazy_processes: np.ndarray  # process keys (mm ids) of the MADV_FREE callers
    prior: Prior = field(default_factory=Prior)  # facts of earlier segments

    @classmethod
    def from_trace(
        cls,
        events: EventArrays,
        freed: Coverage,
        prior: Prior | None = None,
    ) -> KindEvidence:
        """Collect the evidence of one trace (``freed``: the ledger folios its MADV_FREE calls
        hold; ``prior``: what earlier segments established)."""
        prior = prior or Prior()
        traced = any(name.startswith("sys_enter_") for name in events.names)
        return cls(
            events,
            freed.ledger,
            freed,
            traced,
            np.union1d(
                freed.calls["process"].to_numpy(np.int64),
                np.fromiter(prior.lazy_processes, dtype=np.int64),
            ),
            prior,
        )

    def _swap_writes(self, folios: pd.DataFrame, episodes: pd.DataFrame) -> np.ndarray:
        """Whether each record's folio was written to swap (RECLAIM_WB_ANON) in its episode."""
        rows = self.events.rows("mm_vmscan_write_folio")
        written = np.zeros(len(folios), dtype=bool)
        if not len(rows):
            return written
        codes, flags = self.events.codes("vmscan.flags", rows)
        anon = np.array(["RECLAIM_WB_ANON" in f for f in flags], dtype=bool)[codes]
        rows = rows[anon]
        where = Windows(episodes).locate(self.events.pid[rows], rows)
        hits = pd.MultiIndex.from_arrays([where, self.events.ints("vmscan.pfn", rows)])
        keys = pd.MultiIndex.from_arrays([folios["episode"].to_numpy(), folios["pfn"].to_numpy()])
        written[keys.isin(hits)] = True
        return written

    def decide(self, folios: pd.DataFrame, episodes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The kind of each folio record (``folios``: ledger rows with ``episode`` and
        ``outcome``) and the evidence that decided it."""
        n = len(folios)
        start = episodes["start_seq"].to_numpy()[folios["episode"].to_numpy()]
        folio = folios["folio"].to_numpy()
        kind = np.full(n, "undecided", dtype=object)
        why = np.full(
            n,
            "anonymous; no syscall events in the trace to tell lazyfree from swap-backed",
            dtype=object,
        )
        file_seq = folios["file_seq"].to_numpy()
        # the flags of each distinct value (a null one, code -1, reads as "nan")
        flag_code, flag_values = codes(folios["lru_flags"])
        flag_values = np.append(flag_values.astype(str), "nan")
        flags = flag_values[flag_code]
        cached = (file_seq >= 0) & (file_seq < start)
        file_flag = (np.char.find(flag_values, "f") >= 0)[flag_code]
        swapbacked_flag = (np.char.find(flag_values, "b") >= 0)[flag_code]
        is_file = cached | file_flag
        kind[is_file] = np.where(swapbacked_flag[is_file], "shmem", "file")
        why[is_file] = np.where(
            cached[is_file],
            "mm_filemap_add_to_page_cache of its pfn",
            "LRU flags " + flags[is_file].astype(object),
        )
        anon = ~is_file
        # the latest MADV_FREE covering the folio before the episode ...
        freed_at = self.freed.latest_seq_before(
            pd.Index(self.ledger["folio"]).get_indexer(folio), start
        )
        # ... and the latest episode before this one that kept it (redirtied: swapbacked)
        kept = equals(folios["outcome"], "kept")
        kept_at = _seq_before(folio[kept], start[kept], folio, start)
        # kept in an earlier segment, after the carried MADV_FREE: after every carried row
        earlier = np.isin(
            folios["alloc_line"].to_numpy(), np.fromiter(self.prior.kept, dtype=np.int64)
        ) & (folios["alloc_seq"].to_numpy() < self.prior.carried)
        kept_at = np.where(earlier & (kept_at < 0), self.prior.carried - 1, kept_at)
        written = self._swap_writes(folios, episodes)
        lazy = anon & (freed_at >= 0) & (freed_at > kept_at) & ~written
        kind[lazy] = "lazyfree"
        why[lazy] = "MADV_FREE of its range before the episode"
        swap = anon & ~lazy & (written | self.syscalls_traced | (kept_at >= 0))
        kind[swap] = "swapbacked"
        why[swap] = np.where(
            written[swap],
            "mm_vmscan_write_folio RECLAIM_WB_ANON of its pfn",
            np.where(
                kept_at[swap] > freed_at[swap],
                "redirtied and kept by an earlier episode (swap-backed)",
                "no MADV_FREE of it in the trace",
            ),
        )
        return kind, why


def _seq_before(
    keys: np.ndarray, seqs: np.ndarray, query_keys: np.ndarray, query_seqs: np.ndarray
) -> np.ndarray:
    """Per query, the latest of ``seqs`` with the same key strictly before it, or -1."""
    pick = latest_before(keys, seqs, query_keys, query_seqs)
    found = np.full(len(query_keys), -1, dtype=np.int64)
    found[pick >= 0] = seqs[pick[pick >= 0]]
    return found
