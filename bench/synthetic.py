"""Synthetic SPLADE-like collections and queries drawn from a real collection's statistics.

What is kept from the source (SciFact with ``splade-tiny`` by default):

* the term distribution: term ``t`` occurs in a document with probability ``df_t / N`` scaled by
  the document's length ratio (so the expected document frequency of every term is preserved and
  long documents hold more terms, as in the source);
* the document length distribution: each document draws a target length (non-zeros) from the
  source's empirical lengths;
* the impacts: a posting of term ``t`` draws its impact from the source's impacts of ``t``;
* queries: length from the source queries' lengths, terms drawn without replacement in proportion
  to how many source queries hold them, weights from the source weights of that term.

Generation is term-major (each term's documents come out ascending), in Numba, with geometric skips
(cost proportional to the postings produced). Documents are named ``s0000000`` ... so their sorted
order is their generation order.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit


@dataclass
class SourceStats:
    vocab: list[str]
    df_frac: np.ndarray      # float64 [V]: df_t / N_source
    doc_len: np.ndarray      # int64 [N_source]: non-zeros per document
    imp_ptr: np.ndarray      # int64 [V + 1]: impacts of term t are imp_vals[imp_ptr[t]:imp_ptr[t+1]]
    imp_vals: np.ndarray     # int64
    q_len: np.ndarray        # int64 [Q]: non-zeros per query
    q_freq: np.ndarray       # float64 [V]: number of source queries holding t
    qw_ptr: np.ndarray       # int64 [V + 1]
    qw_vals: np.ndarray      # int64

    @property
    def n_source_docs(self) -> int:
        return len(self.doc_len)


def source_stats(index, queries: list[dict[str, int]]) -> SourceStats:
    """Statistics of a :class:`splade_anserini.index.numba_index.NumbaIndex` and its (quantized) queries."""
    V = index.n_terms
    offsets = np.asarray(index.offsets)
    starts, ends = offsets[:, 0], offsets[:, -1]
    df = ends - starts
    imp_vals = np.asarray(index.impacts, dtype=np.int64)
    imp_ptr = np.zeros(V + 1, dtype=np.int64)
    imp_ptr[1:] = ends  # lists are contiguous and in term order
    doc_len = np.zeros(index.n_docs, dtype=np.int64)
    for t in np.flatnonzero(df):
        ids, _ = index.postings(index.vocab[t])
        doc_len[ids] += 1
    term_index = index.term_index()
    q_len, per_term = [], [[] for _ in range(V)]
    for q in queries:
        kept = [(term_index[tok], int(w)) for tok, w in q.items() if tok in term_index and w > 0]
        if kept:
            q_len.append(len(kept))
            for t, w in kept:
                per_term[t].append(w)
    q_freq = np.array([len(ws) for ws in per_term], dtype=np.float64)
    qw_ptr = np.zeros(V + 1, dtype=np.int64)
    np.cumsum(q_freq.astype(np.int64), out=qw_ptr[1:])
    qw_vals = np.array([w for ws in per_term for w in ws], dtype=np.int64)
    return SourceStats(list(index.vocab), df / max(1, index.n_docs), doc_len, imp_ptr, imp_vals,
                       np.array(q_len, dtype=np.int64), q_freq, qw_ptr, qw_vals)


@njit(cache=True)
def _generate(n_docs, df_frac, weight, imp_ptr, imp_vals, seed, capacity):
    np.random.seed(seed)
    n_terms = len(df_frac)
    col_ptr = np.zeros(n_terms + 1, dtype=np.int64)
    rows = np.empty(capacity, dtype=np.int32)
    vals = np.empty(capacity, dtype=np.uint16)
    wmax = weight.max()
    pos = 0
    for t in range(n_terms):
        p = df_frac[t]
        count = imp_ptr[t + 1] - imp_ptr[t]
        if p > 0 and count > 0:
            pmax = min(1.0, p * wmax)
            log_q = np.log(1.0 - pmax) if pmax < 1.0 else 0.0
            d = -1
            while True:
                if pmax < 1.0:
                    d += 1 + int(np.log(1.0 - np.random.random()) / log_q)
                else:
                    d += 1
                if d >= n_docs:
                    break
                if np.random.random() * pmax < min(1.0, p * weight[d]):
                    if pos == capacity:
                        return col_ptr, rows, vals, -1
                    rows[pos] = d
                    vals[pos] = imp_vals[imp_ptr[t] + np.random.randint(count)]
                    pos += 1
        col_ptr[t + 1] = pos
    return col_ptr, rows, vals, pos


@dataclass
class CscCollection:
    """Term-major synthetic collection: docs of term t are rows[col_ptr[t]:col_ptr[t+1]] (ascending)."""

    col_ptr: np.ndarray
    rows: np.ndarray    # int32 document numbers
    vals: np.ndarray    # uint16 impacts
    vocab: list[str]
    n_docs: int

    @property
    def docids(self) -> list[str]:
        return [f"s{i:07d}" for i in range(self.n_docs)]

    @property
    def nnz(self) -> int:
        return int(self.col_ptr[-1])

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name in ("col_ptr", "rows", "vals"):
            np.save(path / f"{name}.npy", getattr(self, name))
        (path / "meta.json").write_text(json.dumps({"n_docs": self.n_docs, "vocab": self.vocab}))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> "CscCollection":
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        arrays = {n: np.load(path / f"{n}.npy", mmap_mode="r" if mmap else None) for n in ("col_ptr", "rows", "vals")}
        return cls(vocab=meta["vocab"], n_docs=meta["n_docs"], **arrays)

    def to_csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Document-major ``(indptr, term ids int32, impacts uint16)``, terms ascending in each row."""
        return _transpose(np.asarray(self.col_ptr), np.asarray(self.rows), np.asarray(self.vals), self.n_docs)


