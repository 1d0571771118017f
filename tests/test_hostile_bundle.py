"""Hostile bundles (issue 15), each a copy of a real lab bundle with one part spoiled: stats
files read strictly (skipped and reported unless the validation needs them), meta.json
checked key by key, non-regular files refused unread, and every error one line naming the
file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from folio_replay.parsers import load_bundle
from parse_fixtures import BUNDLES

from folio_replay.errors import InputError, InputWarning

SOURCE = BUNDLES / "x86_64" / "6.12.117+deb13-cloud-amd64" / "microbench"


@pytest.fixture(scope="module")
def sound_deltas():
    return load_bundle(SOURCE).stats_delta()


@pytest.fixture
def copy(tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(SOURCE, target)
    return target


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from folio_replay.cli import main; main()", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_empty_vmstat_is_one_error_when_validating(copy):
    """An empty stats/after/vmstat once gave a TypeError in ``validate``."""
    vmstat = copy / "stats" / "after" / "vmstat"
    vmstat.write_text("")
    proc = _cli("validate", str(copy))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"folio-replay: warning: {vmstat}: empty: skipped",
        f"folio-replay: error: {vmstat}: empty (its pglazyfreed is needed to validate)",
    ]


@pytest.mark.parametrize("value", [str(1 << 64), str(1 << 63), str(-(1 << 63) - 1)])
def test_value_beyond_int64_is_an_error_naming_the_line(copy, value):
    """2^64 in a stats file once raised OverflowError in ``validate`` and ``calibrate``."""
    vmstat = copy / "stats" / "after" / "vmstat"
    lines = vmstat.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("pglazyfreed "))
    lines[i] = f"pglazyfreed {value}"
    vmstat.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        load_bundle(copy)
    assert err.value.one_line() == (
        f"{vmstat}:{i + 1}: value {value} outside the signed 64-bit range"
    )


def test_delta_beyond_int64_is_an_error(copy):
    before = copy / "stats" / "before" / "hugepages-64kB" / "stats" / "split"
    after = copy / "stats" / "after" / "hugepages-64kB" / "stats" / "split"
    before.write_text(f"{-(1 << 62)}\n")
    after.write_text(f"{(1 << 63) - 1}\n")
    with pytest.raises(InputError, match=r"after - before = .* outside the signed 64-bit range"):
        load_bundle(copy).stats_delta()


def test_duplicated_vmstat_line_is_an_error(copy):
    """A vmstat with a counter twice was read (the last value won): a false mismatch."""
    vmstat = copy / "stats" / "after" / "vmstat"
    lines = vmstat.read_text().splitlines()
    first = next(k for k, line in enumerate(lines) if line.startswith("thp_split_pmd "))
    vmstat.write_text("\n".join([*lines, "thp_split_pmd 7"]) + "\n")
    with pytest.raises(InputError) as err:
        load_bundle(copy)
    assert err.value.one_line() == (
        f"{vmstat}:{len(lines) + 1}: thp_split_pmd given twice (first on line {first + 1})"
    )


def test_binary_stats_file_names_the_file(copy):
    target = copy / "stats" / "before" / "vmstat"
    target.write_bytes(bytes(range(256)))
    with pytest.warns(InputWarning, match="vmstat: not text \\(byte 128\\): skipped"):
        bundle = load_bundle(copy)
    with pytest.raises(InputError) as err:
        bundle.stats_delta()
    assert err.value.path == str(target)


def test_dev_zero_stats_file_is_refused_unread(copy, sound_deltas):
    """A stats file symlinked to /dev/zero was skipped silently; now it is reported, and an
    error when the validation needs it."""
    unneeded = copy / "stats" / "after" / "khugepaged" / "pages_collapsed"
    unneeded.unlink()
    unneeded.symlink_to("/dev/zero")
    with pytest.warns(InputWarning, match="a character device, not a regular file: not read"):
        bundle = load_bundle(copy)
    deltas = bundle.stats_delta()
    spoiled = deltas["counter"] == "khugepaged/pages_collapsed"
    assert deltas[spoiled]["after"].isna().all() and deltas[spoiled]["delta"].isna().all()
    kept = sound_deltas["counter"] != "khugepaged/pages_collapsed"
    assert deltas[~spoiled].reset_index(drop=True).equals(sound_deltas[kept].reset_index(drop=True))
    needed = copy / "stats" / "after" / "vmstat"
    needed.unlink()
    needed.symlink_to("/dev/zero")
    with pytest.warns(InputWarning):
        bundle = load_bundle(copy)
    with pytest.raises(InputError, match="a character device, not a regular file"):
        bundle.stats_delta()


def test_empty_enabled_of_a_size_is_skipped(copy, sound_deltas):
    """What ``for f in .../hugepages-*/enabled; do cat $f > ...`` leaves for a size without
    that file: nothing needs it, so the replay goes on."""
    empty = copy / "stats" / "before" / "hugepages-8kB" / "enabled"
    empty.parent.mkdir(exist_ok=True)
    empty.write_text("")
    with pytest.warns(InputWarning, match="hugepages-8kB/enabled: empty: skipped"):
        bundle = load_bundle(copy)
    assert bundle.stats_delta().equals(sound_deltas)
    assert bundle.settings_before["hugepages-64kB/enabled"] == "always"


def test_missing_validated_counter_is_an_error(copy):
    vmstat = copy / "stats" / "after" / "vmstat"
    vmstat.write_text(
        "".join(
            line + "\n" for line in vmstat.read_text().splitlines() if "pglazyfreed" not in line
        )
    )
    with pytest.raises(InputError) as err:
        load_bundle(copy).stats_delta()
    assert err.value.one_line() == f"{vmstat}: no pglazyfreed (needed to validate)"


def test_setting_with_a_plus_is_read(copy):
    """``defer+madvise`` selected in defrag was "neither a number nor a [choice]"."""
    (copy / "stats" / "before" / "defrag").write_text(
        "always defer [defer+madvise] madvise never\n"
    )
    assert load_bundle(copy).settings_before["defrag"] == "defer+madvise"


def _meta(copy, edit) -> tuple:
    path = copy / "meta.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta, indent=2))
    return path, path.read_text()


def test_meta_without_kernel_is_one_error(copy):
    """``ValueError: not a kernel release: ''`` in ``replay`` before."""
    path, _ = _meta(copy, lambda m: m.pop("kernel"))
    proc = _cli("replay", str(copy), "-o", str(copy.parent / "report"))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"folio-replay: error: {path}: no 'kernel' key (the captured kernel's /proc/version "
        "line or release)\n"
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("kernel", 612, "'kernel' must be a /proc/version line or a release such as 6.12.117"),
        ("kernel", "", "'kernel' must be a /proc/version line"),
        ("arch", ["x86_64"], "'arch' must be a machine name such as x86_64"),
        ("command", "folio_bench", None),
        ("command", [1, 2], "'command' must be a list of strings"),
        ("name", {"a": 1}, "'name' must be a string"),
    ],
)
def test_mistyped_meta_key_names_its_line(copy, key, value, expected):
    path, text = _meta(copy, lambda m: m.__setitem__(key, value))
    if expected is None:
        assert load_bundle(copy).meta[key] == value
        return
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith(f'  "{key}":'))
    with pytest.raises(InputError) as err:
        load_bundle(copy)
    assert err.value.path == str(path) and err.value.line == line
    assert err.value.message.startswith(expected)


def test_meta_key_given_twice(copy):
    path = copy / "meta.json"
    path.write_text(path.read_text().replace("{\n", '{\n  "arch": "riscv64",\n', 1))
    with pytest.raises(InputError, match="key 'arch' given twice"):
        load_bundle(copy)


@pytest.mark.parametrize("text", ['{"kernel": 1' + "0" * 5000 + "}", "[" * 100000, "\xff"])
def test_meta_json_limits(copy, text):
    (copy / "meta.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError) as err:
        load_bundle(copy)
    assert err.value.path == str(copy / "meta.json")


def test_fifo_trace_is_refused(copy):
    (copy / "trace.txt.gz").unlink()
    os.mkfifo(copy / "trace.txt.gz")
    with pytest.raises(InputError) as err:
        load_bundle(copy)
    assert err.value.one_line() == (
        f"{copy / 'trace.txt.gz'}: trace file is a fifo, not a regular file: not read"
    )
