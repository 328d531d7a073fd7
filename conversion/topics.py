"""Pre-encoded topics for Anserini ``SearchCollection -topicReader TsvInt -impact -pretokenized``.

Each line is ``qid<TAB>`` followed by every token repeated as many times as its integer weight,
space-separated: Anserini turns the repetition count back into the query term weight.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Iterable

from .atomic import atomic_open
from .errors import InputError
from .jsonvector import docid_problem


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
