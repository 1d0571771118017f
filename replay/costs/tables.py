"""Per-arch cost tables: load and validate one, and price an :class:`UnmapResult` with it.

A table (``replay/costs/<arch>.toml`` or a user's own file of the same shape) holds ns per
primitive op (vocabulary: ``replay/costs/ops.toml``), each with its ``source`` or
``estimate = true``, and the arch's TLB flush policy as data, each fact with its kernel
source. Pricing turns the models' arch-independent :class:`~folio_replay.replay.folio.Flush`
requests into
the arch's flush primitives (INVLPG / full flush / IPI; TLBI / DSB; SFENCE.VMA / SBI fence)
by that policy, so a table can be changed without touching code.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from folio_replay.parsers.files import file_kind
from folio_replay.replay.folio import Flush, UnmapResult

from folio_replay.errors import InputError
from folio_replay.outputs import note_input

COSTS_DIR = Path(__file__).parent
ARCH_NAMES = {
    "x86": "x86",
    "x86_64": "x86",
    "amd64": "x86",
    "arm64": "arm64",
    "aarch64": "arm64",
    "riscv": "riscv",
    "riscv64": "riscv",
}

# Flush primitives each arch's pricing uses (software ops are required on every arch).
FLUSH_OPS = {
    "x86": ("invlpg", "flush_partial", "flush_full", "ipi_shootdown", "tlbbatch_add"),
    "arm64": ("tlbi_va", "tlbi_range", "tlbi_asid", "dsb_ishst", "dsb_ish"),
    "riscv": (
        "sfence_vma_page",
        "sfence_vma_asid",
        "sfence_vma_all",
        "sbi_rfence",
        "ipi_shootdown",
        "tlbbatch_add",
    ),
}
# Policy keys each arch needs, with the type (or allowed values) of their ``value``.
POLICY = {
    "x86": {
        "defer_unmap_flush": ("when_remote_cpus", "always", "never"),
        "single_page_flush_ceiling": int,
        "tlbbatch_flush": ("full",),
        "pmd_flush_stride_kb": int,
    },
    "arm64": {
        "defer_unmap_flush": ("always", "never"),
        "tlbi_range": bool,
        "max_dvm_ops": int,
        "max_tlbi_range_pages": int,
        "kpti": bool,
        "contpte_convert_flush": bool,
        "pmd_flush_stride_kb": int,
    },
    "riscv": {
        "defer_unmap_flush": ("always", "never"),
        "tlb_flush_all_threshold": int,
        "tlbbatch_flush": ("all",),
        "remote_fence": ("sbi", "ipi"),
        "pmd_flush_stride_kb": int,
    },
}


# Policy keys a table may leave out: the CPU features a user says their CPU has (issue 12), with
# the value that stands when the key is absent, and the ops each needs when it is true.
OPTIONAL_POLICY = {
    "x86": {
        "pti": (bool, False, ("invpcid_user",)),
        "invlpgb": (bool, False, ("invlpgb", "tlbsync")),
    },
    "arm64": {},
    "riscv": {},
}
# MADV_PAGEOUT reclaims one folio list per PMD range it walks (mm/madvise.c
# madvise_cold_or_pageout_pte_range() -> reclaim_pages() per page table, 6.12 .. 7.3).
PMD_PAGES = 512
# x86 INVLPGB (AMD Zen 3+): an mm gets a global ASID, and its flushes are broadcast instead of
# sent as IPIs, once it is active on 4 or more CPUs (arch/x86/mm/tlb.c consider_global_asid():
# mm_active_cpus_exceeds(mm, 3)), i.e. with 3 or more other CPUs.
INVLPGB_REMOTE_CPUS = 3


def _vocabulary() -> dict[str, dict[str, str]]:
    """ops.toml: ``{section: {op: meaning}}`` for its sections (software, flush, tracing,
    call)."""
    with open(COSTS_DIR / "ops.toml", "rb") as f:
        return tomllib.load(f)


@dataclass(frozen=True)
class OpCost:
    """The price of one primitive op and where the number comes from."""

    ns: float
    estimate: bool
    source: str  # the citation, or the basis of the estimate

    @property
    def kind(self) -> str:
        """``measured`` (on this project's machine: the source starts "measured here"),
        ``cited`` (a published number, or a structural zero) or ``estimate``."""
        if self.estimate:
            return "estimate"
        return "measured" if self.source.startswith("measured here") else "cited"


@dataclass(frozen=True)
class CostTable:
    """One arch's costs and flush policy, loaded from ``path`` (sha256 ``digest``)."""

    arch: str
    path: Path
    digest: str
    ops: dict[str, OpCost]
    policy: dict[str, Any]  # checked against POLICY when loaded

    def provenance(self) -> list[dict[str, object]]:
        """One row per op: ``op``, ``ns``, ``kind`` (``measured`` here, ``cited`` from a
        source, or ``estimate``) and the ``source`` text, for the README's table."""
        return [
            {"op": op, "ns": cost.ns, "kind": cost.kind, "source": cost.source}
            for op, cost in self.ops.items()
        ]

    def call_ns(self, op: str) -> float:
        """ns of one call's own work, ``op`` of ops.toml's ``[call]`` section (``pageout_call``,
        ``memcg_reclaim_call``): optional in a table, 0 where it is absent."""
        cost = self.ops.get(op)
        return cost.ns if cost is not None else 0.0

    # -- flush requests -> arch primitives ------------------------------------------------
    def deferred(self, flush: Flush, remote_cpus: int) -> bool:
        """Whether reclaim queues this flush in the tlbbatch (``should_defer_flush()``)."""
        rule = self.policy["defer_unmap_flush"]
        return flush.deferrable and (
            rule == "always" or (rule == "when_remote_cpus" and remote_cpus > 0)
        )

    def stride_kb(self, flush: Flush) -> int:
        """KiB per TLB entry the flush walks: the PMD size for ``flush_pmd_tlb_range`` where
        the arch flushes PMDs at PMD stride, else 4 KiB."""
        return self.policy["pmd_flush_stride_kb"] if flush.why == "flush_pmd_tlb_range" else 4

    def entries(self, flush: Flush) -> int:
        """Entries (at the flush's stride) the flush walks; -1 for the whole mm."""
        return -1 if flush.pages < 0 else max(1, flush.pages * 4 // self.stride_kb(flush))

    def flush_ops(self, flush: Flush, remote_cpus: int, mm_loaded: bool = True) -> Counter:
        """The arch primitives one flush request costs, by op name; ``mm_loaded``: the
        reclaiming CPU has the mm loaded (x86 only: arm64 broadcasts its TLBIs whatever, and
        riscv's mm_cpumask keeps every hart the mm ran on while ASIDs are in use,
        arch/riscv/mm/context.c)."""
        deferred = self.deferred(flush, remote_cpus)
        if self.arch == "x86":
            return self._x86_flush(flush, deferred, remote_cpus, mm_loaded)
        return getattr(self, f"_{self.arch}_flush")(flush, deferred, remote_cpus)

    def _x86_flush(
        self, flush: Flush, deferred: bool, remote_cpus: int, mm_loaded: bool
    ) -> Counter:
        if deferred:  # arch_tlbbatch_add_pending(): the flush itself comes once per batch
            return Counter(tlbbatch_add=1)
        if not mm_loaded:
            # flush_tlb_mm_range(): no local flush_tlb_func() for an mm this CPU has not
            # loaded; IPIs to the CPUs that have (none: nothing at all)
            return Counter(ipi_shootdown=1) if remote_cpus > 0 else Counter()
        entries = self.entries(flush)
        full = entries < 0 or entries > self.policy["single_page_flush_ceiling"]
        if self.policy["invlpgb"] and remote_cpus >= INVLPGB_REMOTE_CPUS:
            # broadcast_tlb_flush(): INVLPGB for the kernel PCID (and the user one with PTI),
            # then TLBSYNC; no IPI (arch/x86/mm/tlb.c, 6.15+)
            return Counter(invlpgb=2 if self.policy["pti"] else 1, tlbsync=1)
        ops: Counter = Counter()
        if full:
            ops["flush_full"] += 1
        else:
            # flush_tlb_func()'s partial flush: flush_tlb_one_user() per page: INVLPG, and with
            # PTI an INVPCID of the user PCID too (native_flush_tlb_one_user())
            ops["flush_partial"] += 1
            ops["invlpg"] += entries
            if self.policy["pti"]:
                ops["invpcid_user"] += entries
        if remote_cpus > 0:
            ops["ipi_shootdown"] += 1
        return ops

    def _arm64_flush(self, flush: Flush, deferred: bool, remote_cpus: int) -> Counter:
        if flush.why == "contpte_convert" and not self.policy["contpte_convert_flush"]:
            return Counter()
        pages, entries = flush.pages, self.entries(flush)
        range_ok = self.policy["tlbi_range"]
        if (
            pages < 0
            or (not range_ok and entries >= self.policy["max_dvm_ops"])
            or pages > self.policy["max_tlbi_range_pages"]
        ):
            # flush_tlb_mm(): DSB ISHST; TLBI ASIDE1IS; DSB ISH, synchronous even when deferred
            return Counter(dsb_ishst=1, tlbi_asid=self._user_copies(), dsb_ish=1)
        ops = Counter(dsb_ishst=1)
        if range_ok:
            singles, ranges = arm64_range_tlbis(pages)
        else:
            singles, ranges = entries, 0
        ops["tlbi_va"] += singles * self._user_copies()
        ops["tlbi_range"] += ranges * self._user_copies()
        if not deferred:
            ops["dsb_ish"] += 1
        return +ops

    def _user_copies(self) -> int:
        """TLBIs per maintenance op: two with KPTI (``__tlbi_user()``)."""
        return 2 if self.policy["kpti"] else 1

    def _riscv_flush(self, flush: Flush, deferred: bool, remote_cpus: int) -> Counter:
        if deferred:
            return Counter(tlbbatch_add=1)
        if remote_cpus > 0 and self.policy["remote_fence"] == "sbi":
            return Counter(sbi_rfence=1)  # the firmware fences every hart in the mask
        ops = Counter(ipi_shootdown=1) if remote_cpus > 0 else Counter()
        # local_flush_tlb_range_asid(): one entry / the whole ASID beyond the threshold
        entries = self.entries(flush)
        if entries < 0 or entries > self.policy["tlb_flush_all_threshold"]:
            ops["sfence_vma_asid"] += 1
        else:
            ops["sfence_vma_page"] += entries
        return ops

    def tlbbatch_flush_ops(self, remote_cpus: int, mm_loaded: bool = True) -> Counter:
        """The primitives of one ``try_to_unmap_flush()`` at the end of a reclaim batch that
        queued deferred flushes (x86: the local full flush only where the batch's cpumask has
        the reclaiming CPU, i.e. ``mm_loaded``)."""
        if self.arch == "x86":
            if self.policy["invlpgb"] and remote_cpus > 0:
                # arch_tlbbatch_flush(): invlpgb_flush_all_nonglobals(), no IPI (6.15+)
                return Counter(invlpgb=1, tlbsync=1)
            ops = Counter(flush_full=1 if mm_loaded else 0)
            if remote_cpus > 0:
                ops["ipi_shootdown"] += 1
            return +ops
        if self.arch == "arm64":
            return Counter(dsb_ish=1)
        if remote_cpus > 0:
            return (
                Counter(sbi_rfence=1)
                if self.policy["remote_fence"] == "sbi"
                else Counter(ipi_shootdown=1, sfence_vma_all=1)
            )
        return Counter(sfence_vma_all=1)

    def pending_flush_ops(self, remote_cpus: int, mm_loaded: bool = True) -> Counter:
        """The primitives of the ``flush_tlb_batched_pending()`` that the next page-table walk
        of the mm makes after a reclaim batch deferred flushes: ``flush_tlb_mm()`` (mm/rmap.c;
        MADV_PAGEOUT walks the next PMD range right after, mm/madvise.c). Evidence on x86:
        fixtures/host/remote/microbench-remote-cpu, one TLB_LOCAL_MM_SHOOTDOWN -1 with its IPI
        per reclaim list."""
        whole = Flush(-1, False, "flush_tlb_batched_pending")
        return self.flush_ops(whole, remote_cpus, mm_loaded)

    def batch_share(self, result: UnmapResult) -> Counter:
        """The folio's share of its reclaim list's deferred-flush work, when its unmap queued a
        flush in the tlbbatch (arm64 and riscv always, x86 with other CPUs on the mm): the
        list's ``try_to_unmap_flush()`` calls (:func:`tlbbatch_flushes`: one each time the free
        batch fills, one at the end: on arm64 the DSB ISH that waits for the TLBIs issued
        without waiting, on x86 a full flush with its IPIs) and the ``flush_tlb_mm()`` of the
        next walk (:meth:`pending_flush_ops`), divided among the list's folios: MADV_PAGEOUT
        reclaims one list per PMD range, so ``PMD_PAGES // nr_pages`` folios of this size.
        The folio's size is its freed pages, or for a kept folio the pages of its deferred
        flushes (a kept folio is not freed, so it does not fill the free batch)."""
        deferred = [
            f for f in result.flushes if self.deferred(f, result.remote_cpus) and f.pages > 0
        ]
        if not deferred:
            return Counter()
        freed = result.ops.get("page_free", 0)
        pages = freed or sum(f.pages for f in deferred)
        per_list = max(1, PMD_PAGES // max(1, pages))
        flushes = tlbbatch_flushes(per_list) if freed else 1
        share: Counter = Counter()
        for op, n in self.tlbbatch_flush_ops(result.remote_cpus, result.mm_loaded).items():
            share[op] += n * flushes / per_list
        for op, n in self.pending_flush_ops(result.remote_cpus, result.mm_loaded).items():
            share[op] += n / per_list
        return share

    # -- trace signature -----------------------------------------------------------------
    def tlb_flush_events(self, flush: Flush, remote_cpus: int, mm_loaded: bool = True) -> list[int]:
        """x86 ``tlb_flush`` events (``pages`` field) the reclaiming CPU emits for ``flush``:
        none when deferred; with other CPUs, TLB_REMOTE_SEND_IPI (4 KiB pages) then the local
        flush_tlb_func() (entries), which only a CPU that has the mm loaded runs; -1 for a
        full flush (arch/x86/mm/tlb.c)."""
        if self.arch != "x86":
            raise ValueError(f"tlb_flush is an x86 tracepoint, not {self.arch}")
        if self.deferred(flush, remote_cpus):
            return []
        entries = self.entries(flush)
        full = entries < 0 or entries > self.policy["single_page_flush_ceiling"]
        local = [-1 if full else entries] if mm_loaded else []
        if remote_cpus > 0:
            return [-1 if full else flush.pages, *local]
        return local

    # -- prices --------------------------------------------------------------------------
    def trace_events(self, result: UnmapResult) -> int:
        """Tracepoint records reclaiming the folio writes in a capture (the events
        ``folio-replay capture`` and the lab enable): one rss_stat per rss update, the x86
        tlb_flush events (arm64 and riscv have no tlb_flush tracepoint), and one mm_page_free
        for a freed folio or one mm_lru_insertion for one put back on the LRU."""
        flush_events = len(result.tlb_flush_pages) if self.arch == "x86" else 0
        return len(result.rss_steps) + flush_events + 1

    def primitive_counts(self, result: UnmapResult, traced: bool = False) -> Counter:
        """Every op the unmap costs on this arch: the model's software ops, the flush
        primitives of its flush requests, its share of its reclaim list's deferred flushes
        (:meth:`batch_share`; fractional) and, if ``traced``, its tracepoint records."""
        counts = Counter(result.ops)
        for flush in result.flushes:
            counts.update(self.flush_ops(flush, result.remote_cpus, result.mm_loaded))
        counts.update(self.batch_share(result))
        if traced:
            counts["trace_event"] += self.trace_events(result)
        return +counts

    def breakdown(self, result: UnmapResult, traced: bool = False) -> dict[str, float]:
        """ns per op name for one folio's unmap."""
        return {
            op: n * self.ops[op].ns
            for op, n in sorted(self.primitive_counts(result, traced).items())
        }

    def price(self, result: UnmapResult, traced: bool = False) -> float:
        """ns for one folio's unmap (the tlbbatch flush of its reclaim batch not included:
        see :meth:`price_tlbbatch_flush`); ``traced`` adds the cost of the tracepoint records
        a capture writes (rss_stat, x86 tlb_flush), for comparison with captured timings."""
        return float(sum(self.breakdown(result, traced).values()))

    def price_tlbbatch_flush(self, remote_cpus: int = 0) -> float:
        """ns of one ``try_to_unmap_flush()``: shrink_folio_list() (mm/vmscan.c) calls it once
        per folio list with deferred flushes; MADV_PAGEOUT reclaims one list per PMD range
        walked (mm/madvise.c madvise_cold_or_pageout_pte_range(): reclaim_pages() per PMD,
        6.12 and 7.2), i.e. one per 2 MiB of the advised range."""
        return float(
            sum(n * self.ops[op].ns for op, n in self.tlbbatch_flush_ops(remote_cpus).items())
        )


FREE_BATCH = (
    31  # PAGEVEC_SIZE: folios shrink_folio_list() frees per folio_batch (include/linux/pagevec.h)
)


def tlbbatch_flushes(freed_folios: int) -> int:
    """``try_to_unmap_flush()`` calls that find a deferred flush pending in one
    shrink_folio_list() whose folios were all unmapped with deferral and freed: one each time
    its free batch fills (mm/vmscan.c: folio_batch_add() == 0 -> try_to_unmap_flush() before
    free_unref_folios()) and one at the end for the folios after the last fill. MADV_PAGEOUT
    then pays one more full flush per such list at the next page-table walk of the mm
    (flush_tlb_batched_pending(), mm/madvise.c and mm/rmap.c: the tlbbatch flush does not
    mark the mm's pending generation flushed). Evidence:
    fixtures/host/remote/microbench-remote-cpu (6.18.44 on this machine)."""
    return max(1, -(-freed_folios // FREE_BATCH))


def arm64_range_tlbis(pages: int) -> tuple[int, int]:
    """(single-page TLBIs, range TLBIs) that ``__flush_tlb_range_op()`` issues for ``pages``
    4 KiB pages with FEAT_TLBIRANGE and without LPA2 (arch/arm64/include/asm/tlbflush.h, 6.12
    and 7.2): from scale 3 down to 0, one range op of ``(num + 1) << (5 * scale + 1)`` pages
    when ``num = (pages >> (5 * scale + 1)) - 1`` is >= 0; a last odd page alone."""
    singles = ranges = 0
    scale = 3
    while pages > 0:
        if pages == 1 or scale < 0:
            singles += 1
            pages -= 1
            continue
        num = (min(pages, 32 << (5 * scale + 1)) >> (5 * scale + 1)) - 1
        if num >= 0:
            ranges += 1
            pages -= (num + 1) << (5 * scale + 1)
        scale -= 1
    return singles, ranges


MAX_NS = 1e9  # one second per primitive op: beyond it a cost is a typo, not a measurement
MAX_POLICY_INT = 1 << 32  # page counts and thresholds of the flush policies
TABLE_BYTES = 1 << 20
_TOML_PLACE = re.compile(r"\s*\(at line (?P<line>\d+), column \d+\)$")
_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\- ]+?)\s*\]\s*(?:#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.\- ]+?)\s*=")


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line of every ``[table]`` header and ``key =`` assignment, by dotted key (bare
    keys only: what the shipped tables use)."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        assign = _ASSIGN.match(line)
        if header:
            table = tuple(part.strip() for part in header[1].split("."))
            lines.setdefault(table, number)
        elif assign:
            key = table + tuple(part.strip() for part in assign[1].split("."))
            lines.setdefault(key, number)
    return lines


class _Checker:
    """Errors of one table file, each naming the line of the key it is about (or of the
    nearest enclosing key that is in the file)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _key_lines(text)

    def fail(self, key: str, message: str) -> InputError:
        parts = tuple(key.split("."))
        line = next(
            (self.lines[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in self.lines),
            None,
        )
        return InputError(self.path, f"{key}: {message}" if key else message, line=line)


def _op_cost(check: _Checker, name: str, entry: object) -> OpCost:
    """One ``[ops.NAME]`` entry, checked."""
    if not isinstance(entry, dict):
        raise check.fail(f"ops.{name}", "must be a table with ns and source (or estimate)")
    ns = entry.get("ns")
    if (
        isinstance(ns, bool)
        or not isinstance(ns, (int, float))
        or not (math.isfinite(ns) and 0 <= ns <= MAX_NS)
    ):
        raise check.fail(f"ops.{name}.ns", f"must be a number of ns in 0..{MAX_NS:g}, not {ns!r}")
    estimate = entry.get("estimate", False)
    if not isinstance(estimate, bool):
        raise check.fail(f"ops.{name}.estimate", "must be true or false")
    source = entry.get("basis" if estimate else "source")
    if not isinstance(source, str) or not source.strip():
        raise check.fail(f"ops.{name}", "needs a source, or estimate = true with a basis")
    return OpCost(float(ns), estimate, source)


# Ops added to the vocabulary after tables were written: a table without one prices it as the
# sum of the ops that priced its work before (the split's pages were counted as pte_write;
# their mapcount raises, rmap_page, were not counted at all), or at 0 when no op priced it (the
# swap write-out was in no model before).
DERIVED_WHEN_ABSENT: dict[str, tuple[str, ...]] = {
    "pmd_split_page": ("pte_write", "rmap_page"),
    "swap_write": (),
    "swap_write_page": (),
}


def _derived(name: str, parts: tuple[str, ...], ops: dict[str, OpCost]) -> OpCost:
    """``name`` priced as the sum of ``parts`` of the same table, an estimate saying so."""
    priced = " + ".join(f"{part} ({ops[part].ns:g} ns)" for part in parts)
    return OpCost(
        sum(ops[part].ns for part in parts),
        True,
        f"not in this table (written before {name} was an op): "
        + (priced or "0, as no op priced its work before"),
    )


def _validate(check: _Checker, data: dict) -> tuple[str, dict[str, OpCost], dict[str, Any]]:
    """Check a parsed table; return (arch, ops, policy) or raise a one-line InputError."""
    table = data.get("table")
    if not isinstance(table, dict) or "arch" not in table:
        raise check.fail("table.arch", "missing [table] arch")
    arch = ARCH_NAMES.get(str(table["arch"]))
    if arch is None:
        raise check.fail("table.arch", f"unknown arch {table['arch']!r} (x86, arm64, riscv)")
    vocab = _vocabulary()
    known = set().union(*vocab.values())
    raw_ops = data.get("ops")
    if not isinstance(raw_ops, dict):
        raise check.fail("ops", "missing [ops] section")
    ops: dict[str, OpCost] = {}
    for name, entry in raw_ops.items():
        if name not in known:
            raise check.fail(f"ops.{name}", "not an op of replay/costs/ops.toml")
        ops[name] = _op_cost(check, name, entry)
    for name, parts in DERIVED_WHEN_ABSENT.items():
        if name not in ops and all(part in ops for part in parts):
            ops[name] = _derived(name, parts, ops)
    for name in [*vocab["software"], *FLUSH_OPS[arch], *vocab["tracing"]]:
        if name not in ops:
            raise check.fail(f"ops.{name}", f"missing (needed on {arch})")
    raw_policy = data.get("policy")
    if not isinstance(raw_policy, dict):
        raise check.fail("policy", "missing [policy] section")
    policy = {}
    for key, kind in POLICY[arch].items():
        entry = raw_policy.get(key)
        if not isinstance(entry, dict) or "value" not in entry:
            raise check.fail(f"policy.{key}.value", f"missing (needed on {arch})")
        if not isinstance(entry.get("source"), str) or not entry["source"].strip():
            raise check.fail(f"policy.{key}.source", "missing citation")
        value = entry["value"]
        if isinstance(kind, tuple):
            if value not in kind:
                raise check.fail(
                    f"policy.{key}.value", f"{value!r} is not one of {', '.join(kind)}"
                )
        elif type(value) is not kind or (kind is int and not 0 <= value <= MAX_POLICY_INT):
            raise check.fail(
                f"policy.{key}.value",
                f"must be {f'0..{MAX_POLICY_INT} ' if kind is int else ''}"
                f"{getattr(kind, '__name__', kind)}, not {value!r}",
            )
        policy[key] = value
    for key, (kind, default, needs) in OPTIONAL_POLICY[arch].items():
        entry = raw_policy.get(key)
        if entry is None:
            policy[key] = default
            continue
        if not isinstance(entry, dict) or "value" not in entry:
            raise check.fail(f"policy.{key}.value", "missing")
        if not isinstance(entry.get("source"), str) or not entry["source"].strip():
            raise check.fail(f"policy.{key}.source", "missing citation")
        if type(entry["value"]) is not kind:
            raise check.fail(
                f"policy.{key}.value", f"must be {kind.__name__}, not {entry['value']!r}"
            )
        policy[key] = entry["value"]
        for name in needs if policy[key] else ():
            if name not in ops:
                raise check.fail(f"ops.{name}", f"missing (needed with policy.{key} = true)")
    return arch, ops, policy


def _read(path: Path) -> tuple[bytes, str, dict]:
    """A cost table file's bytes, text and TOML data; a bad file raises :class:`InputError`."""
    kind = file_kind(path)
    if kind is not None:
        what = "no such cost table" if kind == "missing" else f"cost table is {kind}: not read"
        raise InputError(path, what)
    note_input(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(TABLE_BYTES + 1)
    except OSError as err:
        raise InputError(path, f"cannot read cost table: {err.strerror or err}") from None
    if len(raw) > TABLE_BYTES:
        raise InputError(path, f"cost table larger than {TABLE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad_line = raw.count(b"\n", 0, err.start) + 1
        raise InputError(path, "not a TOML cost table: not UTF-8 text", line=bad_line) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        place = _TOML_PLACE.search(str(err))
        message = _TOML_PLACE.sub("", str(err))
        line = int(place["line"]) if place else None
        raise InputError(path, f"not a TOML cost table: {message}", line=line) from None
    return raw, text, data


def _extended(check: _Checker, path: Path, data: dict) -> tuple[dict, bytes]:
    """A table that names ``[table] extends`` (a shipped table, ``arm64.toml``, or a path
    relative to it): the base table's data with this one's ``[table]`` keys, and its
    ``[ops.*]`` and ``[policy.*]`` entries, each replacing the base's whole (an op keeps one
    provenance). Returns the data and the base's bytes (the table's hash covers both)."""
    table = data.get("table")
    name = table.get("extends") if isinstance(table, dict) else None
    if name is None:
        return data, b""
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise check.fail("table.extends", "must name a cost table file")
    try:
        base_path = (COSTS_DIR / name) if (COSTS_DIR / name).is_file() else path.parent / name
        base_raw, _, base = _read(base_path.resolve())
    except OSError as err:  # a name too long, a loop of links
        raise check.fail("table.extends", f"cannot read it: {err.strerror or err}") from None
    base_table: dict = base["table"] if isinstance(base.get("table"), dict) else {}
    if "extends" in base_table:
        raise check.fail("table.extends", f"{name} extends another table (one level only)")
    arch, base_arch = (ARCH_NAMES.get(str(t.get("arch"))) for t in (data["table"], base_table))
    if arch and base_arch and arch != base_arch:
        raise check.fail("table.extends", f"{name} is a table of {base_arch}, not {arch}")
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for section in ("table", "ops", "policy"):
        own = data.get(section, {})
        if not isinstance(own, dict):
            raise check.fail(section, f"[{section}] must be a table")
        merged[section] = {**merged.get(section, {}), **own}
    del merged["table"]["extends"]
    return merged, base_raw


@cache
def _load(path: Path) -> CostTable:
    raw, text, data = _read(path)
    check = _Checker(path, text)
    data, base_raw = _extended(check, path, data)
    arch, ops, policy = _validate(check, data)
    return CostTable(arch, path, hashlib.sha256(base_raw + raw).hexdigest(), ops, policy)


def load_table(arch_or_path: str | Path) -> CostTable:
    """The shipped table of an arch (``x86``/``x86_64``, ``arm64``/``aarch64``,
    ``riscv``/``riscv64``) or a user's table file; a bad file raises :class:`InputError`."""
    name = str(arch_or_path)
    if name in ARCH_NAMES:
        return _load(COSTS_DIR / f"{ARCH_NAMES[name]}.toml")
    return _load(Path(arch_or_path).resolve())
