"""Recognise the captured kernel's unmap model: its release, checked against the trace."""

from __future__ import annotations

from replay.kernels import model_for_release
from replay.reconstruct import Reconstruction

# What each captured_mode signature (replay.unmaps.captured_mode) says about the model.
MODELS_SHOWING = {"per_page": {"unbatched"}, "batched": {"batched", "batched-partial"}}


def release_of(kernel: str) -> str:
    """The release from a /proc/version line ("Linux version 6.12.48+deb13-amd64 (...) ...")."""
    words = kernel.split()
    return words[2] if len(words) > 2 and words[:2] == ["Linux", "version"] else kernel.strip()


def recognise(meta: dict, recon: Reconstruction) -> tuple[str, str]:
    """The captured kernel's model and why: the release's model unless the trace contradicts it.

    The trace wins (the kernel is the evidence): per-page rss_stat steps of large folios mean
    ``unbatched`` whatever the release says, whole-folio steps mean a batched model.
    """
    release = release_of(meta.get("kernel", ""))
    by_release = model_for_release(release)
    modes = recon.captured_modes
    if not modes:
        return by_release, f"release {release}; the trace shows no large-folio unmap signature"
    if len(modes) == 1:
        seen = MODELS_SHOWING[next(iter(modes))]
        if by_release not in seen:
            model = "unbatched" if seen == {"unbatched"} else "batched"
            return model, (f"release {release} suggests {by_release} but the trace shows "
                           f"{next(iter(modes))} unmaps: using {model}")
    return by_release, f"release {release}; trace shows {', '.join(sorted(modes))} unmaps"
