"""TREC run files (``qid Q0 docid rank score tag``, one hit a line) and relevance judgements. Pure python.

Qrels (:func:`read_qrels`), the layout chosen from the file's content, ``.gz`` or not:

* TREC / Anserini / MS MARCO: ``qid iter docid relevance`` (``iter`` is ``0`` or ``Q0``, ignored);
* BEIR ``qrels/<split>.tsv``: ``query-id<TAB>corpus-id<TAB>score``, with or without that header line.

A run is ranked by the backend that produced it (score descending, ties broken by docid ascending:
the order Anserini's searchers and the Numba index produce); :func:`write_run` writes it as it comes,
atomically, and refuses hits out of score order, so a run written from any backend is
byte-identical when the hits are.
"""
from __future__ import annotations

import math
import os
from typing import Container, Iterable, Iterator, Mapping, NamedTuple

from .atomic import atomic_open
from .errors import InputError
from .textfile import numbered_lines

#: One query's hits ``[(docid, score), ...]``, ranked (score desc, docid asc); scores are integers
#: for exact impact retrieval, floats otherwise.
Hits = list[tuple[str, float]]
#: A run: ``{qid: Hits}``. The one shape every backend returns and :func:`write_run` writes.
Run = dict[str, Hits]


def rank_hits(hits: Iterable[tuple[str, float]], k: int | None = None) -> list[tuple[str, float]]:
    """Sort ``(docid, score)`` by score descending then docid ascending, and keep the first ``k``.

    Python string order is code-point order, the same as Lucene's UTF-8 byte order on docids.
    """
    ranked = sorted(hits, key=lambda h: (-h[1], h[0]))
    return ranked if k is None else ranked[:k]


def format_score(score: float) -> str:
    """Scores are written with 6 decimals, as Anserini and Pyserini write them."""
    return f"{score:.6f}"


def run_lines(results: Run, tag: str = "splade-anserini", *, k: int | None = None) -> Iterable[str]:
    """The lines (without newlines) of a run: queries in ``results`` order, each query's first ``k``
    hits in their given order, ranked from 1. Raises ValueError on a score above the one before it."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag {tag!r} must be non-empty and contain no whitespace")
    for qid, hits in results.items():
        if not qid or any(c.isspace() for c in qid):
            raise ValueError(f"query id {qid!r} must be non-empty and contain no whitespace")
        previous = math.inf
        for rank, (docid, score) in enumerate(hits[:k] if k is not None else hits, 1):
            if not docid or any(c.isspace() for c in docid):
                raise ValueError(f"query {qid}: document id {docid!r} must be non-empty and contain no whitespace")
            if score > previous:
                raise ValueError(f"query {qid}: hit {rank} ({docid}, {score}) scores above hit {rank - 1} "
                                 f"({previous}); a run must come ranked")
            previous = score
            yield f"{qid} Q0 {docid} {rank} {format_score(score)} {tag}"


def write_run(path: str | os.PathLike, results: Run, tag: str = "splade-anserini", *,
              k: int | None = None) -> int:
    """Write a ranked run ``{qid: [(docid, score), ...]}`` as a TREC run, atomically (the first ``k``
    hits of each query when given); returns the number of lines."""
    n = 0
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    with atomic_open(path) as fh:
        for line in run_lines(results, tag, k=k):
            fh.write(line)
            fh.write("\n")
            n += 1
    return n


def read_run(path: str | os.PathLike, *, scored_pairs: bool = False) -> dict[str, dict[str, float]]:
    """Read a TREC run into ``{qid: {docid: score}}``, validating every line.

    Raises :class:`~conversion.errors.InputError` (``file:line: problem``) on a line without 6
    columns, a non-numeric (or non-finite) score, a non-integer rank, or a docid that appears twice
    for the same query. ``scored_pairs`` also accepts ``qid docid score`` lines (teacher scores).
    """
    run: dict[str, dict[str, float]] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(path, lineno, f"invalid UTF-8 at byte {exc.start}") from None
            if not line.strip():
                continue
            parts = line.split()
            if scored_pairs and len(parts) == 3:
                qid, docid, score_text = parts
            elif len(parts) == 6:
                qid, _, docid, rank, score_text, _ = parts
                try:
                    int(rank)
                except ValueError:
                    raise InputError(path, lineno, f"rank {rank!r} is not an integer") from None
            elif scored_pairs:
                raise InputError(path, lineno, f"expected 'qid docid score' or a 6-column TREC run line, "
                                               f"got {len(parts)} columns")
            else:
                raise InputError(path, lineno, f"expected 6 columns 'qid Q0 docid rank score tag', got {len(parts)}")
            try:
                score = float(score_text)
            except ValueError:
                raise InputError(path, lineno, f"score {score_text!r} is not a number") from None
            if not math.isfinite(score):
                raise InputError(path, lineno, f"score {score_text!r} is not finite")
            hits = run.setdefault(qid, {})
            if docid in hits:
                raise InputError(path, lineno, f"duplicate document {docid!r} for query {qid!r}")
            hits[docid] = score
    return run


def read_ranked(path: str | os.PathLike, *, as_written: bool = False) -> Run:
    """Read a run (validated as :func:`read_run`) as ranked ``(docid, score)`` lists: ranked here
    (score desc, docid asc; a run from elsewhere may come in any order), or ``as_written`` in the
    file's order (a run a searcher wrote, whose order it owns)."""
    run = read_run(path)
    if as_written:
        return {qid: list(hits.items()) for qid, hits in run.items()}
    return {qid: rank_hits(hits.items()) for qid, hits in run.items()}


