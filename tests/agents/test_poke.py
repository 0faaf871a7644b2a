"""A poke makes an agent *read* the job's new state (a rate, a cancel), not write a report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from agents.agent import Agent
from agents.client import JobsClient
from tests.api.harness import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Server,
    location_root,
    make_tree,
    nfs_task,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return location_root(tmp_path)


@pytest.fixture
def server(tmp_path: Path, root: Path) -> Iterator[Server]:
    srv = Server(str(tmp_path / "data"), [str(root)], embedded_agent=False)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_poke_reads_the_new_rate_and_cancel_without_reporting(server: Server, root: Path) -> None:
    make_tree(str(root / "src"), 1, 4 * 1024 * 1024)
    assert server.served is not None
    backend = server.served.app.state.backend
    agent_arn = backend.register_agent("remote", [str(root)])
    ds = server.client()
    _src, _dst, task = nfs_task(ds, agent_arn, root / "src", root / "dst")
    arn = ds.start_task_execution(TaskArn=task, OverrideOptions={"BytesPerSecond": 4096})[
        "TaskExecutionArn"
    ]

    def version() -> int:
        return int(backend.store.execution(arn)["Job"]["versionNumber"])

    def status() -> str:
        return str(ds.describe_task_execution(TaskExecutionArn=arn)["Status"])

    async def main() -> dict[str, Any]:
        client = JobsClient(server.url, ACCESS_KEY, SECRET_KEY, REGION)
        # no periodic reports: only phase changes are written
        agent = Agent(client, agent_arn.rsplit("/", 1)[1], [str(root)], report_interval=3600)
        seen: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            with anyio.fail_after(30):
                while await anyio.to_thread.run_sync(status) != "TRANSFERRING":
                    await anyio.sleep(0.05)
                while not agent._transfers:
                    await anyio.sleep(0.05)
                transfer = next(iter(agent._transfers.values()))
                before = await anyio.to_thread.run_sync(version)
                await anyio.to_thread.run_sync(
                    lambda: ds.update_task_execution(
                        TaskExecutionArn=arn, Options={"BytesPerSecond": 8192}
                    )
                )
                agent.poke()
                while transfer.bytes_per_second != 8192:
                    await anyio.sleep(0.05)
                seen["versions"] = (before, await anyio.to_thread.run_sync(version))
                await anyio.to_thread.run_sync(
                    lambda: ds.cancel_task_execution(TaskExecutionArn=arn)
                )
                agent.poke()
                while await anyio.to_thread.run_sync(status) != "ERROR":
                    await anyio.sleep(0.05)
            await agent.stop()
            tg.cancel_scope.cancel()
        await client.aclose()
        return seen

    seen = anyio.run(main)
    before, after = seen["versions"]
    assert after == before  # the rate was read, not learnt by writing a report
    ended = ds.describe_task_execution(TaskExecutionArn=arn)
    assert ended["Result"]["ErrorCode"] == "Cancelled"
