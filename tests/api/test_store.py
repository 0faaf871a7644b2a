"""The store on both dialects (the `store_kind` parameter): reads see every process's writes at
once, compare-and-swap refuses stale versions, leases fence with epochs, counters notify.

Two `Store` objects on one database stand for two processes: neither keeps a copy of the state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.store import Store
from tests.api.harness import Server


def _execution(task: str, n: int, agent: str = "agent-1", status: str = "QUEUED") -> dict[str, Any]:
    return {
        "TaskExecutionArn": f"{task}/execution/exec-{n:017d}",
        "TaskArn": task,
        "AgentArn": agent,
        "Status": status,
        "Job": {"status": "QUEUED", "document": {"n": n}},
    }


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    a = Store.in_directory(str(tmp_path / "data"))
    b = Store.in_directory(str(tmp_path / "data"))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_servers_use_the_store_of_the_parametrized_kind(server: Server, store_kind: str) -> None:
    assert server.served is not None
    assert server.served.extras["backend"].store.dialect == store_kind


def test_resources_tags_and_meta_are_shared(stores: tuple[Store, Store]) -> None:
    a, b = stores
    a.put("task", "arn:t2", 2.0, {"TaskArn": "arn:t2"})
    a.put("task", "arn:t1", 1.0, {"TaskArn": "arn:t1", "Name": "one"})
    a.put("location", "arn:l1", 1.0, {"LocationArn": "arn:l1"})
    assert [d["TaskArn"] for d in b.all("task")] == ["arn:t1", "arn:t2"]
    assert b.get("task", "arn:t1") == {"TaskArn": "arn:t1", "Name": "one"}
    assert b.get("location", "arn:t1") is None  # the kind must match
    b.put("task", "arn:t1", 1.0, {"TaskArn": "arn:t1", "Name": "renamed"})
    assert a.get("task", "arn:t1") == {"TaskArn": "arn:t1", "Name": "renamed"}

    a.set_tags("arn:t1", {"b": "2", "a": "1"})
    b.set_tags("arn:t1", {"a": "one"})
    assert list(a.tags("arn:t1").items()) == [("a", "one"), ("b", "2")]
    b.remove_tags("arn:t1", ["b", "missing"])
    assert a.tags("arn:t1") == {"a": "one"}
    b.remove("arn:t1")
    assert a.get("task", "arn:t1") is None
    assert a.tags("arn:t1") == {}

    a.set_meta("activation:K_1", "x")
    a.set_meta("activation:K_1", "y")
    a.set_meta("activationXK", "not under the prefix")  # '_' and '%' are not wildcards
    a.set_meta("embedded_agent", "arn:agent")
    assert b.meta_items("activation:K_") == [("activation:K_1", "y")]
    assert b.meta("embedded_agent") == "arn:agent"
    b.delete_meta("embedded_agent")
    assert a.meta("embedded_agent") is None


def test_executions_fifo_filters_and_lookups(stores: tuple[Store, Store]) -> None:
    a, b = stores
    for n in (3, 1, 2):
        a.add_execution(_execution("arn:task/t", n, agent=f"agent-{n % 2}"))
    a.add_execution(_execution("arn:task/u", 4, agent="agent-9", status="SUCCESS"))
    order = [e["Job"]["document"]["n"] for e in b.executions()]
    assert order == [3, 1, 2, 4]  # start order, not ARN order
    assert [e["Job"]["document"]["n"] for e in b.executions(active=True)] == [3, 1, 2]
    assert [e["Job"]["document"]["n"] for e in b.executions(active=False)] == [4]
    assert [e["Job"]["document"]["n"] for e in b.executions(agent_arn="agent-1")] == [3, 1]
    assert len(b.executions(task_arn="arn:task/u", job_status="QUEUED")) == 1
    found = b.execution_by_id("agent-0", "exec-00000000000000002")
    assert found is not None and found["Job"]["document"]["n"] == 2
    assert b.execution_by_id("agent-1", "exec-00000000000000002") is None
    a.set_tags(found["TaskExecutionArn"], {"k": "v"})
    b.remove_executions("arn:task/t")
    assert [e["TaskArn"] for e in a.executions()] == ["arn:task/u"]
    assert a.tags(found["TaskExecutionArn"]) == {}
    with pytest.raises(KeyError):
        a.save_execution(found)


def test_compare_and_swap_refuses_a_stale_version(stores: tuple[Store, Store]) -> None:
    a, b = stores
    doc = _execution("arn:task/t", 1)
    a.add_execution(doc)
    got_a, got_b = (
        a.execution_versioned(doc["TaskExecutionArn"]),
        b.execution_versioned(doc["TaskExecutionArn"]),
    )
    assert got_a is not None and got_b is not None and got_a[1] == got_b[1] == 1
    mine, version = got_a
    mine["Status"] = "LAUNCHING"
    assert a.update_execution(mine, version)
    theirs, stale = got_b
    theirs["Status"] = "ERROR"
    assert not b.update_execution(theirs, stale)  # lost the race: nothing written
    current = b.execution_versioned(doc["TaskExecutionArn"])
    assert current is not None and current[0]["Status"] == "LAUNCHING" and current[1] == 2
    b.save_execution(current[0])  # the unconditional write bumps the version too
    again = a.execution_versioned(doc["TaskExecutionArn"])
    assert again is not None and again[1] == 3


def test_execution_view_follows_writes_of_another_process(stores: tuple[Store, Store]) -> None:
    a, b = stores
    doc = _execution("arn:task/t", 1)
    a.add_execution(doc)
    arn = doc["TaskExecutionArn"]
    first = b.execution_view(arn)
    assert first is not None and first["Status"] == "QUEUED"
    assert b.execution_view(arn) is first  # unchanged: not decoded again
    doc["Status"] = "TRANSFERRING"
    a.save_execution(doc)
    seen = b.execution_view(arn)
    assert seen is not None and seen["Status"] == "TRANSFERRING"
    a.remove_executions("arn:task/t")
    assert b.execution_view(arn) is None
    assert b.execution_view("arn:none") is None


def test_lease_is_held_by_one_holder_and_fenced_by_epoch(stores: tuple[Store, Store]) -> None:
    a, b = stores
    epoch = a.acquire_lease("reaper", "A", 30)
    assert epoch == 1
    assert b.acquire_lease("reaper", "B", 30) is None
    assert a.acquire_lease("reaper", "A", 30) == 1  # renewing one's own keeps the epoch
    assert a.renew_lease("reaper", "A", 1, 30)
    assert not b.renew_lease("reaper", "B", 1, 30)
    a.release_lease("reaper", "A", 1)
    assert b.acquire_lease("reaper", "B", 30) == 2  # a new holder: a new epoch
    assert not a.renew_lease("reaper", "A", 1, 30)  # A's epoch is stale
    lease = a.lease("reaper")
    assert lease is not None and (lease.holder, lease.epoch) == ("B", 2)
    # an expired lease passes to whoever asks next
    assert b.acquire_lease("recovery", "B", 0.05) == 1
    deadline = time.monotonic() + 10
    taken = None
    while taken is None and time.monotonic() < deadline:
        taken = a.acquire_lease("recovery", "A", 30)
        time.sleep(0.02)
    assert taken == 2
    assert not b.renew_lease("recovery", "B", 1, 30)


def test_only_one_of_many_contenders_gets_a_free_lease(stores: tuple[Store, Store]) -> None:
    a, b = stores
    results: list[int | None] = []
    lock = threading.Lock()

    def contend(store: Store, holder: str) -> None:
        got = store.acquire_lease("singleton", holder, 30)
        with lock:
            results.append(got)

    threads = [
        threading.Thread(target=contend, args=(a if i % 2 else b, f"holder-{i}")) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8
    assert [r for r in results if r is not None] == [1]


def test_notify_wakes_a_waiter_of_another_process(stores: tuple[Store, Store]) -> None:
    a, b = stores
    seen = b.change_count("agent-1")
    assert seen == 0
    assert b.wait("agent-1", seen, timeout=0.05) == 0  # nothing: returns at the timeout
    woke: list[int] = []
    waiter = threading.Thread(target=lambda: woke.append(b.wait("agent-1", seen, timeout=20)))
    waiter.start()
    a.notify("agent-1")
    waiter.join(timeout=30)
    assert woke == [1]
    a.notify("agent-1")
    assert b.change_count("agent-1") == 2
    assert b.change_count("agent-2") == 0
