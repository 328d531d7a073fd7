"""The FastAPI application of ``splade-anserini serve``: Pyserini's REST routes where they overlap, plus
batches, query encoding, explanations, health and the page at ``/``.

Routes (every one also under ``/v1``, Pyserini 2.0's prefix):

* ``GET /indexes``: the index names; ``GET /indexes/{name}/status``: backend, size, provenance;
* ``GET /indexes/{name}/search?query=&hits=10&qid=&explain=false``: Pyserini's ``{"query": {"qid",
  "query_txt"}, "candidates": [{"docid", "score", "rank", "document_txt"}]}``; ``explain=true`` adds
  each hit's ``explanation`` and the ``query_vector``;
* ``POST /indexes/{name}/search``: Pyserini's body ``{"query", "hits", "qid"}``, or a batch
  ``{"queries": [{"qid", "query"}, ...], "hits"}`` answered as ``{"results": [...]}``;
* ``GET /indexes/{name}/documents/{docid}`` (with ``--corpus``), ``GET /indexes/{name}/encode?query=``;
* Pyserini 2.1's and Anserini's ``GET /v1/{name}/search?query=&hits=`` and ``GET /v1/{name}/doc/{docid}``;
* ``GET /health``, ``GET /docs`` (OpenAPI), ``GET /`` (the page).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import parse_qsl

from splade_anserini.serve.limits import (Limits, RequestLimits, check_query, error_body, one_line, parse_bool,
                                          parse_hits, send_json)
from splade_anserini.serve.served import Encoder, RequestError, ServedIndex

STATIC = Path(__file__).resolve().parent / "static"
#: The page's files, served from memory by fixed names (no path is ever taken from a request).
PAGE_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
              "style.css": "text/css; charset=utf-8"}


class Service:
    """The indexes and the encoder behind the routes."""

    def __init__(self, indexes: Mapping[str, ServedIndex], encoder: Encoder, limits: Limits):
        self.indexes = dict(indexes)
        self.encoder = encoder
        self.limits = limits
        #: How many requests the server has in flight (set by :func:`~.server.serve` from uvicorn's state);
        #: ``None``: unknown, every Numba search goes to a worker thread.
        self.in_flight: Callable[[], int] | None = None

    def alone(self) -> bool:
        """Whether the request calling is the only one in flight: then a Numba search is answered on the event
        loop itself and a Lucene one encodes and searches on the JVM's thread, which saves a hop to a thread
        and back (about half a millisecond a query here); with others in flight, queries are encoded on
        request threads at once."""
        return self.in_flight is not None and self.in_flight() <= 1

    def index(self, name: str) -> ServedIndex:
        served = self.indexes.get(name)
        if served is None:
            raise RequestError(404, f"unknown index {name!r}; this server has: {', '.join(self.indexes)}")
        return served

    async def search(self, name: str, queries: Sequence[tuple[str, str]], hits: int, explain: bool) -> list[dict]:
        """Pyserini's result object for each ``(qid, text)``, searched on ``name``."""
        served = self.index(name)
        texts = [text for _, text in queries]

        def lookup(vectors):
            found = served.search(vectors, hits)
            return vectors, found, [served.explain(v, h) for v, h in zip(vectors, found)] if explain else None

        work = lambda: lookup(self.encoder.vectors(texts, served.factor))  # noqa: E731
        alone = self.alone()
        if served.backend.serial and not alone:  # Lucene, others in flight: the JVM's one thread only searches
            from starlette.concurrency import run_in_threadpool

            vectors = await _guarded(run_in_threadpool(self.encoder.vectors, texts, served.factor), name)
            vectors, found, explained = await _guarded(served.backend.run(lookup, vectors), name)
        elif alone and not served.backend.serial:  # Numba, alone: on the event loop
            vectors, found, explained = await _guarded(_now(work), name)
        else:  # one hop: Numba's request thread, or Lucene's JVM thread encoding too when the request is alone
            vectors, found, explained = await _guarded(served.backend.run(work), name)
        return [self._result(served, qid, text, vectors[i], found[i], explained[i] if explained else None)
                for i, (qid, text) in enumerate(queries)]

    async def search_one(self, name: str, params: Mapping[str, str | None]) -> dict:
        """``GET /indexes/{name}/search``: the query string's ``query``, ``hits``, ``qid`` and ``explain``."""
        text = check_query(params.get("query"), self.limits)
        hits, explain = parse_hits(params.get("hits"), self.limits), parse_bool(params.get("explain"), "explain")
        return (await self.search(name, [(params.get("qid") or "", text)], hits, explain))[0]

    @staticmethod
    def _result(served: ServedIndex, qid: str, text: str, vector, hits, explained) -> dict:
        docs = served.documents
        candidates = []
        for rank, (docid, score) in enumerate(hits, 1):
            cand = {"docid": docid, "score": score, "rank": rank,
                    "document_txt": docs[docid]["contents"] if docs and docid in docs else ""}
            if explained is not None:
                cand["explanation"] = explained[rank - 1]
                cand["document"] = docs.get(docid) if docs else None
            candidates.append(cand)
        out = {"query": {"qid": qid, "query_txt": text}, "index": served.name, "candidates": candidates}
        if explained is not None:
            out["query_vector"] = _ranked(vector)
        return out

    async def encode(self, name: str, text: str) -> dict:
        served = self.index(name)
        from starlette.concurrency import run_in_threadpool

        vector = (await _guarded(run_in_threadpool(self.encoder.vectors, [text], served.factor), name))[0]
        return {"query": text, "index": name, "factor": served.factor, "vector": _ranked(vector)}


