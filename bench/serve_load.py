"""Load on `splade-anserini serve` over loopback: latency, throughput, errors and the server's memory.

    python -m bench.serve_load --export work/exports/splade-tiny --numba-index work/scifact/numba \
        --lucene-index work/scifact/index --topics ../shared/data/scifact/queries.test.tsv \
        [--model splade-tiny] [--clients 1,4,16] [--requests 1200] [--seconds 30] [--hits 10]
        [--pyserini-python .venv312/bin/python] [--json results/serve-load.json]

For each configuration (query encoder: the ONNX export's screened graph or the PyTorch checkpoint;
backend: Numba or Lucene) a server is started on 127.0.0.1 with one index, warmed up, and loaded by
1, 4 and 16 clients, each on its own keep-alive connection (a minimal HTTP/1.1 client,
:class:`Client`) sending ``GET /indexes/NAME/search?query=&hits=10`` for the topics in turn: every
level stops after ``--requests`` requests or ``--seconds`` seconds, whichever comes first, then the
server is stopped (Ctrl-C). A row reports p50/p99 latency, QPS, errors (any answer but 200) and the
server's RSS before and after. The single-client row also
has the in-process end-to-end p50 of the same configuration (encode + search, one query at a time,
back to back, the server's code path), measured in a process of its own beside the server: its
blocks of ``--block`` queries alternate with the client's blocks of the same queries, so that the two
p50s come from the same minutes and the machine's drift falls on both: the cost of HTTP is the
difference.

``--pyserini-python`` (a Python with pyserini 2.x): the same load on Pyserini's own REST server
(``python -m pyserini.server.rest``) over the same Lucene index, configured as a local impact index
with Pyserini's SPLADE query encoder on the same checkpoint (``/v1/NAME/search``), where it starts
offline; a row says so when it cannot. Nothing is contacted but 127.0.0.1.
"""
from __future__ import annotations

import argparse
import http.client
import json
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


