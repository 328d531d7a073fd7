"""The Common Index File Format (CIFF) from a vectors folder: PISA, BMP, Seismic and ciff-toolkit read it.

A CIFF file is a sequence of length-delimited protobuf messages (``io.osirrc.ciff``): one
``Header``, one ``PostingsList`` a term (term, df, cf, postings of delta-gapped docids and tf) and
one ``DocRecord`` a document (internal id, collection docid, length). For an impact collection, as
Anserini's and naver/splade's CIFF exports do, ``tf`` is the integer impact and a document's length
is the sum of its impacts. ``max_impact`` rescales the impacts linearly so that the largest is at
most that bound (each posting kept, at least 1): BMP stores impacts in 8 bits and adds scores up
in 16 bits, so a collection is exported for it with ``max_impact=63`` (:data:`BMP_SAFE_IMPACT`). Documents are numbered in docid order (Python ``str`` order, as the Numba
index and Lucene break ties), terms listed in ``str`` order.

The messages are encoded here, with the protobuf wire format's varints and length prefixes (no
generated code: the ``protobuf`` runtime that Milvus's client needs is too new for ciff-toolkit's
pins, and the format is small); the tests read the file back with ciff-toolkit. Written under a
temporary name, renamed when complete; ``.gz`` names are gzipped.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict

import numpy as np

from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.jsonvector import read_jsonvector

VERSION = 1


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value) if value else b""  # proto3 leaves zeros out


def _bytes_field(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value if value else b""


def _double_field(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + np.float64(value).tobytes() if value else b""


def delimited(message: bytes) -> bytes:
    return varint(len(message)) + message


def header(num_terms: int, num_docs: int, total_terms: int, description: str) -> bytes:
    return delimited(_int_field(1, VERSION) + _int_field(2, num_terms) + _int_field(3, num_docs)
                     + _int_field(4, num_terms) + _int_field(5, num_docs) + _int_field(6, total_terms)
                     + _double_field(7, total_terms / num_docs if num_docs else 0.0)
                     + _bytes_field(8, description.encode("utf-8")))


def postings_list(term: str, docs: np.ndarray, tfs: np.ndarray) -> bytes:
    """One ``PostingsList``: ``docs`` ascending internal ids, ``tfs`` their impacts."""
    gaps = np.diff(docs, prepend=0)
    postings = b"".join(_bytes_field(4, _int_field(1, int(g)) + _int_field(2, int(t))) for g, t in zip(gaps, tfs))
    return delimited(_bytes_field(1, term.encode("utf-8")) + _int_field(2, len(docs)) + _int_field(3, int(tfs.sum()))
                     + postings)


def doc_record(internal: int, docid: str, length: int) -> bytes:
    return delimited(_int_field(1, internal) + _bytes_field(2, docid.encode("utf-8")) + _int_field(3, length))


#: The largest impact BMP stores exactly (its postings hold 8-bit scores).
BMP_MAX_IMPACT = 255
#: The bound to export for BMP: it adds a document's score up in 16 bits, with query weights of at most 32,
#: so 32 x 63 x 32 matching terms stays under 65,536 (with 255, a long query's best scores wrap around).
BMP_SAFE_IMPACT = 63


def rescale(vector: dict[str, int], scale: float) -> dict[str, int]:
    """``vector``'s impacts times ``scale``, rounded half up, each at least 1 (no posting is lost)."""
    return {t: max(1, int(np.floor(v * scale + 0.5))) for t, v in vector.items()}


def rescaled_docs(input_path, max_impact: int | None) -> tuple[list[tuple[str, dict[str, int]]], float]:
    """The collection's ``(docid, vector)`` pairs in docid order, rescaled so that no impact exceeds
    ``max_impact`` (``None``: unchanged), and the scale applied (1.0 when none was needed)."""
    docs = [(d.docid, d.vector) for d in read_jsonvector(input_path)]
    if not docs:
        raise InputError(input_path, None, "no documents")
    docs.sort(key=lambda d: d[0])
    largest = max(max(v.values()) for _, v in docs)
    if max_impact is None or largest <= max_impact:
        return docs, 1.0
    scale = max_impact / largest
    return [(d, rescale(v, scale)) for d, v in docs], scale


