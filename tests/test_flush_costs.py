"""Cost tables: the shipped ones load and cite their numbers, the arch flush policies turn flush
requests into the primitives the kernel sources say (with PTI and INVLPGB as table options, the
deferred flushes of a reclaim list shared among its folios), the x86 policy reproduces the
tlb_flush page counts of real captures, and a bad user table is a one-line InputError naming
the key. The x86 table's measured costs are checked against captures they were not derived
from here and in tests/test_hardware_costs.py."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from folio_replay.parsers import load_bundle
from folio_replay.replay.costs.tables import COSTS_DIR, arm64_range_tlbis, load_table
from folio_replay.replay.folio import Flush, FolioState
from folio_replay.replay.models import MODELS

from folio_replay.cli import main
from folio_replay.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
X86_7 = ROOT / "fixtures/bundles/x86_64/7.2.13+deb14-cloud-amd64"


def unmap_flush(pages: int) -> Flush:
    return Flush(pages, True, "try_to_unmap_one")


def set_ns(text: str, op: str, value: str) -> str:
    """The table text with ``[ops.OP]``'s ns replaced by ``value`` (TOML source text)."""
    new, count = re.subn(rf"(\[ops\.{op}\]\nns = )[^\n]+", lambda m: m[1] + value, text, count=1)
    assert count == 1, op
    return new


def user_table(tmp_path: Path, arch: str, edit) -> Path:
    """A copy of the shipped ``arch`` table with one text edit."""
    text = (COSTS_DIR / f"{arch}.toml").read_text()
    path = tmp_path / f"{arch}-user.toml"
    path.write_text(edit(text))
    return path


@pytest.mark.parametrize("arch", ["x86", "arm64", "riscv"])
def test_shipped_tables_load_with_sources(arch):
    """Every op has a source or is an estimate with a basis; the digest is the file's sha256."""
    table = load_table(arch)
    assert table.arch == arch
    assert table.digest == hashlib.sha256((COSTS_DIR / f"{arch}.toml").read_bytes()).hexdigest()
    for name, cost in table.ops.items():
        assert cost.source.strip(), name
    raw = tomllib.loads((COSTS_DIR / f"{arch}.toml").read_text())
    assert all(entry["source"].strip() for entry in raw["policy"].values())


def test_provenance_kinds():
    """Each shipped table says which numbers are measured here, cited or estimated."""
    kinds = {
        arch: {row["op"]: row["kind"] for row in load_table(arch).provenance()}
        for arch in ("x86", "arm64", "riscv")
    }
    assert kinds["x86"]["invlpg"] == "measured" and kinds["x86"]["flush_partial"] == "measured"
    assert kinds["x86"]["invpcid_user"] == "cited" and kinds["x86"]["invlpgb"] == "estimate"
    assert kinds["arm64"]["dsb_ish"] == "cited" and kinds["arm64"]["tlbi_va"] == "estimate"
    assert set(kinds["riscv"].values()) <= {"measured", "cited", "estimate"}


def test_aliases_name_the_same_table():
    assert load_table("x86_64") is load_table("x86")
    assert load_table("aarch64") is load_table("arm64")
    assert load_table("riscv64") is load_table("riscv")


def test_x86_invlpg_up_to_the_ceiling_then_full_flush():
    """16 pages: one partial flush of 16 INVLPG; 34 pages (> tlb_single_page_flush_ceiling =
    33): one full flush."""
    x86 = load_table("x86")
    assert x86.flush_ops(unmap_flush(16), 0) == {"flush_partial": 1, "invlpg": 16}
    assert x86.flush_ops(unmap_flush(33), 0) == {"flush_partial": 1, "invlpg": 33}
    assert x86.flush_ops(unmap_flush(34), 0) == {"flush_full": 1}
    invlpg, full = x86.ops["invlpg"].ns, x86.ops["flush_full"].ns
    result = MODELS["batched"].run(FolioState(nr_pages=16))
    assert x86.breakdown(result)["invlpg"] == 16 * invlpg
    assert x86.breakdown(result)["flush_partial"] == x86.ops["flush_partial"].ns
    assert (
        x86.breakdown(MODELS["batched"].run(FolioState(nr_pages=512, pmd_mapped=True)))[
            "flush_full"
        ]
        == full
    )


