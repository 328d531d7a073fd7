"""The indexes a server answers for: each one checked at start against the query model as ``search``
checks it (:mod:`splade_anserini.provenance`), searched with one shared query encoder, its hits
explained from the index's own impacts, its documents looked up by id in a corpus held in memory.

A document id from a request is only ever a key of that in-memory mapping, never part of a path.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from splade_anserini.conversion.errors import UsageError
from splade_anserini.serve.backends import detect_backend, open_backend


class RequestError(ValueError):
    """A request the server refuses: ``status`` (4xx) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Encoder:
    """The query encoder every index shares (the screened ONNX encoder or a PyTorch checkpoint)."""

    model: str
    encoder: object
    identity: dict
    kind: str
    lock: threading.Lock | None = None  # PyTorch: one query at a time (its lazy caches are not shared safely)

    def vectors(self, texts: Sequence[str], factor: float) -> list[dict[str, int]]:
        """``{token: int impact}`` of each text, quantized with ``factor``."""
        if self.lock is None:
            vecs = self.encoder.encode_queries(list(texts), batch_size=32)
        else:
            with self.lock:
                vecs = self.encoder.encode_queries(list(texts), batch_size=32)
        return [self.encoder.to_impacts(v, factor) for v in vecs]


def load_encoder(model: str, *, max_length: int, threads: int = 0, screen: bool = True) -> Encoder:
    """An ONNX export (torch never imported) or a PyTorch checkpoint, with its identity for the checks.
    ``screen=False``: an export's plain fp32 graph encodes the queries (the lean process)."""
    from splade_anserini import provenance
    from splade_anserini.models import check_max_length, is_onnx_export
    from splade_anserini.search.query_encoder import load_query_encoder

    onnx = is_onnx_export(model)
    if onnx:
        from splade_anserini.serve.onnx_encoder import OnnxSpladeEncoder
        from splade_anserini.serve.query_graph import old_int8_notice

        encoder = OnnxSpladeEncoder(model, query_max_length=max_length, threads=threads, screen=None if screen else False)
        old_int8_notice(encoder.meta, model)
    elif not screen:
        raise UsageError(f"--no-screen: {model} is a checkpoint; the lean process serves an ONNX export")
    else:
        check_max_length(model, max_length)
        encoder = load_query_encoder(model, max_length=max_length, threads=threads)
    kind = ("onnx-screened" if encoder.screened else "onnx") if onnx else "pytorch"
    return Encoder(model, encoder, provenance.model_identity(encoder), kind, None if onnx else threading.Lock())


def read_documents(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``{docid: {"docid", "title", "text", "contents"}}`` of a BEIR ``corpus.jsonl`` or a ``pid<TAB>text`` file."""
    from splade_anserini.data import read_corpus

    docs = {}
    for doc in read_corpus(path):
        body = doc.text[len(doc.title):].strip() if doc.title and doc.text.startswith(doc.title) else doc.text
        docs[doc.docid] = {"docid": doc.docid, "title": doc.title, "text": body, "contents": doc.text}
    return docs


@dataclass
class ServedIndex:
    """One named index: its backend, the factor its provenance records, its documents (or none)."""

    name: str
    path: Path
    backend: object
    factor: float
    provenance: dict | None
    documents: dict[str, dict[str, str]] | None = None
    notes: list[str] = field(default_factory=list)

    def status(self, encoder: Encoder) -> dict:
        """What ``GET /indexes/{name}/status`` reports."""
        from splade_anserini.provenance import describe

        return {"name": self.name, "backend": self.backend.name, "documents": self.backend.n_docs,
                "factor": self.factor, "provenance": describe(self.provenance), "query_encoder": encoder.kind,
                "corpus": self.documents is not None, "downloaded": True}

    def document(self, docid: str) -> dict[str, str]:
        if self.documents is None:
            raise RequestError(404, f"index {self.name} serves no documents (start the server with --corpus)")
        doc = self.documents.get(docid)
        if doc is None:
            raise RequestError(404, f"Document {docid} not found in index {self.name}")
        return doc

    def search(self, vectors: Sequence[Mapping[str, int]], k: int) -> list[list[tuple[str, float]]]:
        return [self.backend.search(v, k) for v in vectors]

    def explain(self, vector: Mapping[str, int], hits: Sequence[tuple[str, float]]) -> list[dict]:
        """For each hit, its matched terms (query weight, document impact, product), largest first;
        the products sum to the hit's score."""
        impacts = self.backend.impacts([d for d, _ in hits], list(vector))
        out = []
        for docid, score in hits:
            terms = [{"term": t, "query_weight": int(vector[t]), "impact": i, "contribution": int(vector[t]) * i}
                     for t, i in impacts[docid].items()]
            terms.sort(key=lambda x: (-x["contribution"], x["term"]))
            out.append({"score": score, "sum": sum(x["contribution"] for x in terms), "terms": terms})
        return out


def load_index(name: str, path: str | os.PathLike, encoder: Encoder, *, backend: str | None,
               allow_other: bool = False, corpus: str | os.PathLike | None = None) -> ServedIndex:
    """Open one index after checking it as ``search`` does: the factor it records, the query model's
    weights against the documents' model (refused unless ``allow_other``), an export's factor."""
    from splade_anserini import provenance

    path = Path(os.fspath(path)).expanduser()
    found = detect_backend(path)
    kind = backend or found
    if found is None or kind != found:
        what = {"numba": "a Numba index (no header.json)", "lucene": "a Lucene index (no segments file)"}
        raise UsageError(f"--index {name}={path}: not {what.get(kind, 'an index')}; build one with "
                         "`splade-anserini index`")
    plan = provenance.plan_search(path, factor=None)
    if isinstance(getattr(encoder.encoder, "meta", None), dict):
        provenance.check_export(plan, path, encoder.model, encoder.encoder.meta)
    provenance.check_query_model(plan, path, encoder.identity, allow_other=allow_other)
    documents = read_documents(corpus) if corpus is not None else None
    served = ServedIndex(name, path, open_backend(kind, path), plan.factor, plan.provenance, documents,
                         plan.notes)
    return served
