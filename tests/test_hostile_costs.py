"""Hostile cost tables (issue 15), each the shipped x86 table with one edit: every cost a
finite number of ns within the table's limit, every error one line naming the line of the
key (or the TOML parser's line)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from folio_replay.replay.costs.tables import COSTS_DIR, load_table
from parse_fixtures import BUNDLES

from folio_replay.errors import InputError

X86 = COSTS_DIR / "x86.toml"
BUNDLE = BUNDLES / "x86_64" / "6.12.117+deb13-cloud-amd64" / "microbench"


INVLPG_NS = re.search(r"\[ops\.invlpg\]\n(?:.*\n)*?ns = [^\n]*", X86.read_text())[0]


def _table(tmp_path, old: str, new: str):
    text = X86.read_text()
    assert text.count(old) == 1
    path = tmp_path / "x86-user.toml"
    path.write_text(text.replace(old, new))
    return path, path.read_text().splitlines()


def _invlpg(tmp_path, ns: str):
    """The shipped x86 table with ``ops.invlpg.ns`` set to ``ns``."""
    return _table(tmp_path, INVLPG_NS, INVLPG_NS.rsplit("ns = ", 1)[0] + f"ns = {ns}")


@pytest.mark.parametrize("ns", ["nan", "inf", "-inf", "1e300", "1e9001", "-0.5"])
def test_cost_not_a_sane_number(tmp_path, ns):
    """``ns = nan`` once gave a LinAlgError in calibrate; nan, inf and 1e300 were accepted."""
    path, lines = _invlpg(tmp_path, ns)
    with pytest.raises(InputError) as err:
        load_table(path)
    line = lines.index(f"ns = {ns}") + 1
    shown = {"1e9001": "inf"}.get(ns, repr(float(ns)))
    assert err.value.one_line() == (
        f"{path}:{line}: ops.invlpg.ns: must be a number of ns in 0..1e+09, not {shown}"
    )


def test_cost_limit_itself_is_accepted(tmp_path):
    path, _ = _invlpg(tmp_path, "1e9")
    assert load_table(path).ops["invlpg"].ns == 1e9


def test_toml_syntax_error_names_the_line(tmp_path):
    path, lines = _invlpg(tmp_path, "1 00")
    with pytest.raises(InputError) as err:
        load_table(path)
    assert err.value.line == lines.index("ns = 1 00") + 1
    assert err.value.message.startswith("not a TOML cost table: ")
    assert "(at line" not in err.value.message


def test_policy_int_beyond_its_limit(tmp_path):
    path, lines = _table(tmp_path, "value = 33", f"value = {1 << 40}")
    with pytest.raises(InputError) as err:
        load_table(path)
    assert err.value.line == lines.index(f"value = {1 << 40}") + 1
    assert "policy.single_page_flush_ceiling.value: must be 0..4294967296 int" in str(err.value)


def test_missing_key_names_its_table(tmp_path):
    old = next(line for line in X86.read_text().splitlines() if line.startswith("source = "))
    text = X86.read_text()
    header = text[: text.index(old)].rstrip().splitlines()[-2]  # the [policy.X] of that source
    path, lines = _table(tmp_path, old + "\n", "")
    with pytest.raises(InputError) as err:
        load_table(path)
    assert err.value.line == lines.index(header) + 1
    assert err.value.message.endswith("missing citation")


def test_binary_and_fifo_tables(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'[table]\narch = "x86"\n\xff\n')
    with pytest.raises(InputError) as err:
        load_table(binary)
    assert err.value.one_line() == f"{binary}:3: not a TOML cost table: not UTF-8 text"
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as err:
        load_table(fifo)
    assert err.value.one_line() == f"{fifo}: cost table is a fifo: not read"


def test_nan_cost_through_calibrate_is_one_line(tmp_path):
    path, lines = _invlpg(tmp_path, "nan")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from folio_replay.cli import main; main()",
            "calibrate",
            str(BUNDLE),
            "--costs",
            str(path),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    line = lines.index("ns = nan") + 1
    assert proc.stderr == (
        f"folio-replay: error: {path}:{line}: ops.invlpg.ns: must be a number of ns in "
        "0..1e+09, not nan\n"
    )


def _op_section(op: str) -> str:
    """The whole ``[ops.OP]`` section of the shipped x86 table, its leading newline included."""
    return re.search(rf"\n\[ops\.{op}\]\n(?:[^\[\n][^\n]*\n?)*", X86.read_text())[0]


PAGEOUT_CALL = _op_section("pageout_call")


def test_a_table_without_the_call_cost_prices_calls_at_zero(tmp_path):
    """``pageout_call`` is optional (a user's table from before it existed still loads): absent,
    a MADV_PAGEOUT call costs nothing beyond its folios."""
    path, _ = _table(tmp_path, PAGEOUT_CALL, "\n")
    table = load_table(path)
    assert "pageout_call" not in table.ops and table.call_ns("pageout_call") == 0.0
    assert load_table("x86").call_ns("pageout_call") > 0


def test_a_negative_call_cost_names_its_line(tmp_path):
    old = PAGEOUT_CALL.split("source")[0]
    new = re.sub(r"ns = [^\n]*", "ns = -3", old)
    path, lines = _table(tmp_path, old, new)
    with pytest.raises(InputError) as err:
        load_table(path)
    assert err.value.one_line() == (
        f"{path}:{lines.index('ns = -3') + 1}: ops.pageout_call.ns: must be a number of ns in "
        "0..1e+09, not -3"
    )


SPLIT_PAGE = _op_section("pmd_split_page")
PTE_WRITE = _op_section("pte_write")


def test_a_table_from_before_the_split_page_op_prices_it_from_its_own_ops(tmp_path):
    """A user's table written before ``pmd_split_page`` existed still loads: a split page costs
    its ``pte_write`` (what priced it before) + ``rmap_page`` (its mapcount raise), an estimate
    that says where it comes from."""
    path, _ = _table(tmp_path, SPLIT_PAGE, "\n")
    table = load_table(path)
    derived = table.ops["pmd_split_page"]
    assert derived.ns == table.ops["pte_write"].ns + table.ops["rmap_page"].ns > 0
    assert derived.kind == "estimate" and "pte_write" in derived.source
    assert load_table("x86").ops["pmd_split_page"].kind == "measured"


def test_a_table_without_the_ops_a_split_page_derives_from_names_one(tmp_path):
    text = X86.read_text().replace(SPLIT_PAGE, "\n").replace(PTE_WRITE, "\n")
    path = tmp_path / "x86-user.toml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_table(path)
    assert err.value.one_line().endswith("ops.pte_write: missing (needed on x86)")


def test_a_table_from_before_the_swap_write_ops_prices_the_write_out_at_zero(tmp_path):
    """A user's table written before ``swap_write`` and ``swap_write_page`` existed still loads:
    the swap write-out, which no op priced before, costs 0 there (an estimate saying so), and
    a swap-backed folio then costs what it did before those ops."""
    text = (
        X86.read_text()
        .replace(_op_section("swap_write"), "\n")
        .replace(_op_section("swap_write_page"), "\n")
    )
    path = tmp_path / "x86-user.toml"
    path.write_text(text)
    table = load_table(path)
    for op in ("swap_write", "swap_write_page"):
        assert table.ops[op].ns == 0 and table.ops[op].kind == "estimate"
        assert "written before" in table.ops[op].source
        assert load_table("x86").ops[op].kind == "measured" and load_table("x86").ops[op].ns > 0


def _extending(tmp_path, body: str, name: str = "mine.toml"):
    path = tmp_path / name
    path.write_text(body)
    return path


def test_a_table_extending_a_shipped_one_replaces_only_what_it_names(tmp_path):
    """``[table] extends``: the base's ops and policy, this file's entries replacing the base's
    whole (an op keeps one provenance); the hash covers both files."""
    path = _extending(
        tmp_path,
        '[table]\narch = "x86"\nextends = "x86.toml"\n\n'
        '[ops.invlpg]\nns = 105\nsource = "measured here: another machine"\n\n'
        '[policy.pti]\nvalue = true\nsource = "this CPU: Mitigation: PTI"\n',
    )
    mine, base = load_table(path), load_table("x86")
    assert mine.ops["invlpg"].ns == 105 and mine.ops["invlpg"].source.endswith("another machine")
    assert {op for op in base.ops if mine.ops[op] != base.ops[op]} == {"invlpg"}
    assert mine.policy == {**base.policy, "pti": True}
    assert mine.digest != base.digest


def test_an_extended_table_must_exist_and_not_extend_another(tmp_path):
    missing = _extending(tmp_path, '[table]\narch = "x86"\nextends = "nowhere.toml"\n')
    with pytest.raises(InputError) as err:
        load_table(missing)
    assert err.value.one_line() == f"{tmp_path / 'nowhere.toml'}: no such cost table"
    _extending(tmp_path, '[table]\narch = "x86"\nextends = "x86.toml"\n', "middle.toml")
    chained = _extending(tmp_path, '[table]\narch = "x86"\nextends = "middle.toml"\n')
    with pytest.raises(InputError) as err:
        load_table(chained)
    assert err.value.one_line() == (
        f"{chained}:3: table.extends: middle.toml extends another table (one level only)"
    )
    for hostile, said in (
        ("a\\u0000b", "must name a cost table file"),
        ("x" * 300, "cannot read it: File name too long"),
    ):
        bad = _extending(tmp_path, f'[table]\narch = "x86"\nextends = "{hostile}"\n')
        with pytest.raises(InputError) as err:
            load_table(bad)
        assert err.value.one_line() == f"{bad}:3: table.extends: {said}"
    other_arch = _extending(tmp_path, '[table]\narch = "x86"\nextends = "arm64.toml"\n')
    with pytest.raises(InputError) as err:
        load_table(other_arch)
    assert err.value.one_line() == (
        f"{other_arch}:3: table.extends: arm64.toml is a table of arm64, not x86"
    )


def test_the_arm64_server_table_is_arm64_with_the_cited_server_flush_costs():
    """arm64-server.toml: arm64.toml but for the four broadcast TLB maintenance ops, each cited
    from the one published server measurement (SOURCES.md A1)."""
    server, base = load_table(COSTS_DIR / "arm64-server.toml"), load_table("arm64")
    changed = {op for op in base.ops if server.ops[op] != base.ops[op]}
    assert changed == {"tlbi_va", "tlbi_range", "tlbi_asid", "dsb_ish"}
    assert all("SOURCES.md A1" in server.ops[op].source for op in changed)
    assert all(server.ops[op].kind == "cited" for op in changed)
    assert server.policy == base.policy
    # the fixed part of A1's calls (961 ns) and its flush_tlb_mm() (1508 ns) add up
    fixed = server.ops["dsb_ishst"].ns + server.ops["dsb_ish"].ns
    assert fixed == 961 and fixed + server.ops["tlbi_asid"].ns == 1508