def test_x86_remote_cpus_defer_to_the_tlbbatch():
    """With the mm on another CPU reclaim defers the flush (arch_tlbbatch_should_defer): the
    folio pays a batch add, the batch one full flush and an IPI; no tlb_flush event now."""
    x86 = load_table("x86")
    assert x86.flush_ops(unmap_flush(16), 1) == {"tlbbatch_add": 1}
    assert x86.tlb_flush_events(unmap_flush(16), 1) == []
    assert x86.tlbbatch_flush_ops(1) == {"flush_full": 1, "ipi_shootdown": 1}
    pmd = Flush(512, False, "flush_pmd_tlb_range")  # synchronous: IPI now
    assert x86.flush_ops(pmd, 1) == {"flush_full": 1, "ipi_shootdown": 1}
    assert x86.tlb_flush_events(pmd, 1) == [-1, -1]


def test_x86_policy_reproduces_real_tlb_flush_pages():
    """The 7.2 x86 captures, inside MADV_PAGEOUT: a 64 KiB folio's batched flush is a tlb_flush
    of 16 pages and a 2 MiB PMD clear a full flush (-1), as the table's ceiling predicts."""
    x86 = load_table("x86")
    for scenario, flush in (
        ("microbench", unmap_flush(16)),
        ("pmd-clean", Flush(512, False, "flush_pmd_tlb_range")),
    ):
        events = load_bundle(X86_7 / scenario).read_trace().to_pandas()
        calls = events[events["event"].isin(["sys_enter_madvise", "sys_exit_madvise"])]
        enter = calls[calls["madvise.behavior"] == "MADV_PAGEOUT"].iloc[0]
        leave = calls[
            (calls["event"] == "sys_exit_madvise")
            & (calls["line"] > enter["line"])
            & (calls["pid"] == enter["pid"])
        ].iloc[0]
        window = events[(events["line"] > enter["line"]) & (events["line"] < leave["line"])]
        pages = set(window[window["event"] == "tlb_flush"]["tlb_flush.pages"].astype(int))
        assert pages == set(x86.tlb_flush_events(flush, 0))


def test_arm64_range_tlbi_algorithm():
    """__flush_tlb_range_op() with FEAT_TLBIRANGE: 16 pages -> one range op (scale 0, num 7);
    15 -> 14 by range + 1 alone; 1 -> alone; 512 -> one range op (scale 1, num 7)."""
    assert arm64_range_tlbis(16) == (0, 1)
    assert arm64_range_tlbis(15) == (1, 1)
    assert arm64_range_tlbis(1) == (1, 0)
    assert arm64_range_tlbis(512) == (0, 1)
    assert arm64_range_tlbis(100) == (0, 2)  # 64 (scale 1, num 0) + 36 (scale 0, num 17)


def test_arm64_with_and_without_tlbirange(tmp_path):
    """A batched 64 KiB unmap: one TLBI RVALE1IS with TLBIRANGE, 16 TLBI VALE1IS without; both
    issued without waiting (reclaim defers: one DSB ISH per batch); 512+ pages without range
    ops become flush_tlb_mm (MAX_DVM_OPS)."""
    arm64 = load_table("arm64")
    no_range = load_table(
        user_table(
            tmp_path,
            "arm64",
            lambda t: t.replace(
                "[policy.tlbi_range]\nvalue = true", "[policy.tlbi_range]\nvalue = false"
            ),
        )
    )
    assert arm64.flush_ops(unmap_flush(16), 0) == {"dsb_ishst": 1, "tlbi_range": 1}
    assert no_range.flush_ops(unmap_flush(16), 0) == {"dsb_ishst": 1, "tlbi_va": 16}
    assert no_range.flush_ops(unmap_flush(512), 0) == {"dsb_ishst": 1, "tlbi_asid": 1, "dsb_ish": 1}
    assert arm64.flush_ops(unmap_flush(512), 0) == {"dsb_ishst": 1, "tlbi_range": 1}
    assert arm64.tlbbatch_flush_ops(0) == {"dsb_ish": 1}
    unfold = Flush(16, False, "contpte_convert")  # synchronous: waits for completion
    assert arm64.flush_ops(unfold, 0) == {"dsb_ishst": 1, "tlbi_range": 1, "dsb_ish": 1}
    batched = MODELS["batched"].run(FolioState(nr_pages=16, contpte=True))
    unbatched = MODELS["unbatched"].run(FolioState(nr_pages=16, contpte=True))
    assert no_range.price(batched) < no_range.price(unbatched)
    assert arm64.price(batched) < no_range.price(batched)


