"""The Numba kernels of :mod:`splade_anserini.index.numba_index`: building the block layout and exact top-k search.

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

The kernels take plain arrays (the layout is described in :mod:`splade_anserini.index.numba_index`);
they hold no state and raise nothing on valid input, which the index class checks.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 32768  # documents per chunk (128 KiB of accumulator) when summing dense rows


# -- build kernels --------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def count_csr(indptr, indices, data, row_rank, n_terms, n_blocks, block_bits):
    """Postings per (term, block) of CSR rows, impacts <= 0 skipped; row r is internal doc row_rank[r]."""
    counts = np.zeros((n_terms, n_blocks), dtype=np.int64)
    for r in range(len(indptr) - 1):
        b = row_rank[r] >> block_bits
        for j in range(indptr[r], indptr[r + 1]):
            if data[j] > 0:
                counts[indices[j], b] += 1
    return counts


@njit(cache=True, nogil=True)
def fill_csr(indptr, indices, data, row_order, offsets, docs, impacts, block_bits):
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
def count_csc(col_ptr, rows, vals, row_rank, identity, n_blocks, block_bits):
    n_terms = len(col_ptr) - 1
    counts = np.zeros((n_terms, n_blocks), dtype=np.int64)
    for t in range(n_terms):
        for j in range(col_ptr[t], col_ptr[t + 1]):
            if vals[j] > 0:
                d = rows[j] if identity else row_rank[rows[j]]
                counts[t, d >> block_bits] += 1
    return counts


@njit(cache=True, nogil=True)
def fill_csc(col_ptr, rows, vals, row_rank, identity, offsets, docs, impacts, block_bits):
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
def fill_dense(offsets, docs, impacts, dense_terms, dense, block_bits):
    for r in range(len(dense_terms)):
        t = dense_terms[r]
        for b in range(offsets.shape[1] - 1):
            base = b << block_bits
            for j in range(offsets[t, b], offsets[t, b + 1]):
                dense[r, base + docs[j]] = impacts[j]


@njit(cache=True, nogil=True)
def global_ids(offsets, docs, block_bits):
    out = np.empty(len(docs), dtype=np.int32)
    for t in range(offsets.shape[0]):
        for b in range(offsets.shape[1] - 1):
            base = b << block_bits
            for j in range(offsets[t, b], offsets[t, b + 1]):
                out[j] = base + docs[j]
    return out


# -- search kernels -------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def kth_largest(vals, n, k, tmp, hist):
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
def keep_best(bs, bd, n, k, tmp, hist):
    """Keep the best k of the buffer ``bs/bd[:n]`` (ascending doc order, so at equal scores the first
    ones win), in place and in order; returns the k-th score."""
    kth = kth_largest(bs, n, k, tmp, hist)
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
def collect(acc, width, base, thr, bs, bd, n, k, tmp, hist):
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
                    thr = keep_best(bs, bd, n, k, tmp, hist)
                    n = k
                    if v <= thr:
                        continue
                bs[n] = v
                bd[n] = base + c + d
                n += 1
    return n, thr


@njit(cache=True, nogil=True)
def add_dense(a, dense, rows, row_w, start):
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
def dense_query_rows(q_terms, q_weights, dense_row):
    """The query's terms that have a dense row: ``(their rows in dense, their weights)``, in query order."""
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
    return rows, row_w


@njit(cache=True, nogil=True)
def score_block(acc, width, b, q_terms, q_weights, offsets, docs, impacts, dense_row, dense, rows, row_w,
                block_bits):
    """``acc[:width]`` = the scores of the documents of block ``b``: the dense rows, then the sparse postings."""
    if len(rows) == 0:
        acc[:width] = 0
    else:  # dense rows first, in chunks, eight rows to a pass over the chunk
        base = b << block_bits
        for c in range(0, width, CHUNK):
            add_dense(acc[c:min(c + CHUNK, width)], dense, rows, row_w, base + c)
    for i in range(len(q_terms)):
        t = q_terms[i]
        if dense_row[t] >= 0:
            continue
        w = q_weights[i]
        lo, hi = offsets[t, b], offsets[t, b + 1]
        dd = docs[lo:hi]  # slices: the loop index starts at 0, so no negative-index checks
        im = impacts[lo:hi]
        for j in range(hi - lo):
            acc[dd[j]] += w * im[j]


