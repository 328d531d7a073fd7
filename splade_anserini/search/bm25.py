"""BM25 through Anserini (Pyserini's ``LuceneSearcher``): the baseline and the hard-negative miner.

* :func:`build_bm25_index` turns a BEIR ``corpus.jsonl`` or MS MARCO ``collection.tsv`` into a Lucene
  index (title and text joined, as BEIR "flat"), written to a temporary directory and renamed into
  place when complete.
* :func:`bm25_search` runs topics against it (default ``k1=0.9, b=0.4``, Anserini's BEIR setting) and
  returns ``{qid: [(docid, score), ...]}`` best first.

The JVM starts through :mod:`splade_anserini.java` on the first call, never at import.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.trec import Run

from splade_anserini import outputs
from splade_anserini.data import read_corpus, read_topics

#: BM25 parameters of the baseline and the miner: Anserini's BEIR setting (the one place they are written).
K1 = 0.9
B = 0.4


BM25_KIND = "bm25-index"


def build_bm25_index(corpus: str | os.PathLike, index_dir: str | os.PathLike, *, threads: int = 1,
                     overwrite: bool = False, fmt: str | None = None) -> Path:
    """Index ``corpus`` for BM25 into ``index_dir``; returns it. A BM25 index this tool built there is
    kept unless ``overwrite``; anything else at ``index_dir`` is refused
    (:class:`~splade_anserini.outputs.OutputRefused`); a failed build leaves nothing at ``index_dir``."""
    index_dir = Path(index_dir)
    with outputs.lock(outputs.lock_path(index_dir), f"BM25 index {index_dir}"):
        if outputs.check_dir(index_dir, BM25_KIND) and any(index_dir.glob("segments_*")) and not overwrite:
            return index_dir
        work = outputs.temp_dir(index_dir, "building")
        try:
            _build(corpus, work, threads, fmt)
            outputs.install_dir(work / "index", index_dir, BM25_KIND)
        finally:
            outputs.remove(work)
    return index_dir


def _build(corpus, work: Path, threads: int, fmt: str | None) -> None:
    from splade_anserini import java

    docs_dir, staging = work / "docs", work / "index"
    docs_dir.mkdir()
    n = empty = 0
    with open(docs_dir / "docs.jsonl", "w", encoding="utf-8") as fh:
        for doc in read_corpus(corpus, fmt):
            fh.write(json.dumps({"id": doc.docid, "contents": doc.text}) + "\n")
            n += 1
            empty += not doc.text  # Anserini counts these as empty and leaves them out
    if not n:
        raise InputError(corpus, None, "no documents")
    try:
        java.index_collection({"collection": "JsonCollection", "input": docs_dir, "index": staging,
                               "generator": "DefaultLuceneDocumentGenerator", "threads": threads},
                              expected=n - empty, expected_empty=empty)
    except java.AnseriniError as exc:
        raise RuntimeError(str(exc)) from None


def bm25_search(index_dir: str | os.PathLike, topics: Mapping[str, str] | str | os.PathLike, k: int = 1000, *,
                k1: float = K1, b: float = B, threads: int = 1) -> Run:
    """BM25 top-``k`` for every topic (a ``{qid: text}`` mapping or a ``qid<TAB>text`` file)."""
    from splade_anserini import java

    if not isinstance(topics, Mapping):
        topics = read_topics(topics)
    if not Path(index_dir, ).is_dir():
        raise FileNotFoundError(f"BM25 index {index_dir}: no such directory (run build_bm25_index first)")
    from splade_anserini.anserini_version import check_index_readable

    check_index_readable(index_dir)
    searcher = java.pyserini_lucene().LuceneSearcher(str(index_dir))
    searcher.set_bm25(k1, b)
    qids = list(topics)
    hits = searcher.batch_search([topics[q] for q in qids], qids, k=k, threads=max(1, threads))
    run = {q: [(h.docid, float(h.score)) for h in hits.get(q, [])] for q in qids}
    searcher.close()
    return run
