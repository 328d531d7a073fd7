"""What OpenSearch/Elasticsearch storage precision (9 significant bits) costs, measured on the Numba index.

    python -m bench.scale_precision --work work/scale-precision \
        --dataset scifact=work/scifact-splade-tiny/vectors --dataset cacm=work/cacm-splade-tiny/vectors

Each ``NAME=VECTORS`` (the test topics and qrels of ``../shared/data/NAME``) is indexed with the Numba
backend and searched twice with splade-tiny queries: exact impacts, and impacts truncated as a Lucene
FeatureField stores them (``search --simulate-storage-precision``). Writes ``results/scale-precision.json``.
"""
from __future__ import annotations

import argparse
import shlex
import contextlib
import io
import sys
from pathlib import Path

from bench.scale_milvus import _ndcg10

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _files(name: str) -> tuple[Path, Path]:
    folder = DATA / name
    topics = next(p for p in (folder / "queries.test.tsv", folder / "queries.tsv", folder / "topics.tsv") if p.is_file())
    qrels = next(p for p in (folder / "qrels.test.txt", folder / "qrels.txt") if p.is_file())
    return topics, qrels


def measure(name: str, vectors: Path, work: Path) -> list:
    """One dataset's row: documents, largest impact, impacts changed, nDCG@10 exact and simulated."""
    import numpy as np

    from splade_anserini.export.precision import stored_impacts
    from splade_anserini.index.build import build_numba_index
    from splade_anserini.index.numba_index import NumbaIndex
    from splade_anserini.search.run import main as search_main

    index = work / name / "numba"
    if not index.exists():
        build_numba_index(vectors, index)
    topics, qrels = _files(name)
    ndcg = []
    for simulate in ([], ["--simulate-storage-precision"]):
        run = work / name / f"run{'-simulated' if simulate else ''}.trec"
        with contextlib.redirect_stderr(io.StringIO()):
            assert search_main(["--backend", "numba", "--index", str(index), "--topics", str(topics), "--output",
                                str(run), "--hits", "1000", *simulate]) == 0
        ndcg.append(round(_ndcg10(run, qrels), 4))
    loaded = NumbaIndex.load(index)
    impacts = np.asarray(loaded.impacts)
    changed = int(np.count_nonzero(stored_impacts(impacts) != impacts))
    return [name, loaded.n_docs, int(impacts.max()), f"{changed:,} of {loaded.n_postings:,}", ndcg[0], ndcg[1],
            round(ndcg[1] - ndcg[0], 4)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--dataset", action="append", required=True, metavar="NAME=VECTORS")
    args = parser.parse_args(argv)
    rows = [measure(name, Path(vectors), args.work) for name, vectors in (d.split("=", 1) for d in args.dataset)]
    from bench.results import write_result

    write_result("scale-precision", "nDCG@10 with document impacts stored as OpenSearch/Elasticsearch store them",
                 ["dataset", "documents", "largest impact", "impacts changed", "nDCG@10 exact",
                  "nDCG@10 9-bit storage", "difference"], rows,
                 data="test topics; splade-tiny x100 vectors, Numba index, 1000 hits",
                 notes=["9-bit storage: each document impact truncated to 9 significant bits (Lucene FeatureField: "
                        "float bits >> 15), simulated by `search --backend numba --simulate-storage-precision`"],
                 command=f"python -m bench.scale_precision {shlex.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
