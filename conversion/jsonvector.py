"""Anserini ``JsonVectorCollection`` files: one JSON object a line, ``{"id", "contents", "vector"}``.

``vector`` maps raw WordPiece strings (``"##ing"``) to integer impacts. Files are written atomically
(temporary name, renamed when complete) and may be gzipped.

This module holds the one validator both index backends use, so that what an index accepts is
exactly what gets scored. Anserini turns a vector into a pseudo-document in which each token is
repeated ``int(weight)`` times and split on whitespace; anything that does not survive that trip
unchanged is refused with ``file:line: problem``:

* document ids: non-empty, no whitespace (a TREC run splits on it), at most :data:`MAX_ID_BYTES`
  UTF-8 bytes (Lucene's limit for a stored term), unique across all the input files;
* tokens: non-empty, no whitespace (it would split one token into two terms), at most
  :data:`MAX_TOKEN_CHARS` characters (Lucene's whitespace tokenizer cuts longer ones);
* weights: integers from 1 to :data:`MAX_IMPACT` (Anserini truncates floats and drops zero,
  negative and 32-bit-overflowing weights without a word); float weights are accepted only when a
  quantization factor is given, and are then quantized as ``encode_corpus`` does;
* vectors: not empty (Anserini counts an empty document as indexed-empty, not as a document).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from .atomic import atomic_open
from .textfile import raw_lines
from .errors import InputError

#: The largest impact accepted: both backends index it exactly (Anserini writes the token that many
#: times into a pseudo-document, so the cost of a weight grows with it; SPLADE impacts at x100 stay
#: below 1,000).
MAX_IMPACT = 65535
#: Lucene's whitespace tokenizer splits tokens longer than this into several terms.
MAX_TOKEN_CHARS = 255
#: Lucene refuses a stored id term longer than this many UTF-8 bytes.
MAX_ID_BYTES = 32766


class VectorDoc(NamedTuple):
    docid: str
    vector: dict[str, int]
    contents: str = ""


def docid_problem(docid: object, what: str = "document id") -> str | None:
    """Why ``docid`` cannot be an id in an index or a run, or ``None`` when it can."""
    if not isinstance(docid, str) or not docid:
        return f"empty {what}" if docid == "" else f"{what} must be a string, got {docid!r}"
    if any(c.isspace() for c in docid):
        return f"{what} {_short(docid)} contains whitespace"
    if not encodable(docid):
        return f"{what} {_short(docid)} is not valid Unicode (a lone surrogate)"
    if len(docid.encode("utf-8")) > MAX_ID_BYTES:
        return f"{what} {_short(docid)} is longer than {MAX_ID_BYTES} UTF-8 bytes (Lucene's limit)"
    return None


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (JSON's ``\\ud800`` escapes can smuggle in lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def vector_problem(vector: object) -> str | None:
    """Why ``vector`` (``{token: impact}``) cannot be indexed exactly, or ``None``."""
    if not isinstance(vector, dict):
        return "'vector' must be an object {token: weight}"
    if not vector:
        return "empty vector (Anserini would count the document as empty and not index it)"
    for token, weight in vector.items():
        if not token or any(c.isspace() for c in token):
            return f"token {_short(token)} is empty or contains whitespace (it would not be one term)"
        if len(token) > MAX_TOKEN_CHARS:
            return f"token {_short(token)} is longer than {MAX_TOKEN_CHARS} characters"
        if not encodable(token):
            return f"token {_short(token)} is not valid Unicode (a lone surrogate)"
        if type(weight) is not int:
            hint = " (pass a quantization factor for float vectors)" if isinstance(weight, float) else ""
            return f"weight of {token!r} is {weight!r}, not an integer{hint}"
        if not 1 <= weight <= MAX_IMPACT:
            return f"weight of {token!r} is {weight}, outside 1..{MAX_IMPACT}"
    return None


def quantize_vector(vector: dict, factor: float) -> tuple[dict[str, int], bool]:
    """Float weights -> impacts exactly as ``encode_corpus`` does (``rint(w * factor)`` in float32,
    impacts below 1 dropped, an emptied vector replaced by the guard); ``(vector, guarded)``.
    Raises ``ValueError`` for a weight that is not a finite number."""
    import numpy as np

    from .quantize import guard_empty, quantize

    for token, weight in vector.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"weight of {token!r} is {weight!r}, not a finite number")
    tokens = list(vector)
    impacts = quantize(np.fromiter((float(vector[t]) for t in tokens), dtype=np.float64, count=len(tokens)), factor)
    return guard_empty({t: int(v) for t, v in zip(tokens, impacts) if v > 0})


def dumps(docid: str, vector: dict[str, int], contents: str = "") -> str:
    """One JsonVectorCollection line (without the newline)."""
    return json.dumps({"id": docid, "contents": contents, "vector": vector})


def write_jsonvector(path: str | os.PathLike, docs: Iterable[VectorDoc]) -> int:
    """Write ``docs`` to ``path`` atomically; returns the number written. A document the readers
    would refuse (an empty vector: apply :func:`conversion.quantize.guard_empty` first) is refused
    here, and nothing is left at ``path``."""
    n = 0
    with atomic_open(path) as fh:
        for doc in docs:
            problem = docid_problem(doc.docid) or vector_problem(doc.vector)
            if problem:
                raise ValueError(f"document {doc.docid!r}: {problem}")
            fh.write(dumps(doc.docid, doc.vector, doc.contents))
            fh.write("\n")
            n += 1
    return n


def _is_metadata(file: Path) -> bool:
    """A ``.json`` file beside the shards that is not a document (a manifest): its first line is a
    JSON object without a ``vector``."""
    if not file.name.endswith(".json"):
        return False
    try:
        with open(file, "rb") as fh:
            first = next((line for line in fh if line.strip()), b"")
        obj = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and "vector" not in obj


def collection_files(path: str | os.PathLike) -> list[Path]:
    """The JsonVectorCollection files of a directory (sorted, without hidden files and manifest-like
    ``.json`` files), or ``[path]`` for a single file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz"))
                       and not _is_metadata(p))
        if not files:
            raise InputError(path, None, "no JsonVectorCollection files (.jsonl, .jsonl.gz, .json, .json.gz)")
        return files
    if not path.is_file():
        raise InputError(path, None, "no such file or directory")
    return [path]


