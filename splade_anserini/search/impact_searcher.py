"""Anserini's ``SimpleImpactSearcher`` without Pyserini's Python layer (which imports torch).

A serving process that encodes queries with ONNX Runtime (or inside the JVM, see
:mod:`splade_anserini.serve.java_encoder`) reaches the Lucene impact index through pyjnius only:

>>> searcher = ImpactSearcher("work/scifact-splade-tiny/index")
>>> searcher.search({"aspirin": 212, "heart": 95}, k=10)       # [(docid, score), ...]

Only the ``k`` hits asked for cross pyjnius (``search(vector, k=10)`` hands over 10 proxies, not
1,000). Every query token is kept, as ``SearchCollection`` does (Pyserini's ``LuceneImpactSearcher`` with
``min_idf=-inf``); tokens absent from the index match nothing. Rankings are Anserini's: score
descending, docid ascending.
"""
from __future__ import annotations

import os
from typing import Mapping

from splade_anserini.conversion.trec import Hits


class ImpactSearcher:
    """``io.anserini.search.SimpleImpactSearcher`` over ``index``; ``close()`` when done."""

    def __init__(self, index: str | os.PathLike):
        from splade_anserini import java
        from splade_anserini.anserini_version import check_index_readable

        check_index_readable(index)
        java.start_jvm()
        self._java = java
        self.object = java.autoclass("io.anserini.search.SimpleImpactSearcher")(os.fspath(index))
        self._HashMap = java.autoclass("java.util.HashMap")
        self._ArrayList = java.autoclass("java.util.ArrayList")
        self._Integer = java.autoclass("java.lang.Integer")
        self._integers: dict[int, object] = {}

    def _jmap(self, vector: Mapping[str, int]):
        """The query as a Java ``HashMap<String, Integer>``. Boxed weights are made once per value and
        reused: a pyjnius constructor call per token was 4/5 of the hand-over's cost."""
        jvec = self._HashMap()
        put, boxed = jvec.put, self._integers
        for token, weight in vector.items():
            value = boxed.get(weight)
            if value is None:
                value = boxed[int(weight)] = self._Integer(int(weight))
            put(token, value)
        return jvec

    @staticmethod
    def _hits(found) -> Hits:
        return [(h.docid, float(h.score)) for h in found]

    def search(self, vector: Mapping[str, int], k: int = 10) -> Hits:
        """Top ``k`` for one ``{token: int impact}`` query."""
        return self._hits(self.object.search(self._jmap(vector), int(k)))

    def search_text(self, text: str, k: int = 10) -> Hits:
        """Top ``k`` for a text query encoded inside the JVM (needs a Java-side encoder)."""
        return self._hits(self.object.search(text, int(k)))

    def batch_search(self, vectors: Mapping[str, Mapping[str, int]], k: int = 10, threads: int = 1) -> dict[str, Hits]:
        """``{qid: hits}`` for ``{qid: vector}``, searched by ``threads`` Java threads."""
        queries, qids = self._ArrayList(), self._ArrayList()
        for qid, vector in vectors.items():
            queries.add(self._jmap(vector))
            qids.add(qid)
        found = self.object.batch_search(queries, qids, int(k), max(1, int(threads)))
        return {qid: self._hits(found.get(qid) or []) for qid in vectors}

    def batch_search_texts(self, topics: Mapping[str, str], k: int = 10) -> dict[str, Hits]:
        """``{qid: hits}`` for ``{qid: text}`` encoded inside the JVM (Anserini uses all cores here)."""
        texts, qids = self._ArrayList(), self._ArrayList()
        for qid, text in topics.items():
            texts.add(text)
            qids.add(qid)
        found = self.object.batch_search_queries(texts, qids, int(k), 1)
        return {qid: self._hits(found.get(qid) or []) for qid in topics}

    def encode_text(self, text: str) -> dict[str, int]:
        """The Java-side encoder's ``{token: int weight}`` for ``text``."""
        found = self.object.encode_with_onnx(text)
        return {str(e.getKey()): int(e.getValue()) for e in found.entrySet().toArray()}

    def close(self) -> None:
        self.object.close()


def impact_search(index: str | os.PathLike, vectors: Mapping[str, Mapping[str, int]], *, k: int = 1000,
                  threads: int = 1) -> dict[str, Hits]:
    """Search pre-encoded queries on a Lucene impact index; ``{qid: [(docid, score)]}``."""
    from splade_anserini.java_errors import answer_every_query

    searcher = ImpactSearcher(index)
    try:
        return answer_every_query(lambda: searcher.batch_search(vectors, k, threads), list(vectors),
                                  lambda qid: searcher.search(vectors[qid], k), "Anserini SimpleImpactSearcher")
    finally:
        searcher.close()