@njit(cache=True)
def _transpose(col_ptr, rows, vals, n_docs):
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    for j in range(len(rows)):
        indptr[rows[j] + 1] += 1
    for d in range(n_docs):
        indptr[d + 1] += indptr[d]
    cursor = indptr[:-1].copy()
    cols = np.empty(len(rows), dtype=np.int32)
    data = np.empty(len(rows), dtype=vals.dtype)
    for t in range(len(col_ptr) - 1):
        for j in range(col_ptr[t], col_ptr[t + 1]):
            d = rows[j]
            p = cursor[d]
            cols[p] = t
            data[p] = vals[j]
            cursor[d] = p + 1
    return indptr, cols, data


def _calibrate(df_frac: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per-term scale ``s`` with ``mean(min(1, s * p * w)) = p``: without it, capping the inclusion
    probability at 1 in long documents would lower the document frequency of the most frequent terms."""
    out = df_frac.astype(np.float64).copy()
    hot = np.flatnonzero(df_frac * weight.max() > 1.0)
    for t in hot:
        p = df_frac[t]
        lo, hi = p, 1.0 / max(weight.min(), 1e-9)
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if np.minimum(1.0, mid * weight).mean() < p:
                lo = mid
            else:
                hi = mid
        out[t] = hi
    return out


def generate_collection(stats: SourceStats, n_docs: int, seed: int = 0) -> CscCollection:
    """``n_docs`` synthetic documents with the source's term, length and impact distributions."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice(stats.doc_len, size=n_docs).astype(np.float64)
    weight = lengths / max(1e-9, stats.doc_len.mean())
    df_frac = _calibrate(stats.df_frac, weight[:4096])
    expected = float(np.minimum(1.0, np.outer(df_frac, weight[:2048])).sum()) * n_docs / min(n_docs, 2048)
    capacity = int(expected * 1.1) + 100_000
    while True:
        col_ptr, rows, vals, nnz = _generate(n_docs, df_frac, weight, stats.imp_ptr, stats.imp_vals,
                                             seed, capacity)
        if nnz >= 0:
            break
        capacity *= 2
    return CscCollection(col_ptr, rows[:nnz].copy(), vals[:nnz].copy(), list(stats.vocab), n_docs)


def generate_queries(stats: SourceStats, n_queries: int, seed: int = 1) -> list[dict[str, int]]:
    """Queries with the source's length, term and weight distributions."""
    rng = np.random.default_rng(seed)
    p = stats.q_freq / stats.q_freq.sum()
    support = int(np.count_nonzero(p))
    out = []
    for _ in range(n_queries):
        length = min(int(rng.choice(stats.q_len)), support)
        terms = rng.choice(len(p), size=length, replace=False, p=p)
        q = {}
        for t in terms:
            lo, hi = stats.qw_ptr[t], stats.qw_ptr[t + 1]
            q[stats.vocab[t]] = int(stats.qw_vals[lo + rng.integers(hi - lo)])
        out.append(q)
    return out


def write_jsonvector(coll: CscCollection, out_dir: str | os.PathLike, shards: int = 4) -> list[Path]:
    """Write ``coll`` as JsonVectorCollection shards (``part-000.jsonl`` ...) for Anserini."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    indptr, cols, data = coll.to_csr()
    tokens = [json.dumps(t, ensure_ascii=False) + ": " for t in coll.vocab]
    ids = coll.docids
    bounds = np.linspace(0, coll.n_docs, shards + 1).astype(np.int64)
    files = []
    for s in range(shards):
        file = out_dir / f"part-{s:03d}.jsonl"
        tmp = out_dir / f".part-{s:03d}.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            for d in range(bounds[s], bounds[s + 1]):
                lo, hi = indptr[d], indptr[d + 1]
                body = ", ".join([tok + str(v) for tok, v in zip([tokens[c] for c in cols[lo:hi].tolist()],
                                                                  data[lo:hi].tolist())])
                fh.write(f'{{"id": "{ids[d]}", "contents": "", "vector": {{{body}}}}}\n')
        os.replace(tmp, file)
        files.append(file)
    return files
