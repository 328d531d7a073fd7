"""Latency harness: every backend on the same index and queries, in one run, next to the memory bound.

    python bench/latency.py                                   # SciFact + synthetic 10k, 100k, 1M; all backends
    python bench/latency.py --sizes 10000 --backends numba,lucene      # quick smoke
    python bench/latency.py --collections scifact --out runs/latency-scifact.md
    python -m bench.latency --collections scifact,synthetic --sizes 10000,100000 --result latency-small

Collections: ``scifact`` (5,183 docs, ``splade-tiny`` vectors, the 300 test queries) and
``synthetic-N`` (SciFact's term, document-length, impact and query statistics scaled to N documents,
see ``bench/synthetic.py``). Everything built is cached under ``--work`` (default ``work/bench``,
git-ignored) with its build time, so a re-run measures search only.

Backends (exact unless noted):

* ``numba``: :class:`splade_anserini.index.numba_index.NumbaIndex.search`, one query at a time (returns
  ``(docid, score)`` lists); ``numba-batch``: ``batch_search`` (throughput, reported on the numba
  row); ``numba-ids``: ``search_ids`` / ``batch_search_ids`` (arrays of internal ids and scores,
  the output level of the splade-index and bm25s kernels);
* ``lucene``: Pyserini ``LuceneImpactSearcher.search`` on the Anserini impact index (query vectors
  pre-encoded: the encoder returns the cached dict; ``min_idf=-inf``); timing stops when Pyserini
  returns its hit objects;
* ``splade-index``: the ``splade_index`` numba kernel on our impact matrix (float32);
* ``pisa-maxscore`` / ``pisa-bmw``: PISA (``pyterrier_pisa``'s binding, quantized scorer, called
  directly: PyTerrier's Java side is not used) on an index written from our postings;
* ``seismic``: Seismic (approximate; recall against the exact top-k is reported);
* ``bm25s``: bm25s' numba BM25 core on our impact matrix. It sums the impacts of the query terms
  *without* query weights: a timing reference only, its scores are not ours.

Measured per backend: single-thread latency p50/p90/p99 over the queries (a query's latency is the
fastest of ``--passes`` passes, so time slices lost to other processes on a shared machine do not
count), with query encoding excluded and, on SciFact, included (our ``SpladeEncoder`` per query);
batch throughput with 1 and 2 threads (fastest of ``--batch-passes`` runs); index build time and
size on disk. Every exact backend's results are compared with Numba's ("identical": same
(docid, score) lists; "same scores": same score lists, ties possibly ordered otherwise).

The physical bound: the single-thread read bandwidth (a 1 GiB array summed, best of 5, measured
next to each collection) and, per query, the bytes of postings an exact algorithm must read (every
posting of the query's terms, at the Numba index's 4 bytes a posting); "bound" is the median over
queries of bytes / bandwidth. (Numba's dense rows read one byte a document for the most frequent
terms, so it reads somewhat less than that: printed as well.)

Code: ``latency_workloads.py`` (bandwidth, collections, queries), ``latency_backends.py`` (ours) and
``latency_peers.py`` (the other libraries), ``latency_measure.py`` (timing, agreement, a workload's
rows), ``latency_report.py`` (the table); this module is the command line. ``--result NAME`` also writes
the table as ``results/NAME.json`` (``--results`` chooses the folder).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # run as ``python bench/latency.py``: bench/ is on sys.path, the repository is not
    sys.path.insert(0, str(ROOT))

from bench.latency_backends import ALL_BACKENDS  # noqa: E402
from bench.latency_measure import run_workload  # noqa: E402
from bench.latency_report import BOUND_NOTE, COLUMNS, cells, collection_notes, table  # noqa: E402
from bench.latency_workloads import (  # noqa: E402
    Workload, memory_bandwidth, scifact_workload, synthetic_workload, warm_numba)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collections", default="scifact,synthetic", help="scifact, synthetic (comma-separated)")
    p.add_argument("--sizes", default="10000,100000,1000000", help="synthetic collection sizes")
    p.add_argument("--backends", default=",".join(ALL_BACKENDS))
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--queries", type=int, default=300, help="queries per collection (SciFact test has 300)")
    p.add_argument("--threads", default="1,2", help="thread counts for the batch throughput")
    p.add_argument("--no-encoding", action="store_true", help="skip the latency with query encoding included")
    p.add_argument("--work", default=str(ROOT / "work" / "bench"))
    p.add_argument("--passes", type=int, default=3, help="timed passes; a query's latency is its fastest pass")
    p.add_argument("--batch-passes", type=int, default=3, help="timed batch runs; throughput of the fastest")
    p.add_argument("--seismic-max-docs", type=int, default=10_000,
                   help="skip Seismic above this collection size (its index build is slow here)")
    p.add_argument("--out", default=None, help="write the markdown table (and a .json beside it) here")
    p.add_argument("--result", default=None, metavar="NAME", help="also write the table as RESULTS/NAME.json")
    p.add_argument("--results", default="results", help="folder of --result (default: results)")
    return p


def chosen_backends(p: argparse.ArgumentParser, spec: str) -> list[str]:
    """The ``--backends`` list, checked and in running order."""
    backends = [b.strip() for b in spec.split(",") if b.strip()]
    for b in backends:
        if b not in ALL_BACKENDS:
            p.error(f"unknown backend {b!r} (known: {', '.join(ALL_BACKENDS)})")
    # numba first (the reference the others are compared with), Lucene last (its JVM keeps its heap)
    return sorted(backends, key=lambda b: (b != "numba", b == "lucene"))


def query_encoder(collections: list[str], no_encoding: bool):
    """The single-threaded SciFact query encoder for the latency with encoding included, or None."""
    encoder = None
    if "scifact" in collections and not no_encoding:
        import torch

        from splade_anserini.encode.splade import SpladeEncoder

        torch.set_num_threads(1)  # single-threaded latency; and no OpenMP stragglers on a busy machine
        encoder = SpladeEncoder("splade-tiny")
    return encoder


def collection_workloads(p: argparse.ArgumentParser, c: str, work: Path, args: argparse.Namespace) -> list[Workload]:
    """The workloads of one ``--collections`` entry (every synthetic size built before any is timed)."""
    if c == "scifact":
        workloads = [scifact_workload(work)]
    elif c == "synthetic":
        workloads = [synthetic_workload(work, int(s), args.queries) for s in args.sizes.split(",") if s]
    else:
        p.error(f"unknown collection {c!r}")
    return workloads


def measure(w: Workload, backends: list[str], args: argparse.Namespace, encoder,
            threads_list: tuple[int, ...]) -> list[dict]:
    """Rows of one workload, cut to ``--queries``, next to the memory bandwidth measured just before."""
    w.queries = w.queries[:args.queries]
    if w.texts is not None:
        w.texts = w.texts[:args.queries]
    chosen = [b for b in backends if b != "seismic" or w.n_docs <= args.seismic_max_docs]
    gc.collect()
    bandwidth = memory_bandwidth()  # measured next to each workload: the machine may be shared
    print(f"memory bandwidth: read {bandwidth['read_gbs']:.1f} GB/s, copy {bandwidth['copy_gbs']:.1f} GB/s",
          file=sys.stderr)
    rows = []
    for row in run_workload(w, chosen, args.k, bandwidth["read_gbs"], encoder, threads_list,
                            warmup=min(20, len(w.queries)), passes=args.passes,
                            batch_passes=args.batch_passes):
        row["bandwidth_gbs"] = bandwidth["read_gbs"]
        rows.append(row)
    return rows


def write_table(rows: list[dict], args: argparse.Namespace, collections: list[str]) -> None:
    """``results/NAME.json`` of ``--result``: the table's rows, the bound's note and each collection's figures."""
    from bench.results import write_result

    described = []
    if "scifact" in collections:
        described.append(f"SciFact (splade-tiny vectors, {min(args.queries, 300)} test queries)")
    if "synthetic" in collections:
        sizes = " and ".join(f"{int(s):,}" for s in args.sizes.split(",") if s)
        described.append(f"synthetic SPLADE-like collections of {sizes} documents drawn from SciFact's statistics "
                         f"({args.queries} queries)")
    backends = sorted({r["backend"] for r in rows}, key=[r["backend"] for r in rows].index)
    path = write_result(args.result, f"Exact top-{args.k} retrieval latency, one thread", COLUMNS,
                        [cells(r) for r in rows], folder=args.results,
                        data="; ".join(described) + f"; backends {', '.join(backends)}",
                        notes=[BOUND_NOTE, *collection_notes(rows)])
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    backends = chosen_backends(p, args.backends)
    os.environ.setdefault("SPLADE_ANSERINI_JVM_HEAP", "4g")
    threads_list = tuple(int(t) for t in args.threads.split(","))
    warm_numba()
    collections = [c.strip() for c in args.collections.split(",") if c.strip()]
    encoder = query_encoder(collections, args.no_encoding)
    rows: list[dict] = []
    for c in collections:
        for w in collection_workloads(p, c, work, args):
            rows += measure(w, backends, args, encoder, threads_list)
    md = table(rows)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md + "\n")
        out.with_suffix(".json").write_text(json.dumps({"argv": sys.argv[1:], "rows": rows}, indent=1))
    if args.result:
        write_table(rows, args, collections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
