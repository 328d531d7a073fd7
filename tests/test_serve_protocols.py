"""What uvicorn's HTTP parsers refuse before the application sees it (a malformed request, a URL over
httptools' limit, a request head over h11's) is answered in one line of JSON, as every other error of
`splade-anserini serve`, by a real uvicorn server on loopback with each parser."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pytest.importorskip("uvicorn")

from splade_anserini.serve.protocols import HTTPTOOLS_MAX_URL, http_parser, protocol_class  # noqa: E402

MAX_HEAD = 8192


async def ok_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", b"12")]})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


@pytest.fixture(params=["h11", "httptools"])
def port(request):
    import uvicorn

    if request.param == "httptools":
        pytest.importorskip("httptools")
    extra = {"h11_max_incomplete_event_size": MAX_HEAD} if request.param == "h11" else {}
    config = uvicorn.Config(ok_app, host="127.0.0.1", port=0, http=protocol_class(request.param, MAX_HEAD),
                            log_level="critical", lifespan="off", **extra)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield request.param, server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(30)


def exchange(port: int, request: bytes, finish: bool = True) -> tuple[int, bytes, bytes]:
    """Send raw bytes (then end the request unless ``finish`` is false); (status, head, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        if finish:
            s.shutdown(socket.SHUT_WR)
        raw = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.lower(), body


def assert_json_error(head: bytes, body: bytes) -> str:
    assert b"content-type: application/json" in head
    answer = json.loads(body)
    assert list(answer) == ["error"] and "\n" not in answer["error"]
    return answer["error"]


def test_a_well_formed_request_reaches_the_application(port):
    status, _, body = exchange(port[1], b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and json.loads(body) == {"ok": True}


def test_a_malformed_request_is_one_json_line(port):
    status, head, body = exchange(port[1], b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    assert status == 400 and "HTTP parser refused" in assert_json_error(head, body)


def test_a_request_head_over_the_parsers_limit_is_one_json_line(port):
    parser, at = port
    if parser == "httptools":  # its URL parser's limit, on a complete request
        request = b"GET /?query=" + b"q" * (HTTPTOOLS_MAX_URL + 100) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    else:  # h11 measures a head while it is incomplete: one still unfinished past the limit
        request = b"GET /?query=" + b"q" * (2 * MAX_HEAD)
    status, head, body = exchange(at, request, finish=parser == "httptools")
    message = assert_json_error(head, body)
    assert (status, parser == "httptools") in ((414, True), (400, False)), message


def test_auto_takes_httptools_when_installed():
    import importlib.util

    expected = "httptools" if importlib.util.find_spec("httptools") else "h11"
    assert http_parser("auto") == expected and http_parser("h11") == "h11"
