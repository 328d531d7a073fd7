"""Mine BM25 hard negatives through Anserini (Pyserini's LuceneSearcher): a TREC run for ``--negatives``.

    python -m splade_anserini.train.mine_negatives --corpus corpus.jsonl --queries queries.tsv \\
        --qrels qrels.txt --output runs/bm25-train.trec --hits 100 [--index DIR] [--threads N]

The run holds BM25's top ``--hits`` per query (positives included: the trainer drops a query's
positives when it samples negatives). With ``--qrels``, the judged documents must exist in the
corpus, and the recall of the positives in the run is reported. ``--index`` keeps the BM25 index
there (reused when present); otherwise it is built in a temporary directory.
"""
from __future__ import annotations

import sys
import tempfile
import time

from ..cli import ArgumentParser, command, positive_int


def mine(corpus: str, queries: str, output: str, *, hits: int = 100, qrels: str | None = None,
         index: str | None = None, threads: int = 1, k1: float = 0.9, b: float = 0.4) -> dict:
    from conversion.trec import write_run

    from ..bm25 import bm25_search, build_bm25_index
    from ..data import read_corpus, read_qrels, read_topics
    from .data import check_references

    topics = read_topics(queries)
    judged = None
    if qrels:
        judged = read_qrels(qrels)
        doc_ids = {d.docid: "" for d in read_corpus(corpus)}
        check_references(doc_ids, topics, judged, None, {"qrels": qrels, "queries": queries, "corpus": corpus})
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="bm25-index-") as tmp:
        idx = build_bm25_index(corpus, index or f"{tmp}/index", threads=threads)
        run = bm25_search(idx, topics, k=hits, k1=k1, b=b, threads=threads)
    n = write_run(output, run, tag="bm25")
    stats = {"queries": len(topics), "lines": n, "seconds": round(time.time() - start, 1)}
    if judged is not None:
        pos = [(q, d) for q, docs in judged.items() for d, r in docs.items() if r > 0]
        found = sum(1 for q, d in pos if d in {h for h, _ in run.get(q, [])})
        negs = [sum(1 for h, _ in run.get(q, []) if judged.get(q, {}).get(h, 0) <= 0) for q in judged]
        stats.update(positives=len(pos), positives_in_run=found,
                     avg_negatives=round(sum(negs) / max(1, len(negs)), 1))
    return stats


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description="Mine BM25 hard negatives (Anserini via Pyserini) as a TREC run.")
    parser.add_argument("--corpus", required=True, help="BEIR corpus.jsonl or MS MARCO collection.tsv")
    parser.add_argument("--queries", required=True, help="qid<TAB>text")
    parser.add_argument("--qrels", help="check judged documents exist; report recall of positives")
    parser.add_argument("--output", required=True, help="TREC run to write")
    parser.add_argument("--hits", type=positive_int, default=100)
    parser.add_argument("--index", help="BM25 index directory to build or reuse (default: temporary)")
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--k1", type=float, default=0.9)
    parser.add_argument("--b", type=float, default=0.4)
    args = parser.parse_args(argv)
    stats = mine(args.corpus, args.queries, args.output, hits=args.hits, qrels=args.qrels, index=args.index,
                 threads=args.threads, k1=args.k1, b=args.b)
    msg = f"wrote {stats['lines']} lines for {stats['queries']} queries to {args.output} in {stats['seconds']}s"
    if "positives" in stats:
        msg += (f"; {stats['positives_in_run']}/{stats['positives']} positives in the top {args.hits}, "
                f"{stats['avg_negatives']} negatives per query")
    print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
