"""Index to runs: query encoders, the Lucene and Numba backends, BM25, fusion, IDF query weights
(``python -m splade_anserini.search``)."""
