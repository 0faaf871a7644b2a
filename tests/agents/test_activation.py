"""The activation endpoint without an agent process, and path resolution with mounts."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agents.locations import parse_mount, resolve_location
from api.config import ServerConfig
from engine import LocationError
from tests.api.harness import Server

KEY = re.compile(r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(str(tmp_path / "data"), [], embedded_agent=False)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_registration_poll_and_limits(server: Server) -> None:
    url = f"{server.url}/agent-activation"
    pending = httpx.post(url, json={"Name": "n", "Roots": ["/srv"]}).json()
    assert KEY.match(pending["ActivationKey"])
    key, token = pending["ActivationKey"], pending["PollToken"]
    assert httpx.post(f"{url}/{key}", json={"PollToken": token}).json()["Status"] == "PENDING"
    # the key alone does not fetch anything: the poll token is the agent's secret
    wrong = httpx.post(f"{url}/{key}", json={"PollToken": "guess"})
    assert wrong.status_code == 404 and wrong.headers["x-amzn-ErrorType"] == (
        "ResourceNotFoundException"
    )
    arn = server.client().create_agent(ActivationKey=key)["AgentArn"]
    done = httpx.post(f"{url}/{key}", json={"PollToken": token}).json()
    assert done["Status"] == "ACTIVATED" and done["AgentArn"] == arn
    assert done["ThingName"] == arn.rsplit("/", 1)[1] and done["AccessKeyId"].startswith("DSLA")

    for bad in (
        b"[1]",
        b"{",
        b'{"Roots": "x"}',
        b'{"Concurrency": 0}',
        b'{"Concurrency": true}',
        b"[" * 10000,  # under the size limit, over the depth limit
        b'{"Name": "a\\u0000"}',
    ):
        answer = httpx.post(url, content=bad)
        assert answer.status_code == 400, bad
    too_big = httpx.post(url, content=b"{" + b" " * 20000 + b"}")
    # one request edge for every route (issue 10): too large is 413, as on the DataSync API
    assert too_big.status_code == 413
    assert too_big.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
    # one client for the burst: httpx.post built a client per request (~0.1 s, seconds with
    # parallel test workers), and the bucket refilled while they ran; +10 stays as a margin
    with httpx.Client() as burst:
        codes = [
            burst.post(url, json={}).status_code
            for _ in range(int(ServerConfig().registration_burst) + 10)
        ]
    assert codes[0] == 200 and codes[-1] == 429  # unauthenticated, so rate-limited
    # nothing pending shows up as an agent, and the agents API still needs a signature
    assert [a["AgentArn"] for a in server.client().list_agents()["Agents"]] == [arn]


def test_the_registration_throttle_is_the_operators_to_set(tmp_path: Path) -> None:
    """`serve --registration-burst/--registration-rate`: a fleet rollout raises them; here a
    burst of 3 at the default 0.5/s lets 3 registrations in and throttles the next ones."""
    from cli.serve import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data-dir", str(tmp_path), "--registration-burst", "3",
                              "--registration-rate", "200"])  # fmt: skip
    config = config_from_args(args)
    assert (config.registration_burst, config.registration_rate) == (3.0, 200.0)
    with pytest.raises(SystemExit):  # argparse refuses it: usage error
        parser.parse_args(["--data-dir", str(tmp_path), "--registration-rate", "0"])
    srv = Server(str(tmp_path / "data"), [], embedded_agent=False, registration_burst=3)
    srv.start()
    try:
        url = f"{srv.url}/agent-activation"
        with httpx.Client() as http:
            codes = [http.post(url, json={}).status_code for _ in range(6)]
    finally:
        srv.stop()
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429


def test_approved_keys_do_not_count_as_pending(tmp_path: Path) -> None:
    """The cap on pending keys (ServerConfig.max_pending_registrations) counts keys that wait
    for the operator; an approved one stays collectable until it expires but no longer waits.
    Before, approved keys counted, and a fleet rollout stopped at the cap (the fleet benchmark
    activated 200 of 1,000 agents)."""
    cap = ServerConfig().max_pending_registrations
    srv = Server(str(tmp_path / "data"), [], embedded_agent=False, registration_burst=cap + 20)
    srv.start()
    try:
        url = f"{srv.url}/agent-activation"
        with httpx.Client() as http:
            keys = [http.post(url, json={}).json()["ActivationKey"] for _ in range(cap)]
            full = http.post(url, json={})
            assert full.status_code == 429 and "pending" in full.text
            client = srv.client()
            for key in keys[:3]:
                client.create_agent(ActivationKey=key)
            codes = [http.post(url, json={}).status_code for _ in range(4)]
    finally:
        srv.stop()
    assert codes == [200, 200, 200, 429]


def test_mounts_and_roots(tmp_path: Path) -> None:
    (tmp_path / "nas" / "a").mkdir(parents=True)
    mount = parse_mount("NAS.example:/export/=" + str(tmp_path / "nas"))
    assert (mount.host, mount.export) == ("nas.example", "/export")
    for bad in ("nas:/x", "nas=/y", ":/x=/y", "nas:x=/y", "nas:/x=rel"):
        with pytest.raises(ValueError, match="--mount"):
            parse_mount(bad)
    roots = [str(tmp_path)]
    where = {"ServerHostname": "nas.example", "Subdirectory": "/export/a"}
    assert resolve_location(where, roots, [mount]) == str(tmp_path / "nas" / "a")
    assert resolve_location({**where, "Subdirectory": "/export"}, roots, [mount]) == str(
        tmp_path / "nas"
    )
    with pytest.raises(LocationError, match="none of its mounts"):  # '..' cannot climb out
        resolve_location({**where, "Subdirectory": "/export/../../etc"}, roots, [mount])
    (tmp_path / "nas" / "esc").symlink_to(tmp_path.parent)
    with pytest.raises(LocationError, match="outside this agent's roots"):
        resolve_location({**where, "Subdirectory": "/export/esc"}, roots, [mount])
    with pytest.raises(LocationError, match="outside this agent's roots"):
        resolve_location(where, [str(tmp_path / "elsewhere")], [mount])
    with pytest.raises(LocationError, match="none of its mounts"):
        resolve_location({**where, "Subdirectory": "/exported"}, roots, [mount])
    with pytest.raises(LocationError, match="no --mount maps it"):
        resolve_location({**where, "ServerHostname": "other"}, roots, [mount])
