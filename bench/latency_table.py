#!/usr/bin/env python
"""Condense the JSON files written by ``bench/latency.py --out X.md`` into the README's latency table.

    python bench/latency_table.py runs/latency-small.json runs/latency-1m.json
"""
from __future__ import annotations

import argparse
import json

SHOWN = ("numba", "numba-ids", "lucene", "splade-index", "pisa-maxscore", "seismic")


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+")
    parser.add_argument("--backends", default=",".join(SHOWN))
    args = parser.parse_args(argv)
    shown = args.backends.split(",")
    print("| collection | docs | backend | p50 ms | p99 ms | QPS 1 thread | QPS 2 threads | bound ms | p50 / bound "
          "| Lucene p50 / this p50 | agrees with numba |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.json:
        rows = json.load(open(path))["rows"]
        for coll in dict.fromkeys(r["collection"] for r in rows):
            group = {r["backend"]: r for r in rows if r["collection"] == coll}
            lucene = group.get("lucene", {}).get("single_p50")
            for name in shown:
                r = group.get(name)
                if r is None or r.get("single_p50") is None:
                    continue
                p50 = r["single_p50"]
                agree = r.get("identical")
                agree = ("-" if name == "numba" else
                         f"recall@1000 {r['recall']:.3f}" if "recall" in r and name == "seismic" else
                         f"{100 * agree:.0f}% identical" + (f" ({100 * r['same_scores']:.0f}% same scores: other tie order)"
                                                             if r.get("same_scores", agree) > agree else "")
                         if agree is not None else "-")
                print(f"| {coll} | {r['n_docs']:,} | {name} | {p50:.3f} | {fmt(r.get('single_p99'), '.3f')} | "
                      f"{fmt(r.get('qps_1'), '.0f')} | {fmt(r.get('qps_2'), '.0f')} | {r['bound_ms']:.3f} | "
                      f"{p50 / r['bound_ms']:.1f} | {fmt(lucene / p50 if lucene else None, '.1f')} | {agree} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
