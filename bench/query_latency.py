"""Single-query end-to-end latency (encode + top-1000 search) and the serving process's peak RSS.

    flock /tmp/bench.lock python bench/query_latency.py [--index work/scifact-splade-tiny/index]
        [--numba-index work/scifact-splade-tiny/numba] [--export work/exports/splade-tiny]
        [--export-int8 work/exports/splade-tiny-int8] [--topics ../shared/data/scifact/queries.test.tsv]
        [--configs all] [--threads 1] [--passes 2] [--json runs/query-latency.json]

Every configuration runs in its own subprocess (so its peak RSS is its own), one query at a time,
on the same index and topics:

* ``pyserini-torch+lucene``: Pyserini's own ``SpladeQueryEncoder`` (PyTorch, as Pyserini runs it:
  its 256/5 query quantization) with ``LuceneImpactSearcher.search(text)``;
* ``torch+lucene`` / ``torch+numba``: our PyTorch encoder (``QueryVectorizer``) with Anserini's
  ``SimpleImpactSearcher`` / the Numba index;
* ``onnx+lucene`` / ``onnx+numba`` and ``onnx-int8+...``: our ONNX Runtime encoder on the export;
* ``java-onnx+lucene``: Anserini's Java ONNX SPLADE encoder inside the JVM running the export;
* ``torch``, ``onnx``, ``onnx-int8``: the encoder alone (its process's RSS without index or JVM);
* ``paired``: the three encoders in one process, taking turns on every query, so that their
  encode-time ratios are measured under the same machine load (no RSS: one process for all).

A query's time is its fastest of ``--passes``; p50/p99 are over the queries. ``encode`` is timed
apart from ``total`` (encode then search). Threads: ``--threads`` for torch, ONNX Runtime and
Numba; Anserini's Java encoder uses ONNX Runtime's default (all cores) and cannot be told otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = ("pyserini-torch+lucene", "torch+lucene", "torch+numba", "onnx+lucene", "onnx+numba",
           "onnx-int8+lucene", "onnx-int8+numba", "java-onnx+lucene", "torch", "onnx", "onnx-int8", "paired")


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(values) * 1000.0
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "mean": float(arr.mean())}


def _setup(config: str, args):
    """(encode(text) -> vector, search(vector, text) -> hits or None, close)."""
    encoder_kind, _, backend = config.partition("+")
    if encoder_kind == "pyserini-torch":
        from splade_anserini import java
        from splade_anserini.models import resolve_model

        lucene = java.pyserini_lucene()
        import torch

        torch.set_num_threads(args.threads)
        enc = java.pyserini_encode().SpladeQueryEncoder(resolve_model(args.model))
        searcher = lucene.LuceneImpactSearcher(args.index, enc, min_idf=float("-inf"))
        return enc.encode, (lambda vec, text: searcher.search(text, k=args.hits)), searcher.close
    if encoder_kind == "java-onnx":
        from splade_anserini.java_encoder import java_searcher

        searcher = java_searcher(args.index, args.export, 100.0)
        return searcher.encode_text, (lambda vec, text: searcher.search_text(text, args.hits)), searcher.close
    from splade_anserini.query_encoder import QueryVectorizer

    if encoder_kind == "torch":
        import torch

        torch.set_num_threads(args.threads)
        qv = QueryVectorizer(args.model)
    else:
        qv = QueryVectorizer(args.export_int8 if encoder_kind == "onnx-int8" else args.export, threads=args.threads)
    if backend == "lucene":
        from splade_anserini.impact_searcher import ImpactSearcher

        searcher = ImpactSearcher(args.index)
        return qv.encode, (lambda vec, text: searcher.search(vec, args.hits)), searcher.close
    if backend == "numba":
        from splade_anserini.numba_index import NumbaIndex

        index = NumbaIndex.load(args.numba_index)
        return qv.encode, (lambda vec, text: index.search(vec, args.hits)), (lambda: None)
    return qv.encode, None, (lambda: None)


def paired(texts: list[str], args) -> dict:
    """Encode-only times of the three encoders, interleaved query by query in one process."""
    import torch

    from splade_anserini.query_encoder import QueryVectorizer

    torch.set_num_threads(args.threads)
    encoders = {"torch": QueryVectorizer(args.model).encode,
                "onnx": QueryVectorizer(args.export, threads=args.threads).encode,
                "onnx-int8": QueryVectorizer(args.export_int8, threads=args.threads).encode}
    for text in texts[:20]:
        for encode in encoders.values():
            encode(text)
    times = {name: [float("inf")] * len(texts) for name in encoders}
    for _ in range(args.passes):
        for i, text in enumerate(texts):
            for name, encode in encoders.items():
                s = time.perf_counter()
                encode(text)
                times[name][i] = min(times[name][i], time.perf_counter() - s)
    return {"config": "paired", "queries": len(texts), "encode": {n: percentiles(t) for n, t in times.items()},
            "threads": args.threads}


def child(config: str, args) -> dict:
    from splade_anserini.data import read_topics

    if config == "paired":
        return paired(list(read_topics(args.topics).values())[:args.queries or None], args)
    texts = list(read_topics(args.topics).values())[:args.queries or None]
    t0 = time.perf_counter()
    encode, search, close = _setup(config, args)
    setup_s = time.perf_counter() - t0
    for text in texts[:20]:  # warm-up: JIT, ONNX Runtime arenas, Numba kernels
        vec = encode(text)
        if search:
            search(vec, text)
    enc_t = [float("inf")] * len(texts)
    tot_t = [float("inf")] * len(texts)
    for _ in range(args.passes):
        for i, text in enumerate(texts):
            s = time.perf_counter()
            vec = encode(text)
            enc_t[i] = min(enc_t[i], time.perf_counter() - s)
        if search:
            for i, text in enumerate(texts):
                s = time.perf_counter()
                search(encode(text), text)
                tot_t[i] = min(tot_t[i], time.perf_counter() - s)
    close()
    out = {"config": config, "queries": len(texts), "setup_s": setup_s, "encode": percentiles(enc_t),
           "total": percentiles(tot_t) if search else None,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "torch_loaded": "torch" in sys.modules, "threads": args.threads}
    return out


def table(rows: list[dict]) -> str:
    lines = ["| configuration | encode p50 ms | encode p99 ms | end-to-end p50 ms | end-to-end p99 ms | peak RSS MiB | torch in process |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["config"] == "paired":
            continue
        tot = r["total"]
        lines.append(f"| {r['config']} | {r['encode']['p50']:.2f} | {r['encode']['p99']:.2f} | "
                     f"{tot['p50']:.2f} | {tot['p99']:.2f} | " if tot else
                     f"| {r['config']} | {r['encode']['p50']:.2f} | {r['encode']['p99']:.2f} | - | - | ")
        lines[-1] += f"{r['peak_rss_mib']:.0f} | {'yes' if r['torch_loaded'] else 'no'} |"
    return "\n".join(lines)


def ratios(rows: list[dict]) -> list[str]:
    by = {r["config"]: r for r in rows}
    out = []
    if "paired" in by:
        enc = by["paired"]["encode"]
        for name in ("onnx", "onnx-int8"):
            out.append(f"paired, one process, queries interleaved: {name} encode p50 {enc[name]['p50']:.2f} ms vs torch "
                       f"{enc['torch']['p50']:.2f} ms: {enc[name]['p50'] / enc['torch']['p50']:.2f}x the time "
                       f"({enc['torch']['p50'] / enc[name]['p50']:.2f}x faster); p99 {enc[name]['p99']:.2f} vs "
                       f"{enc['torch']['p99']:.2f} ms")
    if "torch" in by:
        base = by["torch"]
        for name in ("onnx", "onnx-int8"):
            if name in by:
                r = by[name]
                out.append(f"{name} vs torch encoder: encode p50 {r['encode']['p50'] / base['encode']['p50']:.2f}x the "
                           f"time ({base['encode']['p50'] / r['encode']['p50']:.2f}x faster), peak RSS "
                           f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", default="work/scifact-splade-tiny/index")
    p.add_argument("--numba-index", default="work/scifact-splade-tiny/numba")
    p.add_argument("--export", default="work/exports/splade-tiny")
    p.add_argument("--export-int8", default="work/exports/splade-tiny-int8")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--topics", default=str(ROOT.parent / "shared" / "data" / "scifact" / "queries.test.tsv"))
    p.add_argument("--configs", default="all")
    p.add_argument("--hits", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--queries", type=int, default=0, help="first N topics only (0: all)")
    p.add_argument("--json", default="runs/query-latency.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)), flush=True)
        return 0
    if not Path(args.numba_index, "header.json").is_file():
        from splade_anserini.numba_index import NumbaIndex

        vectors = Path(args.index).parent / "vectors"
        NumbaIndex.from_jsonvector(str(vectors)).save(args.numba_index)
    configs = CONFIGS if args.configs == "all" else tuple(args.configs.split(","))
    rows = []
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    for config in configs:
        proc = subprocess.run([sys.executable, __file__, *passthrough, "--child", config], capture_output=True,
                              text=True, cwd=ROOT)
        found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not found:
            print(f"{config}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(found[-1][len("RESULT "):]))
        r = rows[-1]
        if config == "paired":
            print("paired: encode p50 " + ", ".join(f"{n} {e['p50']:.2f} ms" for n, e in r["encode"].items()), flush=True)
            continue
        print(f"{config}: encode p50 {r['encode']['p50']:.2f} ms"
              + (f", end-to-end p50 {r['total']['p50']:.2f} ms" if r["total"] else "")
              + f", peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    print()
    print(table(rows))
    for line in ratios(rows):
        print(line)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"load": os.getloadavg(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
