"""Reconstruct one capture: episodes, folio records, lazyfree calls and partial unmaps."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from folio_replay.replay.reconstruct.episodes import find_episodes
from folio_replay.replay.reconstruct.lazyfree import lazyfree_calls
from folio_replay.replay.reconstruct.ledger import build_ledger
from folio_replay.replay.reconstruct.partial import partial_unmaps
from folio_replay.replay.reconstruct.unmaps import FOLIO_COLUMNS, episode_folios


@dataclass
class Reconstruction:
    """What the trace says the kernel did, with the evidence of each row."""

    events: pd.DataFrame
    ledger: pd.DataFrame
    episodes: pd.DataFrame  # one row per reclaim episode, signature columns included
    folios: pd.DataFrame  # one row per large folio per episode
    lazyfree: pd.DataFrame
    partial: pd.DataFrame
    signatures: dict[int, dict]  # per episode: rss_steps / tlb_flush_pages Counters and more

    @property
    def small_discards(self) -> int:
        """Order-0 lazyfree pages discarded by reclaim (they count in pglazyfreed)."""
        return int(self.episodes["small_discards"].sum())


def reconstruct(events: pd.DataFrame, machine: str) -> Reconstruction:
    """Run every reconstruction step on one event table (pandas) captured on ``machine``
    (``uname -m``: aarch64 maps large folios with contpte blocks)."""
    ledger = build_ledger(events)
    episodes = find_episodes(events)
    folio_frames, signatures = [], []
    for episode in episodes.to_dict("records"):
        folios, signature = episode_folios(events, ledger, episode, contpte=machine == "aarch64")
        folio_frames.append(folios)
        signatures.append(signature)
    folios = (
        pd.concat(folio_frames, ignore_index=True)
        if folio_frames
        else pd.DataFrame(columns=FOLIO_COLUMNS)
    )
    if signatures:
        shown = [
            {
                key: (str(value) if isinstance(value, dict) else value)
                for key, value in signature.items()
            }
            for signature in signatures
        ]
        episodes = episodes.merge(pd.DataFrame(shown), on="episode")
    else:
        episodes = episodes.assign(
            rss_steps="",
            tlb_flush_pages="",
            small_discards=0,
            captured_mode="undecided",
            captured_mode_evidence="",
            kept_per_page_steps=0,
        )
    return Reconstruction(
        events,
        ledger,
        episodes,
        folios,
        lazyfree_calls(events, ledger),
        partial_unmaps(events, ledger),
        {int(signature["episode"]): signature for signature in signatures},
    )
