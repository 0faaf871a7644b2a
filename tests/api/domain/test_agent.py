"""Agent: the stored document round-trips, the wire shape is DescribeAgent's, and no secret
reaches anything rendered."""

from __future__ import annotations

from api.domain.agent import Agent, stored_credential
from api.domain.enums import OFFLINE, ONLINE, AgentStatus
from contract.model import shape
from tests.api.domain.released import released_rows


def test_a_released_agent_document_reads_and_writes_back_unchanged() -> None:
    (row,) = released_rows("agent")
    agent = Agent.from_row(row)
    assert agent.roots == ("/tmp/old-gen/root",)
    assert agent.name == "embedded"
    assert agent.to_row() == row
    assert Agent.from_row(agent.to_row()) == agent


def test_the_wire_shape_is_describe_agents_and_names_its_status() -> None:
    agent = Agent.from_row(released_rows("agent")[0])
    wire = agent.to_wire(ONLINE)
    assert set(wire) <= set(shape("DescribeAgentResponse")["members"])
    assert wire["Status"] == "ONLINE"
    assert wire["Platform"] == {"Version": agent.platform_version}
    assert "Roots" not in wire and "Concurrency" not in wire
    assert agent.to_wire(OFFLINE)["Status"] == "OFFLINE"


def test_the_status_enum_is_the_models() -> None:
    assert [s.value for s in AgentStatus] == shape("AgentStatus")["enum"]


def test_a_secret_kept_in_an_old_document_is_read_apart_and_never_rendered() -> None:
    row = {
        **released_rows("agent")[0],
        "_Credentials": {"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "s3cr3t-value"},
    }
    credential = stored_credential(row)
    assert credential is not None and credential.secret_access_key == "s3cr3t-value"
    agent = Agent.from_row(row)
    for rendered in (agent.to_row(), agent.to_wire(ONLINE), repr(agent)):
        assert "s3cr3t-value" not in str(rendered)
        assert "AKIDEXAMPLE" not in str(rendered)
    assert stored_credential(agent.to_row()) is None


def test_slots_are_never_fewer_than_one() -> None:
    agent = Agent.from_row({**released_rows("agent")[0], "Concurrency": 0})
    assert agent.slots == 1
    assert Agent.from_row({**released_rows("agent")[0], "Concurrency": 4}).slots == 4
