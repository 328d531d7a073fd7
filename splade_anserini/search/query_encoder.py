"""A Pyserini query encoder backed by our SPLADE encoder, for ``LuceneImpactSearcher``.

>>> from splade_anserini.search.query_encoder import SpladeQueryEncoder   # starts the JVM (the safe way)
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

from types import MappingProxyType
from typing import Mapping, Sequence

__all__ = ["SpladeQueryEncoder", "QueryVectorizer", "PreEncodedQueries", "load_query_encoder"]


class QueryVectorizer:
    """JVM-free core of the query encoder: texts -> ``{token: int impact}`` in batches.

    ``model``: a checkpoint directory, hub id or ``splade-tiny`` (PyTorch), or an ONNX export
    directory (``python -m splade_anserini.export_onnx``: ONNX Runtime, neither torch nor
    transformers is imported). Used directly by the numba backend and the TsvInt writer;
    ``SpladeQueryEncoder`` wraps it for Pyserini.
    """

    def __init__(self, model: str = "splade-tiny", factor: float | str = 100, splade_doc: bool = False,
                 max_length: int = 256, *, device: str = "cpu", pooling: str | None = None,
                 precision: str = "fp32", batch_size: int = 32, encoder=None, threads: int = 0,
                 query_weights: dict | None = None):
        from splade_anserini.conversion.quantize import resolve_factor

        self.factor = resolve_factor(factor)
        self.batch_size = batch_size
        if encoder is None:
            encoder = load_query_encoder(model, splade_doc=splade_doc, max_length=max_length, device=device,
                                         pooling=pooling, precision=precision, threads=threads,
                                         query_weights=query_weights)
        self.encoder = encoder

    def encode_batch(self, texts: Sequence[str], batch_size: int | None = None) -> list[dict[str, int]]:
        """Encode many queries at once (length-sorted batches); output in input order."""
        vecs = self.encoder.encode_queries(list(texts), batch_size=batch_size or self.batch_size)
        return [self.encoder.to_impacts(v, self.factor) for v in vecs]

    def encode(self, text: str, **kwargs) -> dict[str, int]:
        """Encode one query."""
        return self.encode_batch([text])[0]


def load_query_encoder(model: str = "splade-tiny", *, splade_doc: bool = False, max_length: int = 256,
                       device: str = "cpu", pooling: str | None = None, precision: str = "fp32", threads: int = 0,
                       query_weights: dict | None = None):
    """A :class:`~splade_anserini.encode.splade.SpladeEncoder`, or for an ONNX export directory an
    :class:`~splade_anserini.serve.onnx_encoder.OnnxSpladeEncoder` (CPU, fp32 or the export's int8).
    ``query_weights``: SPLADE-doc query token weights (:mod:`.query_weights`), instead of 1."""
    from splade_anserini.models import is_onnx_export

    if is_onnx_export(model):
        if device != "cpu" or precision != "fp32":
            raise ValueError(f"model {model}: an ONNX export runs on the CPU as exported; "
                             f"device {device!r} / precision {precision!r} do not apply")
        from splade_anserini.serve.onnx_encoder import OnnxSpladeEncoder

        return OnnxSpladeEncoder(model, query_max_length=max_length, pooling=pooling,
                                 splade_doc=splade_doc or None, threads=threads, query_weights=query_weights)
    from splade_anserini.encode.splade import SpladeEncoder

    return SpladeEncoder(model, pooling=pooling or "max", device=device, query_max_length=max_length,
                         precision=precision, splade_doc=splade_doc, query_weights=query_weights)


class PreEncodedQueries:
    """A stateless Pyserini query encoder over vectors encoded beforehand: ``encode(key)`` returns
    ``vectors[key]``. Search with the keys as query strings (``batch_search(qids, qids)``), so
    batched encoding and Pyserini's one-at-a-time ``encode`` calls never meet."""

    def __init__(self, vectors: Mapping[str, dict[str, int]]):
        self.vectors = MappingProxyType({key: dict(vec) for key, vec in vectors.items()})

    def encode(self, key: str, **kwargs) -> dict[str, int]:
        """The vector stored under ``key`` (a copy)."""
        return dict(self.vectors[key])


_CLASS = None


def _build_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from splade_anserini import java

    java.pyserini_lucene()  # starts the JVM ourselves; later plain pyserini imports then work
    base = java.pyserini_encode().QueryEncoder

    class SpladeQueryEncoder(base, QueryVectorizer):
        """Pyserini ``QueryEncoder`` returning ``{WordPiece token: int impact}`` for ``LuceneImpactSearcher``.

        Parameters: ``model`` (a checkpoint directory, hub id, ``splade-tiny`` or an ONNX export
        directory), ``factor`` (the
        documents' quantization factor: a number or ``naver``/``pyserini``), ``splade_doc`` (queries
        as bags of WordPiece tokens, weight 1 before quantization), ``max_length`` (query tokens),
        plus ``device``, ``pooling``, ``precision``, ``batch_size`` and ``encoder`` (an existing
        :class:`~splade_anserini.encode.splade.SpladeEncoder` or ONNX encoder to share).
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