def test_riscv_sfence_threshold_and_sbi():
    """Up to tlb_flush_all_threshold (64) entries: one SFENCE.VMA each; more: the whole ASID;
    other harts: one SBI remote fence; reclaim always defers to the tlbbatch."""
    riscv = load_table("riscv")

    def sync(pages: int) -> Flush:
        return Flush(pages, False, "contpte_convert")  # any synchronous flush

    assert riscv.flush_ops(sync(64), 0) == {"sfence_vma_page": 64}
    assert riscv.flush_ops(sync(65), 0) == {"sfence_vma_asid": 1}
    assert riscv.flush_ops(sync(16), 2) == {"sbi_rfence": 1}
    assert riscv.flush_ops(Flush(512, False, "flush_pmd_tlb_range"), 0) == {"sfence_vma_page": 1}
    assert riscv.flush_ops(unmap_flush(16), 0) == {"tlbbatch_add": 1}
    assert riscv.tlbbatch_flush_ops(0) == {"sfence_vma_all": 1}


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: set_ns(t, "invlpg", "-1"),
            "ops.invlpg.ns: must be a number of ns in 0..1e+09, not -1",
        ),
        (
            lambda t: re.sub(r"(\[ops\.walk_step\]\nns = [^\n]+\n)source = [^\n]+\n", r"\1", t),
            "ops.walk_step: needs a source",
        ),
        (lambda t: t.replace("[ops.pte_clear]", "[ops.pte_zap]"), "ops.pte_zap: not an op"),
        (
            lambda t: t.replace("value = 33", 'value = "33"'),
            "policy.single_page_flush_ceiling.value: must be 0..4294967296 int, not '33'",
        ),
        (lambda t: t.replace('arch = "x86"', 'arch = "mips"'), "table.arch: unknown arch 'mips'"),
        (lambda t: t + "[oops\n", "not a TOML cost table"),
    ],
)
def test_bad_user_table_is_one_line_input_error(tmp_path, edit, message):
    path = user_table(tmp_path, "x86", edit)
    with pytest.raises(InputError) as err:
        load_table(path)
    assert err.value.path == str(path.resolve())
    assert message in err.value.one_line() and "\n" not in err.value.one_line()


def test_bad_user_table_through_the_cli(tmp_path):
    """The CLI names the file and key, exit code 2, no traceback."""
    path = user_table(tmp_path, "x86", lambda t: set_ns(t, "invlpg", '"fast"'))
    result = CliRunner().invoke(
        main,
        [
            "replay",
            str(X86_7 / "microbench"),
            "--arch",
            "x86",
            "--costs",
            str(path),
            "-o",
            str(tmp_path / "report"),
        ],
    )
    assert result.exit_code == 2
    line = path.read_text().splitlines().index('ns = "fast"') + 1
    assert f"{path.resolve()}:{line}: ops.invlpg.ns: must be a number of ns in 0..1e+09" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_x86_pti_doubles_each_page_flush_and_invlpgb_replaces_ipis(tmp_path):
    """policy.pti: every INVLPG of a partial flush has its user-PCID INVPCID; policy.invlpgb:
    the tlbbatch flush and the flushes of an mm on 4+ CPUs are broadcast, without IPIs."""

    def with_policy(key: str) -> Path:
        text = (COSTS_DIR / "x86.toml").read_text()
        path = tmp_path / f"x86-{key}.toml"  # tables are cached by path: one file per option
        path.write_text(
            text.replace(f"[policy.{key}]\nvalue = false", f"[policy.{key}]\nvalue = true")
        )
        return path

    pti, invlpgb = load_table(with_policy("pti")), load_table(with_policy("invlpgb"))
    assert pti.flush_ops(unmap_flush(16), 0) == {
        "flush_partial": 1,
        "invlpg": 16,
        "invpcid_user": 16,
    }
    assert pti.flush_ops(unmap_flush(34), 0) == {"flush_full": 1}
    assert invlpgb.tlbbatch_flush_ops(1) == {"invlpgb": 1, "tlbsync": 1}
    assert invlpgb.flush_ops(Flush(512, False, "flush_pmd_tlb_range"), 3) == {
        "invlpgb": 1,
        "tlbsync": 1,
    }
    assert invlpgb.flush_ops(Flush(512, False, "flush_pmd_tlb_range"), 1) == {
        "flush_full": 1,
        "ipi_shootdown": 1,
    }


