"""Recognise the captured kernel's unmap model: decided by the trace where it can decide, by
the release number where it cannot.

Every episode's folios are replayed through each model and the trace signatures the model says
the kernel emits (``UnmapResult``: rss_stat MM_ANONPAGES steps, MM_FILEPAGES/MM_SHMEMPAGES steps
and MM_SWAPENTS pages, x86 ``tlb_flush`` pages per event) are compared with the episode's
observed ones, after removing what order-0 pages and the splits of folios the episode's own
MADV_PAGEOUT range cut (before reclaim) account for. A shape whose possibilities
(unknown dirty page, undecided kind) emit different signatures leaves the episode undecided for
that model. When exactly the models of one behaviour fit the trace, the trace decides; when
several fit, the release's range picks among them; when the release's model is contradicted,
the report says so and names the model that fits.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
from folio_replay.replay.costs.tables import load_table
from folio_replay.replay.folio import Flush
from folio_replay.replay.models import MODELS, unmap
from folio_replay.replay.models.walk import PMD_PAGES
from folio_replay.replay.predict import folio_states, shapes, state_key
from folio_replay.replay.reconstruct import Reconstruction
from folio_replay.replay.reconstruct.flush_cpus import REMOTE
from folio_replay.replay.releases import range_for_release, release_distance

__all__ = ["decide", "recognise", "release_of", "signature_checks"]

# newest first: the order of the models in summaries, and the last tie-break among the fits
PREFERENCE = (
    "batched-file-pmd-split",
    "batched-file",
    "batched-partial-pmd-split",
    "batched-partial-respect-write",
    "batched-partial",
    "batched",
    "unbatched",
    "unbatched-pmd-discard",
)
# anon steps, file steps, swap pages, x86 flushes, those of the flushes no deferral removes,
# page-table pages freed
Signature = tuple[Counter, Counter, int, Counter, Counter, int]


def release_of(kernel: str) -> str:
    """The release from a /proc/version line ("Linux version 6.12.48+deb13-amd64 (...) ...")."""
    words = kernel.split()
    return words[2] if len(words) > 2 and words[:2] == ["Linux", "version"] else kernel.strip()


def _predicted(
    records: list[dict], keys: list[tuple], model: str, arch: str
) -> tuple[dict[int, int], list[Signature | None]]:
    """Per episode, the signature the model emits for its folios (their shapes' ``records``,
    with their state keys ``keys``; None: undecided), as the number of the episode's mix of
    states in a list of each mix's signature: episodes of the same mix (a memcg at its limit
    reclaims alike again and again) are summed once."""
    parts: dict[int, list[tuple[tuple, int, dict]]] = {}
    for shape, behaviour in zip(records, keys):
        parts.setdefault(int(shape["episode"]), []).append((behaviour, int(shape["folios"]), shape))
    emitted: dict[tuple, set] = {}  # per state key (shapes alike but for episode and owner)
    mixes: dict[tuple, int] = {}
    signatures: list[Signature | None] = []
    out: dict[int, int] = {}
    for episode, mine in parts.items():
        mix = tuple((behaviour, n) for behaviour, n, _ in mine)
        if mix not in mixes:
            mixes[mix] = len(signatures)
            signatures.append(_signature(mine, emitted, model, arch))
        out[episode] = mixes[mix]
    return out, signatures


def _signature(
    parts: list[tuple[tuple, int, dict]], emitted: dict[tuple, set], model: str, arch: str
) -> Signature | None:
    """The signature ``model`` emits for an episode of these (state key, folios, shape) parts
    (None: undecided); ``emitted`` caches each state key's possible signatures."""
    anon_c: Counter = Counter()
    file_c: Counter = Counter()
    flush_c: Counter = Counter()
    required_c: Counter = Counter()
    swap_total = tables_total = 0
    for behaviour, n, shape in parts:
        kinds = emitted.get(behaviour)
        if kinds is None:
            kinds = emitted[behaviour] = {
                (
                    tuple(r.rss_steps),
                    tuple(r.file_rss_steps),
                    r.swap_entries,
                    tuple(r.tlb_flush_pages),
                    tuple(r.tlb_flush_required),
                    r.pgtables_freed,
                )
                for r in (unmap(model, state) for state in folio_states(shape, arch))
            }
        if len(kinds) > 1:
            return None
        rss, files, swap, flushes, required, tables = next(iter(kinds))
        for step in rss:
            anon_c[step] += n
        for step in files:
            file_c[step] += n
        for pages in flushes:
            flush_c[pages] += n
        for pages in required:
            required_c[pages] += n
        swap_total += n * swap
        tables_total += n * tables
    return anon_c, file_c, swap_total, flush_c, required_c, tables_total


