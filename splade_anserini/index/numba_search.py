"""Searching the Numba reference index (:class:`splade_anserini.index.numba_index.NumbaIndex`): queries
encoded to term ids and integer weights, the accumulator type and per-thread scratch, and the calls
into the search kernels of :mod:`splade_anserini.index.numba_kernels`, one query or a batch in parallel.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numba
import numpy as np

from splade_anserini.conversion.trec import Run

from splade_anserini.index.numba_kernels import search_one, search_parallel, search_range

_INT32_MAX = np.iinfo(np.int32).max


def _is_integral(value) -> bool:
    try:
        return float(value).is_integer() and not isinstance(value, (bool, np.bool_))
    except (TypeError, ValueError):
        return False


class IndexSearch:
    """The search methods of :class:`~splade_anserini.index.numba_index.NumbaIndex`, which holds the
    arrays they read (``offsets``, ``docs``, ``impacts``, ``max_impact``, ``dense_row``, ``dense``), its
    sizes (``n_docs``, ``block_bits``), ``_term_index`` (token -> term id), ``_docid_array`` (docids by
    internal id) and ``_local`` (per-thread scratch)."""

    def encode_query(self, query: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """``{token: weight}`` -> (term ids, int64 weights); unknown tokens and weights <= 0 dropped."""
        if not query:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        get = self._term_index.get
        terms = np.array([get(token, -1) for token in query], dtype=np.int64)
        weights = np.array(list(query.values()))
        if weights.dtype.kind not in "iu" and not (weights.dtype.kind == "f" and np.array_equal(weights, np.rint(weights))):
            bad = next((t for t, w in query.items() if not _is_integral(w)), next(iter(query)))
            raise ValueError(f"query weight of {bad!r} is {query[bad]!r}: quantize query vectors to integers first")
        keep = (terms >= 0) & (weights > 0)
        return terms[keep], weights[keep].astype(np.int64)

    def max_score(self, terms: np.ndarray, weights: np.ndarray) -> int:
        """Upper bound of any document's score for the encoded query."""
        return int(np.dot(np.asarray(weights, dtype=object), self.max_impact[terms].astype(object))) if len(terms) else 0

    def _acc_dtype(self, terms: np.ndarray, weights: np.ndarray) -> np.dtype:
        """int32 accumulators unless the query's largest possible score would overflow them."""
        if not len(terms):
            return np.dtype(np.int32)
        bound = float(np.dot(weights.astype(np.float64), self.max_impact[terms].astype(np.float64)))
        if bound < _INT32_MAX / 2:
            return np.dtype(np.int32)
        return np.dtype(np.int32) if self.max_score(terms, weights) <= _INT32_MAX else np.dtype(np.int64)

    def _acc_len(self) -> int:
        return max(1, min(self.n_docs, 1 << self.block_bits))

    def _workspace(self, dtype: np.dtype, cap: int):
        """Per-thread scratch (accumulator, buffer, histogram), reused across queries."""
        key = (dtype.name, cap)
        ws = getattr(self._local, "ws", None)
        if ws is None or ws[0] != key:
            ws = (key, np.empty(self._acc_len(), dtype=dtype), np.empty(cap, dtype=dtype),
                  np.empty(cap, dtype=np.int32), np.empty(cap, dtype=dtype), np.empty(2048, dtype=np.int64))
            self._local.ws = ws
        return ws[1:]

    @staticmethod
    def _capacity(k: int) -> int:
        return max(2 * k, 1024)

    def search_ids(self, terms: np.ndarray, weights: np.ndarray, k: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Low-level search of an encoded query: (internal doc ids, scores), best first."""
        k = min(int(k), self.n_docs)
        if k <= 0 or len(terms) == 0:
            return np.empty(0, np.int32), np.empty(0, np.int64)
        dtype = self._acc_dtype(terms, weights)
        acc, bs, bd, tmp, hist = self._workspace(dtype, self._capacity(k))
        out_s = np.empty(k, dtype=dtype)
        out_d = np.empty(k, dtype=np.int32)
        n = search_one(np.ascontiguousarray(terms, dtype=np.int64), weights.astype(dtype), self.offsets, self.docs,
                        self.impacts, self.dense_row, self.dense, self.n_docs, self.block_bits, k, acc, bs, bd, tmp,
                        hist, out_s, out_d, dtype == np.int32)
        return out_d[:n], out_s[:n]

    def search(self, query: Mapping[str, int], k: int = 1000) -> list[tuple[str, int]]:
        """Exact top-``k`` ``(docid, score)`` for ``{token: int weight}``: score desc, then docid asc.

        Tokens absent from the index are ignored; an empty query gives an empty list."""
        ids, scores = self.search_ids(*self.encode_query(query), k=k)
        return list(zip(self._docid_array[ids].tolist(), scores.tolist()))

    def batch_search(self, queries: Sequence[Mapping[str, int]], k: int = 1000,
                     threads: int = 1) -> list[list[tuple[str, int]]]:
        """``search`` for every query of a sequence, in parallel over queries on ``threads`` Numba
        threads; the results in the same order. :meth:`search_run` takes ``{qid: query}``."""
        if isinstance(queries, Mapping):
            raise TypeError("batch_search takes a sequence of queries; search_run takes {qid: query}")
        ids, scores, counts = self.batch_search_ids([self.encode_query(q) for q in queries], k, threads)
        docid_rows = self._docid_array[ids]
        return [list(zip(docid_rows[q, :n].tolist(), scores[q, :n].tolist())) for q, n in enumerate(counts.tolist())]

    def search_run(self, queries: Mapping[str, Mapping[str, int]], k: int = 1000, threads: int = 1) -> Run:
        """:meth:`batch_search` for ``{qid: query}``: a run ``{qid: [(docid, score), ...]}`` in the
        queries' order, each list ranked (score desc, docid asc)."""
        qids = list(queries)
        return dict(zip(qids, self.batch_search([queries[q] for q in qids], k, threads)))

    def batch_search_ids(self, encoded: Sequence[tuple[np.ndarray, np.ndarray]], k: int = 1000,
                         threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Low-level batch search: ``(ids [nq, k], scores [nq, k], counts [nq])``; row q is valid up to counts[q]."""
        nq = len(encoded)
        k = max(0, min(int(k), self.n_docs))
        q_ptr = np.zeros(nq + 1, dtype=np.int64)
        np.cumsum([len(t) for t, _ in encoded], out=q_ptr[1:])
        dtype = np.dtype(np.int32)
        if any(self._acc_dtype(t, w) == np.int64 for t, w in encoded):
            dtype = np.dtype(np.int64)
        q_terms = np.concatenate([t for t, _ in encoded]).astype(np.int64) if nq else np.empty(0, np.int64)
        q_weights = np.concatenate([w for _, w in encoded]).astype(dtype) if nq else np.empty(0, dtype)
        out_s = np.zeros((nq, k), dtype=dtype)
        out_d = np.zeros((nq, k), dtype=np.int32)
        out_n = np.zeros(nq, dtype=np.int64)
        if nq == 0 or k == 0:
            return out_d, out_s, out_n
        threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS, nq))
        args = (q_ptr, q_terms, q_weights, self.offsets, self.docs, self.impacts, self.dense_row, self.dense,
                self.n_docs, self.block_bits, k)
        cap = self._capacity(k)
        if threads == 1:
            search_range(*args, *self._workspace(dtype, cap), out_s, out_d, out_n, 0, nq, dtype == np.int32)
        else:
            previous = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                search_parallel(*args, self._acc_len(), cap, out_s, out_d, out_n, min(nq, threads * 4),
                                 dtype == np.int32)
            finally:
                numba.set_num_threads(previous)
        return out_d, out_s, out_n
