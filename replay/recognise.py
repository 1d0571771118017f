"""Recognise the captured kernel's unmap model: its release, checked against the trace.

The check replays every episode's folios through each model and compares the trace signatures
the model says the kernel emits (``UnmapResult.rss_steps``: one rss_stat MM_ANONPAGES step per
add_mm_counter(); x86 ``tlb_flush_pages``: one tlb_flush event per local flush) with the
episode's observed ones, after removing the single-page steps and flushes of order-0 discards.
A folio whose possibilities (unknown dirty page) emit different signatures leaves the episode
undecided for that model. The trace wins over the release: a vendor kernel may carry a backport.
"""

from __future__ import annotations

from collections import Counter

from folio_replay.replay.models import MODELS, unmap
from folio_replay.replay.predict import folio_states
from folio_replay.replay.reconstruct import Reconstruction
from folio_replay.replay.releases import discards_clean_pmd, model_for_release

# newest first, when the trace ties
PREFERENCE = ("batched-partial", "batched", "unbatched", "unbatched-pmd-discard")


def release_of(kernel: str) -> str:
    """The release from a /proc/version line ("Linux version 6.12.48+deb13-amd64 (...) ...")."""
    words = kernel.split()
    return words[2] if len(words) > 2 and words[:2] == ["Linux", "version"] else kernel.strip()


def _predicted(
    recon: Reconstruction, episode: int, model: str, arch: str
) -> tuple[Counter, Counter] | None:
    """(rss steps, tlb_flush pages) the model emits for the episode's folios, or None when a
    folio's possibilities disagree."""
    rss, flushes = Counter(), Counter()
    for folio in recon.folios[recon.folios["episode"] == episode].to_dict("records"):
        results = [unmap(model, state) for state in folio_states(folio, arch)]
        signatures = {(tuple(r.rss_steps), tuple(r.tlb_flush_pages)) for r in results}
        if len(signatures) > 1:
            return None
        steps, pages = signatures.pop()
        rss.update(steps)
        flushes.update(pages)
    return rss, flushes


def signature_checks(recon: Reconstruction, arch: str) -> dict[str, Counter]:
    """Per model: how many episodes its signatures ``match``, ``mismatch`` or leave
    ``undecided``."""
    has_flush_events = bool((recon.events["event"] == "tlb_flush").any())
    checks = {model: Counter() for model in MODELS}
    for episode, signature in recon.signatures.items():
        if not (recon.folios["episode"] == episode).any():
            continue
        small = Counter({1: signature["small_discards"]})
        observed_rss = Counter(signature["rss_steps"]) - small
        observed_flushes = Counter(signature["tlb_flush_pages"]) - small
        for model in MODELS:
            predicted = _predicted(recon, episode, model, arch)
            if predicted is None:
                checks[model]["undecided"] += 1
                continue
            same = predicted[0] == observed_rss and (
                not has_flush_events or predicted[1] == observed_flushes
            )
            checks[model]["match" if same else "mismatch"] += 1
    return checks


def recognise(meta: dict, recon: Reconstruction, arch: str) -> tuple[str, str]:
    """The captured kernel's model and why: the release's model unless the trace's signatures
    contradict it and another model reproduces them."""
    release = release_of(meta.get("kernel", ""))
    by_release = model_for_release(release)
    if by_release == "unbatched" and discards_clean_pmd(release):
        by_release = "unbatched-pmd-discard"
    checks = signature_checks(recon, arch)
    fits = [
        model for model in PREFERENCE if checks[model]["match"] and not checks[model]["mismatch"]
    ]
    summary = "; ".join(
        f"{model}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(checks[model].items()))
        for model in PREFERENCE
        if checks[model]
    )
    if not summary:
        return by_release, f"release {release}; no large-folio unmap in the trace to check"
    if by_release in fits:
        return by_release, f"release {release}, signatures agree ({summary})"
    if not checks[by_release]["mismatch"]:
        return by_release, f"release {release}, not contradicted by the trace ({summary})"
    if not fits:
        return by_release, f"release {release}, no model reproduces the trace ({summary})"
    return fits[0], (
        f"release {release} suggests {by_release} but the trace's signatures fit "
        f"{fits[0]} ({summary})"
    )
