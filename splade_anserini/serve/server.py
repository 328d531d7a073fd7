"""``splade-anserini serve``: a search service over one or more indexes, with a page at ``/``.

    splade-anserini serve --index scifact=work/scifact-splade-tiny/index --model work/exports/splade-tiny
        [--index NAME=I ...] [--backend numba|lucene] [--corpus C | --corpus NAME=C ...]
        [--host 127.0.0.1] [--port 8081] [--max-length 256] [--no-screen] [--allow-other-query-encoder]
        [--max-hits 1000] [--max-query-chars 4096] [--max-batch 128] [--max-body-bytes 1048576]

FastAPI on uvicorn (what Pyserini's own REST server runs), with the routes of :mod:`.app`. Each index is
checked at start as ``search`` checks it (its recorded factor, the query model against the documents'
model, an ONNX export's factor): a mismatch is refused in one line (exit 2) before anything listens.
``--model`` is an ONNX export (the screened encoder; torch is never imported) or a checkpoint.
``--backend`` defaults to each index's own kind. The server binds 127.0.0.1 unless ``--host`` says
otherwise; Ctrl-C finishes the requests in flight, closes the searchers, detaches the JVM's thread
and exits 0.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Sequence

from splade_anserini.cli import ArgumentParser, command, positive_int
from splade_anserini.conversion.errors import UsageError
from splade_anserini.serve.protocols import HTTP_PARSERS, http_parser, protocol_class

DEFAULT_PORT = 8081
#: ``NAME=PATH``: a name of letters, digits, ``.``, ``_`` and ``-``.
_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63})=(.+)$")
#: uvicorn's h11 parser rejects longer request heads with a plain-text 400 before the application sees
#: them: room for a 1 MB query string, so that the application refuses it in JSON (414).
H11_MAX_HEAD = 4 << 20
#: uvicorn's ``--loop`` choices: ``auto`` takes the faster loop when it is installed (the server extra installs
#: uvloop), as uvicorn does
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def event_loop(choice: str) -> str:
    """``--loop``: ``auto`` -> uvloop when it is installed, else asyncio; any other choice as given."""
    import importlib.util

    if choice != "auto":
        return choice
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def split_named(value: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> ``(NAME, PATH)``; a bare path (or one whose ``=`` is part of it) -> ``(None, value)``."""
    m = _NAMED.match(value)
    if m and not Path(value).expanduser().exists():
        return m.group(1), m.group(2)
    return None, value


def index_names(values: Sequence[str]) -> dict[str, str]:
    """``{name: path}`` for the ``--index`` values; a bare path is named after its folder (the parent's
    name when the folder is called ``index``, as ``pipeline`` names it)."""
    out: dict[str, str] = {}
    for value in values:
        name, path = split_named(value)
        if name is None:
            folder = Path(path).expanduser().resolve()
            name = folder.parent.name if folder.name in ("index", "lucene", "numba") else folder.name
            name = re.sub(r"[^A-Za-z0-9._-]", "-", name) or "index"
        if name in out:
            raise UsageError(f"--index {value}: the name {name!r} is given twice; name them (--index NAME=PATH)")
        out[name] = path
    return out


