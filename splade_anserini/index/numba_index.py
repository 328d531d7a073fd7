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

Search is exact, term-at-a-time, block by block, in the Numba kernels of
:mod:`splade_anserini.index.numba_kernels` (this module builds, saves and loads the index; the search
methods come from :mod:`splade_anserini.index.numba_search`).
``batch_search`` runs the same kernel over the queries in parallel; every kernel releases the GIL,
so ``search`` can also be called from a Python thread pool.

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
from typing import Iterable, Sequence

import numpy as np

from splade_anserini.index.numba_kernels import count_csc, count_csr, fill_csc, fill_csr, fill_dense, global_ids
from splade_anserini.index.numba_search import IndexSearch

FORMAT = "splade-anserini-numba-index"
FORMAT_VERSION = 1
BLOCK_BITS = 16
DENSE_MIN_DF = 0.1
_ARRAYS = ("offsets", "docs", "impacts", "max_impact", "dense_row", "dense")


class IndexFormatError(ValueError):
    """A directory that is not a Numba index of the version this code reads."""


# -- the index ------------------------------------------------------------------------------------
def _impact_dtype(max_impact: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_impact <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"impact {max_impact} does not fit in 32 bits")


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


def _validated(layout: str, ptr, idx: np.ndarray, vals, vocab: Sequence[str], docids: Sequence[str]):
    """The checks ``from_arrays`` (``layout`` "CSR": rows are documents) and ``from_csc`` ("CSC": columns
    are terms) share: integer impacts (integral floats are converted), pointers consistent with the
    indices, indices in range, unique docids and tokens. Returns ``(ptr, idx, vals, vocab, docids)``."""
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    vals = np.ascontiguousarray(vals)
    if vals.dtype.kind not in "iu":
        if vals.dtype.kind != "f" or not np.array_equal(vals, np.rint(vals)):
            raise ValueError("impacts must be integers: quantize the vectors first (conversion.quantize)")
        vals = vals.astype(np.int64)
    docids, vocab = [str(d) for d in docids], list(vocab)
    n_outer, n_inner = (len(docids), len(vocab)) if layout == "CSR" else (len(vocab), len(docids))
    if len(ptr) != n_outer + 1 or ptr[-1] != len(idx) or len(idx) != len(vals):
        raise ValueError(f"inconsistent {layout} arrays")
    if len(idx) and (idx.min() < 0 or idx.max() >= n_inner):
        raise ValueError("term id out of range of the vocabulary" if layout == "CSR"
                         else "document number out of range")
    if len(set(docids)) != len(docids):
        seen: set[str] = set()
        dup = next(d for d in docids if d in seen or seen.add(d))
        raise ValueError(f"duplicate document id {dup!r}")
    if len(set(vocab)) != len(vocab):
        raise ValueError("duplicate token in the vocabulary")
    return ptr, idx, vals, vocab, docids


