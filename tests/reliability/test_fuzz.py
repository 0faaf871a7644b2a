"""A property-based fuzzer over every DataSync operation, built from botocore's own shapes.

Each request is signed with SigV4 (botocore's signer over the raw bytes, so bodies boto3 would
never send still reach the server) and sent to a real uvicorn server. Requests are valid, valid
with one member broken (wrong type, over-long, bad pattern, NUL, unicode, huge number, deep
nesting, unknown member, missing required member), random JSON, or not JSON at all. Invariants:
never a 5xx; every 4xx has the DataSync error shape (`__type`, `message`) in JSON 1.1; every 200
is a JSON object; the server still answers afterwards. The number of requests is printed.

Bounded: `DSL_FUZZ_EXAMPLES` (default 2000) hypothesis examples, derandomized so CI is
reproducible (set `DSL_FUZZ_SEED` to explore other inputs).
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from engine.model import load_service_model
from tests.api.harness import Server, make_tree, wait_for
from tests.reliability.wire import call, check_error_shape

MODEL = load_service_model("datasync")
SHAPES: dict[str, dict[str, Any]] = MODEL["shapes"]
OPERATIONS = sorted(MODEL["operations"])
EXAMPLES = int(os.environ.get("DSL_FUZZ_EXAMPLES", "2000"))
SEED = os.environ.get("DSL_FUZZ_SEED")

# what this server implements (the rest answer "unsupported"): drawn as often as all the others
CORE = sorted(
    op
    for op in OPERATIONS
    if not re.search(r"Location(?!Nfs|Smb|s$)", op) or op == "DeleteLocation"
)

STATS: collections.Counter[str] = collections.Counter()


class Target:
    """The live server and real resources the fuzzer aims valid ARNs at."""

    def __init__(self) -> None:
        self.url = ""
        self.http: httpx.Client | None = None
        self.arns: dict[str, list[str]] = collections.defaultdict(list)
        self.paths: list[str] = []


TARGET = Target()
# one worker runs the whole file, in order: its tests share one live server (`live`), and the
# last ones check that it still answers after the fuzzing
pytestmark = pytest.mark.xdist_group("fuzz")


@pytest.fixture(scope="module", autouse=True)
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("fuzz")
    root = tmp / "root"
    make_tree(str(root / "src"), 3, 1000)
    (root / "dst").mkdir()
    server = Server(str(tmp / "data"), [str(root)]).start()
    try:
        ds = server.client()
        agent = server.agent_arn
        src = ds.create_location_nfs(
            ServerHostname="localhost",
            Subdirectory=str(root / "src"),
            OnPremConfig={"AgentArns": [agent]},
        )["LocationArn"]
        dst = ds.create_location_smb(
            ServerHostname="127.0.0.1", Subdirectory=str(root / "dst"), AgentArns=[agent]
        )["LocationArn"]
        task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
        execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        wait_for(
            lambda: (
                ds.describe_task_execution(TaskExecutionArn=execution)["Status"]
                in ("SUCCESS", "ERROR")
            )
        )
        TARGET.url = server.url
        TARGET.arns.update(
            AgentArn=[agent],
            LocationArn=[src, dst],
            TaskArn=[task],
            TaskExecutionArn=[execution],
            TaggableResourceArn=[agent, src, dst, task, execution],
        )
        TARGET.paths = [str(root), str(root / "src"), str(root / "dst"), str(tmp)]
        with httpx.Client(timeout=30) as http:
            TARGET.http = http
            yield TARGET
            # the server still answers, and answers correctly, after everything it was sent
            assert ds.list_tasks()["Tasks"] is not None
            total = sum(v for k, v in STATS.items() if k.startswith("status "))
            print(
                f"\nfuzz: {total} requests (all {len(OPERATIONS)} DataSync operations, the 4 jobs"
                " operations, activation), "
                + ", ".join(f"{k}: {v}" for k, v in sorted(STATS.items()))
                + f"; {TIMES['seconds']:.1f} s waiting for the server"
            )
            assert not any(k.startswith("status 5") for k in STATS)
    finally:
        server.stop()


# -- strategies from the model ------------------------------------------------------------------

_REF_KINDS = {
    "AgentArn",
    "LocationArn",
    "TaskArn",
    "TaskExecutionArn",
    "TaggableResourceArn",
}


def _string(name: str, shape: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in shape:
        return st.sampled_from(shape["enum"])
    low, high = shape.get("min", 0), min(shape.get("max", 64), 64)
    text = st.text(min_size=low, max_size=max(low, high))
    options: list[st.SearchStrategy[Any]] = [text]
    pattern = shape.get("pattern")
    if pattern and "\\p{" not in pattern and "\\A" not in pattern:
        try:
            regex = st.from_regex(re.compile(pattern), fullmatch=True).filter(
                lambda s: low <= len(s) <= shape.get("max", 1 << 20)
            )
            options.append(regex)
        except Exception:  # a Java-only construct: random text is enough there
            pass
    if name in _REF_KINDS:
        return st.one_of(_refs(name), *options)
    if "Subdirectory" in name or name in ("FilterValue", "FilterAttributeValue"):
        options.append(_paths())
    return st.one_of(*options)


def _refs(name: str) -> st.SearchStrategy[str]:
    return st.integers(min_value=0, max_value=10).map(
        lambda i: (TARGET.arns.get(name) or ["x"])[i % max(1, len(TARGET.arns.get(name, [])))]
    )


def _paths() -> st.SearchStrategy[str]:
    tricks = st.sampled_from(
        ["/..", "/../..", "/../../etc", "/./", "//", "/.", "/../../../../../../tmp", "/\x00x"]
    )
    return st.builds(
        lambda base, trick: (TARGET.paths or ["/"])[base % max(1, len(TARGET.paths))] + trick,
        st.integers(min_value=0, max_value=3),
        tricks,
    ) | st.sampled_from(["/", "/etc", "/tmp", "..", "../..", "/proc/self/root", "*", "/*|/.."])


@functools.cache
def valid(name: str, depth: int = 0, service: str = "datasync") -> st.SearchStrategy[Any]:
    """Values of shape `name` (mostly inside the model's rules, sometimes only its types)."""
    shape = load_service_model(service)["shapes"][name]
    kind = shape["type"]
    if kind == "structure":
        members = shape.get("members", {})
        if depth > 6:
            return st.just({})
        required = {
            m: valid(members[m]["shape"], depth + 1, service) for m in shape.get("required", [])
        }
        optional = {
            m: valid(ref["shape"], depth + 1, service)
            for m, ref in members.items()
            if m not in required
        }
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        low = shape.get("min", 0)
        return st.lists(
            valid(shape["member"]["shape"], depth + 1, service),
            min_size=low,
            max_size=max(low, min(shape.get("max", 3), 3)),
        )
    if kind == "map":
        return st.dictionaries(
            valid(shape["key"]["shape"], depth + 1, service),
            valid(shape["value"]["shape"], depth + 1, service),
            max_size=3,
        )
    if kind == "string":
        return _string(name, shape)
    if kind in ("integer", "long"):
        return st.integers(
            min_value=shape.get("min", -(2**63)), max_value=shape.get("max", 2**63 - 1)
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.integers(min_value=0, max_value=4_000_000_000) | st.floats(allow_nan=False)
    if kind == "blob":
        return st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
    return st.none()  # pragma: no cover - no other types in the model


def _deep(depth: int, kind: str) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


JUNK: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, 0.5]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["\x00", "a\x00b", "\u2028", "\ud7ff", "\ufeff", "é" * 300, "💥" * 100]),
    st.integers(min_value=1000, max_value=70_000).map(lambda n: "a" * n),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from([_deep(60, "list"), _deep(60, "dict"), _deep(500, "list")]),
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one member somewhere replaced, removed, or joined by an unknown one."""
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["replace", "remove", "recurse", "unknown"]))
        out = dict(value)
        if action == "replace":
            out[key] = draw(JUNK)
        elif action == "remove":
            del out[key]
        elif action == "recurse":
            out[key] = draw(mutated(value[key]))
        else:
            out[draw(st.text(min_size=1, max_size=20))] = draw(JUNK)
        return out
    if isinstance(value, dict):
        return {draw(st.text(min_size=1, max_size=20)): draw(JUNK)}
    if isinstance(value, list) and value:
        i = draw(st.integers(min_value=0, max_value=len(value) - 1))
        out_list = list(value)
        out_list[i] = draw(st.one_of(JUNK, mutated(value[i])))
        return out_list
    return draw(JUNK)


RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"42",
            b'"s"',
            b"{",
            b'{"a":',
            b"\xff\xfe{}",
            b"\xef\xbb\xbf{}",
            b"{}\x00",
            b'{"TaskArn": NaN}',
            b'{"TaskArn": Infinity}',
            b'{"MaxResults": 1e999}',
            b'{"MaxResults": -1e999}',
            b'{"MaxResults": ' + b"9" * 5000 + b"}",
            b'{"MaxResults": 1' + b"0" * 400 + b"}",
            b'{"a":1,"a":2}',
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            b"[" * 100_000,
            b'{"\\ud800": 1}',
            b'{"Name": "\\ud800"}',
            b'{"Name": "\\u0000"}',
        ]
    ),
)


def _input_shape(operation: str) -> str | None:
    ref = MODEL["operations"][operation].get("input")
    return None if ref is None else ref["shape"]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str | None, Any]:
    mode = draw(
        st.sampled_from(
            ["valid", "valid", "mutated", "mutated", "mutated", "json", "raw", "target"]
        )
    )
    operation = draw(st.sampled_from(OPERATIONS) | st.sampled_from(CORE))
    shape = _input_shape(operation)
    params = draw(valid(shape)) if shape else {}
    if mode == "valid":
        return operation, params
    if mode == "mutated":
        return operation, draw(mutated(params))
    if mode == "json":
        return operation, draw(
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                lambda c: (
                    st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)
                ),
                max_leaves=10,
            )
        )
    if mode == "raw":
        return operation, draw(RAW_BODIES)
    target = draw(
        st.sampled_from([None, "", "FmrsService.", "Nope.ListTasks", "FmrsService.listTasks"])
        | st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
        | st.text(max_size=20).map(lambda t: "FmrsService." + t.encode("ascii", "ignore").decode())
    )
    return ("\x00target:" + target if target is not None else None), params


def _send(operation: str | None, body: Any) -> httpx.Response:
    assert TARGET.http is not None
    if operation is not None and operation.startswith("\x00target:"):
        raw_target = operation[len("\x00target:") :]
        # a legal header value (printable ASCII, no surrounding space); illegal HTTP is
        # uvicorn's to refuse and is tested in test_limits
        safe = "".join(c for c in raw_target if 0x21 <= ord(c) <= 0x7E)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        from tests.reliability.wire import sign

        headers = sign(
            TARGET.url + "/",
            raw,
            {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": safe},
        )
        return TARGET.http.post(TARGET.url + "/", content=raw, headers=headers)
    if not isinstance(body, bytes):
        try:
            body = json.dumps(body).encode()
        except (ValueError, RecursionError):
            body = b"[" * 10_000
    return call(TARGET.http, TARGET.url, operation, body)


TIMES: collections.Counter[str] = collections.Counter()


def _check(response: httpx.Response) -> None:
    STATS[f"status {response.status_code}"] += 1
    assert response.status_code < 500, (response.status_code, response.text[:1000])
    if response.status_code == 200:
        assert isinstance(response.json(), dict)
    else:
        STATS[check_error_shape(response)["__type"]] += 1


def _settings() -> Any:
    return _settings_n(EXAMPLES)


def _settings_n(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_valid_empty_and_unknown_member(operation: str) -> None:
    """A deterministic sweep so every operation is hit whatever hypothesis draws."""
    for body in ({}, {"NotAMember": 1}, [], "x", None, b"{"):
        _check(_send(operation, body))


def _fuzz(request: tuple[str | None, Any]) -> None:
    operation, body = request
    t = time.perf_counter()
    response = _send(operation, body)
    TIMES["seconds"] += time.perf_counter() - t  # type: ignore[assignment]
    TIMES["n"] += 1
    _check(response)


if SEED is not None:
    _fuzz = seed(int(SEED))(_fuzz)


@pytest.mark.slow
@_settings()
@given(requests())
def test_fuzz_every_operation_never_5xx(request: tuple[str | None, Any]) -> None:
    _fuzz(request)


JOBS = load_service_model("iot-jobs-data")
JOB_OPERATIONS = {
    # operation: (method, path template) — the IoT Jobs data plane the agents speak
    "GetPendingJobExecutions": ("GET", "/things/{thing}/jobs"),
    "StartNextPendingJobExecution": ("PUT", "/things/{thing}/jobs/$next"),
    "DescribeJobExecution": ("GET", "/things/{thing}/jobs/{job}"),
    "UpdateJobExecution": ("POST", "/things/{thing}/jobs/{job}"),
}


def _body_members(operation: str) -> st.SearchStrategy[Any]:
    """The operation's JSON body members (those not bound to the URI or the query string)."""
    shape = JOBS["shapes"][JOBS["operations"][operation]["input"]["shape"]]
    members = {
        m: valid(ref["shape"], 1, "iot-jobs-data")
        for m, ref in shape.get("members", {}).items()
        if ref.get("location") not in ("uri", "querystring")
    }
    return st.fixed_dictionaries({}, optional=members)