class Client:
    """A minimal HTTP/1.1 client on one keep-alive connection: a request written whole, its answer read
    by its Content-Length. What a load generator does (wrk's parser is C): ``http.client`` parses each
    answer's head with the email package, about 0.3 ms a request here, which is the client's time and
    would be counted as the server's."""

    def __init__(self, port: int, timeout: float = 60.0):
        self.port, self.timeout, self.sock, self.buf = port, timeout, None, b""

    def get(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request`` (a whole GET), read its answer: its status and body."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(request)
        head = self._read_until(b"\r\n\r\n").lower()
        length = next((int(line[15:]) for line in head.split(b"\r\n") if line.startswith(b"content-length:")), None)
        if length is None:
            raise http.client.HTTPException("an answer without Content-Length")
        body = self._read(length)
        if b"\r\nconnection: close" in head:
            self.close()
        return int(head.split(b" ", 2)[1]), body

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _read_until(self, end: bytes) -> bytes:
        while (at := self.buf.find(end)) < 0:
            self._fill()
        out, self.buf = self.buf[:at], self.buf[at + len(end):]
        return out

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""


def request_bytes(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("latin-1")


def client(port: int, requests: list[bytes], start: int, budget: dict, lock: threading.Lock, out: list) -> None:
    """One keep-alive connection sending ``requests`` in turn from ``start`` while the budget lasts."""
    conn = Client(port)
    i = start
    while True:
        with lock:
            if budget["left"] <= 0 or time.monotonic() > budget["deadline"]:
                break
            budget["left"] -= 1
        t0 = time.perf_counter()
        try:
            ok = conn.get(requests[i % len(requests)])[0] == 200
        except (OSError, ValueError, http.client.HTTPException):
            ok = False
            conn.close()
        out.append((time.perf_counter() - t0, ok))
        i += 1
    conn.close()


def load(port: int, paths: list[bytes], clients: int, requests: int, seconds: float) -> dict:
    """``clients`` threads sharing a budget of ``requests`` requests and ``seconds`` seconds."""
    budget, lock, out = {"left": requests, "deadline": time.monotonic() + seconds}, threading.Lock(), []
    threads = [threading.Thread(target=client, args=(port, paths, k * len(paths) // clients, budget, lock, out))
               for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**summarize(out, time.perf_counter() - t0), "raw": out}


def summarize(out: list[tuple[float, bool]], wall: float) -> dict:
    """Requests, errors, p50/p99 (ms) and QPS of ``(seconds, ok)`` answers over ``wall`` seconds."""
    lat = sorted(d for d, _ in out)
    return {"requests": len(out), "errors": sum(1 for _, ok in out if not ok), "p50": 1e3 * statistics.median(lat),
            "p99": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "qps": len(out) / wall}


def in_process_worker(model: str, backend: str, index: str, texts: list[str], hits: int) -> None:
    """Time blocks of queries end to end (encode + search, one at a time, the server's code path) on
    request: a line ``START N`` on stdin -> the seconds of queries ``START .. START+N`` (in turn), one line."""
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
        print("ready", flush=True)
        for line in sys.stdin:
            start, n = map(int, line.split())
            times = []
            for i in range(start, start + n):
                t0 = time.perf_counter()
                run(once, texts[i % len(texts)])
                times.append(time.perf_counter() - t0)
            print(" ".join(f"{t:.7f}" for t in times), flush=True)
    finally:
        served.close()


class InProcess:
    """:func:`in_process_worker` in a process of its own (torch's and Numba's thread pools in one process
    slow each other, and the client's threads must not share a GIL with the measured work)."""

    def __init__(self, model: str, backend: str, index: str, args):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.serve_load", "--in-process", model, backend, index,
                                      "--topics", args.topics, "--hits", str(args.hits)], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the in-process measurement exited with status {self.proc.wait()}")

    def block(self, start: int, n: int) -> list[float]:
        self.proc.stdin.write(f"{start} {n}\n")
        self.proc.stdin.flush()
        return [float(x) for x in self.proc.stdout.readline().split()]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def paired_load(port: int, paths: list[bytes], worker: InProcess, requests: int, seconds: float, block: int) -> dict:
    """One client, its blocks of ``block`` requests alternating with in-process blocks of the same queries."""
    deadline, remote, local, wall, start = time.monotonic() + seconds, [], [], 0.0, 0
    while start < requests and time.monotonic() < deadline:
        n = min(block, requests - start)
        local += worker.block(start, n)
        t0 = time.perf_counter()
        remote += load(port, paths[start % len(paths):] + paths[:start % len(paths)], 1, n, seconds)["raw"]
        wall += time.perf_counter() - t0
        start += n
    return {**summarize(remote, wall), "in_process": 1e3 * statistics.median(local)}


def measure_server(name: str, command: list[str], route: str, texts: list[str], args,
                   paired: InProcess | None = None) -> list[list]:
    """Start a server, warm it up, load it at each client count, stop it: one row per count; with
    ``paired``, the single client alternates with it (:func:`paired_load`)."""
    port = free_port()
    routes = [route.format(query=urllib.parse.quote(t), hits=args.hits) for t in texts]
    paths = [request_bytes(r) for r in routes]
    log = open(Path(args.workdir) / f"{name}.log", "w")
    proc = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    rows = []
    try:
        wait_ready(proc, port, routes[0], args.start_timeout)
        load(port, paths, 1, WARMUP, args.seconds)
        start_rss = rss_mib(proc.pid)
        for clients in args.clients:
            got = paired_load(port, paths, paired, args.requests, args.seconds, args.block) \
                if paired is not None and clients == 1 else load(port, paths, clients, args.requests, args.seconds)
            rows.append([name, clients, got["requests"], got["errors"], f"{got['p50']:.3f}", f"{got['p99']:.3f}",
                         f"{got['qps']:.1f}", f"{got['in_process']:.3f}" if "in_process" in got else "",
                         f"{start_rss:.0f}", f"{rss_mib(proc.pid):.0f}"])
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
    try:
        worker = InProcess(model, backend, index, args)
    except RuntimeError as exc:
        return [[name, "", 0, "", "", "", "", "", "", f"not measured: {exc}"]]
    try:
        return measure_server(name, command, "/indexes/bench/search?query={query}&hits={hits}", texts, args, worker)
    finally:
        worker.close()


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
                   help="time blocks of queries end to end in this process, as stdin asks (used by the bench itself)")
    p.add_argument("--export", help="ONNX export (screened query encoder)")
    p.add_argument("--model", default="splade-tiny", help="the PyTorch checkpoint of the same model")
    p.add_argument("--numba-index")
    p.add_argument("--lucene-index")
    p.add_argument("--topics", required=True)
    p.add_argument("--clients", default="1,4,16", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--requests", type=int, default=1200, help="most requests per client count")
    p.add_argument("--seconds", type=float, default=30.0, help="most seconds per client count")
    p.add_argument("--hits", type=int, default=10)
    p.add_argument("--block", type=int, default=100,
                   help="single client: requests a block, alternating with in-process blocks of the same queries")
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
        in_process_worker(*args.in_process, texts, args.hits)
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
