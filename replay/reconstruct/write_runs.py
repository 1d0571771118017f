"""Runs of a large folio's PTEs whose write bits differ: where a write-protect fault made one
page's PTE writable on its own, or put a copy in its place.

A fork write-protects every PTE of the parent's private anonymous mappings
(``copy_present_ptes()``, mm/memory.c), as clearing soft-dirty bits (``clear_refs``) and uffd-wp
do. A later write to one of those pages takes a write-protect fault, and ``do_wp_page()``
either makes that page's PTE alone writable again (``wp_page_reuse()``, when the folio is the
process's alone: ``__wp_can_reuse_large_anon_folio()`` of the large-folio mm-owner tracking;
6.12 reuses no large folio, lab capture x86_64 6.12.118 ``cow-after-fork-64k``) or maps a copy
in its place (``wp_page_copy()``: an order-0 allocation right after the fault, and the folio is
partially mapped in this process from then on: a genuine partial unmap, :mod:`.partial`).

Either way the folio's PTEs are no longer alike. Since 29f40594a281 "mm/rmap: fix incorrect pte
restoration for lazyfree folios" ``folio_unmap_pte_batch()`` (mm/rmap.c) batches only PTEs with
the same write and soft-dirty bits (``FPB_RESPECT_WRITE | FPB_RESPECT_SOFT_DIRTY``), so reclaim
unmaps such a folio in several batches and the first leaves it partially mapped (deferred
split); before it the write bit was ignored (``folio_pte_batch()``,
``__pte_batch_clear_ignored()``). Seen on 6.18.44
(``fixtures/bundles/host/6.18.44-fc-v1300/cow-after-fork``: one write-protect fault reusing
page 1 of every 64 KiB folio, then x86 ``tlb_flush`` pages 1, 1, 14 and rss_stat steps -1, -1,
-14 per folio).

Evidence used: x86 ``page_fault_user`` rows whose ``error_code`` has ``X86_PF_PROT |
X86_PF_WRITE | X86_PF_USER`` (a user write to a present PTE, arch/x86/include/asm/trap_pf.h),
of the folio's own process, at an address inside the folio's (naturally aligned) range, while
it was allocated. The pages written that way form runs of their own; the folio's other PTEs
are taken to be the read-only ones (one operation write-protected them all); a copied page is
a run boundary too (its PTE maps another page). arm64 and riscv traces carry no such evidence
(no fault addresses, or a ``cause`` without the present bit), nor do page-cache and shmem
folios (no address): their runs are unknown (``write_run_starts`` null), and only reclaim's own
rss_stat steps can show the batches they made (:mod:`.unmaps`, ``batch_starts``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.events import MISSING, EventArrays
from folio_replay.replay.reconstruct.joins import latest_before, next_same
from folio_replay.replay.reconstruct.ledger import USER_GFP_MARKERS, gfp_flags_with
from folio_replay.replay.reconstruct.rss import process_of

__all__ = ["WRITE_PROTECT_FAULT", "run_starts", "write_protect_faults"]

# X86_PF_PROT | X86_PF_WRITE | X86_PF_USER (arch/x86/include/asm/trap_pf.h)
WRITE_PROTECT_FAULT = 0x7
PAGE_SHIFT = 12
ADDRESS_PAGES_BITS = 36  # user page numbers below 2**36 (x86-64 user space: 2**47 bytes)


def _copies(events: EventArrays, faults: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each fault (rows): whether it mapped a copy of the page (the faulting thread's very
    next event is an order-0 user allocation: ``wp_page_copy()`` allocates the new page at
    once), and whether the page copied was the shared zero page (the allocation is zeroed,
    ``__GFP_ZERO``: no folio's page was mapped there)."""
    following = next_same(events.pid, faults)
    allocs = np.flatnonzero(events.is_event("mm_page_alloc", following))
    rows = following[allocs]
    small_user = (events.ints("page.order", rows) == 0) & gfp_flags_with(
        events, rows, USER_GFP_MARKERS
    )
    zeroed = gfp_flags_with(events, rows, ("__GFP_ZERO",))
    copy = np.zeros(len(faults), dtype=bool)
    zero = np.zeros(len(faults), dtype=bool)
    copy[allocs] = small_user & ~zeroed
    zero[allocs] = small_user & zeroed
    return copy, zero


