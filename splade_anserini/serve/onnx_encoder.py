"""SPLADE encoding on ONNX Runtime: the :class:`~splade_anserini.encode.splade.SpladeEncoder` API without torch.

>>> enc = OnnxSpladeEncoder("exports/splade-tiny")     # a directory written by splade_anserini.serve.export_onnx
>>> enc.to_impacts(enc.encode_queries(["what is splade"])[0])   # {token: int impact}

The export directory holds the whole SPLADE representation as one graph (MLM logits, ``log(1 +
ReLU(.))``, pooling under the attention mask) in Anserini's contract: inputs ``input_ids``,
``attention_mask``, ``token_type_ids`` and outputs ``output_idx`` / ``output_weights``. Rows of a
padded batch come back flattened: ``output_idx = row * vocab_size + term`` (for one text, the term
id itself, which is what Anserini's Java encoder reads). Texts are tokenized with the HF
``tokenizers`` library from the exported ``tokenizer.json``: this module imports neither torch nor
transformers. SPLADE-doc queries (bags of WordPiece tokens) need only the tokenizer; the ONNX
session is opened on first use.

Queries are encoded *screened* when the export holds the second graph of :mod:`.query_graph`
(fp32 exports do): the model up to the decoder's input on ONNX Runtime, then an int8 product proves
most vocabulary entries non-positive and the candidates get exact fp32 values
(:mod:`.int8_screen`): the contract graph's impacts at a fraction of its cost. ``screen=False``
runs the contract graph for queries too.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from splade_anserini.serve.sessions import cpu_session
from splade_anserini.models import (EXPORT_MODEL, EXPORT_TOKENIZER, EXPORT_VOCAB, ModelNotFoundError, read_export_metadata)
from splade_anserini.encode.vectors import SparseVector, VocabularyOutput, bag_of_tokens, in_input_order, length_batches

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("output_idx", "output_weights")


def read_vocab(path: str | os.PathLike) -> list[str]:
    """``vocab.txt``: one WordPiece a line, line ``i`` (from 0) is term id ``i``."""
    with open(path, encoding="utf-8", newline="\n") as fh:
        lines = fh.read().split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


class OnnxSpladeEncoder(VocabularyOutput):
    """Encode texts into SPLADE sparse vectors with an exported model on ONNX Runtime (CPU).

    ``max_length``/``query_max_length`` default to the export's; ``pooling`` and ``splade_doc``
    come from the export (a different ``pooling`` is refused: it is part of the graph).
    ``threads``: ONNX Runtime intra-op threads (0: its default, all cores). ``screen``: encode queries
    with the screened query graph (default: when the export has one; True requires it).
    ``query_weights``: SPLADE-doc query token weights (:mod:`.query_weights`; default: the export's
    ``query_weights.json`` if it has one, else 1). ``int8_kernel``: the screen's int8 product, "amx"
    or "onnxruntime" (default: :func:`~.int8_screen.resolve_kernel`'s choice).
    """

    def __init__(self, export_dir: str | os.PathLike, *, max_length: int | None = None,
                 query_max_length: int | None = None, pooling: str | None = None,
                 splade_doc: bool | None = None, threads: int = 0, screen: bool | None = None,
                 query_weights: dict | None = None, int8_kernel: str | None = None):
        from tokenizers import Tokenizer

        self.export_dir = Path(os.fspath(export_dir)).expanduser()
        self.meta = read_export_metadata(self.export_dir, need_model=False)
        if not (self.meta["splade_doc"] if splade_doc is None else splade_doc):
            self.meta = read_export_metadata(self.export_dir, need_model=True)  # the graph encodes queries
        if pooling is not None and pooling != self.meta["pooling"]:
            raise ValueError(f"{self.export_dir}: exported with {self.meta['pooling']} pooling (part of the graph), "
                             f"not {pooling}")
        self.model_name = str(self.export_dir)
        self.pooling = self.meta["pooling"]
        self.splade_doc = bool(self.meta["splade_doc"] if splade_doc is None else splade_doc)
        self.max_length = int(max_length or self.meta["max_length"])
        self.query_max_length = int(query_max_length or self.meta["max_length"])
        self.threads = int(threads)
        if int8_kernel is not None:  # a bad name, or AMX where there is none, fails here, not at the first query
            from splade_anserini.encode.int8_screen import resolve_kernel

            resolve_kernel(int8_kernel)
        self.int8_kernel = int8_kernel
        try:
            self.tokenizer = Tokenizer.from_file(str(self.export_dir / EXPORT_TOKENIZER))
        except Exception as exc:  # the tokenizers library raises plain Exceptions on bad JSON
            raise ModelNotFoundError(f"{self.export_dir / EXPORT_TOKENIZER}: corrupt tokenizer "
                                     f"({str(exc).splitlines()[0]})") from None
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self._truncation: int | None = None
        self.vocab = read_vocab(self.export_dir / EXPORT_VOCAB)
        self.vocab_size = int(self.meta["vocab_size"])
        if len(self.vocab) != self.vocab_size or self.tokenizer.get_vocab_size() != self.vocab_size:
            raise ModelNotFoundError(f"{self.export_dir / EXPORT_VOCAB}: {len(self.vocab)} tokens, the tokenizer has "
                                     f"{self.tokenizer.get_vocab_size()} and the model {self.vocab_size}")
        special = self.meta.get("special_ids") or []
        self._special = np.array(sorted(special), dtype=np.int64)
        self._session = None
        self._lock = threading.Lock()
        from splade_anserini.serve.query_graph import has_query_graph

        if screen and not has_query_graph(self.export_dir):
            raise ModelNotFoundError(f"{self.export_dir}: no screened query graph (hidden.onnx, decoder.npz); "
                                     "export the fp32 model again")
        #: Whether queries run the screened query graph (:mod:`.query_graph`).
        self.screened = bool(screen or (screen is None and not self.splade_doc and has_query_graph(self.export_dir)
                                         and _importable("onnx")))
        self._query_graph = None
        from splade_anserini.search.query_weights import QUERY_WEIGHTS, read_table, weights_by_id

        if query_weights is None and self.splade_doc and (self.export_dir / QUERY_WEIGHTS).is_file():
            query_weights = read_table(self.export_dir / QUERY_WEIGHTS)
        self._query_weights = None if query_weights is None else weights_by_id(query_weights, self.vocab)

    # -- ONNX Runtime ------------------------------------------------------------------------------
    @property
    def session(self):
        """The ONNX Runtime session, opened on first use (a corrupt ``model.onnx`` fails here, in one line)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = open_session(self.export_dir / EXPORT_MODEL, self.threads)
        return self._session

    @property
    def query_graph(self):
        """The screened query path (:class:`.query_graph.QueryGraph`), loaded on first use."""
        if self._query_graph is None:
            with self._lock:
                if self._query_graph is None:
                    from splade_anserini.serve.query_graph import QueryGraph

                    self._query_graph = QueryGraph(self.export_dir, self.pooling, self.threads, self.int8_kernel)
        return self._query_graph

    def _run(self, seqs: Sequence[Sequence[int]], screened: bool = False) -> list[SparseVector]:
        width = max(len(s) for s in seqs)
        ids = np.zeros((len(seqs), width), dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for row, seq in enumerate(seqs):
            ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        if screened:
            return self.query_graph.run(ids, mask, [len(seq) for seq in seqs])
        flat, weights = self.session.run(list(OUTPUT_NAMES), {"input_ids": ids, "attention_mask": mask,
                                                              "token_type_ids": np.zeros_like(ids)})
        rows, terms = np.divmod(np.asarray(flat, dtype=np.int64), self.vocab_size)
        bounds = np.searchsorted(rows, np.arange(len(seqs) + 1))  # NonZero returns row-major order
        return [SparseVector(terms[lo:hi].astype(np.int32), np.asarray(weights[lo:hi], dtype=np.float32))
                for lo, hi in zip(bounds[:-1], bounds[1:])]

    def tokenize(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """WordPiece ids of ``texts`` with the special tokens, truncated to ``max_length``."""
        if self._truncation != max_length:
            self.tokenizer.enable_truncation(max_length)
            self._truncation = max_length
        if len(texts) == 1:  # a served query: encode() costs a third of encode_batch()'s thread hand-off
            return [self.tokenizer.encode(texts[0], add_special_tokens=True).ids]
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    # -- public API (SpladeEncoder's) --------------------------------------------------------------
    def encode_token_ids(self, token_ids: Sequence[Sequence[int]], batch_size: int = 32,
                         progress=None, screened: bool = False) -> list[SparseVector]:
        """Encode tokenized inputs in length-sorted batches; results keep the input order."""
        batches = length_batches(token_ids, batch_size)
        return in_input_order(len(token_ids),
                              ((idx, self._run([token_ids[i] for i in idx], screened)) for idx in batches), progress)

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32, progress=None) -> list[SparseVector]:
        """Encode documents (max length ``self.max_length``)."""
        return self.encode_token_ids(self.tokenize(texts, self.max_length), batch_size, progress)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> list[SparseVector]:
        """Encode queries with the graph or, for SPLADE-doc, as the set of their WordPiece tokens
        (weight 1 or the ``query_weights`` table's, special tokens dropped): the tokenizer alone."""
        seqs = self.tokenize(texts, self.query_max_length)
        if not self.splade_doc:
            return self.encode_token_ids(seqs, batch_size, screened=self.screened)
        return [bag_of_tokens(seq, self._special, self._query_weights) for seq in seqs]


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def open_session(model_path: str | os.PathLike, threads: int = 0):
    """An ONNX Runtime CPU session for ``model_path`` with the contract's inputs and outputs checked."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: missing; the export directory is incomplete")
    try:
        session = cpu_session(str(path), threads)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        raise ModelNotFoundError(f"{path}: corrupt or unreadable ONNX model ({str(exc).splitlines()[0]})") from None
    inputs = sorted(i.name for i in session.get_inputs())
    outputs = sorted(o.name for o in session.get_outputs())
    if inputs != sorted(INPUT_NAMES) or outputs != sorted(OUTPUT_NAMES):
        raise ModelNotFoundError(f"{path}: inputs {inputs} and outputs {outputs}, expected {list(INPUT_NAMES)} "
                                 f"and {list(OUTPUT_NAMES)}")
    return session
