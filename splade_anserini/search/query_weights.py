"""Inference-free query weights for SPLADE-doc: one weight per vocabulary token, from the index's IDF.

A SPLADE-doc query is the set of its WordPiece tokens; with a weight table its token ``t`` weighs
``w(t)`` instead of 1 (as OpenSearch's doc-only sparse models do), still without any model run. The
table is computed once, when an index is built, from the documents' vectors (a token's document
frequency ``df`` is the number of documents where its impact is positive), with BM25's IDF

    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

and stored beside the index as ``query_weights.json`` (``{"kind", "documents", "weights": {token: w}}``).
A token the table lacks occurs in no document: it gets the IDF of ``df = 0`` (and matches nothing).
An ONNX export may carry a table too (``export_onnx --query-weights FILE``), for serving without
the index's folder; the trainer writes the IDF of its training corpus (``--query-weights idf``).
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from splade_anserini.conversion.errors import UsageError

QUERY_WEIGHTS = "query_weights.json"
QUERY_WEIGHT_KINDS = ("ones", "idf")


def idf(df: float, n_docs: int) -> float:
    """BM25's IDF (Lucene's ``BM25Similarity``): always positive."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def idf_table(vectors: Iterable[Mapping[str, float]]) -> dict:
    """The weight table of a collection of ``{token: impact}`` vectors."""
    df: Counter = Counter()
    n_docs = 0
    for vector in vectors:
        n_docs += 1
        df.update(token for token, weight in vector.items() if weight > 0)
    return {"kind": "idf", "documents": n_docs, "default": idf(0, n_docs),
            "weights": {token: idf(count, n_docs) for token, count in sorted(df.items())}}


def corpus_idf_table(texts: Iterable[str], tokenizer, batch_size: int = 256) -> dict:
    """The IDF table of the WordPiece tokens of texts (special tokens excluded): the trainer's, whose
    documents' SPLADE vectors change while it learns."""
    special = set(tokenizer.all_special_ids)
    texts = list(texts)

    def bags():
        for lo in range(0, len(texts), batch_size):
            for ids in tokenizer(texts[lo:lo + batch_size], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]:
                yield {token: 1 for token in tokenizer.convert_ids_to_tokens(sorted(set(ids) - special))}

    return {**idf_table(bags()), "source": "training corpus WordPiece tokens"}


def write_table(path: str | os.PathLike, table: dict) -> Path:
    """Write a table (a temporary name, then renamed): ``path`` is a file or a folder to hold it."""
    path = Path(os.fspath(path))
    if path.is_dir():
        path = path / QUERY_WEIGHTS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(table, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_index_table(index_dir: str | os.PathLike, input_path: str | os.PathLike, quantize: float | None = None) -> Path:
    """Compute the IDF table of an index's JsonVectorCollection input and store it in the index folder."""
    from splade_anserini.conversion.jsonvector import read_jsonvector

    table = idf_table(doc.vector for doc in read_jsonvector(input_path, factor=quantize))
    return write_table(Path(os.fspath(index_dir)) / QUERY_WEIGHTS, table)


def read_table(path: str | os.PathLike) -> dict:
    """A table file, or the one in a folder (an index or an export); a one-line error when absent or corrupt."""
    path = Path(os.fspath(path))
    if path.is_dir():
        path = path / QUERY_WEIGHTS
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no query weight table (rebuild the index, or pass --query-weights FILE)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable query weight table ({exc})") from None
    weights = table.get("weights") if isinstance(table, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(w, (int, float)) and w >= 0 for w in weights.values()):
        raise UsageError(f"{path}: not a query weight table (a 'weights' object of non-negative numbers)")
    return table


def weights_by_id(table: Mapping, vocab: Sequence[str]) -> np.ndarray:
    """The table as a float32 array over the vocabulary's ids."""
    default = float(table.get("default", 1.0))
    weights = table["weights"]
    return np.array([weights.get(token, default) for token in vocab], dtype=np.float32)


def resolve(query_weights: str | os.PathLike | None, index: str | os.PathLike | None) -> dict | None:
    """``--query-weights``: None or ``ones`` (weight 1), ``idf`` (the index's table) or a table file."""
    if query_weights in (None, "ones"):
        return None
    if query_weights == "idf":
        if index is None:
            raise UsageError("--query-weights idf reads the index's table: give --index")
        return read_table(index)
    return read_table(query_weights)
