"""Single-query serving latency: encode and end-to-end p50/p99, and each serving process's peak RSS.

    flock /tmp/bench.lock python -m bench.query_latency [--index work/scifact-splade-tiny/index]
        [--numba-index work/scifact-splade-tiny/numba] [--export work/exports/splade-tiny]
        [--export-int8 work/exports/splade-tiny-int8] [--topics ../shared/data/scifact/queries.test.tsv]
        [--configs all|CONFIG,...] [--threads 1] [--passes 1] [--queries 0] [--json runs/query-latency-raw.json] [--results results]

Every configuration ``ENCODER+BACKEND`` runs in its own subprocess (so its peak RSS is its own), one
query at a time, on the same index and topics. Encoders:

* ``torch``: our PyTorch encoder as the fp32 decoder computes it (bf16-screened on CPUs with native
  bf16, fp32 slices elsewhere): the encoder before int8 screening;
* ``torch-screened``: the same with the exact int8-screened decoder (the default for queries);
* ``onnx`` / ``onnx-int8``: ONNX Runtime on the contract graph (Anserini's), fp32 / int8 export;
* ``onnx-screened``: ONNX Runtime on the fp32 export's screened query graph (exact), the int8 product
  on AMX tiles where the CPU has them;
* ``onnx-screened-ort``: the same with ONNX Runtime's ``MatMulInteger`` product (what CPUs without AMX run);
* ``inference-free``: SPLADE-doc queries, the tokenizer and the index's IDF table (no model run);

backends: ``numba`` (the Numba index, top ``--hits``), ``lucene-k10`` / ``lucene-k1000`` (Anserini's
``SimpleImpactSearcher`` through pyjnius, top 10 / 1,000). Also: ``pyserini-torch+lucene-k1000``
(Pyserini's own ``SpladeQueryEncoder`` and ``LuceneImpactSearcher.search(text)``), ``java-onnx+lucene-k1000``
(Anserini's Java ONNX encoder in the JVM), the encoders alone (their process's RSS), ``paired`` (the
encoders in one process taking turns every ``--paired-block`` queries: their encode-time ratios under
the same machine load; alternating every query would time each encoder with the others' weights in
the caches) and ``lucene-anatomy`` (where a Lucene query's time goes: building the Java query, Anserini's
search with pyjnius' array of result proxies, reading the hits; at k=10 and k=1000).

A query's time is its fastest of ``--passes``; p50/p99 are over the queries. ``encode`` is timed
within ``total`` (encode, then search). Threads: ``--threads`` for torch, ONNX Runtime and Numba;
Anserini's Java encoder uses ONNX Runtime's default (all cores). The figures go to ``--json`` with
the command, the versions, the CPU model and the date.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENCODERS = ("torch", "torch-screened", "onnx", "onnx-int8", "onnx-screened", "onnx-screened-ort", "inference-free")
BACKENDS = {"numba": None, "lucene-k10": 10, "lucene-k1000": 1000}
CONFIGS = ("pyserini-torch+lucene-k1000",
           *(f"{e}+{b}" for e in ENCODERS for b in BACKENDS if e != "onnx-screened-ort" or b == "numba"),
           "java-onnx+lucene-k1000", "torch", "torch-screened", "onnx", "onnx-screened", "onnx-screened-ort",
           "inference-free", "paired", "lucene-anatomy")


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(values) * 1000.0
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "mean": float(arr.mean())}


def make_encoder(kind: str, args):
    """``text -> {token: impact}`` for one of :data:`ENCODERS`."""
    from splade_anserini.search.query_encoder import QueryVectorizer

    if kind.startswith("torch"):
        import torch

        from splade_anserini.encode.splade import SpladeEncoder

        torch.set_num_threads(args.threads)
        return QueryVectorizer(encoder=SpladeEncoder(args.model, int8_queries=kind == "torch-screened")).encode
    if kind == "inference-free":
        from splade_anserini.serve.onnx_encoder import OnnxSpladeEncoder
        from splade_anserini.search.query_weights import read_table

        enc = OnnxSpladeEncoder(args.export, splade_doc=True, query_weights=read_table(args.numba_index))
        return QueryVectorizer(encoder=enc).encode
    from splade_anserini.serve.onnx_encoder import OnnxSpladeEncoder

    enc = OnnxSpladeEncoder(args.export_int8 if kind == "onnx-int8" else args.export, threads=args.threads,
                            screen=kind.startswith("onnx-screened"),
                            int8_kernel="onnxruntime" if kind == "onnx-screened-ort" else None)
    return QueryVectorizer(encoder=enc).encode


def _setup(config: str, args):
    """(encode(text) -> vector, search(vector, text) -> hits or None, close)."""
    encoder_kind, _, backend = config.partition("+")
    k = BACKENDS.get(backend) or args.hits
    if encoder_kind == "pyserini-torch":
        from splade_anserini import java
        from splade_anserini.models import resolve_model

        lucene = java.pyserini_lucene()
        import torch

        torch.set_num_threads(args.threads)
        enc = java.pyserini_encode().SpladeQueryEncoder(resolve_model(args.model))
        searcher = lucene.LuceneImpactSearcher(args.index, enc, min_idf=float("-inf"))
        return enc.encode, (lambda vec, text: searcher.search(text, k=k)), searcher.close
    if encoder_kind == "java-onnx":
        from splade_anserini.serve.java_encoder import java_searcher

        searcher = java_searcher(args.index, args.export, 100.0)
        return searcher.encode_text, (lambda vec, text: searcher.search_text(text, k)), searcher.close
    encode = make_encoder(encoder_kind, args)
    if backend.startswith("lucene"):
        from splade_anserini.search.impact_searcher import ImpactSearcher

        searcher = ImpactSearcher(args.index)
        return encode, (lambda vec, text: searcher.search(vec, k)), searcher.close
    if backend == "numba":
        from splade_anserini.index.numba_index import NumbaIndex

        index = NumbaIndex.load(args.numba_index)
        return encode, (lambda vec, text: index.search(vec, k)), (lambda: None)
    return encode, None, (lambda: None)


def paired(texts: list[str], args) -> dict:
    """Encode-only times of every encoder, interleaved query by query in one process."""
    encoders = {kind: make_encoder(kind, args) for kind in ENCODERS}
    for text in texts[:20]:
        for encode in encoders.values():
            encode(text)
    times = {name: [float("inf")] * len(texts) for name in encoders}
    block = max(1, args.paired_block)
    for _ in range(args.passes):
        for lo in range(0, len(texts), block):  # blocks: each encoder serves a few queries with warm caches
            for name, encode in encoders.items():
                for i in range(lo, min(lo + block, len(texts))):
                    s = time.perf_counter()
                    encode(texts[i])
                    times[name][i] = min(times[name][i], time.perf_counter() - s)
    return {"config": "paired", "queries": len(texts), "encode": {n: percentiles(t) for n, t in times.items()},
            "threads": args.threads, "block": block}


def anatomy(texts: list[str], args) -> dict:
    """A Lucene query's parts, on the screened ONNX encoder's vectors: the Java query map (as it was,
    a boxed Integer constructed per token, and as it is), Anserini's search with pyjnius' array of
    result proxies, reading docid and score of every hit."""
    from splade_anserini.search.impact_searcher import ImpactSearcher

    encode = make_encoder("onnx-screened", args)
    vectors = [encode(t) for t in texts]
    searcher = ImpactSearcher(args.index)

    def jmap_per_token(vector):
        jvec = searcher._HashMap()
        for token, weight in vector.items():
            jvec.put(token, searcher._Integer(int(weight)))
        return jvec

    parts: dict[str, list[float]] = {}
    for vec in vectors[:20]:
        searcher.search(vec, 1000)
    for k in (10, 1000):
        for vec in vectors:
            t0 = time.perf_counter()
            jmap_per_token(vec)
            t1 = time.perf_counter()
            jvec = searcher._jmap(vec)
            t2 = time.perf_counter()
            found = searcher.object.search(jvec, k)
            t3 = time.perf_counter()
            searcher._hits(found)
            t4 = time.perf_counter()
            for name, dt in ((f"k{k} query map, per-token Integer (before)", t1 - t0),
                             (f"k{k} query map, boxed once per value", t2 - t1),
                             (f"k{k} Anserini search + pyjnius result array", t3 - t2),
                             (f"k{k} reading the hits", t4 - t3)):
                parts.setdefault(name, []).append(dt)
    searcher.close()
    return {"config": "lucene-anatomy", "queries": len(texts), "parts": {n: percentiles(t) for n, t in parts.items()},
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(config: str, args) -> dict:
    from splade_anserini.data import read_topics

    texts = list(read_topics(args.topics).values())[:args.queries or None]
    if config == "paired":
        return paired(texts, args)
    if config == "lucene-anatomy":
        return anatomy(texts, args)
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
            e = time.perf_counter()
            if search:
                search(vec, text)
            enc_t[i] = min(enc_t[i], e - s)
            tot_t[i] = min(tot_t[i], time.perf_counter() - s)
    close()
    return {"config": config, "queries": len(texts), "setup_s": setup_s, "encode": percentiles(enc_t),
            "total": percentiles(tot_t) if search else None,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch_loaded": "torch" in sys.modules, "threads": args.threads}


def table(rows: list[dict]) -> str:
    lines = ["| configuration | encode p50 ms | encode p99 ms | end-to-end p50 ms | end-to-end p99 ms | peak RSS MiB | "
             "torch in process |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "encode" not in r or r["config"] == "paired":
            continue
        tot = r["total"]
        ends = f"{tot['p50']:.2f} | {tot['p99']:.2f}" if tot else "- | -"
        lines.append(f"| {r['config']} | {r['encode']['p50']:.2f} | {r['encode']['p99']:.2f} | {ends} | "
                     f"{r['peak_rss_mib']:.0f} | {'yes' if r['torch_loaded'] else 'no'} |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> list[str]:
    by = {r["config"]: r for r in rows}
    out = []
    if "paired" in by:
        enc = by["paired"]["encode"]
        base = enc["torch"]
        for name in ENCODERS[1:]:
            out.append(f"paired, one process, turns of {by['paired'].get('block', 1)} queries: {name} encode p50 {enc[name]['p50']:.3f} ms vs torch "
                       f"{base['p50']:.3f} ms: {enc[name]['p50'] / base['p50']:.2f}x the time "
                       f"({base['p50'] / enc[name]['p50']:.2f}x faster); p99 {enc[name]['p99']:.3f} vs "
                       f"{base['p99']:.3f} ms")
    if "torch" in by:
        base = by["torch"]
        for name in ("torch-screened", "onnx", "onnx-screened", "onnx-screened-ort", "inference-free"):
            if name in by:
                r = by[name]
                out.append(f"{name} vs torch encoder: encode p50 {r['encode']['p50'] / base['encode']['p50']:.2f}x the "
                           f"time ({base['encode']['p50'] / r['encode']['p50']:.2f}x faster), peak RSS "
                           f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x")
    if "lucene-anatomy" in by:
        for name, p in by["lucene-anatomy"]["parts"].items():
            out.append(f"lucene anatomy: {name}: p50 {p['p50']:.3f} ms, p99 {p['p99']:.3f} ms")
    return out


def environment() -> dict:
    from importlib import metadata

    versions = {}
    for package in ("numpy", "numba", "torch", "onnxruntime", "tokenizers", "transformers", "pyserini"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    cpu, flags = platform.processor(), []
    try:
        lines = open("/proc/cpuinfo", encoding="ascii", errors="replace").read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = sorted({f for line in lines if line.startswith("flags") for f in line.split(":", 1)[1].split()
                        if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")})
    except (OSError, StopIteration):
        pass
    from splade_anserini.encode.int8_screen import resolve_kernel

    return {"python": platform.python_version(), "versions": versions, "cpu": cpu, "cpu_flags": flags,
            "cores": os.cpu_count(), "int8_kernel": resolve_kernel(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _ensure_inputs(args) -> None:
    if not Path(args.numba_index, "header.json").is_file():
        from splade_anserini.index.build import build_numba_index

        build_numba_index(Path(args.index).parent / "vectors", args.numba_index)
    if not Path(args.numba_index, "query_weights.json").is_file():  # an index built before the tables
        from splade_anserini.search.query_weights import write_index_table

        write_index_table(args.numba_index, Path(args.index).parent / "vectors")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", default="work/scifact-splade-tiny/index")
    p.add_argument("--numba-index", default="work/scifact-splade-tiny/numba")
    p.add_argument("--export", default="work/exports/splade-tiny")
    p.add_argument("--export-int8", default="work/exports/splade-tiny-int8")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--topics", default=str(ROOT.parent / "shared" / "data" / "scifact" / "queries.test.tsv"))
    p.add_argument("--configs", default="all")
    p.add_argument("--hits", type=int, default=1000, help="hits of the numba backend")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--passes", type=int, default=1)
    p.add_argument("--queries", type=int, default=0, help="first N topics only (0: all)")
    p.add_argument("--paired-block", type=int, default=10,
                   help="paired: each encoder in turn encodes this many queries (1: alternate every query)")
    p.add_argument("--json", default="runs/query-latency-raw.json", help="every figure of the run (raw)")
    p.add_argument("--results", default="results", help="folder for the tables the docs render ('' = none)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)), flush=True)
        return 0
    _ensure_inputs(args)
    configs = CONFIGS if args.configs == "all" else tuple(args.configs.split(","))
    rows = []
    passthrough = list(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    for config in configs:
        proc = subprocess.run([sys.executable, __file__, *passthrough, "--child", config], capture_output=True,
                              text=True, cwd=ROOT)
        found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not found:
            print(f"{config}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(found[-1][len("RESULT "):]))
        r = rows[-1]
        if "encode" not in r or config == "paired":
            print(f"{config}: done", flush=True)
            continue
        print(f"{config}: encode p50 {r['encode']['p50']:.3f} ms"
              + (f", end-to-end p50 {r['total']['p50']:.3f} ms" if r["total"] else "")
              + f", peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    print()
    print(table(rows))
    for line in ratios(rows):
        print(line)
    out = {"command": " ".join(["python -m bench.query_latency", *passthrough]),
           **environment(), "load_after": os.getloadavg(), "seconds": time.perf_counter() - start, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    from splade_anserini.conversion.atomic import atomic_open

    with atomic_open(args.json) as fh:
        fh.write(json.dumps(out, indent=2) + "\n")
    print(f"raw figures written to {args.json}")
    if args.results:
        for path in write_results(rows, out, args):
            print(f"figures for the docs written to {path}")
    return 0


def write_results(rows: list[dict], out: dict, args) -> list:
    """The tables the docs render (``results/query-latency.json``, ``results/query-latency-paired.json``)."""
    from bench.results import write_result

    data = (f"SciFact test, {rows[0].get('queries', 'all') if rows else 'all'} queries one at a time; splade-tiny, "
            f"x100 index; {args.threads} thread(s) for torch, ONNX Runtime and Numba")
    extra = dict(command=out["command"], conditions="one configuration at a time; run it with nothing else on the machine",
                 folder=args.results)
    written = []
    table_rows = []
    for r in rows:
        if "encode" not in r or r["config"] == "paired":
            continue
        tot = r["total"]
        table_rows.append([r["config"], f"{r['encode']['p50']:.3f}", f"{r['encode']['p99']:.3f}",
                           f"{tot['p50']:.3f}" if tot else "-", f"{tot['p99']:.3f}" if tot else "-",
                           f"{r['peak_rss_mib']:.0f}", "yes" if r["torch_loaded"] else "no"])
    if table_rows:
        written.append(write_result(
            "query-latency", "Single-query latency and peak memory of a serving process",
            ["configuration", "encode p50 ms", "encode p99 ms", "end-to-end p50 ms", "end-to-end p99 ms",
             "peak RSS MiB", "torch in process"], table_rows, data=data, **extra))
    paired = next((r for r in rows if r["config"] == "paired"), None)
    if paired is not None:
        enc, base = paired["encode"], paired["encode"]["torch"]["p50"]
        written.append(write_result(
            "query-latency-paired", "Query encoding, encoders interleaved in one process",
            ["encoder", "encode p50 ms", "encode p99 ms", "p50 against PyTorch"],
            [[name, f"{enc[name]['p50']:.3f}", f"{enc[name]['p99']:.3f}", f"{enc[name]['p50'] / base:.2f}x"]
             for name in ENCODERS if name in enc],
            data=data + f"; turns of {paired.get('block', 1)} queries per encoder", **extra))
    return written


if __name__ == "__main__":
    sys.exit(main())
