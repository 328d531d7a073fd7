"""Readers for BEIR and MS MARCO text files, and where the shared data lives.

Every reader validates as it goes and raises :class:`conversion.errors.InputError` naming the
file, the line and the problem.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, NamedTuple

from conversion.errors import InputError
from conversion.jsonvector import encodable, docid_problem, read_lines

DATA_ENV = "SPLADE_ANSERINI_DATA"


def data_root() -> Path:
    """Root of the real test data: ``$SPLADE_ANSERINI_DATA`` or ``../shared/data`` beside the checkout."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


class Doc(NamedTuple):
    """One corpus document: its 1-based line number in the file, id and text."""

    line: int
    docid: str
    text: str


def detect_format(path: str | os.PathLike) -> str:
    """``"beir"`` for JSON lines (``corpus.jsonl``), ``"msmarco"`` for ``pid<TAB>text`` files."""
    name = os.fspath(path).removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return "beir"
    if name.endswith((".tsv", ".txt")):
        return "msmarco"
    first = next((raw for _, raw in read_lines(path) if raw.strip()), b"").lstrip()
    return "beir" if first.startswith(b"{") else "msmarco"


def _decoded_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    for lineno, raw in read_lines(path):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(path, lineno, f"invalid UTF-8 at byte {exc.start}") from None
        line = line.rstrip("\r\n")
        if line.strip():
            yield lineno, line


def read_corpus(path: str | os.PathLike, fmt: str | None = None, *, check_duplicates: bool = True) -> Iterator[Doc]:
    """Yield the documents of a BEIR ``corpus.jsonl`` or an MS MARCO ``collection.tsv``.

    BEIR title and text are joined with a space, as Pyserini's encoders do. Empty text is yielded
    (the caller counts it and emits the guard vector); everything else malformed raises.
    """
    fmt = fmt or detect_format(path)
    if fmt not in ("beir", "msmarco"):
        raise ValueError(f"unknown corpus format {fmt!r} (expected beir or msmarco)")
    seen: set[str] = set()
    for lineno, line in _decoded_lines(path):
        if fmt == "beir":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise InputError(path, lineno, "malformed JSON (nested too deeply)") from None
            if not isinstance(obj, dict):
                raise InputError(path, lineno, "expected a JSON object")
            docid = obj.get("_id", obj.get("id", obj.get("docid")))
            if docid is None or str(docid).strip() == "":
                raise InputError(path, lineno, "missing document id field '_id'")
            if "text" not in obj and "contents" not in obj:
                raise InputError(path, lineno, f"document {docid}: missing 'text' field")
            body = obj.get("text", obj.get("contents"))
            title = obj.get("title") or ""
            if not isinstance(body, str) or not isinstance(title, str):
                raise InputError(path, lineno, f"document {docid}: 'title' and 'text' must be strings")
            text = f"{title} {body}".strip() if title else body.strip()
            if not isinstance(docid, (str, int)) or isinstance(docid, bool):
                raise InputError(path, lineno, f"document id must be a string, got {docid!r}")
            docid = str(docid)
        else:
            docid, sep, text = line.partition("\t")
            if not sep:
                raise InputError(path, lineno, "expected 'pid<TAB>text'")
            docid, text = docid.strip(), text.strip()
            if not docid:
                raise InputError(path, lineno, "missing document id")
        if (problem := docid_problem(docid)):  # refused here, not at the end of a search
            raise InputError(path, lineno, problem)
        if not encodable(text):
            raise InputError(path, lineno, f"document {docid}: text is not valid Unicode (a lone surrogate)")
        if check_duplicates:
            if docid in seen:
                raise InputError(path, lineno, f"duplicate document id {docid!r}")
            seen.add(docid)
        yield Doc(lineno, docid, text)


def read_topics(path: str | os.PathLike) -> dict[str, str]:
    """Read ``qid<TAB>text`` topics, in file order."""
    topics: dict[str, str] = {}
    for lineno, line in _decoded_lines(path):
        qid, sep, text = line.partition("\t")
        if not sep or not qid.strip():
            raise InputError(path, lineno, "expected 'qid<TAB>query text'")
        qid = qid.strip()
        if (problem := docid_problem(qid, "query id")):
            raise InputError(path, lineno, problem)
        if qid in topics:
            raise InputError(path, lineno, f"duplicate query id {qid!r}")
        topics[qid] = text.strip()
    return topics


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Read TREC qrels (``qid iter docid rel``) into ``{qid: {docid: rel}}``."""
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in _decoded_lines(path):
        parts = line.split()
        if len(parts) != 4:
            raise InputError(path, lineno, f"expected 4 columns 'qid iter docid relevance', got {len(parts)}")
        try:
            rel = int(parts[3])
        except ValueError:
            raise InputError(path, lineno, f"relevance {parts[3]!r} is not an integer") from None
        qrels.setdefault(parts[0], {})[parts[2]] = rel
    return qrels


class Triple(NamedTuple):
    line: int
    query: str
    positive: str
    negative: str


def read_triples(path: str | os.PathLike) -> Iterator[Triple]:
    """Yield MS MARCO text triples ``query<TAB>positive<TAB>negative``."""
    for lineno, line in _decoded_lines(path):
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise InputError(path, lineno, f"expected 'query<TAB>positive<TAB>negative', got {len(parts)} "
                                           "non-empty columns" if len(parts) != 3 else "empty column")
        yield Triple(lineno, *(p.strip() for p in parts))
