"""Canonical digests of a pipeline's outputs, to show that a change leaves them as they were.

    python -m bench.digests --vectors work/scifact-splade-tiny/vectors --run runs/scifact-splade-tiny.trec

The vectors' digest is over the documents sorted by id, each with its tokens sorted and their impacts
(independent of part files, their order and JSON spacing); the run's is over its (qid, docid, rank,
score) rows in qid and rank order (independent of the tag and of the order of the queries).
"""
from __future__ import annotations

import argparse
import hashlib
import json

from splade_anserini.conversion.jsonvector import read_jsonvector
from splade_anserini.conversion.trec import read_ranked


def vectors_digest(folder: str) -> tuple[str, int]:
    """sha256 of the sorted documents' sorted (token, impact) pairs, and the number of documents."""
    docs = sorted((doc.docid, sorted(doc.vector.items())) for doc in read_jsonvector(folder))
    return hashlib.sha256(json.dumps(docs, ensure_ascii=False).encode()).hexdigest(), len(docs)


def run_digest(path: str) -> tuple[str, int]:
    """sha256 of the (qid, docid, rank, score) rows in qid and rank order, and the number of rows."""
    rows = [(qid, docid, rank, f"{score:.6f}") for qid, hits in sorted(read_ranked(path).items())
            for rank, (docid, score) in enumerate(hits, start=1)]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest(), len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", action="append", default=[], help="a JsonVectorCollection folder")
    parser.add_argument("--run", action="append", default=[], help="a TREC run file")
    args = parser.parse_args(argv)
    for folder in args.vectors:
        digest, n = vectors_digest(folder)
        print(f"vectors {digest} {n} documents  {folder}")
    for path in args.run:
        digest, n = run_digest(path)
        print(f"run     {digest} {n} rows  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
