"""validate and calibrate in Markdown and JSON, and progress, on the real lab bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from folio_replay.cli import main
from folio_replay.progress import Steps, step

X86 = Path(__file__).resolve().parent.parent / "fixtures" / "bundles" / "x86_64"
OLD = X86 / "6.12.117+deb13-cloud-amd64" / "microbench"
NEW = X86 / "7.2.13+deb14-cloud-amd64" / "microbench"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_validate_json_rows_are_the_validation_columns() -> None:
    code, output = invoke("validate", str(OLD), "--against", str(NEW), "--format", "json")
    assert code == 0, output
    tables = json.loads(output)
    assert list(tables) == ["bundles", "validation", "attribution", "speedups", "result"]
    old, new = (row["model"] for row in tables["bundles"])
    assert old == "unbatched" and new.startswith("batched")  # 7.2: batched-partial or later
    rows = pd.DataFrame(tables["validation"])
    assert len(rows) == tables["result"][0]["counters"] and rows["match"].all()
    assert set(rows["check"]) == {"captured", "cross-kernel"}
    split = rows[(rows["counter"] == "split_deferred") & (rows["size_kb"] == 64)]
    # the 6.12 capture counted 2048, the 7.2 capture 0; each kernel's model predicts the other's
    assert sorted(zip(split["check"], split["model"], split["observed"])) == [
        ("captured", new, 0),
        ("captured", "unbatched", 2048),
        ("cross-kernel", new, 0),
        ("cross-kernel", "unbatched", 2048),
    ]
    assert (split["predicted_low"] == split["observed"]).all()
    n = len(rows)
    assert tables["result"] == [{"counters": n, "match": n, "explained": 0, "mismatch": 0}]
    speedups = tables["speedups"]
    assert all(row["emulated"] for row in speedups)
    assert all(
        abs(row["predicted"] / row["measured"] - 1 - row["error"]) < 1e-9 for row in speedups
    )


def test_validate_markdown_has_the_speedups_with_units() -> None:
    code, output = invoke("validate", str(OLD), "--against", str(NEW), "--format", "markdown")
    assert code == 0, output
    _, json_output = invoke("validate", str(OLD), "--against", str(NEW), "--format", "json")
    tables = json.loads(json_output)
    speedup, new = tables["speedups"][0], tables["bundles"][1]["model"]
    line = next(x for x in output.splitlines() if x.startswith(f"| unbatched→{new} "))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells == [
        f"unbatched→{new} speedup from the old capture",
        f"{speedup['predicted']:.2f}×",
        f"{speedup['measured']:.2f}×",
        f"{speedup['error']:+.1%}",
    ]
    n = tables["result"][0]["counters"]
    assert output.rstrip().endswith(f"- {n}/{n} counters match")


def test_calibrate_json_has_the_fit_and_its_error() -> None:
    bundles = [str(p) for p in (OLD, NEW, OLD.parent / "mixed", NEW.parent / "mixed")]
    code, output = invoke("calibrate", *bundles, "--format", "json")
    assert code == 0, output
    tables = json.loads(output)
    assert tables["fit"] == [{"table": "x86.toml", "arch": "x86", "episodes": 4, "emulated": True}]
    episodes = pd.DataFrame(tables["episodes"])
    assert sorted(episodes["bundle"]) == sorted(bundles)
    rms = (episodes["error"] ** 2).mean() ** 0.5
    assert tables["error"][0]["rms_error"] == rms
    assert {row["group"] for row in tables["scales"]} >= {"page", "pte", "flush"}


def test_progress_is_drawn_only_when_asked(capsys) -> None:
    with Steps(enabled=False) as steps, steps.step("analyse quietly"), step("inner quietly"):
        pass
    assert capsys.readouterr().err == ""
    with Steps() as steps, steps.step("analyse by default"):  # stderr is no terminal here
        pass
    assert capsys.readouterr().err == ""
    with Steps(enabled=True) as steps:
        assert steps.progress is not None
        with steps.step("analyse BUNDLE"), step("reconstruct"):
            running = [task.description for task in steps.progress.tasks]
        assert running == ["analyse BUNDLE", "reconstruct"]  # library steps show while they run
        assert list(steps.track([1, 2], "bundles", total=2)) == [1, 2]
    err = capsys.readouterr().err
    assert "✓ analyse BUNDLE" in err and "bundles" in err and "2/2" in err
    assert "reconstruct" not in err  # and are gone when done
    with step("outside any display"):  # library steps without a command's display: nothing
        pass
    assert capsys.readouterr().err == ""
