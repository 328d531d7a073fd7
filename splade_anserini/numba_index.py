"""The Numba reference index: an exact inverted index over integer SPLADE impacts.

One job: build, save, load and search a document-ordered inverted index *exactly* (every posting of
every query term is scored, nothing is pruned), ranked as Anserini ranks: score descending, ties
broken by collection docid ascending (Lucene sorts the ``id`` doc values as UTF-8 bytes, which is
Python's ``str`` order).

Layout (numpy arrays, memory-mapped when loaded):

* documents are renumbered so that internal id ``i`` is the ``i``-th docid in sorted order: the
  kernel breaks score ties by internal id, which *is* the docid order;
* documents are cut into blocks of ``2**16`` ids. A term's postings are contiguous and doc-ordered;
  ``offsets[t, b]:offsets[t, b + 1]`` is the part of term ``t``'s list in block ``b``. Doc ids are
  stored as ``uint16`` offsets inside their block (global id = ``b * 65536 + local``), impacts in
  the smallest unsigned type that holds them: 3-4 bytes a posting;
* the most frequent terms (document frequency >= ``dense_min_df`` of the collection, impacts <= 255)
  also get a dense ``uint8`` row of impacts over all documents: SPLADE queries spend most of their
  postings on a few such expansion terms, and a dense row is summed with SIMD instructions at one
  byte a document instead of a scattered update per posting.

Search is term-at-a-time, block by block, into an ``int32`` accumulator of one block (256 KiB, it
stays in the L2 cache while postings stream from memory): the dense rows first (in chunks of 32K documents),
then the sparse posting lists, then one scan of the block collects the documents above the current
k-th score into a buffer (a vectorized compare skips each 64 documents with nothing above it; the
first block starts from a threshold sampled from itself, and is scanned again from zero in the rare
case that left fewer than k); when the buffer fills, a radix select finds its k-th score and keeps
the best k. The final k are sorted by (score desc, docid asc). ``int64`` accumulators are used
instead when a query's largest possible score would not fit in 32 bits. ``batch_search`` runs the
same kernel over the queries in parallel (``numba.prange``, one workspace per chunk of queries);
every kernel releases the GIL, so ``search`` can also be called from a Python thread pool.

Saved format (a directory): ``header.json`` (format name and version, quantization factor, counts,
dtypes, the vocabulary and the document ids in internal order) and ``offsets.npy`` (int64
``[n_terms, n_blocks + 1]``), ``docs.npy``, ``impacts.npy``, ``max_impact.npy`` (per term),
``dense_row.npy`` (int32 per term, -1 when sparse only) and ``dense.npy`` (uint8
``[n_dense, n_docs]``).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numba
import numpy as np
from numba import njit, prange

FORMAT = "splade-anserini-numba-index"
FORMAT_VERSION = 1
BLOCK_BITS = 16
DENSE_MIN_DF = 0.1
_ARRAYS = ("offsets", "docs", "impacts", "max_impact", "dense_row", "dense")
_INT32_MAX = np.iinfo(np.int32).max
_CHUNK = 32768  # documents per chunk (128 KiB of accumulator) when summing dense rows


class IndexFormatError(ValueError):
    """A directory that is not a Numba index of the version this code reads."""


# -- build kernels --------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _count_csr(indptr, indices, data, row_rank, n_terms, n_blocks, block_bits):
    """Postings per (term, block) of CSR rows, impacts <= 0 skipped; row r is internal doc row_rank[r]."""
    counts = np.zeros((n_terms, n_blocks), dtype=np.int64)
    for r in range(len(indptr) - 1):
        b = row_rank[r] >> block_bits
        for j in range(indptr[r], indptr[r + 1]):
            if data[j] > 0:
                counts[indices[j], b] += 1
    return counts


@njit(cache=True, nogil=True)
def _fill_csr(indptr, indices, data, row_order, offsets, docs, impacts, block_bits):
    """Counting-sort transpose: rows visited in internal-id order, so every list comes out doc-ordered."""
    n_terms, n_cols = offsets.shape
    cursor = offsets[:, :n_cols - 1].copy()
    mask = (1 << block_bits) - 1
    for internal in range(len(row_order)):
        r = row_order[internal]
        b = internal >> block_bits
        for j in range(indptr[r], indptr[r + 1]):
            v = data[j]
            if v > 0:
                t = indices[j]
                p = cursor[t, b]
                docs[p] = internal & mask
                impacts[p] = v
                cursor[t, b] = p + 1


@njit(cache=True, nogil=True)
def _count_csc(col_ptr, rows, vals, row_rank, identity, n_blocks, block_bits):
    n_terms = len(col_ptr) - 1
    counts = np.zeros((n_terms, n_blocks), dtype=np.int64)
    for t in range(n_terms):
        for j in range(col_ptr[t], col_ptr[t + 1]):
            if vals[j] > 0:
                d = rows[j] if identity else row_rank[rows[j]]
                counts[t, d >> block_bits] += 1
    return counts


@njit(cache=True, nogil=True)
def _fill_csc(col_ptr, rows, vals, row_rank, identity, offsets, docs, impacts, block_bits):
    """Copy each term's list in internal-id order (sorting a list only when the renumbering demands it)."""
    mask = (1 << block_bits) - 1
    for t in range(len(col_ptr) - 1):
        lo, hi = col_ptr[t], col_ptr[t + 1]
        keys = np.empty(hi - lo, dtype=np.int64)
        n = 0
        ordered = True
        for j in range(lo, hi):
            if vals[j] > 0:
                d = rows[j] if identity else row_rank[rows[j]]
                keys[n] = d * (1 << 32) + vals[j]  # (doc, impact) pairs sort as one int64
                if n and keys[n] < keys[n - 1]:
                    ordered = False
                n += 1
        keys = keys[:n] if ordered else np.sort(keys[:n])
        p = offsets[t, 0]
        for i in range(n):
            docs[p] = (keys[i] >> 32) & mask
            impacts[p] = keys[i] & 0xFFFFFFFF
            p += 1


