"""SciFact test through a CIFF export: ciff-toolkit's read-back and BMP against the exact Numba ranking.

    python -m bench.scale_ciff --vectors work/scifact-splade-tiny/vectors --work work/scale-ciff

Writes ``results/scale-ciff.json``: the export (time, size), the postings read back by ciff-toolkit
against the input vectors, and BMP (imported from the file, alpha = beta = 1) against the Numba index
on the same splade-tiny queries: nDCG@10, top-10 overlap, queries whose top 10 are identical.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args(argv)
    import bmp

    from splade_anserini.conversion.jsonvector import read_jsonvector
    from splade_anserini.data import read_topics
    from splade_anserini.export.ciff import export_ciff
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
    start = time.perf_counter()
    bmp.ciff2bmp(str(work / "scifact.ciff"), str(work / "scifact.bmp"), 32, False)
    build_s = time.perf_counter() - start
    searcher = bmp.Searcher(str(work / "scifact.bmp"))
    peer = {q: list(zip(*searcher.search(v, k=10, alpha=1.0, beta=1.0))) for q, v in queries.items()}
    _write_run(work / "numba.trec", exact)
    _write_run(work / "bmp.trec", peer)
    overlap = sum(len({d for d, _ in exact[q]} & {d for d, _ in peer[q]}) for q in queries) / (10 * len(queries))
    identical = sum(1 for q in queries if [d for d, _ in exact[q]] == [d for d, _ in peer[q]])
    qrels = SCIFACT / "qrels.test.txt"
    rows = [["CIFF export", f"{info['documents']:,} documents, {info['postings']:,} postings", info["seconds"],
             round((work / "scifact.ciff").stat().st_size / 2**20, 1), "", "read back by ciff-toolkit: "
             + ("postings identical to the input" if same else "POSTINGS DIFFER")],
            ["Numba index (exact)", "300 queries", "", "", round(_ndcg10(work / "numba.trec", qrels), 4), ""],
            ["BMP from the CIFF file", "300 queries", round(build_s, 1), "", round(_ndcg10(work / "bmp.trec", qrels), 4),
             f"top-10 overlap with exact {overlap:.3f}; {identical}/300 top 10 identical (BMP's scores are 8-bit quantized)"]]
    from bench.results import write_result

    write_result("scale-ciff", "SciFact test through a CIFF export (splade-tiny)",
                 ["step", "data", "seconds", "MiB", "nDCG@10", "check"], rows,
                 data="BEIR SciFact test (5,183 documents, 300 queries), splade-tiny x100",
                 command=f"python -m bench.scale_ciff {shlex.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
