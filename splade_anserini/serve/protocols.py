"""uvicorn's HTTP protocols answering what their own parser refuses in the service's error shape.

A request the HTTP parser cannot take (httptools: a URL over its 64 KiB limit; h11: a request head over
the limit ``serve`` sets, 4 MiB; either: a malformed request) never reaches the application, and uvicorn
answers it with a plain-text 400. Here it is one line of JSON, ``{"error": "..."}``, as every other refusal
is: 414 for a URL over httptools' limit, 400 otherwise.
"""
from __future__ import annotations

import importlib.util
from http import HTTPStatus

from splade_anserini.serve.limits import error_body

#: httptools' ``parse_url`` refuses longer URLs.
HTTPTOOLS_MAX_URL = 65535
#: ``--http`` choices; ``auto`` is httptools when installed (the ``server`` extra installs it), else h11.
HTTP_PARSERS = ("auto", "httptools", "h11")


def http_parser(choice: str) -> str:
    """``--http``: ``auto`` -> httptools when it is installed, else h11; any other choice as given."""
    if choice != "auto":
        return choice
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def refuse(transport, status: int, message: str) -> None:
    """Write one JSON error answer and close the connection (the parser's state is past saving)."""
    body = error_body(message)
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode("ascii")
    transport.write(head + body)
    transport.close()


def protocol_class(parser: str, max_head: int) -> type:
    """uvicorn's protocol class for ``parser`` (``h11`` or ``httptools``) with JSON refusals."""
    if parser == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class JsonHttpTools(HttpToolsProtocol):
            def send_400_response(self, msg: str) -> None:
                url = len(getattr(self, "url", b"") or b"")
                if url > HTTPTOOLS_MAX_URL:
                    refuse(self.transport, 414, f"the URL has {url:,} bytes; the HTTP parser's limit is "
                                                f"{HTTPTOOLS_MAX_URL:,} (send a long query or a batch with POST)")
                else:
                    refuse(self.transport, 400, f"the HTTP parser refused the request: {msg}")

        return JsonHttpTools
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JsonH11(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            refuse(self.transport, 400, f"the HTTP parser refused the request (a request head over "
                                        f"{max_head:,} bytes, or a malformed request): {msg}")

    return JsonH11
