"""A Pyserini query encoder backed by our SPLADE encoder, for ``LuceneImpactSearcher``.

>>> from splade_anserini.query_encoder import SpladeQueryEncoder   # starts the JVM (the safe way)
>>> from pyserini.search.lucene import LuceneImpactSearcher
>>> hits = LuceneImpactSearcher("work/scifact-splade-tiny/index", SpladeQueryEncoder("splade-tiny")).search("aspirin", k=10)

``SpladeQueryEncoder`` is a real subclass of ``pyserini.encode.QueryEncoder``. Importing this
module starts nothing: the class is built on first access (module ``__getattr__``), after
:func:`splade_anserini.java.pyserini_lucene` has started the JVM with a usable Java and imported
Pyserini's search and encode modules (so a plain ``from pyserini.search.lucene import ...``
afterwards works without ``OPENAI_API_KEY``).

``encode(text)`` returns ``{WordPiece token: int impact}``: the exact token strings the
JsonVectorCollection documents were indexed with, quantized with the same factor
(``rint(w * factor)``, zero impacts dropped). Tokens absent from the index are harmless: Pyserini
drops them (they have no idf), and Anserini's ``SearchCollection`` matches nothing for them.

Note: ``LuceneImpactSearcher`` also drops tokens whose idf is not above ``min_idf`` (default 0),
i.e. tokens that occur in *every* document. ``SearchCollection`` keeps them; pass
``min_idf=float("-inf")`` to get identical rankings (``python -m splade_anserini.search`` does).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

__all__ = ["SpladeQueryEncoder", "QueryVectorizer"]


class QueryVectorizer:
    """JVM-free core of the query encoder: texts -> ``{token: int impact}`` in batches.

    Used directly by the numba backend and the TsvInt writer; ``SpladeQueryEncoder`` wraps it
    for Pyserini.
    """

    def __init__(self, model: str = "splade-tiny", factor: float | str = 100, splade_doc: bool = False,
                 max_length: int = 256, *, device: str = "cpu", pooling: str = "max",
                 precision: str = "fp32", batch_size: int = 32, encoder=None):
        from conversion.quantize import resolve_factor

        self.factor = resolve_factor(factor)
        self.batch_size = batch_size
        if encoder is None:
            from .splade import SpladeEncoder

            encoder = SpladeEncoder(model, pooling=pooling, device=device, query_max_length=max_length,
                                    precision=precision, splade_doc=splade_doc)
        self.encoder = encoder
        self._cache: dict[str, dict[str, int]] = {}

    def encode_batch(self, texts: Sequence[str], batch_size: int | None = None) -> list[dict[str, int]]:
        """Encode many queries at once (length-sorted batches); output in input order."""
        vecs = self.encoder.encode_queries(list(texts), batch_size=batch_size or self.batch_size)
        return [self.encoder.to_impacts(v, self.factor) for v in vecs]

    def encode(self, text: str, **kwargs) -> dict[str, int]:
        """Encode one query; served from the cache filled by :meth:`cached` when present."""
        hit = self._cache.get(text)
        if hit is not None:
            return dict(hit)
        return self.encode_batch([text])[0]

    @contextmanager
    def cached(self, texts: Sequence[str], batch_size: int | None = None,
               vectors: Sequence[dict[str, int]] | None = None) -> Iterator[list[dict[str, int]]]:
        """Encode ``texts`` in batches up front (or take their already encoded ``vectors``); inside
        the block :meth:`encode` returns those results, so Pyserini's one-query-at-a-time
        ``batch_search`` still runs batched encoding."""
        if vectors is None:
            unique = list(dict.fromkeys(texts))
            vectors = self.encode_batch(unique, batch_size)
        else:
            if len(vectors) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
            unique = list(texts)
        saved = self._cache
        self._cache = {**saved, **dict(zip(unique, vectors))}
        try:
            yield [self._cache[t] for t in texts]
        finally:
            self._cache = saved


_CLASS = None


def _build_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from . import java

    java.pyserini_lucene()  # starts the JVM ourselves; later plain pyserini imports then work
    base = java.pyserini_encode().QueryEncoder

    class SpladeQueryEncoder(base, QueryVectorizer):
        """Pyserini ``QueryEncoder`` returning ``{WordPiece token: int impact}`` for ``LuceneImpactSearcher``.

        Parameters: ``model`` (a checkpoint directory, hub id or ``splade-tiny``), ``factor`` (the
        documents' quantization factor: a number or ``naver``/``pyserini``), ``splade_doc`` (queries
        as bags of WordPiece tokens, weight 1 before quantization), ``max_length`` (query tokens),
        plus ``device``, ``pooling``, ``precision``, ``batch_size`` and ``encoder`` (an existing
        :class:`~splade_anserini.splade.SpladeEncoder` to share).
        """

        def __init__(self, model: str = "splade-tiny", factor: float | str = 100, splade_doc: bool = False,
                     max_length: int = 256, **kwargs):
            base.__init__(self)
            QueryVectorizer.__init__(self, model, factor, splade_doc, max_length, **kwargs)

        def encode(self, text: str, **kwargs) -> dict[str, int]:  # noqa: D102 (Pyserini's entry point)
            return QueryVectorizer.encode(self, text)

    SpladeQueryEncoder.__module__ = __name__
    _CLASS = SpladeQueryEncoder
    return _CLASS


def __getattr__(name: str):
    if name == "SpladeQueryEncoder":
        cls = _build_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
