"""The report: ratios of medians, pass/fail of each target, and the Markdown it writes."""

from __future__ import annotations

from benchmarks.report import (
    evaluate_targets,
    format_report,
    parse_markdown_table,
    ratio_table,
)
from benchmarks.scenarios import ScenarioResult

MIB = 1024 * 1024


def copy_result(name: str, title: str, values: dict[str, list[float]]) -> ScenarioResult:
    labels = {
        "dsl-sync-NONE": "datasync-local sync (NONE)",
        "dsl-sync-ONLY_FILES_TRANSFERRED": "datasync-local sync (ONLY_FILES)",
        "dsl-api-NONE": "datasync-local API e2e (NONE)",
        "cp": "cp -a",
        "rsync": "rsync -a",
        "rclone": "rclone copy/sync --transfers 4",
    }
    res = ScenarioResult(name, title, "D2", "s", files=100, bytes=10**8)
    res.labels = labels
    res.ours = ["dsl-sync-NONE", "dsl-sync-ONLY_FILES_TRANSFERRED", "dsl-api-NONE"]
    res.values = values
    return res


def sample_results() -> dict[str, ScenarioResult]:
    d1 = copy_result(
        "d1-copy",
        "D1 copy (large files)",
        {
            "dsl-sync-NONE": [0.80, 0.90, 0.85],  # median 0.85
            "dsl-sync-ONLY_FILES_TRANSFERRED": [2.0, 2.2, 2.1],  # median 2.1
            "cp": [0.80, 0.75, 0.70],  # median 0.75
            "rsync": [4.0, 4.2, 4.1],  # median 4.1
        },
    )
    d1.skipped["dsl-api-NONE"] = "API server unavailable: no serve | yet"
    d2 = copy_result(
        "d2-copy",
        "D2 copy (small files)",
        {
            "dsl-sync-NONE": [3.0, 2.9, 3.2],  # 3.0
            "dsl-api-NONE": [3.3, 3.4, 3.5],  # 3.4
            "cp": [2.8, 2.7],  # 2.75
            "rsync": [5.0, 5.2, 5.4],  # 5.2
            "rclone": [9.0],
        },
    )
    d2.failures["dsl-sync-ONLY_FILES_TRANSFERRED"] = ["exit 1: boom"]
    thr = ScenarioResult(
        "throttle", "T throttled copy (8 MiB/s)", "T", "s", files=1, bytes=64 * MIB
    )
    thr.labels = {"dsl-sync-NONE": "datasync-local sync (NONE)", "rsync": "rsync -a"}
    thr.ours = ["dsl-sync-NONE"]
    thr.values = {"dsl-sync-NONE": [8.05, 8.1], "rsync": [7.97]}
    thr.extra = {
        "rate": 8 * MIB,
        "analyses": {
            "dsl-sync-NONE": [
                {
                    "elapsed": 8.05,
                    "ideal": 8.0,
                    "error_pct": 0.625,
                    "max_ahead": 0.1 * MIB,
                    "wall": 8.3,
                },
                {
                    "elapsed": 8.1,
                    "ideal": 8.0,
                    "error_pct": 1.25,
                    "max_ahead": 0.3 * MIB,
                    "wall": 8.4,
                },
            ],
            "rsync": [
                {
                    "elapsed": 7.97,
                    "ideal": 8.0,
                    "error_pct": -0.4,
                    "max_ahead": 0.75 * MIB,
                    "wall": 8.0,
                }
            ],
        },
        "series": {},
    }
    rss = ScenarioResult("d4-rss", "D4 no-op re-sync, peak RSS", "D4", "MiB")
    rss.labels = {"dsl-sync-NONE": "datasync-local sync (NONE)", "rsync": "rsync -a"}
    rss.ours = ["dsl-sync-NONE"]
    rss.values = {"dsl-sync-NONE": [150.0], "rsync": [120.0]}  # 150 MiB = 157 MB
    return {r.name: r for r in (d1, d2, thr, rss)}


