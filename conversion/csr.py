"""JsonVectorCollection <-> CSR arrays (rows = documents, columns = vocabulary terms).

The CSR form feeds the Numba reference index and any numpy analysis (sparsity, FLOPS).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .jsonvector import read_jsonvector


@dataclass
class CsrCollection:
    """Sparse document-term matrix with its vocabulary and document ids."""

    indptr: np.ndarray   # int64, len(ids) + 1
    indices: np.ndarray  # int32 term ids into ``vocab``
    data: np.ndarray     # int32 impacts (or float32 weights)
    vocab: list[str]
    ids: list[str]

    @property
    def n_docs(self) -> int:
        return len(self.ids)

    @property
    def n_terms(self) -> int:
        return len(self.vocab)



def from_vectors(docs: Iterable[tuple[str, dict[str, int]]], vocab: list[str] | None = None,
                 dtype=np.int32) -> CsrCollection:
    """Build a :class:`CsrCollection`; tokens missing from ``vocab`` are appended to it.

    Columns inside a row are sorted by term id.
    """
    vocab = list(vocab) if vocab is not None else []
    index = {t: i for i, t in enumerate(vocab)}
    ids: list[str] = []
    indptr = [0]
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for doc in docs:
        docid, vector = doc[0], doc[1]
        row_cols = np.empty(len(vector), dtype=np.int32)
        for j, token in enumerate(vector):
            col = index.get(token)
            if col is None:
                col = index[token] = len(vocab)
                vocab.append(token)
            row_cols[j] = col
        row_vals = np.fromiter(vector.values(), dtype=dtype, count=len(vector))
        order = np.argsort(row_cols, kind="stable")
        cols.append(row_cols[order])
        vals.append(row_vals[order])
        ids.append(docid)
        indptr.append(indptr[-1] + len(vector))
    return CsrCollection(
        indptr=np.asarray(indptr, dtype=np.int64),
        indices=np.concatenate(cols) if cols else np.empty(0, np.int32),
        data=np.concatenate(vals) if vals else np.empty(0, dtype),
        vocab=vocab, ids=ids,
    )


def read_csr(path: str | os.PathLike, vocab: list[str] | None = None) -> CsrCollection:
    """Read a JsonVectorCollection file or directory into CSR form."""
    return from_vectors(((d.docid, d.vector) for d in read_jsonvector(path)), vocab=vocab)
