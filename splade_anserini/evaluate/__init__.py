"""Runs to metrics: ir-measures evaluation, sparsity and FLOPS, Lucene/Numba parity
(``python -m splade_anserini.evaluate``)."""