class NumbaIndex(IndexSearch):
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
        return col_ptr, global_ids(self.offsets, self.docs, self.block_bits), np.asarray(self.impacts)

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
        fill_dense(offsets, docs, impacts, dense_terms.astype(np.int64), dense, block_bits)
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
        indptr, indices, data, vocab, docids = _validated("CSR", indptr, np.ascontiguousarray(indices, np.int32),
                                                          data, vocab, docids)
        n_docs, n_terms = len(docids), len(vocab)
        row_order, row_rank = _sorted_order(docids)
        n_blocks = max(1, -(-n_docs // (1 << block_bits)))
        offsets = _block_offsets(count_csr(indptr, indices, data, row_rank, n_terms, n_blocks, block_bits))
        nnz = int(offsets[-1, -1]) if n_terms else 0
        docs = np.empty(nnz, dtype=np.uint16 if block_bits <= 16 else np.uint32)
        impacts = np.empty(nnz, dtype=_impact_dtype(int(data.max()) if len(data) else 1))
        fill_csr(indptr, indices, data, row_order, offsets, docs, impacts, block_bits)
        return cls._assemble(vocab, [docids[r] for r in row_order], offsets, docs, impacts, factor, block_bits,
                             dense_min_df)

    @classmethod
    def from_csc(cls, col_ptr, rows, vals, vocab: Sequence[str], docids: Sequence[str],
                 factor: float = 100.0, block_bits: int = BLOCK_BITS,
                 dense_min_df: float = DENSE_MIN_DF) -> "NumbaIndex":
        """From term-major arrays: ``rows[col_ptr[t]:col_ptr[t + 1]]`` are the documents (indices into
        ``docids``) of term ``t`` and ``vals`` their integer impacts. No transpose: the cheap way for
        a large collection that is already inverted."""
        col_ptr, rows, vals, vocab, docids = _validated("CSC", col_ptr, np.ascontiguousarray(rows), vals, vocab,
                                                        docids)
        n_docs, n_terms = len(docids), len(vocab)
        row_order, row_rank = _sorted_order(docids)
        identity = bool(np.array_equal(row_order, np.arange(n_docs)))
        n_blocks = max(1, -(-n_docs // (1 << block_bits)))
        offsets = _block_offsets(count_csc(col_ptr, rows, vals, row_rank, identity, n_blocks, block_bits))
        nnz = int(offsets[-1, -1]) if n_terms else 0
        docs = np.empty(nnz, dtype=np.uint16 if block_bits <= 16 else np.uint32)
        impacts = np.empty(nnz, dtype=_impact_dtype(int(vals.max()) if len(vals) else 1))
        fill_csc(col_ptr, rows, vals, row_rank, identity, offsets, docs, impacts, block_bits)
        return cls._assemble(vocab, [docids[r] for r in row_order], offsets, docs, impacts, factor, block_bits,
                             dense_min_df)

    @classmethod
    def from_vectors(cls, docs: Iterable, vocab: Sequence[str] | None = None, factor: float = 100.0,
                     **kwargs) -> "NumbaIndex":
        """From ``(docid, {token: int impact})`` pairs (or :class:`conversion.jsonvector.VectorDoc`)."""
        from splade_anserini.conversion.csr import from_vectors

        csr = from_vectors(((d[0], d[1]) for d in docs), vocab=list(vocab) if vocab else None)
        return cls.from_csr(csr, factor, **kwargs)

    @classmethod
    def from_encoded(cls, docids: Sequence[str], vectors: Sequence, vocab: Sequence[str],
                     factor: float = 100.0, **kwargs) -> "NumbaIndex":
        """From encoder output: :class:`splade_anserini.encode.splade.SparseVector` (term ids into ``vocab``,
        e.g. ``SpladeEncoder.vocab``, and float weights), quantized as the JsonVectorCollection writer
        does (``rint(w * factor)``, zero impacts dropped)."""
        from splade_anserini.conversion.quantize import quantize_sparse

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
        from splade_anserini.conversion.csr import read_csr

        return cls.from_csr(read_csr(path), factor, **kwargs)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, provenance: dict | None = None) -> Path:
        """Write the index to directory ``path`` (created; index files already there are replaced);
        ``provenance``: what wrote the vectors (:mod:`splade_anserini.provenance`), kept in the header."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        from splade_anserini.outputs import remove

        remove(path / "header.json")  # the header goes last: it marks a complete index
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
        if provenance is not None:
            header["provenance"] = provenance
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
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
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
            try:
                arrays[name] = np.load(file, mmap_mode="r" if mmap else None)
            except (OSError, ValueError, EOFError) as exc:  # a truncated or damaged array: name the file
                raise IndexFormatError(f"{file}: unreadable ({getattr(exc, 'strerror', None) or exc}); "
                                       "rebuild the index") from None
        try:
            index = cls(header["vocab"], header["docids"], factor=header["factor"], block_bits=header["block_bits"],
                        dense_min_df=header["dense_min_df"], **arrays)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise IndexFormatError(f"{path}: its arrays and header.json do not fit together ({exc}); "
                                   "rebuild the index") from None
        if (index.n_docs, index.n_terms, index.n_postings) != (header["n_docs"], header["n_terms"],
                                                               header["n_postings"]):
            raise IndexFormatError(f"{path}: arrays do not match the header counts")
        return index
