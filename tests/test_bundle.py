"""load_bundle on real bundles, whole and with parts taken away (nothing guessed)."""

from __future__ import annotations

import json
import shutil

import pytest
from folio_replay.parsers import load_bundle
from parse_fixtures import BUNDLES, HOST

from folio_replay.errors import InputError, InputWarning

BUNDLE_DIRS = sorted(p.parent for p in BUNDLES.glob("**/meta.json"))
SOURCE = BUNDLE_DIRS[0] if BUNDLE_DIRS else None
pytestmark = pytest.mark.skipif(SOURCE is None, reason="no bundle in fixtures/bundles")


@pytest.mark.parametrize(
    "path", BUNDLE_DIRS, ids=[str(p.relative_to(BUNDLES)) for p in BUNDLE_DIRS]
)
def test_real_bundles_are_complete(path):
    bundle = load_bundle(path)
    assert bundle.missing == []
    assert bundle.trace_path == path / "trace.txt.gz"
    assert bundle.meta["arch"] in {"x86_64", "aarch64", "riscv64"}
    assert bundle.meta["kernel"].startswith("Linux version ")
    assert not bundle.stats_before.empty and not bundle.stats_after.empty


@pytest.fixture
def copy(bundle_copy):
    return bundle_copy(SOURCE)


def test_without_stats_after(copy):
    shutil.rmtree(copy / "stats" / "after")
    bundle = load_bundle(copy)
    assert bundle.missing == ["stats/after"]
    assert bundle.stats_after.empty and not bundle.stats_before.empty
    with pytest.raises(InputError, match="no stats/after"):
        bundle.stats_delta()
    assert bundle.read_trace().table.num_rows > 0


def test_without_trace_and_vmstat(copy):
    (copy / "trace.txt.gz").unlink()
    (copy / "stats" / "before" / "vmstat").unlink()
    bundle = load_bundle(copy)
    assert bundle.missing == ["trace", "stats/before/vmstat"]
    assert bundle.trace_path is None
    assert "vmstat" not in set(bundle.stats_before["source"])
    with pytest.raises(InputError, match="no trace file"):
        bundle.read_trace()


def test_without_meta_or_with_keys_missing(copy):
    meta = json.loads((copy / "meta.json").read_text())
    del meta["name"], meta["command"]
    (copy / "meta.json").write_text(json.dumps(meta))
    assert load_bundle(copy).missing == ["meta.json:command", "meta.json:name"]
    (copy / "meta.json").unlink()
    bundle = load_bundle(copy)
    assert bundle.missing == ["meta.json"] and bundle.meta == {}


def test_broken_meta_json_is_an_input_error(copy):
    text = (copy / "meta.json").read_text()
    (copy / "meta.json").write_text(text[: len(text) // 2])
    with pytest.raises(InputError) as err:
        load_bundle(copy)
    assert err.value.path.endswith("meta.json") and err.value.line is not None


def test_trace_file_choice(copy):
    shutil.copy(HOST / "perf.txt.gz", copy / "perf.txt.gz")
    assert load_bundle(copy).trace_path.name == "trace.txt.gz"
    (copy / "trace.txt.gz").unlink()
    bundle = load_bundle(copy)
    assert bundle.trace_path.name == "perf.txt.gz" and bundle.missing == []
    assert bundle.read_trace().format == "perf-script"


def test_bad_stats_file_names_the_file(copy):
    """A binary split_deferred: reported at load, an error naming the file when validating."""
    target = copy / "stats" / "after" / "hugepages-64kB" / "stats" / "split_deferred"
    target.write_text("\x00\n")
    with pytest.warns(InputWarning, match="split_deferred: neither a number nor a"):
        bundle = load_bundle(copy)
    assert [p.path for p in bundle.skipped] == [target]
    with pytest.raises(InputError) as err:
        bundle.stats_delta()
    assert err.value.path == str(target)
    assert "needed to validate" in err.value.message


def test_not_a_directory(tmp_path):
    with pytest.raises(InputError, match="not a bundle directory"):
        load_bundle(tmp_path / "absent")
