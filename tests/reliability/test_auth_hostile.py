"""Hostile signatures: every request that is not correctly signed by a known key is refused with
a 4xx in the DataSync error shape, and has no side effect (a refused CreateTask creates nothing,
a refused DeleteTask deletes nothing, a refused StartTaskExecution starts nothing).

Each case signs with botocore's own SigV4 signer, then breaks exactly one thing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.harness import ACCESS_KEY, SECRET_KEY, Server, location_root, nfs_task
from tests.reliability.wire import CONTENT_TYPE, check_error_shape, datasync_headers, sign


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return location_root(tmp_path_factory.mktemp("auth"))


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[Server]:
    srv = Server(str(root.parent / "data"), [str(root)]).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def world(server: Server, root: Path) -> dict[str, Any]:
    """Two locations and one task, made through boto3; plus a snapshot function."""
    ds = server.client()
    agent = server.agent_arn
    src, dst, task = nfs_task(ds, agent, root / "src", root / "dst")

    def snapshot() -> Any:
        return (
            sorted(t["TaskArn"] for t in ds.list_tasks()["Tasks"]),
            sorted(loc["LocationArn"] for loc in ds.list_locations()["Locations"]),
            ds.list_task_executions()["TaskExecutions"],
            ds.list_tags_for_resource(ResourceArn=task)["Tags"],
            ds.describe_task(TaskArn=task).get("Name"),
        )

    return {
        "src": src,
        "dst": dst,
        "task": task,
        "agent": agent,
        "snapshot": snapshot,
        "root": root,
    }


Tamper = Callable[[str, bytes, dict[str, str]], tuple[bytes, dict[str, str]]]


def _replace(headers: dict[str, str], name: str, value: str | None) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k.lower() != name.lower()}
    if value is not None:
        out[name] = value
    return out


def _auth(headers: dict[str, str]) -> str:
    return next(v for k, v in headers.items() if k.lower() == "authorization")


def _signed(url: str, op: str, body: bytes, **kwargs: Any) -> dict[str, str]:
    return datasync_headers(url, op, body, **kwargs)


CASES: dict[str, Callable[[str, str, bytes], tuple[bytes, Any]]] = {
    "unsigned": lambda url, op, body: (
        body,
        {"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"FmrsService.{op}"},
    ),
    "unknown key id": lambda url, op, body: (body, _signed(url, op, body, key="AKIDNOBODY")),
    "wrong secret": lambda url, op, body: (body, _signed(url, op, body, secret="not-the-secret")),
    "clock 16 min ahead": lambda url, op, body: (
        body,
        _signed(url, op, body, when=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)),
    ),
    "clock 16 min behind": lambda url, op, body: (
        body,
        _signed(url, op, body, when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)),
    ),
    "clock a day behind": lambda url, op, body: (
        body,
        _signed(url, op, body, when=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
    ),
    "body tampered after signing": lambda url, op, body: (
        body.replace(b"}", b', "Name": "evil"}', 1) if body != b"{}" else b'{"x":1}',
        _signed(url, op, body),
    ),
    "body appended after signing": lambda url, op, body: (body + b" ", _signed(url, op, body)),
    "target tampered after signing": lambda url, op, body: (
        body,
        _replace(_signed(url, "DescribeTask", body), "X-Amz-Target", f"FmrsService.{op}"),
    ),
    "date tampered after signing": lambda url, op, body: (
        body,
        _replace(
            _signed(url, op, body),
            "X-Amz-Date",
            (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)).strftime("%Y%m%dT%H%M%SZ"),
        ),
    ),
    "content-type tampered after signing": lambda url, op, body: (
        body,
        _replace(_signed(url, op, body), "Content-Type", "application/json"),
    ),
    "signed header dropped": lambda url, op, body: (
        body,
        _replace(_signed(url, op, body), "Content-Type", None),
    ),
    "signed for another host": lambda url, op, body: (
        body,
        _signed(url.replace("127.0.0.1", "localhost"), op, body),
    ),
    "signed for another service": lambda url, op, body: (
        body,
        _signed(url, op, body, service="s3"),
    ),
    "signature flipped": lambda url, op, body: (
        body,
        _replace(
            _signed(url, op, body),
            "Authorization",
            _auth(_signed(url, op, body))[:-1]
            + ("0" if _auth(_signed(url, op, body))[-1] != "0" else "1"),
        ),
    ),
    "authorization missing": lambda url, op, body: (
        body,
        _replace(_signed(url, op, body), "Authorization", None),
    ),
    "authorization garbage": lambda url, op, body: (
        body,
        _replace(_signed(url, op, body), "Authorization", "garbage"),
    ),
    "authorization empty": lambda url, op, body: (
        body,
        _replace(_signed(url, op, body), "Authorization", ""),
    ),
    "authorization basic": lambda url, op, body: (
        body,
        _replace(_signed(url, op, body), "Authorization", "Basic YWRtaW46YWRtaW4="),
    ),
    "authorization truncated": lambda url, op, body: (
        body,
        _replace(_signed(url, op, body), "Authorization", _auth(_signed(url, op, body))[:60]),
    ),
    "authorization without host signed": lambda url, op, body: (
        body,
        _replace(
            _signed(url, op, body),
            "Authorization",
            _auth(_signed(url, op, body)).replace("SignedHeaders=", "SignedHeaders=x-ignored;"),
        ),
    ),
    "credential scope garbled": lambda url, op, body: (
        body,
        _replace(
            _signed(url, op, body),
            "Authorization",
            _auth(_signed(url, op, body)).replace("/aws4_request", "/aws5_request"),
        ),
    ),
    "sigv2-style query auth": lambda url, op, body: (
        body,
        {
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": f"FmrsService.{op}",
            "X-Amz-Credential": f"{ACCESS_KEY}/20200101/us-east-1/datasync/aws4_request",
        },
    ),
    "secret as access key": lambda url, op, body: (body, _signed(url, op, body, key=SECRET_KEY)),
    # signed without X-Amz-Target, which is added afterwards: the body alone would otherwise be
    # replayable as any operation that accepts it
    "target not signed": lambda url, op, body: (
        body,
        {**sign(url, body, {"Content-Type": CONTENT_TYPE}), "X-Amz-Target": f"FmrsService.{op}"},
    ),
    "second target added after signing": lambda url, op, body: (
        body,
        [*_signed(url, "DescribeTask", body).items(), ("X-Amz-Target", f"FmrsService.{op}")],
    ),
}


def _requests(world: dict[str, Any]) -> list[tuple[str, bytes]]:
    root = world["root"]
    return [
        (
            "CreateTask",
            json.dumps(
                {"SourceLocationArn": world["src"], "DestinationLocationArn": world["dst"]}
            ).encode(),
        ),
        (
            "CreateLocationNfs",
            json.dumps(
                {
                    "ServerHostname": "localhost",
                    "Subdirectory": str(root / "src"),
                    "OnPremConfig": {"AgentArns": [world["agent"]]},
                }
            ).encode(),
        ),
        ("StartTaskExecution", json.dumps({"TaskArn": world["task"]}).encode()),
        ("DeleteTask", json.dumps({"TaskArn": world["task"]}).encode()),
        (
            "UpdateTask",
            json.dumps({"TaskArn": world["task"], "Name": "renamed"}).encode(),
        ),
        (
            "TagResource",
            json.dumps(
                {"ResourceArn": world["task"], "Tags": [{"Key": "k", "Value": "v"}]}
            ).encode(),
        ),
        ("DeleteLocation", json.dumps({"LocationArn": world["dst"]}).encode()),
    ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_with_4xx_and_no_side_effect(
    case: str, server: Server, world: dict[str, Any], http: httpx.Client
) -> None:
    before = world["snapshot"]()
    for op, body in _requests(world):
        sent, headers = CASES[case](server.url + "/", op, body)
        response = http.post(server.url + "/", content=sent, headers=headers)  # type: ignore[arg-type]
        error = check_error_shape(response)
        assert response.status_code in (400, 403), (case, op, response.status_code, error)
        assert error["__type"] in (
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "IncompleteSignatureException",
            "MissingAuthenticationTokenException",
            "AccessDeniedException",
            "SerializationException",
        ), (case, op, error)
    assert world["snapshot"]() == before, case
    assert sorted(p.name for p in (world["root"] / "dst").iterdir()) == []


def test_the_same_requests_correctly_signed_do_take_effect(
    server: Server, world: dict[str, Any], http: httpx.Client
) -> None:
    """The control: the refused requests above fail only because of their signatures."""
    before = world["snapshot"]()
    for op, body in _requests(world)[:2]:
        response = http.post(
            server.url + "/", content=body, headers=_signed(server.url + "/", op, body)
        )
        assert response.status_code == 200, (op, response.text)
    after = world["snapshot"]()
    assert len(after[0]) == len(before[0]) + 1 and len(after[1]) == len(before[1]) + 1


def test_a_signature_cannot_be_replayed_onto_another_body(
    server: Server, world: dict[str, Any], http: httpx.Client
) -> None:
    """Headers signed for a harmless DescribeTask, sent with a DeleteTask body and target."""
    url = server.url + "/"
    harmless = json.dumps({"TaskArn": world["task"]}).encode()
    headers = _signed(url, "DescribeTask", harmless)
    assert http.post(url, content=harmless, headers=headers).status_code == 200
    headers = _replace(headers, "X-Amz-Target", "FmrsService.DeleteTask")
    response = http.post(url, content=harmless, headers=headers)
    assert check_error_shape(response)["__type"] == "InvalidSignatureException"
    assert server.client().describe_task(TaskArn=world["task"])["TaskArn"] == world["task"]


def test_jobs_endpoint_refuses_unsigned_and_wrongly_signed_claims(
    server: Server, world: dict[str, Any], http: httpx.Client
) -> None:
    """The agents' protocol is signed too: a forged claim takes no job from the queue."""
    agent_id = server.agent_arn.rsplit("/", 1)[1]
    url = f"{server.url}/things/{agent_id}/jobs/$next"
    body = b"{}"
    attempts = [
        {"Content-Type": "application/json"},
        sign(
            url,
            body,
            {"Content-Type": "application/json"},
            method="PUT",
            service="iot-jobs-data",
            secret="wrong",
        ),
        sign(
            url,
            body,
            {"Content-Type": "application/json"},
            method="PUT",
            service="iot-jobs-data",
            key="AKIDNOBODY",
        ),
        sign(
            url,
            body,
            {"Content-Type": "application/json"},
            method="PUT",
            service="iot-jobs-data",
            when=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        ),
    ]
    for headers in attempts:
        response = http.put(url, content=body, headers=headers)
        assert response.status_code in (400, 403), response.text
        assert response.json()["__type"] in (
            "UnrecognizedClientException",
            "InvalidSignatureException",
        )
    listing = http.get(f"{server.url}/things/{agent_id}/jobs")
    assert listing.status_code == 403
