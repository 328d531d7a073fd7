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
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from conversion.errors import InputError
from conversion.trec import Run

from .data import read_corpus, read_topics

#: BM25 parameters of the baseline and the miner: Anserini's BEIR setting (the one place they are written).
K1 = 0.9
B = 0.4


def build_bm25_index(corpus: str | os.PathLike, index_dir: str | os.PathLike, *, threads: int = 1,
                     overwrite: bool = False, fmt: str | None = None) -> Path:
    """Index ``corpus`` for BM25 into ``index_dir``; returns it. An existing index is kept unless
    ``overwrite``; a failed build leaves nothing at ``index_dir``."""
    from . import java

    index_dir = Path(index_dir)
    if index_dir.is_dir() and any(index_dir.glob("segments_*")) and not overwrite:
        return index_dir
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=index_dir.parent, prefix=f".{index_dir.name}.") as tmp:
        docs_dir, staging = Path(tmp) / "docs", Path(tmp) / "index"
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
        if index_dir.exists():
            shutil.rmtree(index_dir)
        os.replace(staging, index_dir)
    return index_dir


def bm25_search(index_dir: str | os.PathLike, topics: Mapping[str, str] | str | os.PathLike, k: int = 1000, *,
                k1: float = K1, b: float = B, threads: int = 1) -> Run:
    """BM25 top-``k`` for every topic (a ``{qid: text}`` mapping or a ``qid<TAB>text`` file)."""
    from . import java

    if not isinstance(topics, Mapping):
        topics = read_topics(topics)
    if not Path(index_dir, ).is_dir():
        raise FileNotFoundError(f"BM25 index {index_dir}: no such directory (run build_bm25_index first)")
    from .anserini_version import check_index_readable

    check_index_readable(index_dir)
    searcher = java.pyserini_lucene().LuceneSearcher(str(index_dir))
    searcher.set_bm25(k1, b)
    qids = list(topics)
    hits = searcher.batch_search([topics[q] for q in qids], qids, k=k, threads=max(1, threads))
    run = {q: [(h.docid, float(h.score)) for h in hits.get(q, [])] for q in qids}
    searcher.close()
    return run