@njit(cache=True, nogil=True)
def _fill_dense(offsets, docs, impacts, dense_terms, dense, block_bits):
    for r in range(len(dense_terms)):
        t = dense_terms[r]
        for b in range(offsets.shape[1] - 1):
            base = b << block_bits
            for j in range(offsets[t, b], offsets[t, b + 1]):
                dense[r, base + docs[j]] = impacts[j]


@njit(cache=True, nogil=True)
def _global_ids(offsets, docs, block_bits):
    out = np.empty(len(docs), dtype=np.int32)
    for t in range(offsets.shape[0]):
        for b in range(offsets.shape[1] - 1):
            base = b << block_bits
            for j in range(offsets[t, b], offsets[t, b + 1]):
                out[j] = base + docs[j]
    return out


# -- search kernels -------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _kth_largest(vals, n, k, tmp, hist):
    """The k-th largest of the positive integers ``vals[:n]`` (1 <= k <= n): an 11-bit radix select,
    linear whatever the ties. ``tmp`` (len >= n) and ``hist`` (len 2048) are scratch."""
    src = vals
    m = n
    rank = k
    base = vals[0] - vals[0]
    while True:
        top = src[0] - base
        for i in range(1, m):
            top = max(top, src[i] - base)
        shift = 0
        while (top >> shift) >= 2048:
            shift += 1
        hist[:] = 0
        for i in range(m):
            hist[(src[i] - base) >> shift] += 1
        b = top >> shift
        above = 0
        while above + hist[b] < rank:
            above += hist[b]
            b -= 1
        if shift == 0:
            return base + b
        c = 0
        for i in range(m):  # in place when src is tmp: c <= i
            if ((src[i] - base) >> shift) == b:
                tmp[c] = src[i]
                c += 1
        src = tmp
        m = c
        rank -= above
        base += b << shift


@njit(cache=True, nogil=True)
def _keep_best(bs, bd, n, k, tmp, hist):
    """Keep the best k of the buffer ``bs/bd[:n]`` (ascending doc order, so at equal scores the first
    ones win), in place and in order; returns the k-th score."""
    kth = _kth_largest(bs, n, k, tmp, hist)
    need = k
    for i in range(n):
        if bs[i] > kth:
            need -= 1
    o = 0
    for i in range(n):
        v = bs[i]
        if v > kth or (v == kth and need > 0):
            if v == kth:
                need -= 1
            bs[o] = v
            bd[o] = bd[i]
            o += 1
    return kth


