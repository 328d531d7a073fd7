"""Sparsity and FLOPS of SPLADE representations, as the SPLADE papers define them.

* average non-zeros per document and per query (the "active dimensions" of the representations);
* ``FLOPS = sum_j p_j(q) * p_j(d)``: the expected number of multiplications of a query-document
  dot product on an inverted index, where ``p_j(d)`` is the fraction of documents in which term
  ``j`` is non-zero and ``p_j(q)`` the fraction of queries in which it is (both estimated on the
  collection and the topics at hand; Formal et al., SPLADE v2, Sec. 4 / Paria et al. 2020).
  :func:`expected_flops` computes it; :func:`document_flops` (``sum_j p_j(d)^2``, the documents
  standing in for the queries) is the collection-only figure ``encode_corpus`` reports.

    python -m splade_anserini.stats --vectors VECTORS_DIR --queries TOPICS.tsvint [--json out.json]

The queries are a TsvInt topics file (tokens repeated by weight, ``conversion.topics``) or a
JsonVectorCollection file of encoded queries.
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from splade_anserini.cli import ArgumentParser, command


@dataclass
class SparsityStats:
    documents: int
    queries: int
    avg_doc_nonzeros: float
    avg_query_nonzeros: float
    doc_vocabulary: int
    query_vocabulary: int
    flops: float

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"sparsity: {self.avg_doc_nonzeros:.1f} non-zeros per document ({self.documents:,} documents, "
                f"{self.doc_vocabulary:,} distinct terms), {self.avg_query_nonzeros:.1f} per query "
                f"({self.queries:,} queries); FLOPS = {self.flops:.4f}")


def term_document_frequencies(vectors: Iterable[Mapping[str, int | float]]) -> tuple[Counter, int, int]:
    """``(df, n, total_nonzeros)``: in how many vectors each term is non-zero, the vector count and
    the number of non-zero entries."""
    df: Counter = Counter()
    n = nnz = 0
    for vec in vectors:
        terms = [t for t, w in vec.items() if w > 0]
        df.update(terms)
        nnz += len(terms)
        n += 1
    return df, n, nnz


def expected_flops(doc_df: Mapping[str, int], n_docs: int, query_df: Mapping[str, int], n_queries: int) -> float:
    """``sum_j p_j(q) p_j(d)`` from document frequencies on both sides: the FLOPS of ``SparsityStats``."""
    if not n_docs or not n_queries:
        return 0.0
    return sum((qdf / n_queries) * (doc_df.get(t, 0) / n_docs) for t, qdf in query_df.items())


def document_flops(doc_df: Mapping[str, int], n_docs: int) -> float:
    """``sum_j p_j(d)^2``: FLOPS with the documents standing in for the queries, the collection-only
    figure ``encode_corpus`` reports (its summary's ``flops``) before any query is encoded."""
    return float(sum((c / n_docs) ** 2 for c in doc_df.values())) if n_docs else 0.0


def sparsity_stats(doc_vectors: Iterable[Mapping[str, int | float]],
                   query_vectors: Iterable[Mapping[str, int | float]]) -> SparsityStats:
    ddf, nd, dnnz = term_document_frequencies(doc_vectors)
    qdf, nq, qnnz = term_document_frequencies(query_vectors)
    return SparsityStats(documents=nd, queries=nq, avg_doc_nonzeros=dnnz / nd if nd else 0.0,
                         avg_query_nonzeros=qnnz / nq if nq else 0.0, doc_vocabulary=len(ddf),
                         query_vocabulary=len(qdf), flops=expected_flops(ddf, nd, qdf, nq))


def read_query_vectors(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Encoded queries from a TsvInt topics file or a JsonVectorCollection file/directory."""
    from splade_anserini.conversion.jsonvector import read_jsonvector
    from splade_anserini.conversion.topics import read_tsvint

    p = os.fspath(path)
    if os.path.isdir(p) or p.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        return {d.docid: d.vector for d in read_jsonvector(p)}
    return read_tsvint(p)


def collection_stats(vectors_path: str | os.PathLike, queries: str | os.PathLike | Mapping[str, Mapping[str, int]]
                     ) -> SparsityStats:
    """Statistics of a JsonVectorCollection and encoded queries (a path or ``{qid: vector}``)."""
    from splade_anserini.conversion.jsonvector import read_jsonvector

    qvecs = read_query_vectors(queries) if isinstance(queries, (str, os.PathLike)) else queries
    return sparsity_stats((d.vector for d in read_jsonvector(vectors_path)), qvecs.values())


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description="Sparsity and FLOPS of a JsonVectorCollection and encoded queries.")
    parser.add_argument("--vectors", required=True, help="JsonVectorCollection directory or file")
    parser.add_argument("--queries", required=True, help="TsvInt topics or JsonVectorCollection of queries")
    parser.add_argument("--json", help="also write the statistics as JSON (an existing file only if this tool wrote it)")
    args = parser.parse_args(argv)
    stats = collection_stats(args.vectors, args.queries)
    print(stats.summary())
    if args.json:
        from splade_anserini.conversion.atomic import atomic_open

        from splade_anserini.outputs import output_file

        with output_file(args.json, "statistics", inputs=(args.vectors, args.queries)), atomic_open(args.json) as fh:
            json.dump(stats.as_dict(), fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
