"""kill -9 of a remote agent process (`datasync-local agent`, activated through CreateAgent) at
seeded random moments while throttled transfers of small trees run; the agent is restarted on
its state directory after each kill (it resumes with its credentials, no new key). After every
kill: no destination file is torn under its real name; every execution ends terminal (the one
the kill interrupted is resumed by the restarted agent within its lease, or ends in ERROR with an
ErrorCode and detail; the queued ones run when the agent returns). At the end an unthrottled rerun of every task converges. `DSL_CRASH_SEED` (default 6).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from engine.scan import is_temporary
from tests.agents.remote import AgentProcess, activate, locations
from tests.api.harness import Server, wait_for
from tests.reliability.test_crash import TERMINAL, _rerun_converges, _torn, _tree

SEED = int(os.environ.get("DSL_CRASH_SEED", "6"))
TASKS = 12
KILLS = 7
PER_ROUND = 3
RATE = 384 * 1024
LEASE = 3.0  # the server's --agent-timeout here
RUNNING = ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING")


@pytest.mark.slow
def test_kill_9_of_a_remote_agent_loses_nothing_and_tears_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    root = tmp_path / "root"
    trees = []
    for i in range(TASKS):
        src, dst = root / f"src{i}", root / f"dst{i}"
        trees.append((src, dst, _tree(src, rng, "new"), _tree(dst, rng, "old")))
    server = Server(str(tmp_path / "data"), [], embedded_agent=False, agent_timeout=LEASE).start()
    agent = AgentProcess(server.url, tmp_path / "agent-state", [root], name="crashy")
    try:
        ds = server.client()
        arn = activate(server, agent)
        tasks = [
            locations(
                server,
                arn,
                src,
                dst,
                Options={"BytesPerSecond": RATE, "VerifyMode": "ONLY_FILES_TRANSFERRED"},
            )
            for src, dst, _, _ in trees
        ]
        started: list[str] = []
        codes: dict[str, int] = {}
        mid_file = 0
        interrupted: list[str] = []
        outcomes: dict[str, int] = {}
        order = list(range(TASKS))
        rng.shuffle(order)
        for kill in range(KILLS):
            batch = [tasks[order[(kill * PER_ROUND + j) % TASKS]] for j in range(PER_ROUND)]
            round_started = [ds.start_task_execution(TaskArn=t)["TaskExecutionArn"] for t in batch]
            started += round_started
            time.sleep(rng.uniform(0.2, 2.5))
            agent.kill()
            running = [
                a
                for a in round_started
                if ds.describe_task_execution(TaskExecutionArn=a)["Status"] in RUNNING
            ]
            interrupted += running
            torn = [t for _, dst, new, old in trees for t in _torn(dst, new, old)]
            assert torn == [], f"kill {kill}: torn files {torn}"
            if any(is_temporary(p.name) for _, dst, _, _ in trees for p in dst.rglob("*")):
                mid_file += 1
            agent.start()
            agent.line(r"^Resuming as ")

            def ended(arns: list[str] = round_started) -> list[dict[str, Any]]:
                states = [ds.describe_task_execution(TaskExecutionArn=a) for a in arns]
                return states if all(s["Status"] in TERMINAL for s in states) else []

            for arn_, state in zip(
                round_started, wait_for(ended, timeout=LEASE + 40, interval=0.2), strict=True
            ):
                if arn_ in running:
                    outcomes[state["Status"]] = outcomes.get(state["Status"], 0) + 1
                if state["Status"] == "ERROR":
                    result = state["Result"]
                    assert result.get("ErrorCode") and result.get("ErrorDetail"), result
                    codes[result["ErrorCode"]] = codes.get(result["ErrorCode"], 0) + 1
            torn = [t for _, dst, new, old in trees for t in _torn(dst, new, old)]
            assert torn == [], f"after kill {kill}: torn files {torn}"

        listed = {
            e["TaskExecutionArn"]: e["Status"]
            for e in ds.list_task_executions(MaxResults=100)["TaskExecutions"]
        }
        assert set(started) <= set(listed), "an execution was lost"
        assert all(s in TERMINAL for s in listed.values())

        _rerun_converges(ds, tasks, trees)
        print(
            f"\nagent crash: {KILLS} kill -9 of the agent, {len(started)} throttled executions, "
            f"{len(interrupted)} running at their kill, which then ended {outcomes} "
            f"(error codes {codes or 'none'}: the restarted agent resumed them), {mid_file} kills "
            "left a half-copied "
            f"temporary; {TASKS} reruns converged"
        )
        assert len(started) >= 20 and len(interrupted) >= KILLS // 2
    finally:
        agent.stop()
        server.stop()
