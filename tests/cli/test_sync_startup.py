"""What a `sync` process loads: a one-off sync must not pay for the API, the agent, the
verification cache or the event loop (each costs milliseconds of every start; a 50,000-file
no-op takes ~0.3 s in all)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.engine.trees import write

# Loaded only by the parts that need them: the API and the AWS SDK (serve, agent), the
# verification cache's sqlite3 and the verifier (VerifyMode other than NONE), anyio (`await
# Transfer.run()`), the dry run's itemizer.
NOT_FOR_A_SYNC = (
    "fastapi", "sqlalchemy", "boto3", "botocore", "anyio", "sqlite3",
    "engine.verify", "engine.hashcache", "engine.itemize", "api", "agents",
)  # fmt: skip

_PROBE = """
import json, sys
from cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _modules_after(*argv: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stdout + done.stderr
    return set(report["modules"])


def test_a_sync_without_verification_loads_no_api_sdk_cache_or_event_loop(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a" / "f", b"x")
    loaded = _modules_after(
        "sync", str(src), str(tmp_path / "dst"), "--no-progress", "--verify-mode", "NONE",
        "--no-hash-cache",
    )  # fmt: skip
    assert "engine.transfer" in loaded  # the probe did run a sync
    assert sorted(m for m in NOT_FOR_A_SYNC if m in loaded) == []
