"""A tiny `python -m benchmarks run` with cp and rsync: data sets, runs, report and plots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks.__main__ import main
from benchmarks.report import parse_markdown_table


def test_tiny_run_with_cp_and_rsync(tmp_path: Path) -> None:
    tools = ["cp"]
    # `make test` installs rsync; only a machine where it cannot be installed runs without it
    if shutil.which("rsync"):
        tools.append("rsync")
    out = tmp_path / "results"
    code = main(
        [
            "run",
            "--scale",
            "0.002",
            "--repeat",
            "2",
            "--tools",
            *tools,
            "--only",
            "d1-copy",
            "d2-copy",
            "d2-noop",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
            "--no-install",
        ]
    )
    assert code == 0
    md = (out / "report.md").read_text()
    medians = {(r["scenario"], r["tool"]): r for r in parse_markdown_table(md, "median")}
    for scenario in ("D1 copy (large files)", "D2 copy (small files)"):
        row = medians[(scenario, "cp -a")]
        assert row["median"].endswith(" s") and row["runs"] == "2", row
        if "rsync" in tools:
            assert medians[(scenario, "rsync -a")]["runs"] == "2"
    if "rsync" in tools:
        assert medians[("D2 no-op re-sync", "rsync -a")]["runs"] == "2"
    # unselected tools are reported, not dropped
    status = {
        r["tool"]: r["version / status"] for r in parse_markdown_table(md, "version / status")
    }
    assert status["datasync-local sync (NONE)"] == "not selected (--tools)"
    assert (out / "throughput.png").stat().st_size > 1000
    data = json.loads((out / "results.json").read_text())
    assert data["results"]["d2-copy"]["files"] == 100
    assert list((tmp_path / "work").iterdir()) == []  # data sets removed afterwards


def test_report_merges_results_files(tmp_path: Path) -> None:
    from dataclasses import asdict

    from benchmarks.__main__ import load_results
    from benchmarks.scenarios import ScenarioResult

    def dump(name: str, started: str, value: float) -> Path:
        res = ScenarioResult("d2-copy", "D2 copy (small files)", "D2", "s", files=10, bytes=100)
        res.labels = {"cp": "cp -a"}
        res.values = {"cp": [value]}
        run = {"started": started, "command": "x", "scale": 1, "repeat": 1, "tools": {}}
        path = tmp_path / name
        path.write_text(json.dumps({"run": run, "results": {"d2-copy": asdict(res)}}))
        return path

    meta, results = load_results([dump("a.json", "t1", 1.0), dump("b.json", "t2", 2.0)])
    assert results["d2-copy"].values == {"cp": [2.0]}  # the later file wins
    assert len(meta["runs"]) == 2
    assert main(["report", str(tmp_path / "a.json"), "--out", str(tmp_path / "out")]) == 0
    assert "| D2 copy (small files) | cp -a | 1.000 s |" in (tmp_path / "out/report.md").read_text()
