"""TREC run files: ``qid Q0 docid rank score tag``, one hit a line. Pure python.

Runs are written atomically and ranked by score descending, ties broken by docid ascending (the
order Anserini's ``ScoreTiesAdjusterReranker`` and ``SearchCollection`` produce), so a run
written from any backend is byte-identical when the hits are.
"""
from __future__ import annotations

import math
import os
from typing import Iterable

from .atomic import atomic_open
from .errors import InputError

#: A run: ``{qid: [(docid, score), ...]}``, each query's hits ranked (score desc, docid asc). The
#: one shape every backend returns and :func:`write_run` writes.
Run = dict[str, list[tuple[str, float]]]


def rank_hits(hits: Iterable[tuple[str, float]], k: int | None = None) -> list[tuple[str, float]]:
    """Sort ``(docid, score)`` by score descending then docid ascending, and keep the first ``k``.

    Python string order is code-point order, the same as Lucene's UTF-8 byte order on docids.
    """
    ranked = sorted(hits, key=lambda h: (-h[1], h[0]))
    return ranked if k is None else ranked[:k]


def format_score(score: float) -> str:
    """Scores are written with 6 decimals, as Anserini and Pyserini write them."""
    return f"{score:.6f}"


def run_lines(results: Run, tag: str = "splade-anserini", *, sort: bool = True,
              k: int | None = None) -> Iterable[str]:
    """The lines (without newlines) of a run; queries in ``results`` order, hits ranked from 1."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag {tag!r} must be non-empty and contain no whitespace")
    for qid, hits in results.items():
        if not qid or any(c.isspace() for c in qid):
            raise ValueError(f"query id {qid!r} must be non-empty and contain no whitespace")
        ranked = rank_hits(hits, k) if sort else list(hits)[:k] if k is not None else list(hits)
        for rank, (docid, score) in enumerate(ranked, 1):
            if not docid or any(c.isspace() for c in docid):
                raise ValueError(f"query {qid}: document id {docid!r} must be non-empty and contain no whitespace")
            yield f"{qid} Q0 {docid} {rank} {format_score(score)} {tag}"


def write_run(path: str | os.PathLike, results: Run, tag: str = "splade-anserini", *,
              sort: bool = True, k: int | None = None) -> int:
    """Write ``{qid: [(docid, score), ...]}`` as a TREC run, atomically; returns the number of lines.

    With ``sort`` (the default) each query's hits are re-ranked by score desc, docid asc; ``k`` cuts
    each query after ranking.
    """
    n = 0
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    with atomic_open(path) as fh:
        for line in run_lines(results, tag, sort=sort, k=k):
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


def read_ranked(path: str | os.PathLike) -> dict[str, list[tuple[str, float]]]:
    """Read a run (validated as :func:`read_run`) as ranked ``(docid, score)`` lists."""
    return {qid: rank_hits(hits.items()) for qid, hits in read_run(path).items()}