async def _now(fn):
    return fn()


async def _guarded(work, name: str):
    """``await work``; a failure of the encoder or the backend is one log line and a 500 JSON error."""
    try:
        return await work
    except RequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed request must not take the server down
        print(f"error: index {name}: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr, flush=True)
        raise RequestError(500, f"the search failed ({type(exc).__name__}); see the server's log") from None


def json_response(content) -> "Response":
    """The answer serialized once with :func:`json.dumps` (FastAPI would walk it with its encoder first)."""
    from fastapi.responses import Response

    return Response(json.dumps(content, ensure_ascii=False), media_type="application/json")


def _ranked(vector: Mapping[str, int]) -> list[dict]:
    return [{"term": t, "weight": w} for t, w in sorted(vector.items(), key=lambda x: (-x[1], x[0]))]


def _batch(body: dict, limits: Limits) -> list[tuple[str, str]]:
    queries = body.get("queries")
    if isinstance(queries, dict):
        queries = [{"qid": q, "query": t} for q, t in queries.items()]
    if not isinstance(queries, list) or not queries:
        raise RequestError(400, "'queries' must be a non-empty list of {\"qid\", \"query\"} objects")
    if len(queries) > limits.max_batch:
        raise RequestError(413, f"a batch of {len(queries):,} queries; the limit is {limits.max_batch:,}")
    out = []
    for i, item in enumerate(queries):
        if not isinstance(item, dict):
            raise RequestError(400, f"queries[{i}] must be an object {{\"qid\", \"query\"}}")
        out.append((str(item.get("qid", i)), check_query(item.get("query"), limits, f"queries[{i}].query")))
    return out


def build_router(service: Service, *, schema: bool = True):
    """The ``/indexes`` routes (mounted at ``/`` and, hidden from the schema, at ``/v1``)."""
    from fastapi import APIRouter, Body, Query

    router = APIRouter(prefix="/indexes", tags=["indexes"], include_in_schema=schema)
    limits = service.limits

    @router.get("", summary="The names of the served indexes")
    async def list_indexes() -> list[str]:
        return list(service.indexes)

    @router.get("/{name}/status", summary="An index's backend, size, provenance and query encoder")
    async def status(name: str) -> dict:
        return service.index(name).status(service.encoder)

    @router.get("/{name}/search", summary="Search one query (Pyserini's route); explain=true explains each hit")
    async def search(name: str, query: str | None = Query(None), hits: str | None = Query(None),
                     qid: str = Query(""), explain: str | None = Query(None)):
        # documents the route: FastSearch answers it first, with the same Service.search_one
        return json_response(await service.search_one(name, {"query": query, "hits": hits, "qid": qid,
                                                             "explain": explain}))

    @router.post("/{name}/search", summary="Search one query (Pyserini's body) or a batch ({\"queries\": [...]})")
    async def search_post(name: str, body: dict = Body(...)):
        hits, explain = parse_hits(body.get("hits"), limits), parse_bool(body.get("explain"), "explain")
        if "queries" in body:
            return json_response({"results": await service.search(name, _batch(body, limits), hits, explain)})
        text = check_query(body.get("query"), limits)
        return json_response((await service.search(name, [(str(body.get("qid", "")), text)], hits, explain))[0])

    @router.get("/{name}/documents/{docid}", summary="A document of the corpus given with --corpus")
    async def document(name: str, docid: str) -> dict:
        return service.index(name).document(docid)

    @router.get("/{name}/encode", summary="The query's impacts: {term: weight}, largest first")
    async def encode(name: str, query: str | None = Query(None)) -> dict:
        return await service.encode(name, check_query(query, limits))

    return router


def build_anserini_router(service: Service):
    """Pyserini 2.1's and Anserini's ``/v1/{index}/search`` and ``/v1/{index}/doc/{docid}``."""
    from fastapi import APIRouter, Query

    router = APIRouter(prefix="/v1", tags=["anserini"])
    limits = service.limits

    @router.get("/{name}/search", summary="Search (Anserini's and Pyserini 2.1's REST shape)")
    async def search(name: str, query: str | None = Query(None), hits: str | None = Query(None)):
        result = (await service.search(name, [("", check_query(query, limits))], parse_hits(hits, limits), False))[0]
        docs = service.index(name).documents
        return json_response({"api": "v1", "index": name, "query": {"text": query},
                              "candidates": [{"docid": c["docid"], "score": c["score"], "rank": c["rank"],
                                              "doc": docs.get(c["docid"]) if docs else None}
                                             for c in result["candidates"]]})

    @router.get("/{name}/doc/{docid}", summary="A document (Anserini's and Pyserini 2.1's REST shape)")
    async def doc(name: str, docid: str) -> dict:
        return {"api": "v1", "index": name, "docid": docid, "doc": service.index(name).document(docid)}

    return router


def create_app(service: Service, *, on_close=None):
    """The application: routes, the one-line JSON errors, the request limits, the page."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException

    @asynccontextmanager
    async def lifespan(app):
        yield
        if on_close is not None:
            on_close()

    app = FastAPI(title="splade-anserini", version="1", lifespan=lifespan,
                  description="SPLADE search over Lucene impact and Numba indexes, with explained hits.")

    def error(status: int, message: object) -> Response:
        return Response(error_body(message), status_code=status, media_type="application/json")

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return error(exc.status, exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, "no such route" if exc.status_code == 404 else exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        return error(500, internal_error(request.url.path, exc))

    @app.get("/health", summary="Liveness: the indexes served")
    async def health() -> dict:
        return {"status": "ok", "indexes": list(service.indexes), "query_encoder": service.encoder.kind,
                "torch_imported": "torch" in sys.modules}

    page = {name: (STATIC / name).read_bytes() for name in PAGE_FILES}

    @app.get("/", include_in_schema=False)
    async def index_page():
        return Response(page["index.html"], media_type=PAGE_FILES["index.html"])

    for name in ("app.js", "style.css"):
        app.add_api_route(f"/static/{name}", _static(page[name], PAGE_FILES[name]), include_in_schema=False)
    app.include_router(build_router(service))
    app.include_router(build_router(service, schema=False), prefix="/v1")
    app.include_router(build_anserini_router(service))
    return RequestLimits(FastSearch(app, service), service.limits)


def internal_error(path: str, exc: Exception) -> str:
    """Log an unexpected failure in one line; the 500 answer's message."""
    print(f"error: {path}: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr, flush=True)
    return f"internal error ({type(exc).__name__})"


#: ``GET /indexes/{name}/search`` and its ``/v1`` copy: the route a search client calls for every query.
_SEARCH_PATH = re.compile(r"^(?:/v1)?/indexes/([^/]+)/search$")


class FastSearch:
    """ASGI: ``GET /indexes/{name}/search`` answered without FastAPI's routing and parameter validation
    (about a millisecond a request), by the route's own :meth:`Service.search_one`, with the same JSON and
    the same errors; every other request goes on to the application."""

    def __init__(self, app, service: Service):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        match = _SEARCH_PATH.match(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "GET" \
            else None
        if match is None:
            return await self.app(scope, receive, send)
        # as Starlette reads a query string: the last value of a repeated name wins
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        try:
            status, body = 200, json.dumps(await self.service.search_one(match.group(1), params),
                                           ensure_ascii=False).encode()
        except RequestError as exc:
            status, body = exc.status, error_body(exc)
        except Exception as exc:  # noqa: BLE001 - a failed request must not take the server down
            status, body = 500, error_body(internal_error(scope["path"], exc))
        await send_json(send, status, body)


def _static(content: bytes, media_type: str):
    from fastapi.responses import Response

    async def serve():
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

    return serve
