"""Measuring in the latency harness (``bench/latency.py``): per-query and batch timing, agreement with
the exact Numba results, the postings bound, and one workload's rows."""
from __future__ import annotations

import gc
import os
import sys
import time

import numpy as np

from bench.latency_backends import ALL_BACKENDS, Backend, LuceneBackend, NumbaBackend, NumbaIdsBackend
from bench.latency_peers import Bm25sBackend, PisaBackend, SeismicBackend, SpladeIndexBackend
from bench.latency_workloads import Workload
from splade_anserini.index.numba_index import NumbaIndex


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def time_single(fn, n: int, warmup: int, passes: int = 3) -> tuple[list[float], list]:
    """Per-query latency: the minimum over ``passes`` passes through the queries (in order), which
    removes most of the noise of a shared machine (time slices lost to other processes) while every
    pass still reads each query's postings cold from memory on a large collection."""
    for i in range(min(warmup, n)):
        fn(i)
    times, results = [float("inf")] * n, [None] * n
    for p in range(passes):
        for i in range(n):
            t = time.perf_counter()
            r = fn(i)
            times[i] = min(times[i], time.perf_counter() - t)
            if p == 0:
                results[i] = r
    return times, results


def time_batch(backend: Backend, k: int, threads: int, n: int, passes: int = 3) -> float:
    """Queries per second of the whole batch: the best of ``passes`` timed runs after a warm-up run."""
    backend.batch(k, threads)  # warm-up (and JIT)
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        backend.batch(k, threads)
        best = min(best, time.perf_counter() - start)
    return n / best


def compare(exact: list, other: list, k: int) -> dict[str, float]:
    """Agreement with the exact Numba results: identical lists, identical score lists, recall@k."""
    same = same_scores = 0
    recall = []
    for (d0, s0), (d1, s1) in zip(exact, other):
        same += d0 == d1 and s0 == s1
        same_scores += list(s0) == [int(round(s)) for s in s1]
        if d0:
            recall.append(len(set(d0) & set(d1)) / len(d0))
    n = max(1, len(exact))
    return {"identical": same / n, "same_scores": same_scores / n, "recall": float(np.mean(recall)) if recall else 1.0}



def make_backend(name: str, w: Workload, encoder):
    if name in ("numba", "numba-batch"):
        b = NumbaBackend(w, encoder)
        b.name = name
        return b
    if name == "numba-ids":
        return NumbaIdsBackend(w)
    if name == "lucene":
        return LuceneBackend(w, encoder)
    if name == "splade-index":
        return SpladeIndexBackend(w)
    if name == "pisa-maxscore":
        return PisaBackend(w, "maxscore")
    if name == "pisa-bmw":
        return PisaBackend(w, "block_max_wand")
    if name == "seismic":
        return SeismicBackend(w)
    if name == "bm25s":
        return Bm25sBackend(w)
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(ALL_BACKENDS)})")



def postings_bytes(index: NumbaIndex, queries: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per query: bytes of its terms' posting lists (at the index's bytes a posting), and the bytes the
    Numba kernel actually reads (dense rows at one byte a document, the other lists as postings)."""
    df = np.diff(np.asarray(index.offsets)[:, [0, -1]], axis=1)[:, 0]
    dense = np.asarray(index.dense_row) >= 0
    lists, read = [], []
    for q in queries:
        t = index.encode_query(q)[0]
        lists.append(int(df[t].sum()) * index.bytes_per_posting)
        read.append(int(df[t][~dense[t]].sum()) * index.bytes_per_posting + int(dense[t].sum()) * index.n_docs)
    return np.array(lists), np.array(read)


def run_workload(w: Workload, backends: list[str], k: int, bandwidth: float, encoder, threads_list=(1, 2),
                 warmup: int = 20, passes: int = 3, batch_passes: int = 3) -> list[dict]:
    index = NumbaIndex.load(w.numba_dir)
    n = len(w.queries)
    bytes_q, read_q = postings_bytes(index, w.queries)
    bound_ms = float(np.median(bytes_q)) / (bandwidth * 1e9) * 1e3
    load = os.getloadavg()[0]
    print(f"\n[{w.name}] {index.n_docs:,} docs, {index.n_postings:,} postings, {n} queries, median "
          f"{np.median(bytes_q) / 1e6:.2f} MB of postings a query -> bound {bound_ms:.3f} ms (the Numba kernel "
          f"reads {np.median(read_q) / 1e6:.2f} MB); load average {load:.1f}", file=sys.stderr)
    exact_results = None
    rows = []
    for name in backends:
        gc.collect()
        try:
            b = make_backend(name, w, encoder)
        except Exception as exc:  # noqa: BLE001 - a missing optional peer must not stop the run
            print(f"[{w.name}] {name}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                  file=sys.stderr)
            continue
        row = {"collection": w.name, "n_docs": index.n_docs, "backend": name, "k": k, "queries": n,
               "bound_ms": bound_ms, "postings_mb": float(np.median(bytes_q)) / 1e6,
               "numba_read_mb": float(np.median(read_q)) / 1e6, "load": os.getloadavg()[0],
               "build_s": b.build_info.get("seconds"), "size_mb": (b.build_info.get("bytes") or 0) / 1e6,
               "note": b.build_info.get("note", "")}
        try:
            if name != "numba-batch":
                times, results = time_single(lambda i: b.search(i, k), n, warmup, passes)
                results = [b.unpack(r) for r in results]
                row.update({f"single_{key}": v for key, v in percentiles(times).items()})
                if name == "numba":
                    exact_results = results
                elif exact_results is not None:
                    row.update(compare(exact_results, results, k))
                if w.texts is not None and encoder is not None and name in ("numba", "lucene"):
                    times_enc, _ = time_single(lambda i: b.search_text(i, k), n, 5, passes)
                    row.update({f"encoded_{key}": v for key, v in percentiles(times_enc).items()})
            if name != "numba":
                for th in threads_list:
                    row[f"qps_{th}"] = time_batch(b, k, th, n, batch_passes)
            print(f"[{w.name}] {name}: p50 {row.get('single_p50', float('nan')):.3f} ms, "
                  + ", ".join(f"{th} thr {row.get(f'qps_{th}', float('nan')):.0f} q/s" for th in threads_list),
                  file=sys.stderr)
        except Exception as exc:  # noqa: BLE001
            print(f"[{w.name}] {name}: failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            row["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            b.close()
        b = None  # release the backend's memory before the next one is built
        rows.append(row)
    # numba-batch's throughput is the numba row's
    for r in rows:
        if r["backend"] == "numba-batch":
            for other in rows:
                if other["backend"] == "numba":
                    other.update({key: r[key] for key in r if key.startswith("qps_")})
    return [r for r in rows if r["backend"] != "numba-batch" or "numba" not in {x["backend"] for x in rows}]
