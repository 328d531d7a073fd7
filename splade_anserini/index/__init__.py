"""Vectors to an index: the Lucene impact index (Anserini) and the Numba reference index with its kernels
(``python -m splade_anserini.index``)."""