@njit(cache=True, nogil=True)
def _collect(acc, width, base, thr, bs, bd, n, k, tmp, hist):
    """Append the documents of one block scoring above ``thr`` to the buffer (keeping the best k when
    it fills, which raises ``thr``); returns the new ``(n, thr)``."""
    cap = len(bs)
    for c in range(0, width, 64):
        e = min(c + 64, width)
        a = acc[c:e]
        if e - c == 64:  # a vectorized compare skips the 64 documents when none is above thr
            hit = 0
            for d in range(64):
                hit |= a[d] > thr
            if hit == 0:
                continue
        for d in range(e - c):
            v = a[d]
            if v > thr:  # docs arrive in ascending id: a later equal score never wins a tie
                if n == cap:
                    thr = _keep_best(bs, bd, n, k, tmp, hist)
                    n = k
                    if v <= thr:
                        continue
                bs[n] = v
                bd[n] = base + c + d
                n += 1
    return n, thr


@njit(cache=True, nogil=True)
def _add_dense(a, dense, rows, row_w, start):
    """``a[:] = sum_r row_w[r] * dense[rows[r], start:start + len(a)]``, summing up to eight rows in one
    pass over ``a``: fewer accumulator loads and stores than a pass per row (measured on the 1M synthetic
    collection: 8 rows a pass over 32K-document chunks sums dense rows about twice as fast as 4 over 4K)."""
    m = len(a)
    a[:] = 0
    i = 0
    while len(rows) - i >= 8:
        r0, r1 = dense[rows[i], start:start + m], dense[rows[i + 1], start:start + m]
        r2, r3 = dense[rows[i + 2], start:start + m], dense[rows[i + 3], start:start + m]
        r4, r5 = dense[rows[i + 4], start:start + m], dense[rows[i + 5], start:start + m]
        r6, r7 = dense[rows[i + 6], start:start + m], dense[rows[i + 7], start:start + m]
        w0, w1, w2, w3 = row_w[i], row_w[i + 1], row_w[i + 2], row_w[i + 3]
        w4, w5, w6, w7 = row_w[i + 4], row_w[i + 5], row_w[i + 6], row_w[i + 7]
        for d in range(m):
            a[d] += (w0 * r0[d] + w1 * r1[d] + w2 * r2[d] + w3 * r3[d]) + \
                    (w4 * r4[d] + w5 * r5[d] + w6 * r6[d] + w7 * r7[d])
        i += 8
    if len(rows) - i >= 4:
        r0, r1 = dense[rows[i], start:start + m], dense[rows[i + 1], start:start + m]
        r2, r3 = dense[rows[i + 2], start:start + m], dense[rows[i + 3], start:start + m]
        w0, w1, w2, w3 = row_w[i], row_w[i + 1], row_w[i + 2], row_w[i + 3]
        for d in range(m):
            a[d] += w0 * r0[d] + w1 * r1[d] + w2 * r2[d] + w3 * r3[d]
        i += 4
    if len(rows) - i >= 2:
        r0, r1 = dense[rows[i], start:start + m], dense[rows[i + 1], start:start + m]
        w0, w1 = row_w[i], row_w[i + 1]
        for d in range(m):
            a[d] += w0 * r0[d] + w1 * r1[d]
        i += 2
    if i < len(rows):
        r0 = dense[rows[i], start:start + m]
        w0 = row_w[i]
        for d in range(m):
            a[d] += w0 * r0[d]