def test_an_option_without_its_ops_is_refused(tmp_path):
    path = user_table(
        tmp_path,
        "x86",
        lambda t: re.sub(
            r"\[ops\.invpcid_user\]\n[^\[]*",
            "",
            t.replace("[policy.pti]\nvalue = false", "[policy.pti]\nvalue = true"),
        ),
    )
    with pytest.raises(InputError, match=r"ops\.invpcid_user: missing"):
        load_table(path)


def test_deferred_flushes_of_a_reclaim_list_are_shared_by_its_folios():
    """arm64 defers every unmap TLBI (issued without waiting): a 64 KiB folio, one of the 32 of
    its MADV_PAGEOUT list, pays 2/32 of the list's DSB ISH (the free batch of 31 fills once,
    then the end of the list) and 1/32 of the next walk's flush_tlb_mm; x86 without other CPUs
    flushes at once and shares nothing; with another CPU, 2/32 of a full flush with its IPI and
    1/32 of the pending flush."""
    arm64, x86 = load_table("arm64"), load_table("x86")
    result = MODELS["batched-partial"].run(FolioState(nr_pages=16, contpte=True))
    share = arm64.batch_share(result)
    assert share["dsb_ish"] == pytest.approx(2 / 32 + 1 / 32)
    assert share["tlbi_asid"] == pytest.approx(1 / 32)
    assert arm64.primitive_counts(result)["dsb_ish"] == pytest.approx(3 / 32)
    local = MODELS["batched-partial"].run(FolioState(nr_pages=16))
    assert x86.batch_share(local) == {}
    remote = MODELS["batched-partial"].run(FolioState(nr_pages=16, remote_cpus=1))
    assert x86.batch_share(remote) == pytest.approx({"flush_full": 3 / 32, "ipi_shootdown": 3 / 32})
    pmd = MODELS["batched-partial"].run(FolioState(nr_pages=512, pmd_mapped=True))
    assert arm64.batch_share(pmd) == {}  # the PMD clear flushes at once


def test_process_madvise_of_a_sleeping_process_prices_no_flush():
    """The process-madvise host bundle (128 MiB of 64 KiB lazyfree folios reclaimed by
    process_madvise from another process that sleeps, fixtures/host/make_host_kinds.sh,
    6.18.44): no CPU has the target's mm loaded, so flush_tlb_mm_range() flushes nothing and
    the reclaiming thread writes no tlb_flush event in the call. Every folio is ``none`` and
    x86 prices no TLB invalidation (it priced a local flush per folio: +115% on captures of an
    idle machine); the x86 table's measured entries come from bench/costs."""
    import folio_replay

    bundle = ROOT / "fixtures/bundles/host/6.18.44-fc-v1300/process-madvise"
    analysis = folio_replay.analyse(bundle, archs=["x86"])
    episode = analysis.recon.episodes.iloc[0]
    assert episode["kind"] == "process_madvise_pageout"
    assert analysis.recon.signatures[int(episode["episode"])]["tlb_flush_pages"] == {}
    assert analysis.recon.folios["mm_cpus"].astype(str).value_counts().to_dict() == {"none": 2048}
    x86 = analysis.predictions[analysis.predictions["arch"] == "x86"]
    assert len(x86) and (x86["tlb_invalidations"] == 0).all()
    assert (x86["cross_cpu_requests"] == 0).all()
    assert all(
        "measured here: bench/costs" in load_table("x86").ops[op].source
        for op in ("invlpg", "flush_partial", "flush_full", "folio_reclaim", "trace_event")
    )


