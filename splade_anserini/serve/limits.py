"""The server's limits and its one error shape: every refused request is a 4xx JSON body
``{"error": "one line"}``, answered before any work, and the server keeps serving.

:class:`Limits` holds the bounds; :class:`RequestLimits` is the ASGI middleware that refuses an
over-long URL (414) or request body (413) before FastAPI reads it; :func:`parse_hits` and
:func:`check_query` check the parameters of a search.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from splade_anserini.serve.served import RequestError
from splade_anserini.conversion.topics import is_blank

#: Pyserini's and Anserini's default number of hits.
DEFAULT_HITS = 10


@dataclass(frozen=True)
class Limits:
    """Bounds of one request (the command's ``--max-*`` flags)."""

    max_hits: int = 1000
    max_query_chars: int = 4096
    max_batch: int = 128
    max_body_bytes: int = 1 << 20
    max_url_bytes: int = 16 << 10


def one_line(message: object) -> str:
    return " ".join(str(message).split())[:500]


def error_body(message: object) -> bytes:
    return json.dumps({"error": one_line(message)}).encode()


def parse_hits(raw: object, limits: Limits) -> int:
    """``hits`` as an integer in ``1..max_hits`` (default 10)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return DEFAULT_HITS
    if isinstance(raw, bool):
        raise RequestError(400, "Parameter 'hits' must be an integer")
    try:
        hits = int(raw) if not isinstance(raw, float) or raw.is_integer() else None
    except (TypeError, ValueError):
        hits = None
    if hits is None:
        raise RequestError(400, "Parameter 'hits' must be an integer")
    if not 1 <= hits <= limits.max_hits:
        raise RequestError(400, f"Parameter 'hits' must be between 1 and {limits.max_hits}, got {hits}")
    return hits


def check_query(text: object, limits: Limits, what: str = "query") -> str:
    """A query text: a non-blank string of at most ``max_query_chars`` characters."""
    if not isinstance(text, str) or is_blank(text):
        raise RequestError(400, f"Parameter '{what}' is required (a non-blank text)")
    if len(text) > limits.max_query_chars:
        raise RequestError(413, f"Parameter '{what}' has {len(text):,} characters; the limit is "
                                f"{limits.max_query_chars:,}")
    return text


def parse_bool(raw: object, name: str) -> bool:
    if raw is None or raw is False or raw is True:
        return bool(raw)
    value = str(raw).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise RequestError(400, f"Parameter '{name}' must be 'true' or 'false'")


class BodyTooLarge(Exception):
    pass


class RequestLimits:
    """ASGI middleware: a URL over ``max_url_bytes`` is a 414, a body over ``max_body_bytes`` (declared
    or streamed) a 413, each one line of JSON; nothing else is touched."""

    def __init__(self, app, limits: Limits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        url = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if url > self.limits.max_url_bytes:
            return await _reply(send, 414, f"the URL has {url:,} bytes; the limit is {self.limits.max_url_bytes:,} "
                                           "(send a long query or a batch with POST)")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limits.max_body_bytes):
            return await _reply(send, 413, self._too_large())
        received, started = 0, False

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limits.max_body_bytes:
                raise BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reply(send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"the request body is over the limit of {self.limits.max_body_bytes:,} bytes"


async def _reply(send, status: int, message: str) -> None:
    await send_json(send, status, error_body(message))


async def send_json(send, status: int, body: bytes) -> None:
    """An ASGI answer: ``body`` (serialized JSON) with ``status``."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