def _observed(signature: dict, split_before: Counter | None = None) -> Signature:
    """An episode's signature from the trace, without what order-0 pages account for, nor the
    flushes of the splits before reclaim (``split_before``: :func:`cut_flushes`)."""
    small = signature["small_discards"] + signature["small_swapped"] + signature["small_other"]
    flushes = Counter(signature["tlb_flush_pages"]) - Counter({1: small + signature["small_file"]})
    return (
        Counter(signature["rss_steps"]) - Counter({1: small}),
        Counter(signature["file_rss_steps"]) - Counter({1: signature["small_file"]}),
        signature["swap_entries"] - signature["small_swapped"],
        flushes - (split_before or Counter()),
        Counter(),  # what must appear is the model's to say
        0,  # the page-table frees are counted apart (Reconstruction.order0_frees)
    )


def _frozen(signature: Signature) -> tuple:
    """A signature as a hashable value (its counters as sorted items)."""
    return tuple(
        tuple(sorted(part.items())) if isinstance(part, Counter) else part for part in signature
    )


def cut_flushes(partial: pd.DataFrame, episodes: pd.DataFrame) -> dict[int, Counter]:
    """Per MADV_PAGEOUT episode, the x86 tlb_flush events of the folios its own call cut and
    split before reclaiming (the call's ``partial`` rows; their lower bound): split_folio()
    moves a PTE-mapped folio's PTEs to migration entries one at a time, each flushed
    (try_to_migrate_one(): ptep_clear_flush() unless reclaim-style deferral applies), and
    freezes a PMD-mapped folio's PMD split (one PMD flush). No reclaim model emits them."""
    cuts = partial[partial["call"] == "madvise_pageout"]
    if cuts.empty:
        return {}
    pageout = episodes[episodes["kind"] == "madvise_pageout"]
    episode_of = dict(zip(pageout["start_line"].tolist(), pageout["episode"].tolist()))
    x86 = load_table("x86")
    per_pte = x86.tlb_flush_events(Flush(1, True, "try_to_migrate_one"), 0)
    per_pmd = x86.tlb_flush_events(Flush(PMD_PAGES, False, "flush_pmd_tlb_range"), 0)
    out: dict[int, Counter] = {}
    for row in cuts.itertuples():
        episode = episode_of.get(row.start_line)
        if episode is None:
            continue
        events = per_pmd if row.pmd_mapped else per_pte * (row.size_kb // 4)
        for pages in events:
            out.setdefault(episode, Counter())[pages] += int(row.partial_low)
    return out


def flushes_agree(
    predicted: Counter, observed: Counter, required: Counter, deferring: bool = False
) -> bool:
    """Whether the x86 tlb_flush events of an episode are the model's local flushes, some of
    them deferred: reclaim (TTU_BATCH_FLUSH) queues a folio's flush in the tlbbatch when
    another CPU has the mm active (arch_tlbbatch_should_defer()), and the batch is flushed
    whole (arch_tlbbatch_flush(): one full flush, pages -1) when shrink_folio_list() ends. So
    the model's deferrable flushes may be missing when a full flush appears in their place;
    the ``required`` ones (synchronous: a PMD's pmdp_invalidate() or pmdp_huge_clear_flush())
    appear whatever the deferral. A clean lazyfree PMD THP discarded whole flushes once, split
    and batched twice. ``deferring``: folios of the episode were replayed with their flushes
    deferred (the trace shows the mm on other CPUs: ``mm_cpus`` remote), so the batch's full
    flushes (and the next walk's, flush_tlb_batched_pending()) come on top of the model's."""
    if required - observed:
        return False
    rest, deferrable = observed - required, predicted - required
    missing = deferrable - rest
    extra = rest - deferrable
    if set(extra) - {-1}:
        return False
    if missing.keys() - {-1}:
        return extra[-1] > 0
    if missing:  # full flushes of the model folded into fewer tlbbatch flushes
        return rest[-1] > 0
    return deferring or not extra[-1]


def signature_checks(recon: Reconstruction, arch: str) -> dict[str, Counter]:
    """Per model: how many episodes its signatures ``match``, ``mismatch`` or leave
    ``undecided``. Where the trace records page frees, a model that frees more page tables
    in an episode than its thread freed order-0 pages is contradicted: a clean lazyfree PMD
    THP discarded whole frees its deposited table (zap_deposited_table()), one split keeps it
    as its PTE table, the signal of the PMD fix on arm64 and riscv, which have no tlb_flush."""
    checks: dict[str, Counter] = {
        model: Counter() for model, m in MODELS.items() if not m.hypothetical
    }
    with_folios = set(recon.folios["episode"].tolist())
    kinds = recon.episodes.set_index("episode")["kind"].to_dict()
    records = shapes(recon.folios).to_dict("records")
    keys = [state_key(shape) for shape in records]
    frees = recon.order0_frees
    split_before = cut_flushes(recon.partial, recon.episodes)
    deferring = set(
        recon.folios.loc[recon.folios["mm_cpus"].astype(object) == REMOTE, "episode"].tolist()
    )
    observed_of = {
        episode: _observed(recon.signatures[episode], split_before.get(episode))
        for episode in with_folios
    }
    # episodes that look alike (the same observed signature, path, deferral and page frees)
    # are checked once against each mix's predicted signature
    alike: dict[tuple, int] = {}
    look = {
        episode: alike.setdefault(
            (
                _frozen(observed_of[episode]),
                kinds[episode] == "madvise_pageout",
                episode in deferring,
                None if frees is None else frees.get(episode, 0),
            ),
            len(alike),
        )
        for episode in with_folios
    }
    for model in checks:
        mix_of, predicted = _predicted(records, keys, model, arch)
        verdicts: dict[tuple[int, int], str] = {}
        for episode in with_folios:
            mix = mix_of.get(episode)
            expected = None if mix is None else predicted[mix]
            if mix is None or expected is None:
                checks[model]["undecided"] += 1
                continue
            verdict = verdicts.get((mix, look[episode]))
            if verdict is None:
                observed = observed_of[episode]
                # x86 tlb_flush events fire on the CPUs that flush: the reclaiming CPU for its
                # own mm; for another task's mm only where it is loaded (none, for a sleeping
                # task)
                own_mm = kinds[episode] == "madvise_pageout"
                same = expected[:3] == observed[:3] and (
                    not recon.has_flush_events
                    or not own_mm
                    or flushes_agree(expected[3], observed[3], expected[4], episode in deferring)
                )
                same = same and (frees is None or expected[5] <= frees.get(episode, 0))
                verdict = verdicts[(mix, look[episode])] = "match" if same else "mismatch"
            checks[model][verdict] += 1
    return checks


def recognise(meta: dict, recon: Reconstruction, arch: str) -> tuple[str, str]:
    """The captured kernel's model and why."""
    return decide(meta, signature_checks(recon, arch))


def decide(meta: dict, checks: dict[str, Counter]) -> tuple[str, str]:
    """The captured kernel's model from its release and the signature ``checks`` of its
    episodes (summed over a whole trace), and why."""
    release = release_of(meta.get("kernel", ""))
    fits = [
        model for model in PREFERENCE if checks[model]["match"] and not checks[model]["mismatch"]
    ]
    summary = "; ".join(
        f"{model}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(checks[model].items()))
        for model in PREFERENCE
        if checks[model]
    )
    try:
        prior = range_for_release(release)
    except ValueError:  # a trace without its bundle (text: no kernel line): the trace alone
        return _decide_by_trace(checks, fits, summary)
    by_release = prior.model
    cited = f"release {release} ({prior.citation})"
    if not summary:
        return by_release, f"{cited}; no large-folio unmap in the trace to check"
    if by_release in fits:
        how = "the trace decides" if len(fits) == 1 else "signatures agree"
        return by_release, f"{cited}, {how} ({summary})"
    if not fits:
        return by_release, f"{cited}, no model reproduces the trace ({summary})"
    if not checks[by_release]["mismatch"]:
        return by_release, f"{cited}, not contradicted by the trace ({summary})"
    nearest = min(fits, key=lambda model: release_distance(model, release))
    also = [model for model in fits if model != nearest]
    return nearest, (
        f"{cited} suggests {by_release} but the trace's signatures fit "
        f"{nearest}"
        + (f" (the nearest release of {', '.join([nearest, *also])})" if also else "")
        + f": the trace wins ({summary})"
    )


def _decide_by_trace(checks: dict[str, Counter], fits: list[str], summary: str) -> tuple[str, str]:
    """The captured kernel's model where its release is not known: the newest model whose
    signatures every episode fits, else the one fewest episodes contradict (newest first on a
    tie), else, with no large-folio unmap to check, the newest model, said to be assumed."""
    unknown = "release not known (no kernel line: a trace without its bundle)"
    if fits:
        also = f" (also fit: {', '.join(fits[1:])})" if len(fits) > 1 else ""
        return fits[0], f"{unknown}; the trace's signatures fit {fits[0]}{also} ({summary})"
    checked = [model for model in PREFERENCE if checks[model]]
    if checked:
        nearest = min(checked, key=lambda model: checks[model]["mismatch"])
        return nearest, (
            f"{unknown}; no model reproduces the trace, {nearest} is contradicted least ({summary})"
        )
    return PREFERENCE[0], f"{unknown}; no large-folio unmap in the trace to check: assumed"
