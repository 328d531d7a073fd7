"""Float SPLADE weights -> integer impacts, as Anserini's impact index stores them."""
from __future__ import annotations

import numpy as np

#: Named quantization factors: naver/splade multiplies by 100; Pyserini's SPLADE encoder maps [0, 5] to 256 levels.
FACTORS: dict[str, float] = {"naver": 100.0, "pyserini": 256.0 / 5.0}
DEFAULT_FACTOR = FACTORS["naver"]

#: The placeholder naver/splade writes for a vector with no surviving term (BERT id 998):
#: Anserini rejects empty documents, so an empty vector becomes ``{GUARD_TOKEN: 1}``.
GUARD_TOKEN = "[unused993]"


def resolve_factor(value: str | float) -> float:
    """A factor given as a preset name (``naver``, ``pyserini``) or a positive number."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in FACTORS:
            return FACTORS[key]
        try:
            value = float(key)
        except ValueError:
            raise ValueError(f"quantization factor {value!r}: expected a number or one of {sorted(FACTORS)}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"quantization factor must be a positive number, got {value}")
    return float(value)


def quantize(weights: np.ndarray, factor: float = DEFAULT_FACTOR) -> np.ndarray:
    """``rint(w * factor)`` as int32 (round half to even, as numpy and torch do)."""
    return np.rint(np.asarray(weights, dtype=np.float32) * np.float32(factor)).astype(np.int32)


def quantize_sparse(term_ids: np.ndarray, weights: np.ndarray,
                    factor: float = DEFAULT_FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """Quantize one sparse vector and drop the terms whose impact rounds to 0 (or below)."""
    impacts = quantize(weights, factor)
    keep = impacts > 0
    return np.asarray(term_ids)[keep], impacts[keep]


def guard_empty(vector: dict[str, int], guard_token: str = GUARD_TOKEN) -> tuple[dict[str, int], bool]:
    """Return ``(vector, False)``, or ``({guard_token: 1}, True)`` when ``vector`` is empty."""
    if vector:
        return vector, False
    return {guard_token: 1}, True
