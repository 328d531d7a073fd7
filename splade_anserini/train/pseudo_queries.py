"""Pseudo-queries from a corpus without labels: each document answers queries cut out of itself.

    python -m splade_anserini.train.pseudo_queries --corpus corpus.jsonl --output runs/adapt/scifact-pq \\
        [--source auto|title|sentence|span] [--per-document N] [--seed S]

writes ``P.queries.tsv`` (``qid<TAB>text``), ``P.qrels.txt`` (each pseudo-query's one positive, its source
document) and ``P.corpus.jsonl``: the corpus as the trainer must see it, with every text a pseudo-query was cut
from removed from its document. Without that removal the positive contains the query word for word and the
model learns to copy (a title is the first words of a BEIR document's text); with it, the pair teaches what
the rest of a document says about its title, sentence or span. A document whose remaining text is shorter than
``--min-remaining`` words gives no query (it stays in the corpus, as a negative for others).

Sources: ``title`` (BEIR titles), ``sentence`` (sentences of 5-40 words), ``span`` (word spans of 6-16 words,
for text without sentence punctuation); ``auto`` takes titles when most documents have one, else sentences.
The output depends only on the corpus and ``--seed``.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
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


class Generator:
    """Pseudo-queries of one source for one document at a time."""

    def __init__(self, source: str, per_document: int, seed: int, min_remaining: int):
        self.source, self.per_document, self.seed, self.min_remaining = source, per_document, seed, min_remaining

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
        """This document's pseudo-queries and its training text (their sources removed)."""
        ranges = self.ranges(text, title, _rng(self.seed, docid))
        rest = cut(text, ranges)
        if not ranges or _n_words(rest) < self.min_remaining:
            return [], text
        queries = [PseudoQuery(" ".join(text[a:b].split()), docid, a, b) for a, b in ranges]
        return queries, rest


def choose_source(docs: list, requested: str) -> str:
    """The source for ``auto`` (titles when most documents have one), or the requested one, checked."""
    with_title = sum(1 for d in docs if d.title)
    if requested == "title" and with_title == 0:
        raise UsageError("--source title: the corpus has no titles (use --source sentence or span)")
    if requested != "auto":
        return requested
    return "title" if with_title * 2 > len(docs) else "sentence"


def generate(docs: list, source: str, per_document: int, seed: int,
             min_remaining: int) -> Iterator[tuple[object, list[PseudoQuery], str]]:
    """``(doc, its pseudo-queries, its training text)`` for every document, in corpus order."""
    gen = Generator(source, per_document, seed, min_remaining)
    for doc in docs:
        queries, rest = gen.document(doc.docid, doc.text, doc.title)
        yield doc, queries, rest


def write(prefix: str, results: Iterable[tuple[object, list[PseudoQuery], str]]) -> tuple[int, int]:
    """Write ``prefix.queries.tsv``, ``prefix.qrels.txt`` and ``prefix.corpus.jsonl``; returns
    ``(queries, documents with a query)``."""
    n_queries = n_docs = 0
    with atomic_open(f"{prefix}.queries.tsv") as fq, atomic_open(f"{prefix}.qrels.txt") as fr, \
            atomic_open(f"{prefix}.corpus.jsonl") as fc:
        for doc, queries, rest in results:
            fc.write(json.dumps({"_id": doc.docid, "title": "", "text": rest}, ensure_ascii=False) + "\n")
            n_docs += bool(queries)
            for q in queries:
                n_queries += 1
                qid = f"pq{n_queries:07d}"
                fq.write(f"{qid}\t{q.text}\n")
                fr.write(f"{qid} 0 {q.docid} 1\n")
    return n_queries, n_docs


OUTPUT_SUFFIXES = (".queries.tsv", ".qrels.txt", ".corpus.jsonl")


def write_outputs(prefix: str, results, inputs: tuple = ()) -> tuple[int, int]:
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
                        help="title, sentence, span, or auto (titles when most documents have one; default)")
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
    results = list(generate(docs, source, args.per_document, args.seed, args.min_remaining))
    if not any(queries for _, queries, _ in results):  # refused before anything is written
        raise UsageError(f"{args.corpus}: no {source} pseudo-query could be cut (documents too short for "
                         f"--min-remaining {args.min_remaining})")
    n_queries, n_docs = write_outputs(args.output, results, inputs=(args.corpus,))
    print(f"{n_queries} pseudo-queries ({source}) from {n_docs} of {len(docs)} documents: {args.output}.queries.tsv, "
          f"{args.output}.qrels.txt, {args.output}.corpus.jsonl", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
