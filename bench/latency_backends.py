"""Backends the latency harness times (``bench/latency.py``): the common interface, ours (Numba, Lucene
through Pyserini); the peers are in ``bench/latency_peers.py``."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from bench.latency_workloads import Workload, dir_size, ensure_jsonvector, timed_json
from splade_anserini.index.numba_index import NumbaIndex

ALL_BACKENDS = ("numba", "numba-batch", "numba-ids", "lucene", "splade-index", "pisa-maxscore", "pisa-bmw", "seismic", "bm25s")
EXACT = {"numba", "numba-batch", "numba-ids", "lucene", "splade-index", "pisa-maxscore", "pisa-bmw"}


class Backend:
    name = "?"
    exact = True
    build_info: dict = {}

    def search(self, i: int, k: int):
        """Top-k of query ``i`` as the backend's API returns it (timed); :meth:`unpack` turns it into
        (docids, scores) in rank order outside the timing."""
        raise NotImplementedError

    @staticmethod
    def unpack(result):
        return result

    def batch(self, k: int, threads: int) -> None:
        raise NotImplementedError

    def search_text(self, i: int, k: int):
        raise NotImplementedError

    def close(self) -> None:
        pass


class NumbaBackend(Backend):
    name = "numba"

    def __init__(self, w: Workload, encoder=None):
        self.index = NumbaIndex.load(w.numba_dir)  # memory-mapped: page cache, not process memory
        for array in (self.index.docs, self.index.impacts, self.index.dense, self.index.offsets):
            np.asarray(array).sum()  # fault the pages in before timing
        self.queries = w.queries
        self.texts = w.texts
        self.encoder = encoder
        self.build_info = {"seconds": w.numba_build.get("seconds"), "bytes": dir_size(w.numba_dir),
                           "note": f"from {w.numba_build.get('source', '?')}"}

    def search(self, i, k):
        return self.index.search(self.queries[i], k)  # the public API: [(docid, score), ...]

    @staticmethod
    def unpack(hits):
        return [d for d, _ in hits], [s for _, s in hits]

    def search_text(self, i, k):
        vec = self.encoder.to_impacts(self.encoder.encode_queries([self.texts[i]])[0])
        return self.index.search(vec, k)

    def batch(self, k, threads):
        self.index.batch_search(self.queries, k, threads)


class NumbaIdsBackend(NumbaBackend):
    """The array-level API (``search_ids`` / ``batch_search_ids``): internal ids and scores, no Python
    tuples; the output level of the splade-index and bm25s kernels."""

    name = "numba-ids"

    def __init__(self, w: Workload, encoder=None):
        super().__init__(w, encoder)
        self.encoded = [self.index.encode_query(q) for q in self.queries]
        self.build_info = dict(self.build_info, note="arrays out (search_ids / batch_search_ids)")

    def search(self, i, k):
        ids, scores = self.index.search_ids(*self.encoded[i], k=k)
        return self.index._docid_array[ids].tolist(), scores.tolist()

    @staticmethod
    def unpack(result):
        return result

    def batch(self, k, threads):
        self.index.batch_search_ids(self.encoded, k, threads)


def build_lucene(w: Workload) -> tuple[Path, dict]:
    index_dir = w.workdir / "lucene"
    if not (w.workdir / "lucene.build.json").is_file():
        vectors = ensure_jsonvector(w)  # not timed: the input of every backend's build

    def build():
        from splade_anserini.index.build import build_lucene_index

        if index_dir.exists():
            shutil.rmtree(index_dir)
        report = build_lucene_index(vectors, index_dir, threads=2, memory_buffer_mb=1024)
        return {"indexed": report.indexed}

    meta = timed_json(w.workdir / "lucene.build.json", build)
    return index_dir, meta


class LuceneBackend(Backend):
    name = "lucene"

    def __init__(self, w: Workload, encoder=None):
        from splade_anserini import java
        from splade_anserini.search.query_encoder import PreEncodedQueries, QueryVectorizer

        index_dir, meta = build_lucene(w)
        lucene = java.pyserini_lucene()
        self.keys = [str(i) for i in range(len(w.queries))]
        self.searcher = lucene.LuceneImpactSearcher(str(index_dir), PreEncodedQueries(dict(zip(self.keys, w.queries))),
                                                    min_idf=float("-inf"))
        self.text_searcher = None
        if encoder is not None and w.texts is not None:
            self.text_searcher = lucene.LuceneImpactSearcher(str(index_dir), QueryVectorizer(encoder=encoder),
                                                             min_idf=float("-inf"))
        self.texts = w.texts
        self.build_info = {"seconds": meta["seconds"], "bytes": dir_size(index_dir), "note": "Anserini, 2 threads"}

    def search(self, i, k):
        return self.searcher.search(self.keys[i], k)

    @staticmethod
    def unpack(hits):
        return [h.docid for h in hits], [int(round(h.score)) for h in hits]

    def search_text(self, i, k):
        return self.text_searcher.search(self.texts[i], k)

    def batch(self, k, threads):
        self.searcher.batch_search(self.keys, self.keys, k=k, threads=threads)

    def close(self):
        for s in (self.searcher, self.text_searcher):
            if s is not None:
                s.close()

