"""Load on `splade-anserini serve` over loopback: latency, throughput, errors and the server's memory.

    python -m bench.serve_load --export work/exports/splade-tiny --numba-index work/scifact/numba \
        --lucene-index work/scifact/index --topics ../shared/data/scifact/queries.test.tsv \
        [--model splade-tiny] [--clients 1,4,16] [--requests 1200] [--seconds 30] [--hits 10]
        [--pyserini-python .venv312/bin/python] [--json results/serve-load.json]

For each configuration (query encoder: the ONNX export's screened graph or the PyTorch checkpoint;
backend: Numba or Lucene) a server is started on 127.0.0.1 with one index, warmed up, and loaded by
1, 4 and 16 clients, each on its own keep-alive connection sending ``GET /indexes/NAME/search?query=
&hits=10`` for the topics in turn: every level stops after ``--requests`` requests or ``--seconds``
seconds, whichever comes first, then the server is stopped (Ctrl-C). A row reports p50/p99 latency,
QPS, errors (any answer but 200) and the server's RSS before and after. The single-client row also
has the in-process end-to-end p50 of the same configuration, measured in a fresh process in the same
run (encode + search, one query at a time, the same queries; the mean of one measurement before the
server starts and one after it stops): the cost of HTTP is the difference.

``--pyserini-python`` (a Python with pyserini 2.x): the same load on Pyserini's own REST server
(``python -m pyserini.server.rest``) over the same Lucene index, configured as a local impact index
with Pyserini's SPLADE query encoder on the same checkpoint (``/v1/NAME/search``), where it starts
offline; a row says so when it cannot. Nothing is contacted but 127.0.0.1.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["configuration", "clients", "requests", "errors", "p50 ms", "p99 ms", "QPS", "in-process p50 ms",
           "RSS start MiB", "RSS end MiB"]
WARMUP = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the JVM runs inside the server's process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(proc: subprocess.Popen, port: int, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"no answer on 127.0.0.1:{port}{path} within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(port: int, paths: list[str], start: int, budget: dict, lock: threading.Lock, out: list) -> None:
    """One keep-alive connection sending ``paths`` in turn from ``start`` while the budget lasts."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = start
    while True:
        with lock:
            if budget["left"] <= 0 or time.monotonic() > budget["deadline"]:
                break
            budget["left"] -= 1
        t0 = time.perf_counter()
        try:
            conn.request("GET", paths[i % len(paths)])
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        out.append((time.perf_counter() - t0, ok))
        i += 1
    conn.close()


