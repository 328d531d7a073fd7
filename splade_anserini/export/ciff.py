"""The Common Index File Format (CIFF) from a vectors folder: PISA, BMP, Seismic and ciff-toolkit read it.

A CIFF file is a sequence of length-delimited protobuf messages (``io.osirrc.ciff``): one
``Header``, one ``PostingsList`` a term (term, df, cf, postings of delta-gapped docids and tf) and
one ``DocRecord`` a document (internal id, collection docid, length). For an impact collection, as
Anserini's and naver/splade's CIFF exports do, ``tf`` is the integer impact and a document's length
is the sum of its impacts. Documents are numbered in docid order (Python ``str`` order, as the Numba
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


def _collect(input_path) -> tuple[list[str], dict[str, list[tuple[int, int]]], list[int]]:
    """Docids in order, each term's ``(internal id, impact)`` postings, document lengths."""
    docs = [(d.docid, d.vector) for d in read_jsonvector(input_path)]
    if not docs:
        raise InputError(input_path, None, "no documents")
    docs.sort(key=lambda d: d[0])
    postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, (_, vector) in enumerate(docs):
        for token, impact in vector.items():
            postings[token].append((i, impact))
    return [d for d, _ in docs], postings, [sum(v.values()) for _, v in docs]


def export_ciff(input_path, output: str | os.PathLike, *, description: str | None = None) -> dict:
    """Write the collection at ``input_path`` as CIFF to ``output`` (checked and recorded as an output)."""
    from splade_anserini.conversion.atomic import atomic_open
    from splade_anserini.outputs import output_file
    from splade_anserini.progress import Progress
    from splade_anserini.provenance import describe, read_vectors

    start = time.perf_counter()
    with output_file(output, "ciff", inputs=(input_path,)):
        docids, postings, lengths = _collect(input_path)
        text = description or f"splade-anserini export: {describe(read_vectors(input_path))}; tf = integer impact"
        with atomic_open(output, "wb") as fh, Progress("ciff postings lists", total=len(postings), unit="term") as bar:
            fh.write(header(len(postings), len(docids), sum(lengths), text))
            for term in sorted(postings):
                arr = np.asarray(postings[term], dtype=np.int64)
                fh.write(postings_list(term, arr[:, 0], arr[:, 1]))
                bar.update()
            for i, (docid, length) in enumerate(zip(docids, lengths)):
                fh.write(doc_record(i, docid, length))
    return {"output": os.fspath(output), "documents": len(docids), "terms": len(postings),
            "postings": sum(len(p) for p in postings.values()), "seconds": round(time.perf_counter() - start, 2)}
