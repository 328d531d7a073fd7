"""The SciFact slice the export tests share (no tests here): documents, queries, splade-tiny vectors."""
from __future__ import annotations

import json
from pathlib import Path


def scifact_slice(data_dir: Path, folder: Path, n_docs: int = 120, n_queries: int = 5) -> Path:
    """The first ``n_docs`` SciFact documents plus the positives of ``n_queries`` test queries."""
    from splade_anserini.data import read_qrels, read_topics

    sci = data_dir / "scifact"
    qrels, topics = read_qrels(sci / "qrels.test.txt"), read_topics(sci / "queries.test.tsv")
    qids = [q for q in topics if q in qrels][:n_queries]
    wanted = {d for q in qids for d in qrels[q]}
    with open(sci / "corpus.jsonl", encoding="utf-8") as fh:
        lines = [line for i, line in enumerate(fh) if i < n_docs or json.loads(line)["_id"] in wanted]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    (folder / "queries.tsv").write_text("".join(f"{q}\t{topics[q]}\n" for q in qids), encoding="utf-8")
    return folder


def encoded_slice(data_dir: Path, folder: Path, *, numba: bool = True) -> Path:
    """The slice encoded by splade-tiny into ``folder/vectors`` (and its Numba index ``folder/numba``)."""
    from splade_anserini.encode.corpus import main as encode_main
    from splade_anserini.index.build import build_numba_index

    scifact_slice(data_dir, folder)
    assert encode_main(["--corpus", str(folder / "corpus.jsonl"), "--output", str(folder / "vectors"),
                        "--no-progress"]) == 0
    if numba:
        build_numba_index(folder / "vectors", folder / "numba")
    return folder


def read_vectors(folder: Path) -> dict[str, dict[str, int]]:
    from splade_anserini.conversion.jsonvector import read_jsonvector

    return {d.docid: d.vector for d in read_jsonvector(folder)}
