"""Anserini ``JsonVectorCollection`` files: one JSON object a line, ``{"id", "contents", "vector"}``.

``vector`` maps raw WordPiece strings (``"##ing"``) to integer impacts. Files are written atomically
(temporary name, renamed when complete) and may be gzipped.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from .atomic import atomic_open
from .errors import InputError


class VectorDoc(NamedTuple):
    docid: str
    vector: dict[str, int]
    contents: str = ""


def dumps(docid: str, vector: dict[str, int], contents: str = "") -> str:
    """One JsonVectorCollection line (without the newline)."""
    return json.dumps({"id": docid, "contents": contents, "vector": vector})


def write_jsonvector(path: str | os.PathLike, docs: Iterable[VectorDoc]) -> int:
    """Write ``docs`` to ``path`` atomically; returns the number written. Empty vectors are refused:
    apply :func:`conversion.quantize.guard_empty` first."""
    n = 0
    with atomic_open(path) as fh:
        for doc in docs:
            if not doc.vector:
                raise ValueError(f"document {doc.docid!r} has an empty vector (Anserini rejects it)")
            fh.write(dumps(doc.docid, doc.vector, doc.contents))
            fh.write("\n")
            n += 1
    return n


def collection_files(path: str | os.PathLike) -> list[Path]:
    """The JsonVectorCollection files of a directory (sorted), or ``[path]`` for a single file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")))
        if not files:
            raise InputError(path, None, "no .jsonl or .jsonl.gz files in directory")
        return files
    if not path.is_file():
        raise InputError(path, None, "no such file or directory")
    return [path]


def read_jsonvector(path: str | os.PathLike) -> Iterator[VectorDoc]:
    """Yield the documents of a JsonVectorCollection file or directory, validating each line."""
    for file in collection_files(path):
        opener = gzip.open if file.name.endswith(".gz") else open
        with opener(file, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise InputError(file, lineno, f"invalid UTF-8 at byte {exc.start}") from None
                except json.JSONDecodeError as exc:
                    raise InputError(file, lineno, f"malformed JSON ({exc.msg})") from None
                if not isinstance(obj, dict) or "id" not in obj or not isinstance(obj.get("vector"), dict):
                    raise InputError(file, lineno, "expected an object with 'id' and a 'vector' object")
                vector = obj["vector"]
                for token, weight in vector.items():
                    if not isinstance(weight, int) or isinstance(weight, bool):
                        raise InputError(file, lineno, f"weight of {token!r} is {weight!r}, not an integer")
                yield VectorDoc(str(obj["id"]), vector, obj.get("contents", ""))
