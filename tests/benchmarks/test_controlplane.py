"""The control-plane scenarios at a tiny scale against a real `serve`: structure, never timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import main
from benchmarks.controlplane import serve_flags, variants
from benchmarks.signcost import LAYERS, OTHER, attribute, py_spy


def _run(tmp_path: Path, scenario: str, scale: str = "0.002") -> tuple[dict[str, Any], str]:
    out = tmp_path / "results"
    code = main(
        [
            "run",
            "--scale",
            scale,
            "--repeat",
            "1",
            "--only",
            scenario,
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
            "--no-install",
            "--no-plots",
        ]
    )
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    return data["results"][scenario], (out / "report.md").read_text()


def test_variants_follow_serve_help() -> None:
    flags = serve_flags()
    assert "--port" in flags and "--data-dir" in flags
    run, skipped = variants([], "postgresql://u@127.0.0.1:1/db", flags)
    assert run[0].args == ()
    labels = [v.label for v in run] + list(skipped)
    assert "serve --workers 2" in labels and "serve --store postgresql://…" in labels
    if "--workers" not in flags:
        assert "--workers" in skipped["serve --workers 2"]
    _, no_url = variants([], None, flags | {"--store"})
    assert "no PostgreSQL URL" in no_url["serve --store postgresql://…"]


def test_attribute_charges_the_innermost_known_layer() -> None:
    collapsed = "\n".join(
        [
            "main (/x/uvicorn/main.py:1);verify_request (/w/api/auth.py:9);new (/py/hmac.py:3) 4",
            "main (/x/uvicorn/main.py:1);dumps (/py/json/encoder.py:2) 2",
            "run (/py/threading.py:1) 1",
            "not a sample line",
        ]
    )
    got = attribute(collapsed)
    sigv4 = next(name for name, _ in LAYERS if name.startswith("SigV4"))
    assert got[sigv4] == 4  # hmac under api/auth: the innermost known frame is SigV4's
    assert got["JSON encode/decode"] == 2
    assert got[OTHER] == 1
    assert sum(got.values()) == 7


@pytest.mark.slow
def test_openloop_scenario(tmp_path: Path) -> None:
    res, md = _run(tmp_path, "describe-openloop")
    runs = res["extra"]["runs"]
    keys = [k for k in runs if k.startswith("serve @ ")]
    assert sorted(keys) == ["serve @ 200/s", "serve @ 500/s"]
    for key in keys:
        run = runs[key]
        assert {"calls", "errors", "p50", "p90", "p99", "max", "achieved_rate"} <= set(run)
        assert run["calls"] > 0 and run["copies"] >= 1
        assert run["p50"] <= run["p90"] <= run["p99"] <= run["max"]
        assert run["load"].startswith("load average")
    for key, why in res["skipped"].items():  # variants the server lacks are named, with why
        assert key.endswith("/s") and why
    table = res["extra"]["tables"][0]
    assert len(table["rows"]) == len(runs) and len(table["header"]) == len(table["rows"][0])
    assert "open loop (Poisson)" in md


@pytest.mark.slow
def test_signcost_scenario(tmp_path: Path) -> None:
    res, md = _run(tmp_path, "sign-cost")
    run = res["extra"]["runs"]["serve"]
    assert run["calls"] == 50 and run["errors"] == 0
    assert run["server_cpu_us_per_request"] > 0
    assert res["values"]["serve"] == [run["server_cpu_us_per_request"]]
    if py_spy() is not None and "profile_skipped" not in run:
        assert sum(run["profile"].values()) > 0
        assert {r[0] for r in res["extra"]["tables"][0]["rows"]} <= {n for n, _ in LAYERS} | {OTHER}
    else:
        assert run.get("profile_skipped") or py_spy() is None
    assert "CPU of one signed DescribeTaskExecution" in md


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fleet_scenario(tmp_path: Path) -> None:
    res, md = _run(tmp_path, "fleet")
    run = res["extra"]["runs"]["serve"]
    assert run["agents"] == 3 and run["wanted"] == 3 and run["scaled_down"] == ""
    for call in ("claim", "report"):
        assert run[call]["calls"] > 0
        assert {"p50", "p99", "errors"} <= set(run[call])
    assert run["claim"]["errors"] == 0 and run["report"]["errors"] == 0  # a correct protocol use
    assert "Simulated fleet" in md
