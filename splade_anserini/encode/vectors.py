"""Sparse vectors over a WordPiece vocabulary, shared by the PyTorch and ONNX Runtime encoders (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from splade_anserini.conversion.quantize import DEFAULT_FACTOR, quantize_sparse


@dataclass
class SparseVector:
    """Term ids (ascending) and their float weights."""

    ids: np.ndarray      # int32
    weights: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.ids)


def bag_of_tokens(seq: Sequence[int], special: np.ndarray, weights: np.ndarray | None = None) -> SparseVector:
    """A SPLADE-doc query: the distinct token ids of ``seq`` but ``special``, weight 1 or ``weights[id]``."""
    # Python sets: a query's few ids cost a few microseconds, numpy's setdiff1d about fifty.
    ids = np.array(sorted(set(int(i) for i in seq).difference(special.tolist())), dtype=np.int32)
    return SparseVector(ids, np.ones(len(ids), np.float32) if weights is None else weights[ids].astype(np.float32))


def length_batches(token_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Input positions in batches of ``batch_size``, longest first (a stable sort): the batch plan of
    both encoders. It depends only on the inputs, so the PyTorch and ONNX encoders pad alike."""
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]), reverse=True)
    size = max(1, int(batch_size))
    return [order[lo:lo + size] for lo in range(0, len(order), size)]


def in_input_order(n: int, done: Iterable[tuple[list[int], list[SparseVector]]],
                   progress=None) -> list[SparseVector]:
    """The vectors of ``done`` (``(positions, vectors)`` per batch, in any order) placed back at their
    input positions; ``progress.update`` after each batch."""
    out: list[SparseVector | None] = [None] * n
    for idx, vecs in done:
        for i, vec in zip(idx, vecs):
            out[i] = vec
        if progress is not None:
            progress.update(len(idx))
    return out  # type: ignore[return-value]


class VocabularyOutput:
    """``to_weights``/``to_impacts`` for an encoder with a ``vocab`` list (id -> WordPiece string)."""

    vocab: list[str]

    def to_weights(self, vec: SparseVector) -> dict[str, float]:
        """Float weights keyed by WordPiece string."""
        return {self.vocab[i]: float(w) for i, w in zip(vec.ids, vec.weights)}

    def to_impacts(self, vec: SparseVector, factor: float = DEFAULT_FACTOR) -> dict[str, int]:
        """Integer impacts ``rint(w * factor)`` keyed by WordPiece string; zero impacts dropped."""
        ids, impacts = quantize_sparse(vec.ids, vec.weights, factor)
        return {self.vocab[i]: int(v) for i, v in zip(ids, impacts)}