# -- qrels ----------------------------------------------------------------------------------------------
#: BEIR's header line (``query-id corpus-id score``) and its common spellings, compared lower-cased.
QRELS_HEADERS = {("query-id", "corpus-id", "score"), ("query_id", "corpus_id", "score"),
                 ("qid", "docid", "score"), ("qid", "docid", "relevance"), ("query-id", "doc-id", "score")}


class Judgement(NamedTuple):
    """One qrels line: its 1-based line number, query id, document id and integer relevance."""

    line: int
    qid: str
    docid: str
    relevance: int


def iter_qrels(path: str | os.PathLike) -> Iterator[Judgement]:
    """Yield the judgements of TREC (4 columns) or BEIR (3 columns, optional header) qrels.

    The first data line fixes the layout; every line must then have its column count and an
    integer relevance, else :class:`InputError` names the line.
    """
    columns = None
    for lineno, line in numbered_lines(path):
        parts = line.split()
        if columns is None:
            if len(parts) == 3 and tuple(p.lower() for p in parts) in QRELS_HEADERS:
                columns = 3
                continue
            if len(parts) not in (3, 4):
                raise InputError(path, lineno, "expected 4 columns 'qid iter docid relevance' (TREC) or 3 "
                                               f"'query-id corpus-id score' (BEIR), got {len(parts)}")
            columns = len(parts)
        elif len(parts) != columns:
            layout = "'qid iter docid relevance'" if columns == 4 else "'query-id corpus-id score'"
            raise InputError(path, lineno, f"expected {columns} columns {layout} like the first line, got {len(parts)}")
        qid, docid, rel = (parts[0], parts[2], parts[3]) if columns == 4 else parts
        try:
            relevance = int(rel)
        except ValueError:
            raise InputError(path, lineno, f"relevance {rel!r} is not an integer") from None
        yield Judgement(lineno, qid, docid, relevance)


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Read TREC or BEIR qrels into ``{qid: {docid: relevance}}`` (topics in file order).

    A document judged twice for a topic with two different relevance values is an error.
    """
    qrels: dict[str, dict[str, int]] = {}
    for j in iter_qrels(path):
        judged = qrels.setdefault(j.qid, {})
        if judged.get(j.docid, j.relevance) != j.relevance:
            raise InputError(path, j.line, f"document {j.docid!r} judged twice for query {j.qid!r} "
                                           f"({judged[j.docid]} and {j.relevance})")
        judged[j.docid] = j.relevance
    return qrels


def check_qrels(path: str | os.PathLike, topics: Container[str], docids: Container[str] | None = None, *,
                topics_name: str = "the topics", corpus_name: str = "the corpus") -> None:
    """Every judged topic must be in ``topics`` and (when given) every judged document in ``docids``;
    the first line that is not raises :class:`InputError`."""
    for j in iter_qrels(path):
        if j.qid not in topics:
            raise InputError(path, j.line, f"query {j.qid!r} is not in {topics_name}")
        if docids is not None and j.docid not in docids:
            raise InputError(path, j.line, f"document {j.docid!r} (query {j.qid!r}) is not in {corpus_name}")


# -- MaxP ----------------------------------------------------------------------------------------------
def max_passage(results: Mapping[str, list[tuple[str, float]]], k: int | None = None, delimiter: str = "#") -> Run:
    """Fold passage hits (``docid#k``) into document hits scored by their best passage (MaxP).

    Each query's hits are ranked (score desc, docid asc) first, so the result depends only on the
    hits, whatever backend or order produced them; the document id is the passage id up to the
    last ``delimiter`` (an id without it is its own document). ``k`` keeps the first ``k`` documents.
    """
    out: dict[str, list[tuple[str, float]]] = {}
    for qid, hits in results.items():
        best: dict[str, float] = {}
        for passage, score in rank_hits(hits):
            head, sep, _ = passage.rpartition(delimiter)
            doc = head if sep and head else passage
            if doc not in best:
                best[doc] = score
                if k is not None and len(best) >= k:
                    break
        out[qid] = rank_hits(best.items(), k)
    return out