def test_ipis_replayed_from_where_the_trace_shows_the_mm_loaded():
    """microbench-remote-cpu (a thread of the mm spins on CPU 1 during MADV_PAGEOUT, 6.18.44):
    the folios whose 16-page flush the trace shows on the reclaiming CPU are ``local``, the
    rest (their flush deferred to the tlbbatch) ``remote``; replayed through the captured
    kernel's model, the x86 cross-CPU requests (three per reclaim list of 32 deferred folios:
    two tlbbatch flushes and the next walk's pending flush) are the trace's
    TLB_REMOTE_SEND_IPI events of the call."""
    import folio_replay

    bundle = ROOT / "fixtures/host/remote/microbench-remote-cpu"
    analysis = folio_replay.analyse(bundle, archs=["x86"])
    events = analysis.recon.events
    rows = events.rows("tlb_flush")
    episode = analysis.recon.episodes.iloc[0]
    inside = (
        (events.pid[rows] == episode["pid"])
        & (rows > episode["start_seq"])
        & (rows < episode["end_seq"])
    )
    reasons = events.strings("tlb_flush.reason", rows[inside])
    pages = events.ints("tlb_flush.pages", rows[inside])
    sent = int((reasons == "TLB_REMOTE_SEND_IPI").sum())
    local_flushes = int(((reasons == "TLB_LOCAL_MM_SHOOTDOWN") & (pages == 16)).sum())
    classes = analysis.recon.folios["mm_cpus"].astype(str).value_counts().to_dict()
    assert classes == {"local": local_flushes, "remote": 2048 - local_flushes}
    rows = analysis.predictions[
        (analysis.predictions["arch"] == "x86") & (analysis.predictions["model"] == analysis.model)
    ]
    assert sent > 0 and rows["cross_cpu_requests"].sum() == sent


def test_x86_deferral_on_a_capture_with_the_mm_on_two_cpus():
    """fixtures/host/remote/microbench-remote-cpu (6.18.44, this machine): MADV_PAGEOUT of
    2048 64 KiB folios while a thread of the mm spins on CPU 1. Every folio is unmapped in one
    batch (rss step of 16); a folio's 16-page flush is only ever local (no IPI of 16 pages),
    because reclaim defers it whenever mm_cpumask holds another CPU; the deferred reclaim lists
    (32 folios each, one per PMD range) each end in tlbbatch_flushes(32) = 2 full IPI flushes
    (local part: TLB_LOCAL_SHOOTDOWN, mm NULL) and one flush_tlb_mm (TLB_LOCAL_MM_SHOOTDOWN -1)
    at the next walk."""
    from folio_replay.replay.costs.tables import tlbbatch_flushes

    events = (
        load_bundle(ROOT / "fixtures/host/remote/microbench-remote-cpu").read_trace().to_pandas()
    )
    calls = events[events["event"].isin(["sys_enter_madvise", "sys_exit_madvise"])]
    enter = calls[calls["madvise.behavior"] == "MADV_PAGEOUT"].iloc[0]
    leave = calls[
        (calls["event"] == "sys_exit_madvise")
        & (calls["line"] > enter["line"])
        & (calls["pid"] == enter["pid"])
    ].iloc[0]
    window = events[(events["line"] > enter["line"]) & (events["line"] < leave["line"])]
    flushes = window[window["event"] == "tlb_flush"]
    mine = flushes[flushes["pid"] == enter["pid"]]
    by_kind = {
        key: len(group)
        for key, group in mine.groupby(
            [mine["tlb_flush.reason"], mine["tlb_flush.pages"].astype(int)]
        )
    }
    assert set(by_kind) <= {
        ("TLB_LOCAL_MM_SHOOTDOWN", 16),
        ("TLB_REMOTE_SEND_IPI", -1),
        ("TLB_LOCAL_SHOOTDOWN", -1),
        ("TLB_LOCAL_MM_SHOOTDOWN", -1),
    }
    x86 = load_table("x86")
    state = FolioState(nr_pages=16)
    local = MODELS["batched-partial"].run(state)
    remote = MODELS["batched-partial"].run(FolioState(nr_pages=16, remote_cpus=1))
    assert local.tlb_flush_pages == [16] and remote.tlb_flush_pages == []
    assert local.rss_steps == remote.rss_steps == [16]
    per_list = 32  # 64 KiB folios per 2 MiB PMD range
    deferred_lists = (2048 - by_kind[("TLB_LOCAL_MM_SHOOTDOWN", 16)]) // per_list
    assert deferred_lists > 0 and by_kind[("TLB_LOCAL_MM_SHOOTDOWN", 16)] % per_list == 0
    assert by_kind[("TLB_LOCAL_SHOOTDOWN", -1)] == deferred_lists * tlbbatch_flushes(per_list)
    assert by_kind[("TLB_LOCAL_MM_SHOOTDOWN", -1)] in (deferred_lists, deferred_lists - 1)
    assert by_kind[("TLB_REMOTE_SEND_IPI", -1)] == (
        by_kind[("TLB_LOCAL_SHOOTDOWN", -1)] + by_kind[("TLB_LOCAL_MM_SHOOTDOWN", -1)]
    )
    assert x86.flush_ops(remote.flushes[0], 1) == {"tlbbatch_add": 1}
