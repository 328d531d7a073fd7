"""SPLADE encoder: MLM logits -> pooled ``log(1 + ReLU(.))`` -> sparse vectors over the WordPiece vocabulary.

``w_j = pool_i log(1 + ReLU(logit_ij))`` over the non-padding tokens ``i``, with ``pool`` = max
(SPLADE v2, the default) or sum (SPLADE v1). Since ``log(1 + ReLU(.))`` is monotone, max pooling is
taken on the raw logits and the activation applied to the ``[batch, vocab]`` result only; logits are
computed in sub-batches so the ``[batch, length, vocab]`` tensor stays within ``chunk_bytes``.

SPLADE-doc (paper Eq. 7) encodes documents only; a query is the set of its WordPiece tokens,
weight 1 each (no [CLS]/[SEP]/[PAD]), as naver/splade does.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from conversion.quantize import DEFAULT_FACTOR, quantize_sparse

POOLINGS = ("max", "sum")


@dataclass
class SparseVector:
    """Term ids (ascending) and their float weights."""

    ids: np.ndarray      # int32
    weights: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.ids)


def splade_activation(logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "max") -> torch.Tensor:
    """Differentiable SPLADE pooling for training: ``[B, L, V]`` logits -> ``[B, V]`` representation."""
    act = torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1).to(logits.dtype)
    if pooling == "max":
        return act.amax(dim=1)
    if pooling == "sum":
        return act.sum(dim=1)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def _pool_inference(logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Inference pooling that reuses ``logits`` in place (it is consumed)."""
    pad = attention_mask == 0
    if pooling == "max":
        if pad.any():
            logits.masked_fill_(pad.unsqueeze(-1), float("-inf"))
        return torch.log1p(torch.relu(logits.amax(dim=1)))
    logits.relu_().log1p_()
    if pad.any():
        logits.masked_fill_(pad.unsqueeze(-1), 0.0)
    return logits.sum(dim=1)


class SpladeEncoder:
    """Encode texts into SPLADE sparse vectors with any HF ``AutoModelForMaskedLM`` checkpoint.

    >>> enc = SpladeEncoder("splade-tiny")
    >>> vec = enc.encode_queries(["what is splade"])[0]
    >>> enc.to_impacts(vec)  # {token: int impact}
    """

    def __init__(self, model: str = "splade-tiny", *, pooling: str = "max", device: str = "cpu",
                 max_length: int = 256, query_max_length: int = 256, precision: str = "fp32",
                 splade_doc: bool = False, chunk_bytes: int = 256 << 20, tokenizer=None, hf_model=None):
        from .models import load_model

        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")
        if hf_model is None:
            tokenizer, hf_model = load_model(model, device=device)
        self.tokenizer = tokenizer
        self.model = hf_model.to(device).eval()
        self.model_name = str(model)
        self.pooling = pooling
        self.device = torch.device(device)
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.precision = precision
        self.splade_doc = splade_doc
        self.chunk_bytes = chunk_bytes
        self.vocab_size = self.model.get_output_embeddings().weight.shape[0]
        inv = {i: t for t, i in self.tokenizer.get_vocab().items()}
        self.vocab: list[str] = [inv.get(i, f"[id{i}]") for i in range(self.vocab_size)]
        self._special = np.array(sorted(set(self.tokenizer.all_special_ids)), dtype=np.int64)

    # -- forward -----------------------------------------------------------------------------------
    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @torch.inference_mode()
    def _encode_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[SparseVector]:
        batch, length = input_ids.shape
        per_row = max(1, length * self.vocab_size * 4)
        step = max(1, self.chunk_bytes // per_row)
        out: list[SparseVector] = []
        for lo in range(0, batch, step):
            ids = input_ids[lo:lo + step].to(self.device)
            mask = attention_mask[lo:lo + step].to(self.device)
            width = int(mask.sum(dim=1).max())  # trim columns that are padding in every row
            ids, mask = ids[:, :width], mask[:, :width]
            with self._autocast():
                logits = self.model(input_ids=ids, attention_mask=mask).logits
            reps = _pool_inference(logits.float(), mask, self.pooling).cpu().numpy()
            for rep in reps:
                nz = np.flatnonzero(rep > 0).astype(np.int32)
                out.append(SparseVector(nz, rep[nz].astype(np.float32)))
        return out

    def _tokenize(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        return self.tokenizer(list(texts), max_length=max_length, truncation=True, add_special_tokens=True,
                              return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    def encode_token_ids(self, token_ids: Sequence[Sequence[int]], batch_size: int = 32,
                         progress=None) -> list[SparseVector]:
        """Encode already-tokenized inputs, in length-sorted batches; results keep the input order."""
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]), reverse=True)
        results: list[SparseVector | None] = [None] * len(token_ids)
        pad_id = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(token_ids[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = token_ids[i]
                ids[row, :len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                mask[row, :len(seq)] = 1
            for i, vec in zip(idx, self._encode_batch(ids, mask)):
                results[i] = vec
            if progress is not None:
                progress.update(len(idx))
        return results  # type: ignore[return-value]

    # -- public API --------------------------------------------------------------------------------
    def encode_documents(self, texts: Sequence[str], batch_size: int = 32, progress=None) -> list[SparseVector]:
        """Encode documents (max length ``self.max_length``)."""
        return self.encode_token_ids(self._tokenize(texts, self.max_length), batch_size, progress)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> list[SparseVector]:
        """Encode queries: the model (max length ``self.query_max_length``) or, for SPLADE-doc, the
        set of their WordPiece tokens with weight 1."""
        if not self.splade_doc:
            return self.encode_token_ids(self._tokenize(texts, self.query_max_length), batch_size)
        out = []
        for seq in self._tokenize(texts, self.query_max_length):
            ids = np.setdiff1d(np.unique(np.asarray(seq, dtype=np.int64)), self._special).astype(np.int32)
            out.append(SparseVector(ids, np.ones(len(ids), dtype=np.float32)))
        return out

    def to_weights(self, vec: SparseVector) -> dict[str, float]:
        """Float weights keyed by WordPiece string."""
        return {self.vocab[i]: float(w) for i, w in zip(vec.ids, vec.weights)}

    def to_impacts(self, vec: SparseVector, factor: float = DEFAULT_FACTOR) -> dict[str, int]:
        """Integer impacts ``rint(w * factor)`` keyed by WordPiece string; zero impacts dropped."""
        ids, impacts = quantize_sparse(vec.ids, vec.weights, factor)
        return {self.vocab[i]: int(v) for i, v in zip(ids, impacts)}