@njit(cache=True, nogil=True)
def sampled_threshold(acc, width, k, thr, bs, tmp, hist):
    """The first block's starting threshold, sampled from the block so that about 2k of its documents
    score above it: ``(threshold, True)``, or ``(thr, False)`` when the block is too small to sample or
    the sample gives no positive threshold. ``bs`` (capacity >= 2k) is scratch."""
    step = -(-width // min(len(bs), 4096))
    m = -(-width // step)
    rank = -(-2 * k // step)
    if rank <= m:
        for i in range(m):
            bs[i] = acc[i * step]
        thr = kth_largest(bs, m, rank, tmp, hist)
        return thr, thr > 0
    return thr, False


@njit(cache=True, nogil=True)
def sort_hits(bs, bd, n, out_s, out_d, packed_sort):
    """The ``n`` hits of the doc-ordered buffer into ``out_s/out_d``: score desc, then doc id asc."""
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


@njit(cache=True, nogil=True)
def search_one(q_terms, q_weights, offsets, docs, impacts, dense_row, dense, n_docs, block_bits, k,
                acc, bs, bd, tmp, hist, out_s, out_d, packed_sort):
    """Exact top-k of one query into ``out_s/out_d`` (best first); returns the number of hits.

    ``acc``: accumulator of one block (any content); ``bs/bd/tmp``: buffer of capacity >= 2k;
    ``q_weights`` has the accumulator's dtype; ``packed_sort``: scores fit in 31 bits.
    """
    rows, row_w = dense_query_rows(q_terms, q_weights, dense_row)
    block = 1 << block_bits
    n = 0
    thr = q_weights[0] - q_weights[0]  # zero of the accumulator dtype: candidates score above thr
    for b in range(offsets.shape[1] - 1):
        base = b << block_bits
        width = min(block, n_docs - base)
        score_block(acc, width, b, q_terms, q_weights, offsets, docs, impacts, dense_row, dense, rows, row_w,
                    block_bits)
        guess = False
        if n == 0:  # first block: start from a threshold sampled from the block, checked below
            thr, guess = sampled_threshold(acc, width, k, thr, bs, tmp, hist)
        n, thr = collect(acc, width, base, thr, bs, bd, n, k, tmp, hist)
        if guess and n < k:  # fewer than k above the sampled threshold: it could cut into the top k
            n, thr = collect(acc, width, base, thr - thr, bs, bd, 0, k, tmp, hist)
    if n > k:
        keep_best(bs, bd, n, k, tmp, hist)
        n = k
    sort_hits(bs, bd, n, out_s, out_d, packed_sort)
    return n


@njit(cache=True, nogil=True)
def search_range(q_ptr, q_terms, q_weights, offsets, docs, impacts, dense_row, dense, n_docs, block_bits, k,
                  acc, bs, bd, tmp, hist, out_s, out_d, out_n, first, last, packed_sort):
    for q in range(first, last):
        lo, hi = q_ptr[q], q_ptr[q + 1]
        if hi > lo:
            out_n[q] = search_one(q_terms[lo:hi], q_weights[lo:hi], offsets, docs, impacts, dense_row, dense,
                                   n_docs, block_bits, k, acc, bs, bd, tmp, hist, out_s[q], out_d[q], packed_sort)


@njit(cache=True, nogil=True, parallel=True)
def search_parallel(q_ptr, q_terms, q_weights, offsets, docs, impacts, dense_row, dense, n_docs, block_bits, k,
                     acc_len, cap, out_s, out_d, out_n, n_chunks, packed_sort):
    nq = len(q_ptr) - 1
    for c in prange(n_chunks):  # one workspace per chunk of queries
        acc = np.empty(acc_len, dtype=q_weights.dtype)
        bs = np.empty(cap, dtype=q_weights.dtype)
        bd = np.empty(cap, dtype=np.int32)
        tmp = np.empty(cap, dtype=q_weights.dtype)
        hist = np.empty(2048, dtype=np.int64)
        search_range(q_ptr, q_terms, q_weights, offsets, docs, impacts, dense_row, dense, n_docs, block_bits, k,
                      acc, bs, bd, tmp, hist, out_s, out_d, out_n, c * nq // n_chunks, (c + 1) * nq // n_chunks,
                      packed_sort)