@st.composite
def job_requests(draw: st.DrawFn) -> tuple[str, str, bytes]:
    operation = draw(st.sampled_from(sorted(JOB_OPERATIONS)))
    method, template = JOB_OPERATIONS[operation]
    things = [TARGET.arns["AgentArn"][0].rsplit("/", 1)[1]] if TARGET.arns["AgentArn"] else []
    thing = draw(st.sampled_from([*things, "agent-00000000000000000", "x", "%00", "..", "%2F"]))
    jobs = [a.rsplit("/", 1)[1] for a in TARGET.arns["TaskExecutionArn"]]
    job = draw(st.sampled_from([*jobs, "$next", "exec-0", "%2e%2e", "a" * 300]))
    path = template.format(thing=thing, job=job)
    if method == "GET" and draw(st.booleans()):
        path += "?" + draw(
            st.sampled_from(["includeJobDocument=false", "includeJobDocument=maybe", "x=%ff", "&&"])
        )
    mode = draw(st.sampled_from(["valid", "mutated", "raw"]))
    if mode == "raw":
        return method, path, draw(RAW_BODIES)
    body = draw(_body_members(operation))
    if mode == "mutated":
        body = draw(mutated(body))
    return method, path, json.dumps(body).encode()


@pytest.mark.slow
@_settings_n(max(100, EXAMPLES // 4))
@given(job_requests())
def test_fuzz_jobs_endpoint_never_5xx(request: tuple[str, str, bytes]) -> None:
    """The agents' protocol, signed with the operator key for the embedded agent's thing."""
    from tests.reliability.wire import sign

    assert TARGET.http is not None
    method, path, body = request
    url = TARGET.url + path
    headers = sign(
        url, body, {"Content-Type": "application/json"}, method=method, service="iot-jobs-data"
    )
    response = TARGET.http.request(method, url, content=body, headers=headers)
    STATS[f"status {response.status_code}"] += 1
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert isinstance(response.json(), dict)
    if response.status_code >= 400:
        error = response.json()
        assert isinstance(error.get("__type"), str) and isinstance(error.get("message"), str)


@_settings_n(max(100, EXAMPLES // 8))
@given(
    st.sampled_from(["/agent-activation", "/agent-activation/AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"]),
    st.one_of(
        RAW_BODIES,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {},
            optional={
                "Name": JUNK,
                "Hostname": JUNK,
                "Roots": JUNK | st.lists(st.text(max_size=30), max_size=3),
                "Mounts": JUNK,
                "Concurrency": JUNK,
                "PollToken": JUNK,
            },
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_fuzz_unauthenticated_activation_never_5xx(path: str, body: bytes) -> None:
    """Registration needs no signature, so it is the most exposed route of all."""
    assert TARGET.http is not None
    response = TARGET.http.post(TARGET.url + path, content=body)
    STATS[f"status {response.status_code}"] += 1
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert isinstance(response.json(), dict)


def test_server_still_answers_after_fuzzing() -> None:
    started = time.monotonic()
    assert TARGET.http is not None
    response = call(TARGET.http, TARGET.url, "ListTasks", {})
    assert response.status_code == 200 and "Tasks" in response.json()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("service", ["datasync", "iot-jobs-data"])
def test_every_model_pattern_compiles_and_judges(service: str) -> None:
    """Found by the fuzzer: Java's `\\z` anchor made a pattern raise (a 500) on first use."""
    from api.validation import compile_pattern

    shapes = load_service_model(service)["shapes"]
    for name, shape in shapes.items():
        if "pattern" in shape:
            for value in ("", "x", "\x00", "10.0.0.1", "a" * 300):
                assert compile_pattern(shape["pattern"])(value) in (True, False), name


_TOKENS = [
    "A",
    "====",
    "_-_-",
    "a" * 65535,
    "0",
    *(
        base64.urlsafe_b64encode(raw).decode()
        for raw in (b"\xff\xfe", b'{"a":1}', b'"x"', b"[1,2]", b"null", b"1e999", b"{}" * 100)
    ),
]


@pytest.mark.parametrize(
    "operation",
    ["ListTasks", "ListLocations", "ListTaskExecutions", "ListAgents", "ListTagsForResource"],
)
def test_forged_pagination_tokens_are_client_errors(operation: str) -> None:
    """NextToken is opaque to clients, so the server must survive any value they invent."""
    extra = {"ResourceArn": TARGET.arns["TaskArn"][0]} if operation == "ListTagsForResource" else {}
    for token in _TOKENS:
        _check(_send(operation, {"NextToken": token, "MaxResults": 1, **extra}))


@pytest.mark.parametrize("depth", [33, 500, 900, 950, 990, 999, 5000, 100_000])
@pytest.mark.parametrize("kind", ["list", "object"])
def test_deep_nesting_is_a_client_error_at_every_depth(depth: int, kind: str) -> None:
    """Found by probing: JSON nested ~950 deep parsed, then overflowed a recursive walk (500)."""
    opener, closer = (b"[", b"]") if kind == "list" else (b'{"a":', b"}")
    body = b'{"Tags":' + opener * depth + b"1" + closer * depth + b"}"
    for operation in ("ListTasks", "CreateTask"):
        response = _send(operation, body)
        _check(response)
        assert check_error_shape(response)["__type"] in (
            "SerializationException",
            "InvalidRequestException",
        )
    assert TARGET.http is not None
    agent = TARGET.arns["AgentArn"][0].rsplit("/", 1)[1]
    url = f"{TARGET.url}/things/{agent}/jobs/$next"
    from tests.reliability.wire import sign

    headers = sign(
        url, body, {"Content-Type": "application/json"}, method="PUT", service="iot-jobs-data"
    )
    response = TARGET.http.put(url, content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text[:300]
