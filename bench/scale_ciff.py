"""SciFact test through a CIFF export: ciff-toolkit's read-back and BMP against the exact Numba ranking.

    python -m bench.scale_ciff --vectors work/scifact-splade-tiny/vectors --work work/scale-ciff

Writes ``results/scale-ciff.json``: the export (time, size), the postings read back by ciff-toolkit
against the input vectors, and BMP (imported from the file, alpha = beta = 1) against the Numba index.
BMP stores 8-bit impacts and quantizes query weights to 32 levels, so it is checked twice: on an
export rescaled to impacts <= 255 against the exact scores of the same rescaled vectors for BMP's
query weights (the same top 10, ties aside, or the top 10 with one 32-document block left out: BMP's
search loop never scores the last block of its candidate list), and against the exact Numba ranking
with the model's own weights (what BMP's quantization costs in nDCG@10).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from bench.scale_milvus import SCIFACT, _ndcg10


def _write_run(path: Path, run: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for qid, hits in run.items():
            fh.writelines(f"{qid} Q0 {d} {r} {float(s):.6f} x\n" for r, (d, s) in enumerate(hits, 1))


def _read_back(ciff: Path) -> dict[str, dict[str, int]]:
    from ciff_toolkit.read import CiffReader

    with CiffReader(ciff) as reader:
        reader.read_header()
        lists = list(reader.read_postings_lists())
        names = {r.docid: r.collection_docid for r in reader.read_documents()}
    back: dict[str, dict[str, int]] = {}
    for pl in lists:
        doc = 0
        for p in pl.postings:
            doc += p.docid
            back.setdefault(names[doc], {})[pl.term] = p.tf
    return back


def _bmp_rows(vectors: Path, work: Path, bound: int, queries: dict, exact: dict, qrels: Path, largest: int) -> list:
    """Export with ``--max-impact bound``, import into BMP, search (alpha = beta = 1); two rows: the export, and
    BMP against the exact scores of the same vectors for its query weights and against the exact ranking."""
    import bmp

    from splade_anserini.export.ciff import bmp_query_weights, explains_bmp, export_ciff, rescaled_docs
    from splade_anserini.index.numba_index import NumbaIndex

    ciff, index = work / f"scifact-{bound}.ciff", work / f"scifact-{bound}.bmp"
    small = export_ciff(vectors, ciff, max_impact=bound)
    start = time.perf_counter()
    bmp.ciff2bmp(str(ciff), str(index), 32, False)
    build_s = time.perf_counter() - start
    searcher = bmp.Searcher(str(index))
    peer = {q: [(d, float(s)) for d, s in zip(*searcher.search(v, k=10, alpha=1.0, beta=1.0))]
            for q, v in queries.items()}
    _write_run(work / f"bmp-{bound}.trec", peer)
    docs = rescaled_docs(vectors, bound)[0]
    docids, rescaled = [d for d, _ in docs], NumbaIndex.from_vectors(docs)
    explained = []
    for q, v in queries.items():
        scores = dict(rescaled.search(bmp_query_weights(v), k=len(docids)))
        explained.append(explains_bmp(np.array([scores.get(d, 0) for d in docids], dtype=np.float64), docids, peer[q]))
    n = len(queries)
    tied, one_block = explained.count(-1), sum(1 for b in explained if b is not None and b >= 0)
    overlap = sum(len({d for d, _ in exact[q]} & {d for d, _ in peer[q]}) for q in queries) / (10 * n)
    identical = sum(1 for q in queries if [d for d, _ in exact[q]] == [d for d, _ in peer[q]])
    return [[f"CIFF export, --max-impact {bound}", f"largest impact {largest}, scale {small['scale']:.4f}",
             small["seconds"], round(ciff.stat().st_size / 2**20, 1), "", "BMP stores 8-bit impacts and adds 16-bit scores"],
            [f"BMP from that file (--max-impact {bound})", f"{n} queries", round(build_s, 1), "",
             round(_ndcg10(work / f"bmp-{bound}.trec", qrels), 4),
             f"vs exact scores of the same vectors for BMP's query weights, added in 16 bits: top 10 equal (ties "
             f"aside) for {tied}/{n}, equal but for one skipped 32-document block for {one_block}/{n}, unexplained "
             f"{n - tied - one_block}/{n}; vs the exact ranking: top-10 overlap {overlap:.3f}, {identical}/{n} "
             "identical"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args(argv)
    from splade_anserini.conversion.jsonvector import read_jsonvector
    from splade_anserini.data import read_topics
    from splade_anserini.export.ciff import BMP_MAX_IMPACT, BMP_SAFE_IMPACT, export_ciff
    from splade_anserini.index.build import build_numba_index
    from splade_anserini.index.numba_index import NumbaIndex
    from splade_anserini.search.query_encoder import QueryVectorizer

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    info = export_ciff(args.vectors, work / "scifact.ciff")
    same = _read_back(work / "scifact.ciff") == {d.docid: d.vector for d in read_jsonvector(args.vectors)}
    if not (work / "numba").exists():
        build_numba_index(args.vectors, work / "numba")
    topics = read_topics(SCIFACT / "queries.test.tsv")
    queries = dict(zip(topics, QueryVectorizer("splade-tiny").encode_batch(list(topics.values()))))
    exact = NumbaIndex.load(work / "numba").search_run(queries, 10, 1)
    _write_run(work / "numba.trec", exact)

    qrels = SCIFACT / "qrels.test.txt"
    n = len(queries)
    rows = [["CIFF export", f"{info['documents']:,} documents, {info['postings']:,} postings", info["seconds"],
             round((work / "scifact.ciff").stat().st_size / 2**20, 1), "", "read back by ciff-toolkit: "
             + ("postings identical to the input" if same else "POSTINGS DIFFER")],
            ["Numba index (exact)", f"{n} queries", "", "", round(_ndcg10(work / "numba.trec", qrels), 4), ""]]
    for bound in (BMP_MAX_IMPACT, BMP_SAFE_IMPACT):
        rows += _bmp_rows(args.vectors, work, bound, queries, exact, qrels, info["max_impact"])
    from bench.results import write_result

    write_result("scale-ciff", "SciFact test through a CIFF export (splade-tiny)",
                 ["step", "data", "seconds", "MiB", "nDCG@10", "check"], rows,
                 data="BEIR SciFact test (5,183 documents, 300 queries), splade-tiny x100",
                 command=f"python -m bench.scale_ciff {shlex.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