def _collect(docs: list[tuple[str, dict[str, int]]]) -> tuple[list[str], dict[str, list[tuple[int, int]]], list[int]]:
    """Docids in order, each term's ``(internal id, impact)`` postings, document lengths."""
    postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, (_, vector) in enumerate(docs):
        for token, impact in vector.items():
            postings[token].append((i, impact))
    return [d for d, _ in docs], postings, [sum(v.values()) for _, v in docs]


def export_ciff(input_path, output: str | os.PathLike, *, description: str | None = None,
                max_impact: int | None = None) -> dict:
    """Write the collection at ``input_path`` as CIFF to ``output`` (checked and recorded as an output),
    its impacts rescaled to at most ``max_impact`` when given."""
    from splade_anserini.conversion.atomic import atomic_open
    from splade_anserini.outputs import output_file
    from splade_anserini.progress import Progress
    from splade_anserini.provenance import describe, read_vectors

    start = time.perf_counter()
    with output_file(output, "ciff", inputs=(input_path,)):
        docs, scale = rescaled_docs(input_path, max_impact)
        largest = max(max(v.values()) for _, v in docs)
        docids, postings, lengths = _collect(docs)
        text = description or f"splade-anserini export: {describe(read_vectors(input_path))}; tf = integer impact"
        if scale != 1.0:
            text += f" rescaled by {scale:.6g} (at most {max_impact})"
        with atomic_open(output, "wb") as fh, Progress("ciff postings lists", total=len(postings), unit="term") as bar:
            fh.write(header(len(postings), len(docids), sum(lengths), text))
            for term in sorted(postings):
                arr = np.asarray(postings[term], dtype=np.int64)
                fh.write(postings_list(term, arr[:, 0], arr[:, 1]))
                bar.update()
            for i, (docid, length) in enumerate(zip(docids, lengths)):
                fh.write(doc_record(i, docid, length))
    return {"output": os.fspath(output), "documents": len(docids), "terms": len(postings),
            "postings": sum(len(p) for p in postings.values()), "max_impact": largest, "scale": scale, "seconds": round(time.perf_counter() - start, 2)}


#: BMP adds a document's score up in 16 bits.
BMP_SCORE_WRAP = 2**16

#: BMP's ``Searcher.search`` quantizes a query's weights to this many levels (its ``MAX_TERM_WEIGHT``).
BMP_QUERY_LEVELS = 32


def bmp_query_weights(query: dict[str, float]) -> dict[str, int]:
    """The integer weights BMP's ``Searcher.search`` gives ``query``: each weight times
    ``32 / max weight``, rounded up, in float32 as BMP computes it. Scoring the rescaled collection
    with these weights exactly is what BMP with ``alpha = beta = 1`` must return."""
    weights = np.asarray(list(query.values()), dtype=np.float32)
    scale = np.float32(BMP_QUERY_LEVELS) / weights.max()
    return {t: int(np.ceil(np.float32(w) * scale)) for t, w in zip(query, weights)}


def explains_bmp(exact_scores: np.ndarray, docids: list[str], got: list[tuple[str, float]], block_size: int = 32) -> int | None:
    """Which block BMP left out, if its hits ``got`` are the exact top ``len(got)`` of
    ``exact_scores`` (one score per document, in the CIFF's internal order) as BMP adds them up, in
    16 bits (a score above 65,535 wraps around), with at most one block of ``block_size`` documents
    removed: ``-1`` for none, the block's number, or ``None`` when no single block explains them
    (BMP's search loop never scores the last block of its candidate list). Ties at the last score
    may go either way; above it the documents must be the same."""
    k = len(got)
    exact_scores = np.mod(exact_scores, BMP_SCORE_WRAP)
    position = {d: i for i, d in enumerate(docids)}
    want = [s for _, s in got]
    for block in (-1, *sorted({position[d] // block_size for d in docids}, key=lambda b: -exact_scores[
            b * block_size:(b + 1) * block_size].max())):
        scores = exact_scores.astype(np.float64, copy=True)
        if block >= 0:
            scores[block * block_size:(block + 1) * block_size] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        if [float(scores[i]) for i in top] != want:
            continue
        above = {docids[i] for i in top if scores[i] > want[-1]}
        if above == {d for d, s in got if s > want[-1]}:
            return block
    return None
