"""Validation during training: encode a corpus and queries with the current weights, retrieve exactly
over the quantized impacts (the Numba reference index, no JVM), and measure with ir-measures.

Reports the validation metrics plus average non-zeros per document and per query and the paper's
FLOPS (``sum_j p_j(q) p_j(d)`` over the validation texts), all on the integer impacts the Lucene
index would hold.
"""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from splade_anserini.conversion.quantize import DEFAULT_FACTOR


def exact_search(doc_ids: Sequence[str], doc_vectors: Sequence, queries: Mapping[str, dict[str, int]],
                 vocab: Sequence[str], k: int = 100, factor: float = DEFAULT_FACTOR) -> dict[str, dict[str, float]]:
    """Exact top-``k`` over quantized impacts: ``{qid: {docid: score}}``. The one place to swap the
    retrieval backend: the Numba reference index, or a scipy brute force when it is unavailable."""
    try:
        from splade_anserini.index.numba_index import NumbaIndex

        index = NumbaIndex.from_encoded(list(doc_ids), list(doc_vectors), list(vocab), factor)
        found = index.search_run(dict(queries), k=k)
        return {q: {d: float(s) for d, s in hits} for q, hits in found.items()}
    except Exception as exc:  # noqa: BLE001 - validation must not die with the optional backend
        import sys

        print(f"[train] Numba index unavailable ({type(exc).__name__}: {str(exc)[:100]}); "
              "using the scipy brute force", file=sys.stderr)
        return brute_force_search(doc_ids, doc_vectors, queries, vocab, k, factor)


def brute_force_search(doc_ids, doc_vectors, queries, vocab, k: int = 100, factor: float = DEFAULT_FACTOR):
    """Exact top-``k`` by a sparse matrix product; ties broken by docid ascending (as Lucene does)."""
    import scipy.sparse as sp

    from splade_anserini.conversion.quantize import quantize_sparse

    indptr, cols, vals = [0], [], []
    for vec in doc_vectors:
        ids, imp = quantize_sparse(vec.ids, vec.weights, factor)
        cols.append(np.asarray(ids, dtype=np.int64))
        vals.append(np.asarray(imp, dtype=np.int64))
        indptr.append(indptr[-1] + len(ids))
    D = sp.csr_matrix((np.concatenate(vals) if vals else np.empty(0, np.int64),
                       np.concatenate(cols) if cols else np.empty(0, np.int64), indptr),
                      shape=(len(doc_ids), len(vocab)))
    term = {t: i for i, t in enumerate(vocab)}
    qids = list(queries)
    Q = np.zeros((len(vocab), len(qids)), dtype=np.int64)
    for j, q in enumerate(qids):
        for t, w in queries[q].items():
            if t in term and w > 0:
                Q[term[t], j] = w
    scores = np.asarray(D @ Q)                       # [n_docs, n_queries]
    rank_of = np.empty(len(doc_ids), dtype=np.int64)
    rank_of[np.argsort(np.array(doc_ids, dtype=object))] = np.arange(len(doc_ids))
    run = {}
    for j, q in enumerate(qids):
        col = scores[:, j]
        hit = np.flatnonzero(col > 0)
        order = hit[np.lexsort((rank_of[hit], -col[hit]))][:k]
        run[q] = {doc_ids[i]: float(col[i]) for i in order}
    return run


class Validator:
    """Callable ``(hf_model, tokenizer) -> metrics`` over a fixed :class:`~.data.ValidationSet`."""

    def __init__(self, valid, *, metric: str = "nDCG@10", pooling: str = "max", splade_doc: bool = False,
                 max_length: int = 256, query_max_length: int = 256, batch_size: int = 64,
                 factor: float = DEFAULT_FACTOR, device: str = "cpu", precision: str = "fp32",
                 query_weights: dict | None = None):
        import ir_measures

        self.valid = valid
        self.metric = metric
        measures = {str(m): m for m in (ir_measures.parse_measure(x) for x in ("nDCG@10", "RR@10"))}
        measures.setdefault(metric, ir_measures.parse_measure(metric))
        self.measures = measures
        self.kwargs = dict(pooling=pooling, splade_doc=splade_doc, max_length=max_length,
                           query_max_length=query_max_length, device=device, precision=precision,
                           query_weights=query_weights)
        self.batch_size = batch_size
        self.factor = factor
        self.doc_ids = list(valid.corpus)
        self.doc_texts = [valid.corpus[d] for d in self.doc_ids]
        self.qids = list(valid.queries)

    def __call__(self, hf_model, tokenizer) -> dict[str, float]:
        import ir_measures

        from splade_anserini.encode.splade import SpladeEncoder
        from splade_anserini.evaluate.stats import sparsity_stats

        start = time.time()
        was_training = hf_model.training
        enc = SpladeEncoder(tokenizer=tokenizer, hf_model=hf_model, **self.kwargs)
        try:
            doc_vecs = enc.encode_documents(self.doc_texts, batch_size=self.batch_size)
            q_vecs = enc.encode_queries([self.valid.queries[q] for q in self.qids], batch_size=self.batch_size)
        finally:
            hf_model.train(was_training)
        queries = {q: enc.to_impacts(v, self.factor) for q, v in zip(self.qids, q_vecs)}
        run = exact_search(self.doc_ids, doc_vecs, queries, enc.vocab, k=100, factor=self.factor)
        agg = ir_measures.calc_aggregate(list(self.measures.values()), self.valid.qrels, run)
        stats = sparsity_stats((enc.to_impacts(v, self.factor) for v in doc_vecs), queries.values())
        out = {name: float(agg.get(m, 0.0)) for name, m in self.measures.items()}
        out.update(doc_nonzeros=stats.avg_doc_nonzeros, query_nonzeros=stats.avg_query_nonzeros,
                   flops=stats.flops, valid_seconds=time.time() - start)
        return out
