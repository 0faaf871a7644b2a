"""HTTP limits configured on purpose in `serve` (cli/serve.py, api/app.py), tested on the real
process: oversized header block and too many headers (431), oversized body (413), a slowloris
trickling its headers or a client that connects and says nothing (408 after --header-timeout,
never blocking anyone else), a stalled body (408 after --body-timeout), invalid HTTP (400).
Every refusal the app or the guarded protocol writes is in the DataSync error shape."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from cli.serve import MAX_HEADER_BYTES, MAX_HEADERS
from tests.reliability.proc import ServeProcess
from tests.reliability.wire import call, check_error_shape, datasync_headers

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("limits")
    (tmp / "root").mkdir()
    proc = ServeProcess(
        tmp / "data",
        [tmp / "root"],
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def _alive(serve: ServeProcess, http: httpx.Client) -> None:
    response = call(http, serve.url, "ListTasks", {})
    assert response.status_code == 200, response.text


def _raw(serve: ServeProcess, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", serve.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_oversized_header_is_refused_431(serve: ServeProcess, http: httpx.Client) -> None:
    body = b"{}"
    headers = datasync_headers(serve.url + "/", "ListTasks", body)
    headers["X-Padding"] = "a" * (MAX_HEADER_BYTES + 1)
    response = http.post(serve.url + "/", content=body, headers=headers)
    assert response.status_code == 431
    assert check_error_shape(response)["__type"] == "RequestHeaderFieldsTooLargeException"
    _alive(serve, http)


def test_too_many_headers_are_refused_431(serve: ServeProcess, http: httpx.Client) -> None:
    body = b"{}"
    headers = list(datasync_headers(serve.url + "/", "ListTasks", body).items())
    headers += [(f"X-H{i}", "v") for i in range(MAX_HEADERS + 1)]
    response = http.post(serve.url + "/", content=body, headers=headers)
    assert response.status_code == 431
    check_error_shape(response)
    _alive(serve, http)


def test_a_long_url_counts_toward_the_header_limit(serve: ServeProcess) -> None:
    raw = _raw(serve, b"POST /" + b"a" * (MAX_HEADER_BYTES + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status_and_body(raw)[0] == 431


def test_headers_within_the_limits_pass(serve: ServeProcess, http: httpx.Client) -> None:
    body = b"{}"
    headers = list(datasync_headers(serve.url + "/", "ListTasks", body).items())
    headers += [(f"X-H{i}", "v" * 100) for i in range(MAX_HEADERS // 2)]
    assert http.post(serve.url + "/", content=body, headers=headers).status_code == 200


def test_oversized_body_is_refused_413(serve: ServeProcess, http: httpx.Client) -> None:
    body = json.dumps({"Name": "x" * (1 << 20)}).encode()
    response = call(http, serve.url, "ListTasks", body)
    assert response.status_code == 413
    assert check_error_shape(response)["__type"] == "RequestEntityTooLargeException"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536

    headers = datasync_headers(serve.url + "/", "ListTasks", b"")
    response = http.post(serve.url + "/", content=chunks(), headers=headers)
    assert response.status_code == 413
    _alive(serve, http)


class Slowloris(threading.Thread):
    """Sends a request's headers one byte every `pause` seconds; records what it got back."""

    def __init__(self, port: int, pause: float, silent: bool = False) -> None:
        super().__init__(daemon=True)
        self.port, self.pause, self.silent = port, pause, silent
        self.reply = b""
        self.closed_after: float | None = None

    def run(self) -> None:
        started = time.monotonic()
        request = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"z" * 10_000
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            try:
                for byte in [] if self.silent else request:
                    sock.sendall(bytes([byte]))
                    time.sleep(self.pause)
                    if time.monotonic() - started > 20:
                        break
                self.reply = sock.recv(65536)
            except (BrokenPipeError, ConnectionResetError):
                with contextlib.suppress(OSError):
                    self.reply = sock.recv(65536)
        self.closed_after = time.monotonic() - started


def test_slowloris_does_not_block_others_and_is_cut_off(
    serve: ServeProcess, http: httpx.Client
) -> None:
    lorises = [Slowloris(serve.port, 0.05) for _ in range(30)]
    lorises += [Slowloris(serve.port, 0, silent=True) for _ in range(30)]
    for loris in lorises:
        loris.start()
    time.sleep(0.3)
    # meanwhile every ordinary client is answered promptly
    latencies = []
    for _ in range(20):
        started = time.monotonic()
        _alive(serve, http)
        latencies.append(time.monotonic() - started)
    assert max(latencies) < 1.0, latencies
    for loris in lorises:
        loris.join(timeout=HEADER_TIMEOUT + 15)
        assert not loris.is_alive()
        assert loris.closed_after is not None
        assert loris.closed_after < HEADER_TIMEOUT + 3, loris.closed_after
        status, body = _status_and_body(loris.reply)
        assert status == 408 and body["__type"] == "RequestTimeoutException"
    _alive(serve, http)


def test_stalled_body_is_cut_off_408(serve: ServeProcess, http: httpx.Client) -> None:
    body = b'{"MaxResults": 1}'
    headers = datasync_headers(serve.url + "/", "ListTasks", body)
    head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Host: 127.0.0.1:{serve.port}\r\nContent-Length: {len(body)}\r\n\r\n"
    started = time.monotonic()
    raw = _raw(serve, head.encode() + body[:5], timeout=BODY_TIMEOUT + 10)
    status, error = _status_and_body(raw)
    assert status == 408 and error["__type"] == "RequestTimeoutException"
    assert time.monotonic() - started < BODY_TIMEOUT + 3
    _alive(serve, http)


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"POST / HTTP/9.9\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
)
def test_invalid_http_is_refused_and_the_server_goes_on(
    serve: ServeProcess, http: httpx.Client, garbage: bytes
) -> None:
    raw = _raw(serve, garbage)
    assert raw.startswith(b"HTTP/1.1 4"), raw[:200]
    status, body = _status_and_body(raw)
    assert 400 <= status < 500 and body["__type"] and body["message"], (status, body)
    _alive(serve, http)