def test_ratio_table_divides_medians() -> None:
    rows = ratio_table(sample_results())
    by = {(r["scenario"], r["datasync-local"]): r for r in rows}
    d1 = by[("D1 copy (large files)", "datasync-local sync (NONE)")]
    assert d1["cp -a"] == f"{0.85 / 0.75:.2f}×"
    assert d1["rsync -a"] == f"{0.85 / 4.1:.2f}×"
    assert d1["rclone"] == "n/a"  # labelled but no values
    assert d1["fpsync"] == "—"  # not in the scenario at all
    d2api = by[("D2 copy (small files)", "datasync-local API e2e (NONE)")]
    assert d2api["cp -a"] == f"{3.4 / 2.75:.2f}×"
    # tools without data get no row; scenarios in other units are not ratio'd
    assert ("D1 copy (large files)", "datasync-local API e2e (NONE)") not in by
    assert all(r["scenario"] != "D4 no-op re-sync, peak RSS" for r in rows)


def test_targets_pass_fail_and_not_measured() -> None:
    rows = {r.case: r for r in evaluate_targets(sample_results())}
    d1 = rows["D1 copy, VerifyMode NONE"]  # 0.85 / 0.75 = 1.13
    assert (d1.must_ok, d1.goal_ok) == (False, False)
    assert d1.measured.startswith("1.133×")
    oft = rows["D1 copy, ONLY_FILES_TRANSFERRED"]  # 2.1 / 4.1 = 0.51
    assert (oft.must_ok, oft.goal_ok) == (True, False)
    d2 = rows["D2 copy, full metadata (NONE) vs rsync"]  # 3.0 / 5.2
    assert d2.must_ok is True and d2.goal_ok is None
    d2cp = rows["D2 copy, full metadata (NONE) vs cp"]  # 3.0 / 2.75 = 1.09
    assert d2cp.must_ok is None and d2cp.goal_ok is True
    e2e = rows["end to end through the API, D2"]  # 3.4 / 3.0 = 1.13
    assert (e2e.must_ok, e2e.goal_ok) == (True, False)
    rss = rows["D4 no-op re-sync, peak RSS (engine)"]  # 157 MB
    assert (rss.must_ok, rss.goal_ok) == (True, False)
    err = rows["T throttle, elapsed (engine)"]  # median of 0.625 and 1.25 = 0.94 %
    assert (err.must_ok, err.goal_ok) == (True, True)
    ahead = rows["T throttle, ahead of ideal (engine)"]  # worst 0.3 MiB
    assert (ahead.must_ok, ahead.goal_ok) == (True, False)
    api = rows["T throttle, elapsed (API)"]
    assert api.must_ok is None and "not measured" in api.measured
    assert rows["DescribeTaskExecution p99 under 50 pollers"].measured == "not run"
    noop = rows["D2 no-op re-sync"]
    assert noop.must_ok is None


def test_markdown_round_trip() -> None:
    results = sample_results()
    run = {
        "started": "2026-01-01 00:00",
        "command": "python -m benchmarks run",
        "scale": 1.0,
        "repeat": 3,
        "seconds": 12.0,
        "machine": {"cores": "2"},
        "tools": {"rsync -a": "rsync version 3 | protocol 32"},
        "cache": "warm",
        "plots": ["/x/throughput.png"],
    }
    md = format_report(run, results)
    tools = parse_markdown_table(md, "version / status")
    assert tools[0]["version / status"] == "rsync version 3 | protocol 32"  # pipes escaped
    medians = parse_markdown_table(md, "median")
    rows = {(r["scenario"], r["tool"]): r for r in medians}
    cp = rows[("D1 copy (large files)", "cp -a")]
    assert cp["median"] == "0.750 s"
    assert cp["min–max"] == "0.700–0.800"
    assert cp["runs"] == "3"
    assert rows[("D1 copy (large files)", "datasync-local API e2e (NONE)")]["median"].startswith(
        "unavailable: API server unavailable"
    )
    assert rows[("D2 copy (small files)", "datasync-local sync (ONLY_FILES)")]["median"] == (
        "failed: exit 1: boom"
    )
    assert rows[("D4 no-op re-sync, peak RSS", "rsync -a")]["median"] == "120.0 MiB"
    targets = {r["case"]: r for r in parse_markdown_table(md, "must?")}
    assert targets["D1 copy, VerifyMode NONE"]["must?"] == "**FAIL**"
    assert targets["D1 copy, ONLY_FILES_TRANSFERRED"]["must?"] == "PASS"
    assert targets["live rate change (UpdateTaskExecution)"]["must?"] == "not measured"
    assert "![throughput](throughput.png)" in md
