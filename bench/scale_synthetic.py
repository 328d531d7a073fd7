"""Where one node stops: a synthetic collection up to MS MARCO passage's 8.8M documents.

    python -m bench.scale_synthetic --work work/scale --sizes 1000000,4000000,8841823 \
        --milvus-max 200000 --bmp-max 1000000 --queries 200

Each size runs in its own process (its peak RSS is then its own): the synthetic collection drawn
from SciFact's splade-tiny statistics (:mod:`bench.synthetic`), the Numba index built from it (build
time, size on disk, peak RSS), exact single-query latency p50/p99 at k=10 and k=1000 (best of three
passes) and batch throughput on one and two threads. Up to ``--milvus-max`` documents the same
collection goes into Milvus Lite, up to ``--bmp-max`` into BMP (block-max pruning, alpha = beta = 1),
each with its latency and its top-k overlap with the exact ranking.

A size whose estimated peak memory exceeds ``--memory-gb`` is not run: its row is projected
linearly in the number of postings from the largest measured size, and labelled ``projected``.
Writes ``results/scale-synthetic.json``.
"""
from __future__ import annotations

import argparse
import shlex
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MSMARCO_PASSAGES = 8_841_823
#: Bytes a posting costs at the peak of generation + index build (generator arrays, their copy, the index).
PEAK_BYTES_PER_POSTING = 14.0
COLUMNS = ["engine", "documents", "postings (M)", "build s", "size GB", "peak RSS GB", "p50 ms k=10", "p99 ms k=10",
           "p50 ms k=1000", "p99 ms k=1000", "QPS 1 thr k=1000", "QPS 2 thr k=1000", "overlap@10 vs exact", "status"]


def _latency(search, queries, k: int) -> tuple[float, float, list]:
    from bench.latency_measure import percentiles, time_single

    times, results = time_single(lambda i: search(queries[i], k), len(queries), warmup=5)
    p = percentiles(times)
    return round(p["p50"], 3), round(p["p99"], 3), results


def _overlap(exact: list, other: list, k: int = 10) -> float:
    hits = [len({d for d, _ in e[:k]} & {d for d, _ in o[:k]}) / max(1, min(k, len(e))) for e, o in zip(exact, other)]
    return round(float(np.mean(hits)), 4)


def _numba_row(w, n_docs: int) -> tuple[list, list]:
    from bench.latency_workloads import dir_size
    from splade_anserini.index.numba_index import NumbaIndex

    index = NumbaIndex.load(w.numba_dir)
    search = index.search
    p50_10, p99_10, exact = _latency(search, w.queries, 10)
    p50_1k, p99_1k, _ = _latency(search, w.queries, 1000)
    qps = []
    for threads in (1, 2):
        index.batch_search(w.queries, 1000, threads=threads)
        start = time.perf_counter()
        index.batch_search(w.queries, 1000, threads=threads)
        qps.append(round(len(w.queries) / (time.perf_counter() - start), 1))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return ["numba", n_docs, round(index.n_postings / 1e6, 1), round(w.numba_build["seconds"], 1),
            round(dir_size(w.numba_dir) / 1e9, 2), round(rss, 2), p50_10, p99_10, p50_1k, p99_1k, *qps, 1.0,
            "measured"], exact


def _bmp_row(w, n_docs: int, exact: list) -> list:
    import bmp

    from bench import synthetic
    from bench.latency_workloads import dir_size

    from splade_anserini.export.ciff import BMP_SAFE_IMPACT, rescale

    coll = synthetic.CscCollection.load(w.workdir / "csc")
    indptr, cols, data = coll.to_csr()
    scale = min(1.0, BMP_SAFE_IMPACT / float(data.max()))  # BMP: 8-bit impacts, scores added in 16 bits
    path, start = w.workdir / "index.bmp", time.perf_counter()
    indexer = bmp.Indexer(str(path), bsize=32, compress_range=False)
    for d, docid in enumerate(coll.docids):
        lo, hi = indptr[d], indptr[d + 1]
        vector = {coll.vocab[t]: int(v) for t, v in zip(cols[lo:hi], data[lo:hi])}
        indexer.add_document(docid, rescale(vector, scale) if scale < 1.0 else vector)
    indexer.finish()
    build_s = time.perf_counter() - start
    searcher = bmp.Searcher(str(path))

    def search(q, k):
        docids, scores = searcher.search(q, k=k, alpha=1.0, beta=1.0)
        return list(zip(docids, scores))

    p50_10, p99_10, got = _latency(search, w.queries, 10)
    p50_1k, p99_1k, _ = _latency(search, w.queries, 1000)
    return ["bmp", n_docs, round(coll.nnz / 1e6, 1), round(build_s, 1), round(dir_size(path) / 1e9, 2), "", p50_10,
            p99_10, p50_1k, p99_1k, "", "", _overlap(exact, got),
            "measured (impacts rescaled to at most 63, 32-level query weights)"]


