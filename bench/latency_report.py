"""The markdown table of the latency harness (``bench/latency.py``): latencies, throughput, the ratio to
the memory bound, agreement with Numba, build time and size; the same cells for its result files."""
from __future__ import annotations

import numpy as np

from bench.latency_backends import EXACT

COLUMNS = ["collection", "docs", "backend", "p50 ms", "p90 ms", "p99 ms", "p50 ms incl. encoding", "QPS 1 thr",
           "QPS 2 thr", "bound ms", "p50/bound", "vs numba", "build s", "size MB", "note"]
BOUND_NOTE = ("bound = median over queries of the bytes of the query terms' posting lists over the single-thread "
              "read bandwidth measured next to the run; latency = fastest of the timed passes, per query")


def _fmt(v, spec=".2f"):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return format(v, spec)


def cells(r: dict) -> list[str]:
    """One row of the table, as text."""
    p50 = r.get("single_p50")
    agree = "-"
    if "identical" in r:
        agree = (f"identical {r['identical']:.0%}" if r["backend"] in EXACT
                 else f"recall@{r['k']} {r['recall']:.3f}")
        if r["backend"] in EXACT and r["identical"] < 1:
            agree += f", same scores {r['same_scores']:.0%}"
    return [r["collection"], f"{r['n_docs']:,}", r["backend"], _fmt(p50, ".3f"), _fmt(r.get("single_p90"), ".3f"),
            _fmt(r.get("single_p99"), ".3f"), _fmt(r.get("encoded_p50"), ".3f"), _fmt(r.get("qps_1"), ".0f"),
            _fmt(r.get("qps_2"), ".0f"), _fmt(r["bound_ms"], ".3f"),
            _fmt(p50 / r["bound_ms"] if p50 and r["bound_ms"] else None, ".1f"), agree,
            _fmt(r.get("build_s"), ".1f"), _fmt(r.get("size_mb"), ".1f"),
            r.get("note", "") + (f" ERROR {r['error']}" if "error" in r else "")]


def collection_notes(rows: list[dict], load: bool = False) -> list[str]:
    """Per collection: the postings a query reads and the bandwidth measured next to it (and the load)."""
    seen: dict[str, dict] = {}
    for r in rows:
        seen.setdefault(r["collection"], r)
    return [f"{c}: {r['postings_mb']:.2f} MB of postings a query (Numba reads {r['numba_read_mb']:.2f} MB), "
            f"{r['bandwidth_gbs']:.1f} GB/s" + (f", load {r['load']:.1f}" if load else "") for c, r in seen.items()]


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    if rows:
        lines.append("")
        lines.append("bound = median over queries of (bytes of the query terms' posting lists) / (single-thread read "
                     "bandwidth measured next to the run); latency = fastest of the timed passes, per query. "
                     + "; ".join(collection_notes(rows, load=True)))
    return "\n".join(lines)