def read_jsonvector(path: str | os.PathLike, *, factor: float | None = None, guarded: list | None = None,
                    seen: dict | None = None) -> Iterator[VectorDoc]:
    """Yield the documents of a JsonVectorCollection file or directory, validating every line (see
    the module docstring); ids must be unique across all the files.

    ``factor``: the weights are floats (from another tool) and are quantized with it; the ids of the
    documents whose vector became the guard are appended to ``guarded``. ``seen``: the ids read so
    far (shared between calls that read one collection file by file).
    """
    seen = {} if seen is None else seen
    for file in collection_files(path):
        for lineno, raw in raw_lines(file):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InputError(file, lineno, f"invalid UTF-8 at byte {exc.start}") from None
            except json.JSONDecodeError as exc:
                raise InputError(file, lineno, f"malformed JSON ({exc.msg})") from None
            except RecursionError:
                raise InputError(file, lineno, "malformed JSON (nested too deeply)") from None
            if not isinstance(obj, dict) or "id" not in obj or "vector" not in obj:
                raise InputError(file, lineno, "expected an object with 'id' and a 'vector' object")
            docid = obj["id"]
            if type(docid) is int:  # Anserini reads a number id as its text
                docid = str(docid)
            contents = obj.get("contents", "")
            if not isinstance(contents, str):
                raise InputError(file, lineno, "'contents' must be a string")
            vector = obj["vector"]
            if factor is not None and isinstance(vector, dict) and vector:
                try:
                    vector, was_guarded = quantize_vector(vector, factor)
                except ValueError as exc:
                    raise InputError(file, lineno, str(exc)) from None
                if was_guarded and guarded is not None:
                    guarded.append(docid)
            problem = docid_problem(docid) or vector_problem(vector)
            if problem:
                raise InputError(file, lineno, problem)
            if docid in seen:
                first, first_line = seen[docid]
                raise InputError(file, lineno, f"duplicate document id {_short(docid)} (first at {first}:{first_line})")
            seen[docid] = (file, lineno)
            yield VectorDoc(docid, vector, contents)