def corpus_for(values: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """``{index name: corpus}``: ``--corpus C`` serves every index, ``--corpus NAME=C`` one of them."""
    out: dict[str, str] = {}
    for value in values:
        name, path = split_named(value)
        if name is not None and name not in names:
            raise UsageError(f"--corpus {value}: no index is named {name!r} (indexes: {', '.join(names)})")
        if not Path(path).expanduser().is_file():
            raise UsageError(f"--corpus {path}: no such file")
        for target in ([name] if name else names):
            out[target] = path
    return out


def build_parser() -> ArgumentParser:
    from splade_anserini.serve.limits import Limits

    d = Limits()
    p = ArgumentParser(description="Serve SPLADE search over HTTP (Pyserini's REST routes, explained hits, a page at /).")
    p.add_argument("--index", action="append", required=True, metavar="[NAME=]INDEX",
                   help="an index to serve (repeat for several); NAME defaults to the folder's name")
    p.add_argument("--model", default="splade-tiny",
                   help="an ONNX export directory (screened encoder, no torch) or a checkpoint / hub id / splade-tiny")
    p.add_argument("--backend", choices=("numba", "lucene"), default=None,
                   help="the index kind to expect (default: each index's own: header.json = numba, segments = lucene)")
    p.add_argument("--corpus", action="append", default=[], metavar="[NAME=]CORPUS",
                   help="documents (corpus.jsonl or pid<TAB>text) for the hits' text and /documents/{docid}")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes the server to the network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)")
    p.add_argument("--encoder-threads", type=int, default=1,
                   help="ONNX Runtime intra-op threads per query (0: all cores)")
    p.add_argument("--max-length", type=positive_int, default=256, help="query max length in tokens")
    p.add_argument("--no-screen", action="store_true",
                   help="encode queries with the export's plain fp32 graph: a leaner process, slower queries")
    p.add_argument("--allow-other-query-encoder", action="store_true",
                   help="serve indexes whose documents another model encoded")
    p.add_argument("--max-hits", type=positive_int, default=d.max_hits, help="largest hits a request may ask")
    p.add_argument("--max-query-chars", type=positive_int, default=d.max_query_chars, help="longest query text")
    p.add_argument("--max-batch", type=positive_int, default=d.max_batch, help="most queries in one POST")
    p.add_argument("--max-body-bytes", type=positive_int, default=d.max_body_bytes, help="largest request body")
    p.add_argument("--http", choices=HTTP_PARSERS, default="auto",
                   help="uvicorn's HTTP parser (auto: httptools, the faster, when installed, else h11); what "
                        "either parser refuses is answered in JSON as every other error")
    p.add_argument("--loop", choices=EVENT_LOOPS, default="auto",
                   help="the event loop (auto: uvloop when installed, else asyncio)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (info: one access line a request)")
    return p


def load_service(args):
    """The encoder and every index, checked; an index that fails closes those already open."""
    from splade_anserini.serve.app import Service
    from splade_anserini.serve.limits import Limits
    from splade_anserini.serve.served import load_encoder, load_index

    if args.max_hits > 1000:
        raise UsageError(f"--max-hits {args.max_hits}: at most 1000")
    names = index_names(args.index)
    corpora = corpus_for(args.corpus, list(names))
    encoder = load_encoder(args.model, max_length=args.max_length, threads=args.encoder_threads,
                           screen=not args.no_screen)
    encoder.vectors(["warm up"], 100.0)  # sessions, tokenizer truncation and kernels compiled before the first request
    indexes = {}
    try:
        for name, path in names.items():
            indexes[name] = load_index(name, path, encoder, backend=args.backend,
                                       allow_other=args.allow_other_query_encoder, corpus=corpora.get(name))
    except BaseException:
        for served in indexes.values():
            served.backend.close()
        raise
    limits = Limits(args.max_hits, args.max_query_chars, args.max_batch, args.max_body_bytes)
    return Service(indexes, encoder, limits)


def close_service(service) -> None:
    for served in service.indexes.values():
        served.backend.close()


def serve(service, host: str, port: int, log_level: str = "warning", http: str = "auto", loop: str = "auto") -> None:
    """Run uvicorn until Ctrl-C or SIGTERM; the indexes are closed on the way out."""
    import uvicorn

    from splade_anserini.serve.app import create_app

    loop, http = event_loop(loop), http_parser(http)
    parser = {"h11_max_incomplete_event_size": H11_MAX_HEAD} if http == "h11" else {}
    config = uvicorn.Config(create_app(service, on_close=lambda: close_service(service)), host=host, port=port,
                            http=protocol_class(http, H11_MAX_HEAD), log_level=log_level,
                            access_log=log_level in ("info", "debug"),
                            timeout_graceful_shutdown=10, **parser)
    server = uvicorn.Server(config)
    service.in_flight = lambda: len(server.server_state.tasks)

    async def announce():
        import asyncio

        while not server.started and not server.should_exit:
            await asyncio.sleep(0.02)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()
            print(f"serving {', '.join(service.indexes)} on http://{host}:{bound[1]}/ "
                  f"(query encoder: {service.encoder.kind}; Ctrl-C stops)", flush=True)

    async def main():
        import asyncio

        task = asyncio.create_task(announce())
        await server.serve()
        task.cancel()

    import asyncio

    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it caught again once it has shut down
        pass


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be in 0..65535")
    service = load_service(args)
    for served in service.indexes.values():
        for note in served.notes:
            print(f"notice: {note}", file=sys.stderr, flush=True)
    serve(service, args.host, args.port, args.log_level, http=args.http, loop=args.loop)
    print("server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
