"""Topics: text topics in the BEIR and MS MARCO / Anserini layouts, and pre-encoded TsvInt topics.

Text topics (:func:`read_topics`), the format chosen from the file's content, ``.gz`` or not:

* BEIR ``queries.jsonl``: one JSON object a line with ``_id`` and ``text`` (other fields ignored);
* MS MARCO / Anserini ``queries.*.tsv``: ``qid<TAB>query text``.

Pre-encoded topics for Anserini ``SearchCollection -topicReader TsvInt -impact -pretokenized``:
each line is ``qid<TAB>`` followed by every token repeated as many times as its integer weight,
space-separated: Anserini turns the repetition count back into the query term weight.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Iterable, Iterator, NamedTuple

from .atomic import atomic_open
from .errors import InputError
from .jsonvector import docid_problem
from .textfile import first_line, json_object, numbered_lines, strip_gz

TOPIC_FORMATS = ("jsonl", "tsv")
_ID_KEYS = ("_id", "id", "qid", "query_id")
_TEXT_KEYS = ("text", "query")


class Topic(NamedTuple):
    """One query: its 1-based line in the file, id and text."""

    line: int
    qid: str
    text: str


def detect_topic_format(path: str | os.PathLike) -> str:
    """``"jsonl"`` for a ``.jsonl``/``.json`` name or a first line that is a JSON object with a query id
    (BEIR ``queries.jsonl`` under any name), else ``"tsv"`` (so a TSV query id may start with ``{``)."""
    if strip_gz(path).endswith((".jsonl", ".json")):
        return "jsonl"
    line = first_line(path).strip()
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            return "tsv"
        if isinstance(obj, dict) and any(k in obj for k in _ID_KEYS):
            return "jsonl"
    return "tsv"


def _check_qid(path, lineno: int, qid: str) -> str:
    if not qid:
        raise InputError(path, lineno, "missing query id")
    if (problem := docid_problem(qid, "query id")):
        raise InputError(path, lineno, problem)
    return qid


def iter_topics(path: str | os.PathLike, fmt: str | None = None) -> Iterator[Topic]:
    """Yield the topics of a BEIR ``queries.jsonl`` or a ``qid<TAB>text`` file, validated line by line."""
    fmt = fmt or detect_topic_format(path)
    if fmt not in TOPIC_FORMATS:
        raise ValueError(f"unknown topic format {fmt!r} (expected one of {TOPIC_FORMATS})")
    for lineno, line in numbered_lines(path):
        if fmt == "jsonl":
            obj = json_object(path, lineno, line, "a JSON object with '_id' and 'text'")
            qid = next((obj[k] for k in _ID_KEYS if k in obj), None)
            text = next((obj[k] for k in _TEXT_KEYS if k in obj), None)
            if qid is None or isinstance(qid, (dict, list, bool)):
                raise InputError(path, lineno, "missing query id field '_id'")
            if not isinstance(text, str):
                raise InputError(path, lineno, f"query {qid}: missing 'text' field (a string)")
            qid = str(qid).strip()
        else:
            qid, sep, text = line.partition("\t")
            if not sep:
                raise InputError(path, lineno, "expected 'qid<TAB>query text'")
            qid = qid.strip()
        yield Topic(lineno, _check_qid(path, lineno, qid), text.strip())


def read_topics(path: str | os.PathLike, fmt: str | None = None) -> dict[str, str]:
    """Read text topics (BEIR JSONL or TSV, ``.gz`` or not) into ``{qid: text}``, in file order;
    a query id twice is an error."""
    topics: dict[str, str] = {}
    for topic in iter_topics(path, fmt):
        if topic.qid in topics:
            raise InputError(path, topic.line, f"duplicate query id {topic.qid!r}")
        topics[topic.qid] = topic.text
    return topics


#: Characters that print nothing: a query of only these and whitespace is blank.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"))


def is_blank(text: str) -> bool:
    """Whether a query holds nothing to search: only whitespace or zero-width characters."""
    return not text.translate(_INVISIBLE).strip()


def split_blank(topics: dict[str, str], source: str | os.PathLike) -> tuple[dict[str, str], list[str]]:
    """``(the topics with text, the ids of the blank ones)``; a file of only blank queries is an
    :class:`InputError` (an encoder would search them as ``[CLS] [SEP]``, unrelated expansion terms)."""
    blank = [qid for qid, text in topics.items() if is_blank(text)]
    if blank and len(blank) == len(topics):
        raise InputError(source, None, f"all {len(blank)} queries are blank (whitespace or zero-width characters)")
    dropped = set(blank)
    return {qid: text for qid, text in topics.items() if qid not in dropped}, blank


def tsvint_line(qid: str, vector: dict[str, int]) -> str:
    """One TsvInt line (without the newline)."""
    if "\t" in qid or "\n" in qid:
        raise ValueError(f"query id {qid!r} contains a tab or newline")
    tokens = []
    for token, weight in vector.items():
        if any(c.isspace() for c in token):
            raise ValueError(f"query {qid}: token {token!r} contains whitespace")
        if weight > 0:
            tokens.extend([token] * int(weight))
    return f"{qid}\t{' '.join(tokens)}"


def write_tsvint(path: str | os.PathLike, topics: Iterable[tuple[str, dict[str, int]]]) -> int:
    """Write ``(qid, {token: int})`` pairs as a TsvInt topics file, atomically; returns the count."""
    n = 0
    with atomic_open(path) as fh:
        for qid, vector in topics:
            fh.write(tsvint_line(qid, vector))
            fh.write("\n")
            n += 1
    return n


def read_tsvint(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Read a TsvInt topics file back into ``{qid: {token: weight}}`` (token order of first appearance)."""
    topics: dict[str, dict[str, int]] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputError(path, lineno, f"invalid UTF-8 at byte {exc.start}") from None
            if not line.strip():
                continue
            qid, sep, text = line.partition("\t")
            if not sep or not qid:
                raise InputError(path, lineno, "expected 'qid<TAB>tokens'")
            if (problem := docid_problem(qid, "query id")):
                raise InputError(path, lineno, problem)
            if qid in topics:
                raise InputError(path, lineno, f"duplicate query id {qid!r}")
            topics[qid] = dict(Counter(text.split()))
    return topics