@njit(cache=True, nogil=True)
def _search_one(q_terms, q_weights, offsets, docs, impacts, dense_row, dense, n_docs, block_bits, k,
                acc, bs, bd, tmp, hist, out_s, out_d, packed_sort):
    """Exact top-k of one query into ``out_s/out_d`` (best first); returns the number of hits.

    ``acc``: accumulator of one block (any content); ``bs/bd/tmp``: buffer of capacity >= 2k;
    ``q_weights`` has the accumulator's dtype; ``packed_sort``: scores fit in 31 bits.
    """
    n_blocks = offsets.shape[1] - 1
    block = 1 << block_bits
    cap = len(bs)
    nq = len(q_terms)
    n_dense = 0
    for i in range(nq):
        if dense_row[q_terms[i]] >= 0:
            n_dense += 1
    rows = np.empty(n_dense, dtype=np.int64)
    row_w = np.empty(n_dense, dtype=q_weights.dtype)
    n_dense = 0
    for i in range(nq):
        r = dense_row[q_terms[i]]
        if r >= 0:
            rows[n_dense] = r
            row_w[n_dense] = q_weights[i]
            n_dense += 1
    n = 0
    thr = q_weights[0] - q_weights[0]  # zero of the accumulator dtype: candidates score above thr
    for b in range(n_blocks):
        base = b << block_bits
        width = min(block, n_docs - base)
        if n_dense == 0:
            acc[:width] = 0
        else:  # dense rows first, in chunks, eight rows to a pass over the chunk
            for c in range(0, width, _CHUNK):
                _add_dense(acc[c:min(c + _CHUNK, width)], dense, rows, row_w, base + c)
        for i in range(nq):
            t = q_terms[i]
            if dense_row[t] >= 0:
                continue
            w = q_weights[i]
            lo, hi = offsets[t, b], offsets[t, b + 1]
            dd = docs[lo:hi]  # slices: the loop index starts at 0, so no negative-index checks
            im = impacts[lo:hi]
            for j in range(hi - lo):
                acc[dd[j]] += w * im[j]
        guess = False
        if n == 0:  # first block: start from a threshold sampled from the block, checked below
            step = -(-width // min(cap, 4096))
            m = -(-width // step)
            rank = -(-2 * k // step)  # about 2k documents of the block should score above it
            if rank <= m:
                for i in range(m):
                    bs[i] = acc[i * step]
                thr = _kth_largest(bs, m, rank, tmp, hist)
                guess = thr > 0
        n, thr = _collect(acc, width, base, thr, bs, bd, n, k, tmp, hist)
        if guess and n < k:  # fewer than k above the sampled threshold: it could cut into the top k
            n, thr = _collect(acc, width, base, thr - thr, bs, bd, 0, k, tmp, hist)
    if n > k:
        _keep_best(bs, bd, n, k, tmp, hist)
        n = k
    if packed_sort:  # one int64 key per hit: score high, inverted doc id low
        keys = np.empty(n, dtype=np.int64)
        for i in range(n):
            keys[i] = (np.int64(bs[i]) << 32) | (0xFFFFFFFF - np.int64(bd[i]))
        keys.sort()
        for i in range(n):
            key = keys[n - 1 - i]
            out_s[i] = key >> 32
            out_d[i] = 0xFFFFFFFF - (key & 0xFFFFFFFF)
    else:  # stable sort by score of the doc-ordered buffer
        order = np.argsort(-bs[:n], kind="mergesort")
        for i in range(n):
            out_s[i] = bs[order[i]]
            out_d[i] = bd[order[i]]
    return n


@njit(cache=True, nogil=True)
def _search_range(q_ptr, q_terms, q_weights, offsets, docs, impacts, dense_row, dense, n_docs, block_bits, k,
                  acc, bs, bd, tmp, hist, out_s, out_d, out_n, first, last, packed_sort):
    for q in range(first, last):
        lo, hi = q_ptr[q], q_ptr[q + 1]
        if hi > lo:
            out_n[q] = _search_one(q_terms[lo:hi], q_weights[lo:hi], offsets, docs, impacts, dense_row, dense,
                                   n_docs, block_bits, k, acc, bs, bd, tmp, hist, out_s[q], out_d[q], packed_sort)


@njit(cache=True, nogil=True, parallel=True)
def _search_parallel(q_ptr, q_terms, q_weights, offsets, docs, impacts, dense_row, dense, n_docs, block_bits, k,
                     acc_len, cap, out_s, out_d, out_n, n_chunks, packed_sort):
    nq = len(q_ptr) - 1
    for c in prange(n_chunks):  # one workspace per chunk of queries
        acc = np.empty(acc_len, dtype=q_weights.dtype)
        bs = np.empty(cap, dtype=q_weights.dtype)
        bd = np.empty(cap, dtype=np.int32)
        tmp = np.empty(cap, dtype=q_weights.dtype)
        hist = np.empty(2048, dtype=np.int64)
        _search_range(q_ptr, q_terms, q_weights, offsets, docs, impacts, dense_row, dense, n_docs, block_bits, k,
                      acc, bs, bd, tmp, hist, out_s, out_d, out_n, c * nq // n_chunks, (c + 1) * nq // n_chunks,
                      packed_sort)


# -- the index ------------------------------------------------------------------------------------
def _impact_dtype(max_impact: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_impact <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"impact {max_impact} does not fit in 32 bits")


def _is_integral(value) -> bool:
    try:
        return float(value).is_integer() and not isinstance(value, (bool, np.bool_))
    except (TypeError, ValueError):
        return False


def _sorted_order(docids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rows in docid order, rank of each row)."""
    order = np.array(sorted(range(len(docids)), key=docids.__getitem__), dtype=np.int64)
    rank = np.empty(len(docids), dtype=np.int64)
    rank[order] = np.arange(len(docids), dtype=np.int64)
    return order, rank


def _block_offsets(counts: np.ndarray) -> np.ndarray:
    n_terms, n_blocks = counts.shape
    offsets = np.zeros((n_terms, n_blocks + 1), dtype=np.int64)
    flat = np.cumsum(counts.ravel())
    offsets[:, 1:] = flat.reshape(n_terms, n_blocks)
    offsets[1:, 0] = offsets[:-1, -1]
    return offsets


class NumbaIndex:
    """Exact inverted index over integer impacts; see the module docstring for the layout.

    >>> idx = NumbaIndex.from_vectors([("d1", {"a": 2, "b": 1}), ("d0", {"a": 2})])
    >>> idx.search({"a": 3, "b": 1}, k=10)
    [('d1', 7), ('d0', 6)]
    """

    def __init__(self, vocab: list[str], docids: list[str], offsets: np.ndarray, docs: np.ndarray,
                 impacts: np.ndarray, max_impact: np.ndarray, dense_row: np.ndarray, dense: np.ndarray,
                 factor: float = 100.0, block_bits: int = BLOCK_BITS, dense_min_df: float = DENSE_MIN_DF):
        self.vocab = vocab
        self.docids = docids
        self.offsets = offsets
        self.docs = docs
        self.impacts = impacts
        self.max_impact = max_impact
        self.dense_row = dense_row
        self.dense = dense
        self.factor = float(factor)
        self.block_bits = int(block_bits)
        self.dense_min_df = float(dense_min_df)
        self._term_index = {t: i for i, t in enumerate(vocab)}
        self._docid_array = np.array(docids, dtype=object)
        self._local = threading.local()

    # -- properties ------------------------------------------------------------------------------
    @property
    def n_docs(self) -> int:
        return len(self.docids)

    @property
    def n_terms(self) -> int:
        return len(self.vocab)

    @property
    def n_postings(self) -> int:
        return int(self.docs.shape[0])

    @property
    def n_blocks(self) -> int:
        return int(self.offsets.shape[1] - 1)

    @property
    def bytes_per_posting(self) -> int:
        return self.docs.dtype.itemsize + self.impacts.dtype.itemsize

    def term_index(self) -> dict[str, int]:
        """Token -> term id."""
        return self._term_index

    def df(self, token: str) -> int:
        t = self._term_index.get(token)
        return 0 if t is None else int(self.offsets[t, -1] - self.offsets[t, 0])

    def postings(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """``(internal doc ids, impacts)`` of ``token``, doc-ordered (empty for an unknown token);
        ``self.docids[i]`` is the docid of internal id ``i``."""
        t = self._term_index.get(token)
        if t is None:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        lo, hi = self.offsets[t, 0], self.offsets[t, -1]
        block_of = np.repeat(np.arange(self.n_blocks, dtype=np.int64), np.diff(self.offsets[t]))
        return (block_of << self.block_bits) + self.docs[lo:hi], self.impacts[lo:hi].astype(np.int64)

    def to_csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Term-major ``(col_ptr [n_terms + 1], internal doc ids int32, impacts)``: term ``t``'s documents
        are ``rows[col_ptr[t]:col_ptr[t + 1]]``, ascending."""
        col_ptr = np.empty(self.n_terms + 1, dtype=np.int64)
        col_ptr[:-1] = self.offsets[:, 0]
        col_ptr[-1] = self.offsets[-1, -1] if self.n_terms else 0
        return col_ptr, _global_ids(self.offsets, self.docs, self.block_bits), np.asarray(self.impacts)

    def __repr__(self) -> str:
        return (f"NumbaIndex({self.n_docs} docs, {self.n_terms} terms, {self.n_postings} postings, "
                f"{len(self.dense)} dense rows, factor {self.factor:g})")

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def _assemble(cls, vocab, sorted_docids, offsets, docs, impacts, factor, block_bits,
                  dense_min_df) -> "NumbaIndex":
        n_terms, n_docs = len(vocab), len(sorted_docids)
        max_impact = np.zeros(n_terms, dtype=np.int64)
        lengths = offsets[:, -1] - offsets[:, 0]
        nonempty = lengths > 0
        if len(docs):
            max_impact[nonempty] = np.maximum.reduceat(impacts, offsets[nonempty, 0])
        dense_terms = np.flatnonzero(nonempty & (lengths >= dense_min_df * n_docs) & (max_impact <= 255))
        dense_row = np.full(n_terms, -1, dtype=np.int32)
        dense_row[dense_terms] = np.arange(len(dense_terms), dtype=np.int32)
        dense = np.zeros((len(dense_terms), n_docs), dtype=np.uint8)
        _fill_dense(offsets, docs, impacts, dense_terms.astype(np.int64), dense, block_bits)
        return cls(list(vocab), sorted_docids, offsets, docs, impacts, max_impact, dense_row, dense, factor,
                   block_bits, dense_min_df)

    @classmethod
    def from_csr(cls, csr, factor: float = 100.0, **kwargs) -> "NumbaIndex":
        """From a :class:`conversion.csr.CsrCollection` (rows = documents) of integer impacts."""
        return cls.from_arrays(csr.indptr, csr.indices, csr.data, csr.vocab, csr.ids, factor, **kwargs)

    @classmethod
    def from_arrays(cls, indptr, indices, data, vocab: Sequence[str], docids: Sequence[str],
                    factor: float = 100.0, block_bits: int = BLOCK_BITS,
                    dense_min_df: float = DENSE_MIN_DF) -> "NumbaIndex":
        """From CSR arrays: ``indptr`` (n_docs + 1), ``indices`` (term ids into ``vocab``), ``data``
        (integer impacts; those <= 0 are dropped: they can never score)."""
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        indices = np.ascontiguousarray(indices, dtype=np.int32)
        data = np.ascontiguousarray(data)
        if data.dtype.kind not in "iu":
            if data.dtype.kind != "f" or not np.array_equal(data, np.rint(data)):
                raise ValueError("impacts must be integers: quantize the vectors first (conversion.quantize)")
            data = data.astype(np.int64)
        docids = [str(d) for d in docids]
        vocab = list(vocab)
        n_docs, n_terms = len(docids), len(vocab)
        if len(indptr) != n_docs + 1 or indptr[-1] != len(indices) or len(indices) != len(data):
            raise ValueError("inconsistent CSR arrays")
        if len(indices) and (indices.min() < 0 or indices.max() >= n_terms):
            raise ValueError("term id out of range of the vocabulary")
        cls._check_names(docids, vocab)
        row_order, row_rank = _sorted_order(docids)
        n_blocks = max(1, -(-n_docs // (1 << block_bits)))
        offsets = _block_offsets(_count_csr(indptr, indices, data, row_rank, n_terms, n_blocks, block_bits))
        nnz = int(offsets[-1, -1]) if n_terms else 0
        docs = np.empty(nnz, dtype=np.uint16 if block_bits <= 16 else np.uint32)
        impacts = np.empty(nnz, dtype=_impact_dtype(int(data.max()) if len(data) else 1))
        _fill_csr(indptr, indices, data, row_order, offsets, docs, impacts, block_bits)
        return cls._assemble(vocab, [docids[r] for r in row_order], offsets, docs, impacts, factor, block_bits,
                             dense_min_df)

    @classmethod
    def from_csc(cls, col_ptr, rows, vals, vocab: Sequence[str], docids: Sequence[str],
                 factor: float = 100.0, block_bits: int = BLOCK_BITS,
                 dense_min_df: float = DENSE_MIN_DF) -> "NumbaIndex":
        """From term-major arrays: ``rows[col_ptr[t]:col_ptr[t + 1]]`` are the documents (indices into
        ``docids``) of term ``t`` and ``vals`` their integer impacts. No transpose: the cheap way for
        a large collection that is already inverted."""
        col_ptr = np.ascontiguousarray(col_ptr, dtype=np.int64)
        rows = np.ascontiguousarray(rows)
        vals = np.ascontiguousarray(vals)
        if vals.dtype.kind not in "iu":
            raise ValueError("impacts must be integers: quantize the vectors first (conversion.quantize)")
        docids = [str(d) for d in docids]
        n_docs, n_terms = len(docids), len(vocab)
        if len(col_ptr) != n_terms + 1 or col_ptr[-1] != len(rows) or len(rows) != len(vals):
            raise ValueError("inconsistent CSC arrays")
        if len(rows) and (rows.min() < 0 or rows.max() >= n_docs):
            raise ValueError("document number out of range")
        cls._check_names(docids, list(vocab))
        row_order, row_rank = _sorted_order(docids)
        identity = bool(np.array_equal(row_order, np.arange(n_docs)))
        n_blocks = max(1, -(-n_docs // (1 << block_bits)))
        offsets = _block_offsets(_count_csc(col_ptr, rows, vals, row_rank, identity, n_blocks, block_bits))
        nnz = int(offsets[-1, -1]) if n_terms else 0
        docs = np.empty(nnz, dtype=np.uint16 if block_bits <= 16 else np.uint32)
        impacts = np.empty(nnz, dtype=_impact_dtype(int(vals.max()) if len(vals) else 1))
        _fill_csc(col_ptr, rows, vals, row_rank, identity, offsets, docs, impacts, block_bits)
        return cls._assemble(vocab, [docids[r] for r in row_order], offsets, docs, impacts, factor, block_bits,
                             dense_min_df)

    @staticmethod
    def _check_names(docids: list[str], vocab: list[str]) -> None:
        if len(set(docids)) != len(docids):
            seen: set[str] = set()
            dup = next(d for d in docids if d in seen or seen.add(d))
            raise ValueError(f"duplicate document id {dup!r}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("duplicate token in the vocabulary")

    @classmethod
    def from_vectors(cls, docs: Iterable, vocab: Sequence[str] | None = None, factor: float = 100.0,
                     **kwargs) -> "NumbaIndex":
        """From ``(docid, {token: int impact})`` pairs (or :class:`conversion.jsonvector.VectorDoc`)."""
        from conversion.csr import from_vectors

        csr = from_vectors(((d[0], d[1]) for d in docs), vocab=list(vocab) if vocab else None)
        return cls.from_csr(csr, factor, **kwargs)

    @classmethod
    def from_encoded(cls, docids: Sequence[str], vectors: Sequence, vocab: Sequence[str],
                     factor: float = 100.0, **kwargs) -> "NumbaIndex":
        """From encoder output: :class:`splade_anserini.splade.SparseVector` (term ids into ``vocab``,
        e.g. ``SpladeEncoder.vocab``, and float weights), quantized as the JsonVectorCollection writer
        does (``rint(w * factor)``, zero impacts dropped)."""
        from conversion.quantize import quantize_sparse

        if len(docids) != len(vectors):
            raise ValueError(f"{len(docids)} docids for {len(vectors)} vectors")
        parts_i, parts_v, indptr = [], [], [0]
        for vec in vectors:
            ids, imp = quantize_sparse(vec.ids, vec.weights, factor)
            parts_i.append(np.asarray(ids, dtype=np.int32))
            parts_v.append(imp)
            indptr.append(indptr[-1] + len(ids))
        indices = np.concatenate(parts_i) if parts_i else np.empty(0, np.int32)
        data = np.concatenate(parts_v) if parts_v else np.empty(0, np.int32)
        return cls.from_arrays(np.asarray(indptr), indices, data, vocab, docids, factor, **kwargs)

    @classmethod
    def from_jsonvector(cls, path: str | os.PathLike, factor: float = 100.0, **kwargs) -> "NumbaIndex":
        """From a JsonVectorCollection file or directory (through the conversion layer's CSR form)."""
        from conversion.csr import read_csr

        return cls.from_csr(read_csr(path), factor, **kwargs)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to directory ``path`` (created; index files already there are replaced)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "header.json").unlink(missing_ok=True)  # the header goes last: it marks a complete index
        for name in _ARRAYS:
            tmp = path / f".{name}.npy.tmp"
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(getattr(self, name)))
            os.replace(tmp, path / f"{name}.npy")
        header = {
            "format": FORMAT, "version": FORMAT_VERSION, "factor": self.factor, "block_bits": self.block_bits,
            "dense_min_df": self.dense_min_df, "n_docs": self.n_docs, "n_terms": self.n_terms,
            "n_postings": self.n_postings, "n_dense": int(len(self.dense)), "docs_dtype": self.docs.dtype.name,
            "impacts_dtype": self.impacts.dtype.name, "vocab": self.vocab, "docids": self.docids,
        }
        tmp = path / ".header.json.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(header, fh, ensure_ascii=False)
        os.replace(tmp, path / "header.json")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> "NumbaIndex":
        """Open a saved index; arrays are memory-mapped read-only unless ``mmap=False``."""
        path = Path(path)
        head_file = path / "header.json"
        if not head_file.is_file():
            raise IndexFormatError(f"{path}: not a Numba index (no header.json)")
        try:
            header = json.loads(head_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexFormatError(f"{head_file}: unreadable header ({exc})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise IndexFormatError(f"{path}: not a Numba index (format {header.get('format') if isinstance(header, dict) else None!r})")
        if header.get("version") != FORMAT_VERSION:
            raise IndexFormatError(f"{path}: Numba index format version {header.get('version')!r}, but this "
                                   f"splade-anserini reads version {FORMAT_VERSION}; rebuild the index "
                                   "(python -m splade_anserini.index --backend numba ...)")
        arrays = {}
        for name in _ARRAYS:
            file = path / f"{name}.npy"
            if not file.is_file():
                raise IndexFormatError(f"{path}: missing {file.name}")
            arrays[name] = np.load(file, mmap_mode="r" if mmap else None)
        index = cls(header["vocab"], header["docids"], factor=header["factor"], block_bits=header["block_bits"],
                    dense_min_df=header["dense_min_df"], **arrays)
        if (index.n_docs, index.n_terms, index.n_postings) != (header["n_docs"], header["n_terms"],
                                                               header["n_postings"]):
            raise IndexFormatError(f"{path}: arrays do not match the header counts")
        return index

    # -- searching -------------------------------------------------------------------------------
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
        n = _search_one(np.ascontiguousarray(terms, dtype=np.int64), weights.astype(dtype), self.offsets, self.docs,
                        self.impacts, self.dense_row, self.dense, self.n_docs, self.block_bits, k, acc, bs, bd, tmp,
                        hist, out_s, out_d, dtype == np.int32)
        return out_d[:n], out_s[:n]

    def search(self, query: Mapping[str, int], k: int = 1000) -> list[tuple[str, int]]:
        """Exact top-``k`` ``(docid, score)`` for ``{token: int weight}``: score desc, then docid asc.

        Tokens absent from the index are ignored; an empty query gives an empty list."""
        ids, scores = self.search_ids(*self.encode_query(query), k=k)
        return list(zip(self._docid_array[ids].tolist(), scores.tolist()))

    def batch_search(self, queries: Sequence[Mapping[str, int]] | Mapping[str, Mapping[str, int]], k: int = 1000,
                     threads: int = 1) -> list[list[tuple[str, int]]] | dict[str, list[tuple[str, int]]]:
        """``search`` for every query, in parallel over queries on ``threads`` Numba threads.

        A list of queries gives a list of results; a ``{qid: query}`` mapping gives ``{qid: results}``.
        """
        if isinstance(queries, Mapping):
            qids = list(queries)
            return dict(zip(qids, self.batch_search([queries[q] for q in qids], k, threads)))
        ids, scores, counts = self.batch_search_ids([self.encode_query(q) for q in queries], k, threads)
        docid_rows = self._docid_array[ids]
        return [list(zip(docid_rows[q, :n].tolist(), scores[q, :n].tolist())) for q, n in enumerate(counts.tolist())]

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
            _search_range(*args, *self._workspace(dtype, cap), out_s, out_d, out_n, 0, nq, dtype == np.int32)
        else:
            previous = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                _search_parallel(*args, self._acc_len(), cap, out_s, out_d, out_n, min(nq, threads * 4),
                                 dtype == np.int32)
            finally:
                numba.set_num_threads(previous)
        return out_d, out_s, out_n
