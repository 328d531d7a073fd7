"""Sparse vectors over a WordPiece vocabulary, shared by the PyTorch and ONNX Runtime encoders (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conversion.quantize import DEFAULT_FACTOR, quantize_sparse


@dataclass
class SparseVector:
    """Term ids (ascending) and their float weights."""

    ids: np.ndarray      # int32
    weights: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.ids)


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
