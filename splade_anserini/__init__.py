"""splade-anserini: SPLADE learned-sparse retrieval, from training to a Lucene impact index."""

__version__ = "0.1.0"
