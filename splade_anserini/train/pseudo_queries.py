"""Pseudo-queries from a corpus without labels: each document answers queries cut out of itself.

    python -m splade_anserini.train.pseudo_queries --corpus corpus.jsonl --output runs/adapt/scifact-pq \\
        [--source auto|title|sentence|span] [--per-document N] [--seed S]

writes ``P.queries.tsv`` (``qid<TAB>text``), ``P.qrels.txt`` (each pseudo-query's one positive, its source
document) and ``P.corpus.jsonl``: the corpus as the trainer must see it, with every text a pseudo-query was cut
from removed from its document. Without that removal the positive contains the query word for word and the
model learns to copy (a title is the first words of a BEIR document's text); with it, the pair teaches what
the rest of a document says about its title, sentence or span. A document whose remaining text is shorter than
``--min-remaining`` words gives no query (it stays in the corpus, as a negative for others).

Every occurrence of a query's text (compared without regard to case and whitespace) is removed from its
positive, not only the one it was cut from: a body that repeats its title, or a phrase said twice, would
otherwise still hold the query. A document that would keep a copy gives no query; the tool prints its leakage
rate (queries whose text is still in their positive: 0 by construction, checked on the written files) and how
many documents gave none, and why.

Sources: ``title`` (BEIR titles), ``sentence`` (sentences of 5-40 words), ``span`` (word spans of 6-16 words,
for text without sentence punctuation); ``auto`` takes titles when most documents have one, else sentences
when most documents have one of 5-40 words, else spans (lower-cased, stop-worded or unpunctuated text).
The output depends only on the corpus and ``--seed``.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from splade_anserini.conversion.atomic import atomic_open
from splade_anserini.conversion.errors import UsageError

from splade_anserini.cli import ArgumentParser, command

SOURCES = ("auto", "title", "sentence", "span")
SENTENCE_WORDS = (5, 40)
SPAN_WORDS = (6, 16)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class PseudoQuery:
    """One pseudo-query: its text, the document it answers, and the character range it was cut from
    (in the document's training text, title included)."""

    text: str
    docid: str
    start: int
    end: int


def _rng(seed: int, docid: str) -> np.random.Generator:
    # Seeded per document: a document's queries do not depend on the documents read before it.
    digest = hashlib.sha256(f"{seed}\0{docid}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def sentences(text: str) -> list[tuple[int, int]]:
    """Character ranges of the sentences of ``text``."""
    ranges, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        ranges.append((start, match.start()))
        start = match.end()
    if start < len(text):
        ranges.append((start, len(text)))
    return ranges


def _word_ranges(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


def _n_words(text: str) -> int:
    return len(text.split())


def title_candidates(text: str, title: str) -> list[tuple[int, int]]:
    """The title's range when the document has one (BEIR texts begin with it)."""
    return [(0, len(title))] if title and text.startswith(title) and _n_words(title) >= 2 else []


def sentence_candidates(text: str) -> list[tuple[int, int]]:
    lo, hi = SENTENCE_WORDS
    return [(a, b) for a, b in sentences(text) if lo <= _n_words(text[a:b]) <= hi]


def span_candidates(text: str, rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    """Up to ``n`` non-overlapping random word spans (6-16 words) of ``text``."""
    words = _word_ranges(text)
    lo, hi = SPAN_WORDS
    spans: list[tuple[int, int]] = []
    taken = np.zeros(len(words), dtype=bool)
    for _ in range(4 * n):
        if len(spans) == n or len(words) < lo:
            break
        length = int(rng.integers(lo, min(hi, len(words)) + 1))
        first = int(rng.integers(0, len(words) - length + 1))
        if taken[first:first + length].any():
            continue
        taken[first:first + length] = True
        spans.append((words[first][0], words[first + length - 1][1]))
    return spans


def cut(text: str, ranges: Iterable[tuple[int, int]]) -> str:
    """``text`` without the character ranges, whitespace collapsed where they were."""
    kept, pos = [], 0
    for a, b in sorted(ranges):
        kept.append(text[pos:a])
        pos = max(pos, b)
    kept.append(text[pos:])
    return " ".join(" ".join(kept).split())


def normalise(text: str) -> str:
    """``text`` lower-cased with its whitespace collapsed: how leakage is compared."""
    return " ".join(text.lower().split())


def remove_copies(text: str, query: str) -> str:
    """``text`` without any occurrence of ``query`` (case and whitespace ignored), whitespace collapsed."""
    words = query.split()
    if not words:
        return " ".join(text.split())
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words), re.IGNORECASE)
    for _ in range(8):  # a removal can join two halves into a new copy ("a a b b" less "a b")
        text, n = pattern.subn(" ", text)
        if not n:
            break
    return " ".join(text.split())


def leaks(query: str, positive: str) -> bool:
    """Whether ``positive`` still holds ``query``'s text (case and whitespace ignored)."""
    return normalise(query) in normalise(positive)


# why a document gave no query (the keys of the counts ``pseudo-queries`` prints)
NO_CANDIDATE = {"title": "no title", "sentence": "no sentence of 5-40 words", "span": "fewer than 6 words"}
TOO_SHORT, KEEPS_COPY = "too short once its query is cut", "would keep a copy of its query"


class Generator:
    """Pseudo-queries of one source for one document at a time."""

    def __init__(self, source: str, per_document: int, seed: int, min_remaining: int):
        self.source, self.per_document, self.seed, self.min_remaining = source, per_document, seed, min_remaining
        self.skipped: Counter = Counter()  # reason -> documents that gave no query
        self.longest_rest = 0  # the most words a document with candidates kept (for the error's advice)

    def ranges(self, text: str, title: str, rng: np.random.Generator) -> list[tuple[int, int]]:
        if self.source == "title":
            return title_candidates(text, title)
        if self.source == "span":
            return span_candidates(text, rng, self.per_document)
        found = sentence_candidates(text)
        if len(found) > self.per_document:
            picked = np.sort(rng.choice(len(found), size=self.per_document, replace=False))
            found = [found[i] for i in picked]
        return found

    def document(self, docid: str, text: str, title: str) -> tuple[list[PseudoQuery], str]:
        """This document's pseudo-queries and its training text (every copy of each query removed)."""
        ranges = self.ranges(text, title, _rng(self.seed, docid))
        if not ranges:
            self.skipped[NO_CANDIDATE[self.source]] += 1
            return [], text
        queries = [PseudoQuery(" ".join(text[a:b].split()), docid, a, b) for a, b in ranges]
        rest = cut(text, ranges)
        for q in queries:
            rest = remove_copies(rest, q.text)
        self.longest_rest = max(self.longest_rest, _n_words(rest))
        if _n_words(rest) < self.min_remaining:
            self.skipped[TOO_SHORT] += 1
            return [], text
        if any(leaks(q.text, rest) for q in queries):
            self.skipped[KEEPS_COPY] += 1
            return [], text
        return queries, rest


def _share(docs: list, has) -> float:
    return sum(1 for d in docs if has(d)) / max(1, len(docs))


def choose_source(docs: list, requested: str) -> str:
    """The source for ``auto`` (titles when most documents have one, else sentences when most have a
    sentence of 5-40 words, else spans), or the requested one, checked."""
    with_title = sum(1 for d in docs if d.title)
    if requested == "title" and with_title == 0:
        raise UsageError("--source title: the corpus has no titles (use --source sentence or span)")
    if requested != "auto":
        return requested
    if with_title * 2 > len(docs):
        return "title"
    return "sentence" if _share(docs, lambda d: sentence_candidates(d.text)) > 0.5 else "span"


def generate(docs: list, source: str, per_document: int, seed: int, min_remaining: int,
             generator: Generator | None = None) -> Iterator[tuple[object, list[PseudoQuery], str]]:
    """``(doc, its pseudo-queries, its training text)`` for every document, in corpus order (pass a
    ``generator`` to read its ``skipped`` counts afterwards)."""
    gen = generator or Generator(source, per_document, seed, min_remaining)
    for doc in docs:
        queries, rest = gen.document(doc.docid, doc.text, doc.title)
        yield doc, queries, rest


def nothing_cut(corpus: str, source: str, gen: Generator) -> str:
    """Why no document gave a query, and which option to try: the one-line error."""
    reason, _ = gen.skipped.most_common(1)[0]
    advice = {
        "no title": "the corpus has no titles: try --source sentence or span",
        "no sentence of 5-40 words": "no sentence of 5-40 words (text without sentence punctuation?): "
                                     "try --source span",
        "fewer than 6 words": "documents too short for a span of 6 words",
        KEEPS_COPY: "every document would keep a copy of its query",
        TOO_SHORT: f"documents too short for --min-remaining {gen.min_remaining} (the longest keeps "
                   f"{gen.longest_rest} words once its query is cut: try --min-remaining {max(1, gen.longest_rest)}"
                   + (" or --source span" if source != "span" else "") + ")",
    }[reason]
    return f"{corpus}: no {source} pseudo-query could be cut: {advice}"


def write(prefix: str, results: Iterable[tuple[object, list[PseudoQuery], str]]) -> tuple[int, int, int]:
    """Write ``prefix.queries.tsv``, ``prefix.qrels.txt`` and ``prefix.corpus.jsonl``; returns
    ``(queries, documents with a query, queries whose text is still in their positive)``."""
    n_queries = n_docs = n_leaks = 0
    with atomic_open(f"{prefix}.queries.tsv") as fq, atomic_open(f"{prefix}.qrels.txt") as fr, \
            atomic_open(f"{prefix}.corpus.jsonl") as fc:
        for doc, queries, rest in results:
            fc.write(json.dumps({"_id": doc.docid, "title": "", "text": rest}, ensure_ascii=False) + "\n")
            n_docs += bool(queries)
            for q in queries:
                n_queries += 1
                n_leaks += leaks(q.text, rest)
                qid = f"pq{n_queries:07d}"
                fq.write(f"{qid}\t{q.text}\n")
                fr.write(f"{qid} 0 {q.docid} 1\n")
    return n_queries, n_docs, n_leaks


OUTPUT_SUFFIXES = (".queries.tsv", ".qrels.txt", ".corpus.jsonl")


def write_outputs(prefix: str, results, inputs: tuple = ()) -> tuple[int, int, int]:
    """:func:`write` with the outputs' safety: each of the three files is refused before anything is
    written when something this tool did not write is there, its folder is created, and it is recorded
    as this tool's own once complete."""
    import contextlib

    from splade_anserini.outputs import check_file, output_file

    paths = [f"{prefix}{suffix}" for suffix in OUTPUT_SUFFIXES]
    for path in paths:
        check_file(path, "pseudo-queries")
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(output_file(path, "pseudo-queries", inputs=inputs))
        return write(prefix, results)


@command
def main(argv: list[str] | None = None) -> int:
    from splade_anserini.cli import positive_int
    from splade_anserini.data import read_corpus

    parser = ArgumentParser(description="Pseudo-queries and their positives from a corpus without labels "
                                        "(titles, sentences or spans cut out of their documents).")
    parser.add_argument("--corpus", required=True, help="BEIR corpus.jsonl or MS MARCO collection.tsv (.gz too)")
    parser.add_argument("--output", required=True,
                        help="prefix: writes PREFIX.queries.tsv, PREFIX.qrels.txt, PREFIX.corpus.jsonl")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="title, sentence, span, or auto (default: titles when most documents have one, else sentences "
                             "when most have one of 5-40 words, else spans)")
    parser.add_argument("--per-document", type=positive_int, default=1,
                        help="pseudo-queries per document (sentence, span; a title gives one)")
    parser.add_argument("--min-remaining", type=positive_int, default=20,
                        help="skip a document whose text keeps fewer words once its queries are cut out")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    docs = list(read_corpus(args.corpus))
    if not docs:
        raise UsageError(f"{args.corpus}: the corpus has no documents")
    source = choose_source(docs, args.source)
    gen = Generator(source, args.per_document, args.seed, args.min_remaining)
    results = list(generate(docs, source, args.per_document, args.seed, args.min_remaining, gen))
    if not any(queries for _, queries, _ in results):  # refused before anything is written
        raise UsageError(nothing_cut(args.corpus, source, gen))
    n_queries, n_docs, n_leaks = write_outputs(args.output, results, inputs=(args.corpus,))
    print(f"{n_queries} pseudo-queries ({source}) from {n_docs} of {len(docs)} documents: {args.output}.queries.tsv, "
          f"{args.output}.qrels.txt, {args.output}.corpus.jsonl", file=sys.stderr)
    print(f"leakage: {n_leaks} of {n_queries} queries ({n_leaks / n_queries:.2%}) still in their positive; "
          f"{len(docs) - n_docs} documents gave none"
          + "".join(f"; {n} {why}" for why, n in sorted(gen.skipped.items())), file=sys.stderr)
    return 0

if __name__ == "__main__":
    sys.exit(main())