def write_protect_faults(events: EventArrays, ledger: pd.DataFrame) -> pd.DataFrame:
    """Each x86 write-protect fault inside a ledger folio of the faulting process, while that
    folio was allocated: ``folio`` (the ledger's folio number), ``page`` (index in the folio),
    ``seq`` (the fault's row) and ``copy`` (the fault mapped a new page in place of the
    folio's: the folio is mapped by another mm too; else it reused the folio's page)."""
    empty = pd.DataFrame({name: np.empty(0, np.int64) for name in ("folio", "page", "seq")})
    empty["copy"] = np.empty(0, dtype=bool)
    faults = events.rows("page_fault_user")
    if not len(faults) or ledger.empty:
        return empty
    code = events.ints("fault.error_code", faults)
    faults = faults[(code >= 0) & ((code & WRITE_PROTECT_FAULT) == WRITE_PROTECT_FAULT)]
    address = ledger["address"].to_numpy(dtype=np.int64, na_value=MISSING)  # folio-aligned
    # anonymous folios whose address comes from the write fault that allocated them (an anon
    # large folio is allocated on a write to a not-present page; a read maps the zero page):
    # another fault just before an allocation may be an untraced kernel-mode fault's neighbour
    fault_seq = ledger["fault_seq"].to_numpy()
    given = np.full(len(ledger), -1, dtype=np.int64)
    has_fault = np.flatnonzero(fault_seq >= 0)
    given[has_fault] = events.ints("fault.error_code", fault_seq[has_fault])
    anon = (ledger["file_seq"].to_numpy() < 0) & (given >= 0) & (given & 0x3 == 0x2)
    located = np.flatnonzero((address != MISSING) & anon)
    if not len(faults) or not len(located):
        return empty
    copy, zero_page = _copies(events, faults)
    # a copy of the zero page: that PTE mapped no folio's page
    faults, copy = faults[~zero_page], copy[~zero_page]
    fault_address = events.ints("fault.address", faults)
    fault_process = process_of(events, events.pid[faults], faults)
    folio_process = ledger["process"].to_numpy()[located]
    # one small number per process, so that (process, page) fits one int64 key
    process_code, _ = pd.factorize(np.concatenate([folio_process, fault_process]))
    folio_code, fault_code = process_code[: len(located)], process_code[len(located) :]
    nr_pages = ledger["nr_pages"].to_numpy()[located]
    alloc_seq = ledger["alloc_seq"].to_numpy()[located]
    end_seq = ledger["end_seq"].to_numpy()[located]
    fault_page = fault_address >> PAGE_SHIFT
    folio_page = address[located] >> PAGE_SHIFT
    found = []
    for size in np.unique(nr_pages):
        of_size = np.flatnonzero(nr_pages == size)
        first = folio_page[of_size] & ~(size - 1)
        keys = (folio_code[of_size] << ADDRESS_PAGES_BITS) | first
        query = (fault_code << ADDRESS_PAGES_BITS) | (fault_page & ~(size - 1))
        owner = latest_before(keys, alloc_seq[of_size], query, faults)
        hit = np.flatnonzero(owner >= 0)
        folio = of_size[owner[hit]]
        alive = (end_seq[folio] < 0) | (end_seq[folio] > faults[hit])
        hit, folio = hit[alive], folio[alive]
        found.append(
            pd.DataFrame(
                {
                    "folio": ledger["folio"].to_numpy()[located[folio]],
                    "page": fault_page[hit] & (size - 1),
                    "seq": faults[hit],
                    "copy": copy[hit],
                }
            )
        )
    return pd.concat(found, ignore_index=True)


def run_starts(
    faults: pd.DataFrame, folios: np.ndarray, before_seq: np.ndarray, nr_pages: np.ndarray
) -> np.ndarray:
    """For each folio record (its folio number, the row before which its unmap starts, its
    size), the pages at which a new run of alike PTEs starts, as text ("1,2"; "" for one run):
    the pages written by ``faults`` before ``before_seq`` against the others."""
    starts = np.full(len(folios), "", dtype=object)
    if faults.empty or not len(folios):
        return starts
    order = np.argsort(faults["folio"].to_numpy(), kind="stable")
    by_folio = faults["folio"].to_numpy()[order]
    lo = np.searchsorted(by_folio, folios, side="left")
    hi = np.searchsorted(by_folio, folios, side="right")
    pages = faults["page"].to_numpy()[order]
    seqs = faults["seq"].to_numpy()[order]
    for record in np.flatnonzero(hi > lo):
        span = slice(lo[record], hi[record])
        written = np.zeros(int(nr_pages[record]), dtype=bool)
        written[pages[span][seqs[span] < before_seq[record]]] = True
        changes = np.flatnonzero(written[1:] != written[:-1]) + 1
        starts[record] = ",".join(map(str, changes.tolist()))
    return starts
