"""Texts to SPLADE vectors: the SPLADE head and its pooling, the PyTorch encoder, passages (MaxP),
the exact int8-screened pooling, and the corpus encoding job (``python -m splade_anserini.encode_corpus``)."""
