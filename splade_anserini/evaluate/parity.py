"""Check that the Numba index and the Lucene impact index return identical rankings.

    python -m splade_anserini.parity --index LUCENE_INDEX --numba-index NUMBA_INDEX \\
        --topics queries.test.tsv [--model splade-tiny] [--factor F] [--hits 1000] [--threads 2]
    python -m splade_anserini.parity --index LUCENE_INDEX --numba-index NUMBA_INDEX --encoded-topics T.tsv

Both indexes must hold the same JsonVectorCollection (their recorded provenance must agree; the
factor defaults to theirs and the query model is checked as ``search`` checks it). The queries are encoded once (our SPLADE
encoder, or read pre-encoded from a TsvInt file) and the same ``{token: int weight}`` vectors go to
Lucene (Pyserini ``LuceneImpactSearcher`` with ``min_idf=-inf``, so tokens present in every document
are kept) and to ``NumbaIndex.batch_search``. Scores are integer dot products, so the comparison is
exact: the same (docid, score) list for every query, in the same order (score desc, docid asc).
Exit status 0 when every query matches, 1 otherwise (the first differences are printed).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from splade_anserini.conversion.trec import Hits

from splade_anserini.cli import ArgumentParser, command, positive_int


@dataclass
class ParityReport:
    queries: int = 0
    identical: int = 0
    hits: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.queries == self.identical

    def summary(self) -> str:
        return (f"{self.identical}/{self.queries} queries identical ({self.hits:,} hits compared)"
                + ("" if self.ok else "; first differences:\n  " + "\n  ".join(self.differences[:10])))


def describe_difference(qid: str, a: Hits, b: Hits) -> str:
    """One line naming the first rank where two hit lists differ."""
    for rank, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return f"query {qid}: rank {rank}: lucene {x} vs numba {y}"
    return f"query {qid}: lucene has {len(a)} hits, numba {len(b)}"


def compare(lucene: Mapping[str, Hits], numba: Mapping[str, Hits]) -> ParityReport:
    report = ParityReport()
    for qid, expected in lucene.items():
        got = numba.get(qid, [])
        report.queries += 1
        report.hits += len(expected)
        if list(expected) == list(got):
            report.identical += 1
        else:
            report.differences.append(describe_difference(qid, expected, got))
    return report


def lucene_hits(index: str | os.PathLike, vectors: Mapping[str, dict[str, int]], k: int = 1000,
                threads: int = 1) -> dict[str, Hits]:
    """Pyserini ``LuceneImpactSearcher.batch_search`` on pre-encoded vectors; integer scores."""
    from splade_anserini import java
    from splade_anserini.search.query_encoder import PreEncodedQueries

    lucene = java.pyserini_lucene()
    searcher = lucene.LuceneImpactSearcher(os.fspath(index), PreEncodedQueries(vectors), min_idf=float("-inf"))
    try:
        qids = list(vectors)
        found = searcher.batch_search(qids, qids, k=k, threads=threads)
        out = {}
        for qid in qids:
            hits = found.get(qid, [])
            out[qid] = [(h.docid, int(round(h.score))) for h in hits]
        return out
    finally:
        searcher.close()


def numba_hits(index: str | os.PathLike, vectors: Mapping[str, dict[str, int]], k: int = 1000,
               threads: int = 1) -> dict[str, Hits]:
    from splade_anserini.index.numba_index import NumbaIndex

    return NumbaIndex.load(index).search_run(dict(vectors), k, threads)


def encode_topics(topics: Mapping[str, str], model: str, factor: float, batch_size: int = 32,
                  max_length: int = 256) -> dict[str, dict[str, int]]:
    from splade_anserini.search.query_encoder import QueryVectorizer

    enc = QueryVectorizer(model, factor=factor, max_length=max_length, batch_size=batch_size)
    return dict(zip(topics, enc.encode_batch(list(topics.values()))))


def check(lucene_index, numba_index, vectors: Mapping[str, dict[str, int]], k: int = 1000,
          threads: int = 1) -> ParityReport:
    """Search both indexes with the same vectors and compare."""
    return compare(lucene_hits(lucene_index, vectors, k, threads), numba_hits(numba_index, vectors, k, threads))


def same_collection(lucene_index, numba_index, factor: str | None):
    """The search plan of both indexes, refused when their provenance differs (two collections)."""
    from splade_anserini.provenance import ProvenanceError, describe, plan_search

    plan, other = plan_search(lucene_index, factor=factor), plan_search(numba_index, factor=factor)
    if plan.provenance and other.provenance and plan.provenance != other.provenance:
        raise ProvenanceError(f"the indexes hold different collections: {lucene_index}: {describe(plan.provenance)}; "
                              f"{numba_index}: {describe(other.provenance)}")
    return plan if plan.provenance else other


@command
def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(description="Compare Numba and Lucene rankings for the same query vectors.")
    p.add_argument("--index", required=True, help="Lucene impact index")
    p.add_argument("--numba-index", required=True, help="Numba index built from the same vectors")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--topics", help="qid<TAB>text topics, encoded with --model")
    src.add_argument("--encoded-topics", help="TsvInt topics (tokens repeated by weight)")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--factor", default=None,
                   help="query quantization factor (default: the indexes'; another is refused)")
    p.add_argument("--allow-other-query-encoder", action="store_true",
                   help="accept a query model other than the one that encoded the indexes")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--hits", type=positive_int, default=1000)
    p.add_argument("--threads", type=positive_int, default=1)
    args = p.parse_args(argv)

    start = time.perf_counter()
    plan = same_collection(args.index, args.numba_index, args.factor)
    if args.topics:
        from splade_anserini.data import read_topics
        from splade_anserini.provenance import check_query_model, model_identity
        from splade_anserini.search.query_encoder import QueryVectorizer

        enc = QueryVectorizer(args.model, factor=plan.factor, max_length=args.max_length)
        check_query_model(plan, args.index, model_identity(enc.encoder), allow_other=args.allow_other_query_encoder)
        topics = read_topics(args.topics)
        vectors = dict(zip(topics, enc.encode_batch(list(topics.values()))))
    else:
        from splade_anserini.conversion.topics import read_tsvint

        vectors = read_tsvint(args.encoded_topics)
    report = check(args.index, args.numba_index, vectors, args.hits, args.threads)
    plan.tell()
    print(f"parity at k={args.hits}: {report.summary()} [{time.perf_counter() - start:.1f} s]")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