def _milvus_row(w, n_docs: int, exact: list) -> list:
    from bench.latency_workloads import ensure_jsonvector
    from splade_anserini.export.milvus import connect, export_milvus
    from splade_anserini.export.vocab import read_vocabulary, to_dimensions

    db = str(w.workdir / "milvus.db")
    start = time.perf_counter()
    export_milvus(ensure_jsonvector(w), db, "synthetic", model="splade-tiny", batch_size=2000, overwrite=True)
    build_s = time.perf_counter() - start
    client, vocab = connect(db), read_vocabulary("splade-tiny")
    client.load_collection("synthetic")

    def search(q, k):
        hits = client.search("synthetic", data=[{d: float(v) for d, v in to_dimensions(q, vocab).items()}],
                             anns_field="vector", limit=k, output_fields=["docid"],
                             search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}})[0]
        return [(h["docid"], h["distance"]) for h in hits]

    p50_10, p99_10, got = _latency(search, w.queries, 10)
    p50_1k, p99_1k, _ = _latency(search, w.queries, 1000)
    return ["milvus-lite", n_docs, "", round(build_s, 1), "", "", p50_10, p99_10, p50_1k, p99_1k, "", "",
            _overlap(exact, got), "measured"]


def one_size(work: Path, n_docs: int, n_queries: int, milvus_max: int, bmp_max: int) -> list[list]:
    """Every row of one size (run in a child process)."""
    from bench.latency_workloads import synthetic_workload, warm_numba

    warm_numba()
    w = synthetic_workload(work, n_docs, n_queries)
    row, exact = _numba_row(w, n_docs)
    rows = [row]
    if n_docs <= bmp_max:
        rows.append(_bmp_row(w, n_docs, exact))
    if n_docs <= milvus_max:
        rows.append(_milvus_row(w, n_docs, exact))
    return rows


def mean_nnz(work: Path) -> float:
    """Non-zeros a document in the source (SciFact, splade-tiny): what a synthetic document holds on average."""
    from bench.latency_workloads import scifact_workload
    from splade_anserini.index.numba_index import NumbaIndex

    index = NumbaIndex.load(scifact_workload(work).numba_dir)
    return index.n_postings / index.n_docs


def projected(measured: list[list], n_docs: int, nnz: float) -> list:
    """A Numba row for ``n_docs`` from the measured ones: each figure (per-query time for the QPS
    columns) fitted as ``a + b * postings`` through the two largest sizes (through zero with one)."""
    rows = sorted(measured, key=lambda r: r[2])[-2:]
    postings = n_docs * nnz / 1e6

    def fit(values: list[float]) -> float:
        if len(rows) == 1:
            return values[0] * postings / rows[0][2]
        (x0, y0), (x1, y1) = zip([r[2] for r in rows], values)
        slope = (y1 - y0) / (x1 - x0)
        return max(y1 + slope * (postings - x1), 0.0)

    row = ["numba", n_docs, round(postings, 1)]
    for col in range(3, 10):
        row.append(round(fit([r[col] for r in rows]), 2))
    for col in (10, 11):
        row.append(round(1.0 / fit([1.0 / r[col] for r in rows]), 1))
    base = ", ".join(f"{r[1]:,}" for r in rows)
    return row + [1.0, f"projected from the measured {base} documents, linear in postings"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sizes", default=f"100000,1000000,{MSMARCO_PASSAGES}")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-max", type=int, default=200_000)
    parser.add_argument("--bmp-max", type=int, default=1_000_000)
    parser.add_argument("--memory-gb", type=float, default=20.0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=None, help="results folder (default: results/)")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.work, args.one, args.queries, args.milvus_max, args.bmp_max)))
        return 0
    nnz, rows, measured = mean_nnz(args.work), [], []
    for n in map(int, args.sizes.split(",")):
        if n * nnz * PEAK_BYTES_PER_POSTING / 1e9 > args.memory_gb:
            if not measured:
                raise SystemExit(f"{n:,} documents do not fit --memory-gb {args.memory_gb}; measure a smaller size first")
            rows.append(projected(measured, n, nnz))
            continue
        out = subprocess.run([sys.executable, "-m", "bench.scale_synthetic", "--one", str(n), *sys.argv[1:]]
                             if argv is None else [sys.executable, "-m", "bench.scale_synthetic", "--one", str(n), *argv],
                             capture_output=True, text=True, check=True).stdout
        size_rows = json.loads(out.strip().splitlines()[-1])
        rows.extend(size_rows)
        measured.append(size_rows[0])
    from bench.results import RESULTS_DIR, write_result

    write_result("scale-synthetic", "Exact retrieval on one node up to MS MARCO passage's 8.8M documents (synthetic)",
                 COLUMNS, rows, data=f"synthetic SPLADE-like collections drawn from SciFact/splade-tiny statistics "
                 f"({nnz:.0f} non-zeros a document), {args.queries} synthetic queries",
                 folder=args.results or RESULTS_DIR,
                 command=f"python -m bench.scale_synthetic {shlex.join(sys.argv[1:] if argv is None else argv)}",
                 notes=["latency: best of three passes per query, one thread; QPS: a batch of all queries",
                        "projected rows: each figure fitted linearly in postings through the two largest measured "
                        "sizes (exact term-at-a-time search reads every posting of the query terms)"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