def load(port: int, paths: list[str], clients: int, requests: int, seconds: float) -> dict:
    """``clients`` threads sharing a budget of ``requests`` requests and ``seconds`` seconds."""
    budget, lock, out = {"left": requests, "deadline": time.monotonic() + seconds}, threading.Lock(), []
    threads = [threading.Thread(target=client, args=(port, paths, k * len(paths) // clients, budget, lock, out))
               for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(d for d, _ in out)
    return {"requests": len(out), "errors": sum(1 for _, ok in out if not ok), "p50": 1e3 * statistics.median(lat),
            "p99": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "qps": len(out) / wall}


def in_process_p50(model: str, backend: str, index: str, texts: list[str], hits: int) -> float:
    """End-to-end p50 (encode + search) in this process, one query at a time, the server's code path."""
    from splade_anserini.provenance import plan_search
    from splade_anserini.serve.backends import open_backend
    from splade_anserini.serve.served import load_encoder

    encoder = load_encoder(model, max_length=256, threads=1)
    served = open_backend(backend, index)
    factor = plan_search(index, factor=None).factor
    try:
        def once(text):
            return served.search(encoder.vectors([text], factor)[0], hits)

        run = (lambda fn, *a: served.pool.submit(fn, *a).result()) if backend == "lucene" else (lambda fn, *a: fn(*a))
        for text in texts[:WARMUP]:
            run(once, text)
        times = []
        for text in texts:
            t0 = time.perf_counter()
            run(once, text)
            times.append(time.perf_counter() - t0)
    finally:
        served.close()
    return 1e3 * statistics.median(times)


def measure_server(name: str, command: list[str], route: str, texts: list[str], args) -> list[list]:
    """Start a server, warm it up, load it at each client count, stop it: one row per count."""
    port = free_port()
    paths = [route.format(query=urllib.parse.quote(t), hits=args.hits) for t in texts]
    log = open(Path(args.workdir) / f"{name}.log", "w")
    proc = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    rows = []
    try:
        wait_ready(proc, port, paths[0], args.start_timeout)
        load(port, paths, 1, WARMUP, args.seconds)
        start_rss = rss_mib(proc.pid)
        for clients in args.clients:
            got = load(port, paths, clients, args.requests, args.seconds)
            rows.append([name, clients, got["requests"], got["errors"], f"{got['p50']:.3f}", f"{got['p99']:.3f}",
                         f"{got['qps']:.1f}", "", f"{start_rss:.0f}", f"{rss_mib(proc.pid):.0f}"])
    except RuntimeError as exc:
        log.flush()
        lines = [x for x in (Path(args.workdir) / f"{name}.log").read_text().splitlines() if x.strip()]
        rows.append([name, "", 0, "", "", "", "", "", "", f"not measured: {exc}" + (f" ({lines[-1].strip()})"
                                                                                    if lines else "")])
    finally:
        stop(proc)
        log.close()
    return rows


def ours(args, encoder: str, backend: str, texts: list[str]) -> list[list]:
    model = args.export if encoder == "onnx-screened" else args.model
    index = args.numba_index if backend == "numba" else args.lucene_index
    name = f"{encoder}+{backend}"
    command = [sys.executable, "-m", "splade_anserini", "serve", "--index", f"bench={index}", "--model", model,
               "--encoder-threads", "1", *shlex.split(args.serve_args)]
    # in a fresh process, as the server's: torch's and Numba's thread pools in one process slow each other;
    # once before the server and once after, so that a drift of the machine over the run falls on both sides
    before = in_process_run(model, backend, index, args)
    rows = measure_server(name, command, "/indexes/bench/search?query={query}&hits={hits}", texts, args)
    p50 = (before + in_process_run(model, backend, index, args)) / 2
    for row in rows:
        if row[1] == 1:
            row[7] = f"{p50:.3f}"
    return rows


def in_process_run(model: str, backend: str, index: str, args) -> float:
    """:func:`in_process_p50` in a fresh process (NaN when it fails)."""
    out = subprocess.run([sys.executable, "-m", "bench.serve_load", "--in-process", model, backend, index,
                          "--topics", args.topics, "--hits", str(args.hits)], capture_output=True, text=True, cwd=ROOT)
    return float(out.stdout.split()[-1]) if out.returncode == 0 else float("nan")


def pyserini(args, texts: list[str]) -> list[list]:
    """Pyserini 2.x's REST server on the Lucene index with its own SPLADE query encoder (the same checkpoint)."""
    from splade_anserini.models import resolve_model

    work = Path(args.workdir)
    checkpoint = work / "splade-checkpoint"  # Pyserini picks its SPLADE encoder by "splade" in the name
    if not checkpoint.exists():
        checkpoint.symlink_to(resolve_model(args.model))
    config = work / "pyserini-server.yaml"
    config.write_text(json.dumps({"indexes": {"bench": {"path": str(Path(args.lucene_index).resolve()),
                                                        "index_type": "impact", "encoder": str(checkpoint)}}}))
    command = [args.pyserini_python, "-m", "pyserini.server.rest", "--host", "127.0.0.1", "--config", str(config),
               "--no-prebuilt-indexes"]
    return measure_server("pyserini-rest+lucene", command, "/v1/bench/search?query={query}&hits={hits}&parse=false",
                          texts, args)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--in-process", nargs=3, metavar=("MODEL", "BACKEND", "INDEX"),
                   help="only print the in-process end-to-end p50 of one configuration (used by the bench itself)")
    p.add_argument("--export", help="ONNX export (screened query encoder)")
    p.add_argument("--model", default="splade-tiny", help="the PyTorch checkpoint of the same model")
    p.add_argument("--numba-index")
    p.add_argument("--lucene-index")
    p.add_argument("--topics", required=True)
    p.add_argument("--clients", default="1,4,16", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--requests", type=int, default=1200, help="most requests per client count")
    p.add_argument("--seconds", type=float, default=30.0, help="most seconds per client count")
    p.add_argument("--hits", type=int, default=10)
    p.add_argument("--start-timeout", type=float, default=300.0)
    p.add_argument("--encoders", default="onnx-screened,pytorch")
    p.add_argument("--backends", default="numba,lucene")
    p.add_argument("--pyserini-python", default=None, help="a Python with pyserini 2.x for its REST server")
    p.add_argument("--json", default=None, help="write the result file here (results/serve-load.json)")
    p.add_argument("--serve-args", default="", help="more `splade-anserini serve` flags (e.g. \"--loop asyncio\")")
    p.add_argument("--workdir", default=None, help="logs and Pyserini's config (default: a temporary folder)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from splade_anserini.data import read_topics

    texts = list(read_topics(args.topics).values())
    if args.in_process:
        print(f"{in_process_p50(*args.in_process, texts, args.hits):.3f}")
        return 0
    if not (args.export and args.numba_index and args.lucene_index):
        raise SystemExit("error: --export, --numba-index and --lucene-index are required")
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        args.workdir = args.workdir or tmp
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        rows = []
        runs = [lambda e=e, b=b: ours(args, e, b, texts) for e in args.encoders.split(",") for b in args.backends.split(",")]
        if args.pyserini_python:
            runs.append(lambda: pyserini(args, texts))
        for run in runs:
            got = run()
            print(*(" | ".join(map(str, r)) for r in got), sep="\n", flush=True)
            rows += got
    if args.json:
        from bench.results import write_result

        write_result(Path(args.json).stem, "HTTP search under load (loopback)", COLUMNS, rows,
                     folder=Path(args.json).parent,
                     data=f"{Path(args.topics).name}: {len(texts)} queries in turn, hits={args.hits}; "
                          f"each client count stops at {args.requests} requests or {args.seconds:g} s",
                     conditions="server and clients on the same machine; run it with nothing else on the machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
