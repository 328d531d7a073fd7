"""Does `splade-anserini serve` answer like `splade-anserini search`? Every topic, both backends.

    python -m bench.serve_parity --model work/exports/splade-tiny --numba-index work/scifact/numba \
        --lucene-index work/scifact/index --topics ../shared/data/scifact/queries.test.tsv [--hits 10]

Writes the runs of ``splade-anserini search --backend numba|lucene --hits 10`` into a temporary
folder, starts one server with both indexes (``numba=`` and ``lucene=``) on 127.0.0.1, asks
``GET /indexes/NAME/search?query=...&hits=10`` for every topic, and compares docids and scores with
the runs, hit by hit; then sends the bad requests of the acceptance list and checks each is one 4xx
JSON error while the server keeps answering. Exit 0 when everything agrees, 1 otherwise.
"""
from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from bench.serve_load import free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
BAD = [("GET", "/indexes/numba/search?query=", None), ("GET", "/indexes/numba/search?query=aspirin&hits=100000", None),
       ("GET", "/indexes/numba/search?query=" + "q" * (1 << 20), None),
       ("POST", "/indexes/numba/search", json.dumps({"query": "q" * (1 << 20)})),
       ("GET", "/indexes/nope/search?query=aspirin", None),
       ("GET", "/indexes/numba/documents/..%2F..%2Fetc%2Fpasswd", None)]


def ask(port: int, method: str, path: str, body: str | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
    resp = conn.getresponse()
    status, data = resp.status, json.loads(resp.read())
    conn.close()
    return status, data


def search_runs(args, work: Path) -> dict[str, dict]:
    from splade_anserini.conversion.trec import read_run

    runs = {}
    for backend, index in (("numba", args.numba_index), ("lucene", args.lucene_index)):
        out = work / f"{backend}.trec"
        subprocess.run([sys.executable, "-m", "splade_anserini", "search", "--index", index, "--topics", args.topics,
                        "--model", args.model, "--backend", backend, "--hits", str(args.hits), "--output", str(out)],
                       check=True, cwd=ROOT)
        runs[backend] = read_run(out)
    return runs


def compare(port: int, runs: dict, topics: dict[str, str], hits: int) -> dict[str, int]:
    """Topics whose served hits differ from the run's, per backend."""
    differ = {}
    for backend, run in runs.items():
        bad = 0
        for qid, text in topics.items():
            status, got = ask(port, "GET", f"/indexes/{backend}/search?" + urllib.parse.urlencode({"query": text,
                                                                                                  "hits": hits}))
            expected = sorted(run.get(qid, {}).items(), key=lambda x: (-x[1], x[0]))
            bad += status != 200 or [(c["docid"], c["score"]) for c in got["candidates"]] != expected
        differ[backend] = bad
    return differ


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag in ("--model", "--numba-index", "--lucene-index", "--topics"):
        p.add_argument(flag, required=True)
    p.add_argument("--hits", type=int, default=10)
    args = p.parse_args(argv)
    from splade_anserini.data import read_topics

    topics = read_topics(args.topics)
    with tempfile.TemporaryDirectory(prefix="serve-parity-") as tmp:
        runs = search_runs(args, Path(tmp))
        port = free_port()
        log = open(Path(tmp) / "server.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "splade_anserini", "serve", "--index", f"numba={args.numba_index}",
                                 "--index", f"lucene={args.lucene_index}", "--model", args.model, "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_ready(proc, port, "/health", 300)
            t0 = time.perf_counter()
            differ = compare(port, runs, topics, args.hits)
            print(f"{len(topics)} topics x 2 backends served in {time.perf_counter() - t0:.1f} s; topics whose "
                  f"docids or scores differ from `splade-anserini search`: {differ}")
            refused = [(path[:50], *ask(port, method, path, body)) for method, path, body in BAD]
            for path, status, body in refused:
                print(f"  {status} {json.dumps(body)[:110]}  <- {path}")
            alive = ask(port, "GET", "/health")[0] == 200 and compare(port, runs, dict(list(topics.items())[:3]),
                                                                       args.hits) == {"numba": 0, "lucene": 0}
        finally:
            stop(proc)
            log.close()
    ok = (not any(differ.values()) and alive
          and all(400 <= s < 500 and list(b) == ["error"] for _, s, b in refused) and proc.returncode == 0)
    print(f"server still answering after the bad requests: {alive}; stopped by Ctrl-C with status {proc.returncode}; "
          f"{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
