"""Milvus Lite against the Lucene impact index on SciFact test: nDCG@10, top-10 per query, times,
and an interrupted export resumed.

    python -m bench.scale_milvus --vectors work/scifact-splade-tiny/vectors --work work/scale-milvus

Writes ``results/scale-milvus.json``. The Lucene index is built from the same vectors when
``--work/lucene`` does not exist; both runs use splade-tiny's PyTorch query encoder, 100 hits.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from bench.results import write_result

SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact"


def _run(path: Path) -> dict[str, list[tuple[str, float]]]:
    run: dict[str, list[tuple[str, float]]] = {}
    for line in open(path, encoding="utf-8"):
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, []).append((docid, float(score)))
    return run


def _ndcg10(run_path: Path, qrels: Path) -> float:
    import ir_measures

    measure = ir_measures.parse_measure("nDCG@10")
    return ir_measures.calc_aggregate([measure], ir_measures.read_trec_qrels(str(qrels)),
                                      ir_measures.read_trec_run(str(run_path)))[measure]


def _same_top10(a: dict, b: dict) -> tuple[int, int]:
    """Queries whose top 10 are identical (docids and scores), and those equal ties aside (same scores)."""
    same = sum(1 for q in a if a[q][:10] == b.get(q, [])[:10])
    scores = sum(1 for q in a if [s for _, s in a[q][:10]] == [s for _, s in b.get(q, [])[:10]])
    return same, scores


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    if fn(*args) != 0:
        raise SystemExit(f"failed: {fn.__module__} {' '.join(map(str, args[0]))}")
    return time.perf_counter() - start


def _interrupted_export(vectors: Path, db: str, after_batches: int = 4, batch: int = 500) -> tuple[int, float, int]:
    """Export, interrupted after ``after_batches`` inserts, then resumed: (rows before, resume s, rows after)."""
    from pymilvus import MilvusClient

    from splade_anserini.export import milvus
    from splade_anserini.export.__main__ import main as export_main

    real, calls = MilvusClient.insert, []

    def interrupting(self, *a, **k):
        calls.append(1)
        if len(calls) > after_batches:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    args = ["--to", "milvus", "--input", str(vectors), "--uri", db, "--collection", "resume", "--batch-size", str(batch)]
    MilvusClient.insert = interrupting
    try:
        assert export_main(args + ["--overwrite"]) == 130
    finally:
        MilvusClient.insert = real
    client = milvus.connect(db)
    before = milvus.count(client, "resume")
    seconds = _timed(export_main, args)
    return before, seconds, milvus.count(client, "resume")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--data", type=Path, default=SCIFACT)
    args = parser.parse_args(argv)
    from splade_anserini.export.__main__ import main as export_main
    from splade_anserini.index.build import build_lucene_index
    from splade_anserini.search.run import main as search_main

    work, topics, qrels = args.work, args.data / "queries.test.tsv", args.data / "qrels.test.txt"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "lucene").exists():
        build_lucene_index(args.vectors, work / "lucene", threads=2)
    db = str(work / "scifact.db")
    export_s = _timed(export_main, ["--to", "milvus", "--input", str(args.vectors), "--uri", db, "--collection",
                                    "scifact", "--overwrite"])
    common = ["--topics", str(topics), "--hits", "100", "--threads", "1"]
    lucene_s = _timed(search_main, ["--index", str(work / "lucene"), "--output", str(work / "lucene.trec"), *common])
    milvus_s = _timed(search_main, ["--backend", "milvus", "--uri", db, "--collection", "scifact",
                                    "--output", str(work / "milvus.trec"), *common])
    lucene, milvus = _run(work / "lucene.trec"), _run(work / "milvus.trec")
    same, same_scores = _same_top10(lucene, milvus)
    before, resume_s, after = _interrupted_export(args.vectors, db)
    n_docs = sum(1 for f in args.vectors.glob("*.jsonl") for line in open(f) if line.strip())
    rows = [
        ["Lucene impact index (Pyserini)", "search", len(lucene), round(lucene_s, 1), round(_ndcg10(work / "lucene.trec", qrels), 4), ""],
        ["Milvus Lite", "export", n_docs, round(export_s, 1), "", ""],
        ["Milvus Lite", "search", len(milvus), round(milvus_s, 1), round(_ndcg10(work / "milvus.trec", qrels), 4),
         f"{same}/{len(lucene)} identical ({same_scores} same scores)"],
        ["Milvus Lite", "export interrupted, resumed", after, round(resume_s, 1), "",
         f"{before:,} rows before the interruption, {after:,} after (of {n_docs:,})"],
    ]
    write_result("scale-milvus", "SciFact test through Milvus Lite and through the Lucene impact index (splade-tiny)",
                 ["engine", "step", "documents or queries", "seconds", "nDCG@10", "top 10 vs Lucene"], rows,
                 data="BEIR SciFact test (5,183 documents, 300 queries), splade-tiny x100, 100 hits",
                 notes=["search seconds include loading the query encoder and encoding the 300 queries"],
                 command=f"python -m bench.scale_milvus {shlex.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
