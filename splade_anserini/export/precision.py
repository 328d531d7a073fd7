"""The precision OpenSearch ``rank_features`` and Elasticsearch ``sparse_vector`` keep.

Both store a feature's value in a Lucene ``FeatureField``: the float's bits shifted right by 15,
i.e. sign, exponent and the top 8 of the 23 mantissa bits (9 significant bits with the implicit one;
relative error below 2**-8, about 0.4%), truncated towards zero. :func:`stored` reproduces that
rounding; :func:`simulate_on_index` applies it to the document impacts of a loaded Numba index, so
that ``search --backend numba --simulate-storage-precision`` shows its cost before a cluster is
built. Integer impacts below 512 have at most 9 significant bits and pass unchanged.
"""
from __future__ import annotations

import numpy as np

#: FeatureField keeps the float bits >> 15: 9 significant bits.
DROPPED_BITS = 15
SIGNIFICANT_BITS = 24 - DROPPED_BITS


def stored(values) -> np.ndarray:
    """``values`` (float32-representable) as a FeatureField stores them (truncated to 9 significant bits)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32)
    return (bits & np.uint32(~((1 << DROPPED_BITS) - 1) & 0xFFFFFFFF)).view(np.float32)


def stored_impacts(impacts: np.ndarray) -> np.ndarray:
    """Integer impacts after the round trip through a FeatureField (still integers: truncation keeps
    the leading 9 bits), in the same dtype."""
    return stored(impacts.astype(np.float32)).astype(impacts.dtype)


def simulate_on_index(index) -> int:
    """Replace a ``NumbaIndex``'s document impacts by their stored precision (in memory); returns how
    many postings changed. The dense rows hold impacts up to 255, which lose nothing."""
    new = stored_impacts(np.asarray(index.impacts))
    changed = int(np.count_nonzero(new != np.asarray(index.impacts)))
    index.impacts = new
    return changed
