"""OpenSearch ``rank_features`` and Elasticsearch ``sparse_vector`` files from a vectors folder.

``export --to opensearch|elasticsearch --output DIR`` writes, through a temporary folder renamed when
complete (:mod:`splade_anserini.outputs`):

* ``mapping.json``: the body of ``PUT /INDEX`` (``docid`` keyword, ``vector`` ``rank_features`` or
  ``sparse_vector``);
* ``bulk/part-NNNNN.ndjson``: ``_bulk`` request bodies of ``--chunk-size`` documents each (an
  ``index`` action line with ``_index`` and ``_id``, then the document);
* ``query-template.json``: the ``_search`` body (OpenSearch ``neural_sparse`` with ``query_tokens``;
  Elasticsearch ``sparse_vector`` with ``query_vector`` and ``prune: false``, so that no query token
  is dropped); ``{{query_tokens}}`` stands for the encoded query;
* ``export.json``: provenance, counts, the key escaping and the precision note.

What the engines require, checked or arranged here:

* feature names: a dot in an object key is read as a path (``a.b`` becomes ``{"a": {"b": ...}}``) and
  ``rank_features`` cannot hold objects; WordPiece has ``.`` tokens. Keys are therefore the tokens
  with ``%`` and ``.`` percent-escaped (``%25``, ``%2E``), a reversible mapping (:func:`feature_key`),
  which the query side applies too. Tokens are at most 255 characters (the collections' validator),
  far below Lucene's 32,766-byte term limit;
* values: strictly positive finite numbers: the integer impacts (1..65535) are written as they are;
* ``_id``: at most 512 bytes (longer document ids are refused in one line);
* precision: both engines keep 9 significant bits of each value (a Lucene ``FeatureField``); impacts
  up to 511 are exact, larger ones are truncated. ``search --backend numba
  --simulate-storage-precision`` measures what that costs.

These files were checked against the engines' documented formats, not loaded into a live cluster.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from splade_anserini.conversion.errors import InputError, UsageError
from splade_anserini.conversion.jsonvector import collection_files, read_jsonvector

ENGINES = ("opensearch", "elasticsearch")
#: Elasticsearch and OpenSearch refuse an ``_id`` longer than this many UTF-8 bytes.
MAX_ID_BYTES = 512
FIELD = "vector"
PRECISION_NOTE = ("OpenSearch rank_features and Elasticsearch sparse_vector keep 9 significant bits of each value "
                  "(Lucene FeatureField): impacts up to 511 are stored exactly, larger ones truncated (relative "
                  "error < 0.4%); `search --backend numba --simulate-storage-precision` shows the nDCG@10 cost")


def feature_key(token: str) -> str:
    """The feature name of ``token``: ``%`` and ``.`` percent-escaped (no dots, reversible)."""
    return token.replace("%", "%25").replace(".", "%2E")


def token_of(key: str) -> str:
    """The token a feature name stands for (inverse of :func:`feature_key`)."""
    return key.replace("%2E", ".").replace("%25", "%")


def mapping(engine: str) -> dict:
    """The ``PUT /INDEX`` body."""
    kind = "rank_features" if engine == "opensearch" else "sparse_vector"
    return {"mappings": {"properties": {"docid": {"type": "keyword"}, FIELD: {"type": kind}}}}


def query_template(engine: str, size: int = 1000) -> dict:
    """The ``_search`` body; ``"{{query_tokens}}"`` stands for ``{feature_key(token): weight}``."""
    if engine == "opensearch":
        query = {"neural_sparse": {FIELD: {"query_tokens": "{{query_tokens}}"}}}
    else:
        query = {"sparse_vector": {"field": FIELD, "query_vector": "{{query_tokens}}", "prune": False}}
    return {"size": size, "query": query, "_source": ["docid"]}


def query_body(engine: str, vector: dict[str, float], size: int = 1000) -> dict:
    """The template filled with one encoded query ``{token: weight}``."""
    body = query_template(engine, size)
    inner = body["query"]["neural_sparse"][FIELD] if engine == "opensearch" else body["query"]["sparse_vector"]
    inner["query_tokens" if engine == "opensearch" else "query_vector"] = {feature_key(t): w for t, w in vector.items()}
    return body


def bulk_lines(index_name: str, docid: str, vector: dict[str, int]) -> str:
    """The two NDJSON lines that index one document."""
    action = json.dumps({"index": {"_index": index_name, "_id": docid}}, ensure_ascii=False)
    source = json.dumps({"docid": docid, FIELD: {feature_key(t): w for t, w in vector.items()}}, ensure_ascii=False)
    return f"{action}\n{source}\n"


def _validate(input_path) -> int:
    """Every document through the indexes' validator, and the engines' ``_id`` limit: the count."""
    n = 0
    for file in collection_files(input_path):
        for doc in read_jsonvector(file):
            n += 1
            if len(doc.docid.encode("utf-8")) > MAX_ID_BYTES:
                raise InputError(file, None, f"document id {doc.docid[:40]!r}... is longer than {MAX_ID_BYTES} UTF-8 "
                                             "bytes (the engines' _id limit)")
    if not n:
        raise InputError(input_path, None, "no documents")
    return n


def _write_bulk(folder: Path, input_path, index_name: str, chunk_size: int, total: int) -> int:
    """``_bulk`` bodies of ``chunk_size`` documents each: the number of files."""
    from itertools import islice

    from splade_anserini.conversion.atomic import atomic_open
    from splade_anserini.progress import Progress

    folder.mkdir()
    docs, part = read_jsonvector(input_path), 0
    with Progress("bulk files", total=total, unit="doc") as bar:
        while chunk := list(islice(docs, chunk_size)):
            with atomic_open(folder / f"part-{part:05d}.ndjson") as fh:
                fh.writelines(bulk_lines(index_name, d.docid, d.vector) for d in chunk)
            part += 1
            bar.update(len(chunk))
    return part


def export_search_engine(input_path, output, engine: str, *, index_name: str = "splade", chunk_size: int = 5000,
                         overwrite: bool = False) -> dict:
    """Write the mapping, the bulk files and the query template for ``engine`` into ``output``."""
    from splade_anserini import outputs
    from splade_anserini.provenance import read_vectors

    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, got {engine}")
    kind = f"{engine}-export"
    if outputs.check_dir(output, kind) and not overwrite:
        raise UsageError(f"{output} already exists; pass --overwrite to replace it")
    start = time.perf_counter()
    total = _validate(input_path)
    tmp = outputs.temp_dir(output, "export")
    try:
        (tmp / "mapping.json").write_text(json.dumps(mapping(engine), indent=2) + "\n")
        (tmp / "query-template.json").write_text(json.dumps(query_template(engine), indent=2) + "\n")
        parts = _write_bulk(tmp / "bulk", input_path, index_name, chunk_size, total)
        info = {"engine": engine, "index": index_name, "documents": total, "bulk_files": parts,
                "chunk_size": chunk_size, "field": FIELD, "keys": "tokens, with % and . percent-escaped",
                "values": "integer impacts", "precision": PRECISION_NOTE, "provenance": read_vectors(input_path),
                "seconds": round(time.perf_counter() - start, 2)}
        (tmp / "export.json").write_text(json.dumps(info, indent=2) + "\n")
        outputs.install_dir(tmp, output, kind)
    except BaseException:
        outputs.remove(tmp)
        raise
    return info


__all__ = ["ENGINES", "export_search_engine", "feature_key", "token_of", "mapping", "query_template", "query_body",
           "bulk_lines", "PRECISION_NOTE"]
