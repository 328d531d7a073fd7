"""Training data: text triples, or a BEIR corpus + queries + qrels with hard negatives from a run.

Every source becomes a list of *examples* (a triple line, or a query with positives). An infinite
stream walks them epoch after epoch in a seeded permutation; position ``p`` of the stream is
``(epoch, index)`` = ``divmod(p, n)`` and the negatives drawn for it depend on ``(seed, epoch,
index)`` only. A resumed run therefore needs nothing but its position to continue exactly.

Bad input gives :class:`conversion.errors.InputError`, one line naming the file, line and problem.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.trec import check_qrels, read_ranked, read_run

from splade_anserini.data import read_corpus, read_qrels, read_topics, read_triples


@dataclass
class Example:
    """One training instance: a query, a positive and ``k`` negatives (texts, ids when known)."""

    query: str
    positive: str
    negatives: list[str]
    qid: str | None = None
    pos_id: str | None = None
    neg_ids: list[str | None] = field(default_factory=list)
    teacher: list[float] | None = None   # teacher scores of [positive, *negatives]


def _first_line(path: str | os.PathLike, predicate) -> int | None:
    """1-based number of the first line of ``path`` whose whitespace-split columns satisfy ``predicate``."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            parts = raw.decode("utf-8", "replace").split()
            if parts and predicate(parts):
                return lineno
    return None


def read_scored_pairs(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Scores per ``(qid, docid)`` from ``qid<TAB>docid<TAB>score`` lines or a 6-column TREC run."""
    return read_run(path, scored_pairs=True)


def read_ranked_run(path: str | os.PathLike) -> dict[str, list[str]]:
    """Docids per topic, best first, from a TREC run (validated by :mod:`conversion.trec`)."""
    return {qid: [d for d, _ in hits] for qid, hits in read_ranked(path).items()}


class TrainingData:
    """Base: ``len()`` examples; ``example(i, rng)`` draws the negatives of example ``i``."""

    def __len__(self) -> int:
        raise NotImplementedError

    def example(self, index: int, rng: np.random.Generator) -> Example:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{len(self)} examples"


class TriplesData(TrainingData):
    """MS MARCO text triples ``query<TAB>positive<TAB>negative``."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.triples = [(t.query, t.positive, t.negative) for t in read_triples(path)]
        if not self.triples:
            raise InputError(path, None, "no triples in file")

    def __len__(self) -> int:
        return len(self.triples)

    def example(self, index: int, rng: np.random.Generator) -> Example:
        q, p, n = self.triples[index]
        return Example(q, p, [n], neg_ids=[None])

    def describe(self) -> str:
        return f"{len(self)} triples from {self.path}"


class QrelsData(TrainingData):
    """Queries with their judged positives (relevance > 0) and hard negatives from a run.

    Negatives of a query are the run's top ``depth`` documents minus its positives (minus documents
    without teacher scores when a teacher is given); ``k`` of them are drawn per example without
    replacement. A query the run does not cover (or with fewer than ``k`` candidates) is topped up
    with random corpus documents.
    """

    def __init__(self, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, dict[str, int]],
                 run: dict[str, list[str]] | None = None, *, k: int = 1, depth: int = 100,
                 teacher: dict[str, dict[str, float]] | None = None, qids: Sequence[str] | None = None,
                 paths: dict[str, str] | None = None):
        self.corpus = corpus
        self.doc_ids = list(corpus)
        self.queries = queries
        self.k = k
        self.teacher = teacher
        self.paths = paths or {}
        self.qids = [q for q in (qids if qids is not None else queries)
                     if any(r > 0 for r in qrels.get(q, {}).values())]
        if not self.qids:
            raise InputError(self.paths.get("qrels"), None, "no query has a positive judgement")
        self.positives = {q: sorted(d for d, r in qrels[q].items() if r > 0) for q in self.qids}
        self.candidates: dict[str, list[str]] = {}
        self.topped_up = 0
        for q in self.qids:
            pos = set(self.positives[q])
            cands = [d for d in (run or {}).get(q, [])[:depth] if d not in pos]
            if teacher is not None:
                have = teacher.get(q, {})
                missing = [d for d in self.positives[q] if d not in have]
                if missing:
                    raise InputError(self.paths.get("teacher"), None,
                                     f"no teacher score for query {q!r} and its positive {missing[0]!r}")
                cands = [d for d in cands if d in have] if run is not None else [d for d in have if d not in pos]
            if len(cands) < k:
                self.topped_up += 1
            self.candidates[q] = cands

    def __len__(self) -> int:
        return len(self.qids)

    def _random_negatives(self, q: str, n: int, exclude: set[str], rng: np.random.Generator) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            d = self.doc_ids[int(rng.integers(len(self.doc_ids)))]
            if d not in exclude and d not in out and d not in self.positives[q]:
                out.append(d)
        return out

    def example(self, index: int, rng: np.random.Generator) -> Example:
        q = self.qids[index]
        pos_list = self.positives[q]
        pos = pos_list[int(rng.integers(len(pos_list)))]
        cands = self.candidates[q]
        take = min(self.k, len(cands))
        negs = [cands[i] for i in rng.choice(len(cands), size=take, replace=False)] if take else []
        if len(negs) < self.k:
            if self.teacher is not None:
                raise InputError(self.paths.get("teacher"), None,
                                 f"query {q!r}: only {len(negs)} negatives with teacher scores, need {self.k}")
            negs += self._random_negatives(q, self.k - len(negs), set(negs), rng)
        teacher = None
        if self.teacher is not None:
            t = self.teacher[q]
            teacher = [t[pos]] + [t[d] for d in negs]
        return Example(self.queries[q], self.corpus[pos], [self.corpus[d] for d in negs], qid=q, pos_id=pos,
                       neg_ids=list(negs), teacher=teacher)

    def describe(self) -> str:
        n_cands = [len(c) for c in self.candidates.values()]
        return (f"{len(self)} queries, {sum(len(p) for p in self.positives.values())} positives, "
                f"{self.k} negatives each from {int(np.mean(n_cands)) if n_cands else 0} candidates on average"
                + (f" ({self.topped_up} queries topped up with random documents)" if self.topped_up else ""))


def check_references(corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, dict[str, int]],
                     run: dict[str, list[str]] | None, paths: dict[str, str]) -> None:
    """Qrels and run must name known queries and documents: one-line errors otherwise."""
    check_qrels(paths["qrels"], queries, corpus, topics_name=f"the queries file {paths['queries']}",
                corpus_name=f"the corpus {paths['corpus']}")
    checks = []
    if run is not None:
        checks.append((paths["negatives"], run, "unknown topic {q!r}: not in", "topic"))
    for path, mapping, unknown_query, word in checks:
        for q, docs in mapping.items():
            if q not in queries:
                line = _first_line(path, lambda p, q=q: p[0] == q)
                raise InputError(path, line, unknown_query.format(q=q) + f" the queries file {paths['queries']}")
            for d in docs:
                if d not in corpus:
                    line = _first_line(path, lambda p, q=q, d=d: len(p) >= 3 and p[0] == q and p[2] == d)
                    raise InputError(path, line, f"document {d!r} ({word} {q!r}) is not in the corpus {paths['corpus']}")


def load_corpus_texts(path: str | os.PathLike) -> dict[str, str]:
    corpus = {d.docid: d.text for d in read_corpus(path)}
    if not corpus:
        raise InputError(path, None, "empty corpus")
    return corpus


@dataclass
class ValidationSet:
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def describe(self) -> str:
        return f"{len(self.queries)} queries over {len(self.corpus)} documents"


def restrict_corpus(corpus: dict[str, str], qrels: dict[str, dict[str, int]], run: dict[str, list[str]] | None,
                    per_query: int, max_docs: int, seed: int) -> dict[str, str]:
    """A validation corpus: the judged documents + the run's top ``per_query`` per query (when
    ``per_query``), filled or capped to ``max_docs`` with seeded random documents (when ``max_docs``)."""
    if not per_query and not max_docs:
        return corpus
    keep: list[str] = []
    seen: set[str] = set()

    def add(d: str) -> None:
        if d in corpus and d not in seen:
            seen.add(d)
            keep.append(d)

    for q, docs in qrels.items():
        for d in docs:
            add(d)
        if per_query and run is not None:
            for d in run.get(q, [])[:per_query]:
                add(d)
    if max_docs and len(keep) < max_docs:
        ids = list(corpus)
        for i in np.random.default_rng([seed, 4242]).permutation(len(ids)):
            if len(keep) >= max_docs:
                break
            add(ids[i])
    return {d: corpus[d] for d in sorted(keep)}


def queries_with_positives(queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> list[str]:
    """The queries (in file order) with at least one positive judgement: the ones a trainer can use."""
    return [q for q in queries if any(r > 0 for r in qrels.get(q, {}).values())]


def held_out_qids(train_qids: list[str], n: int, seed: int, qrels_path: str | os.PathLike | None = None) -> list[str]:
    """The ``n`` of ``train_qids`` that ``valid_holdout`` keeps out of training (seeded; in their order).

    The trainer validates on them; the ``holdout`` command writes them out so that choices made after
    training (fusion weights, passages) can be validated on the same queries."""
    if n >= len(train_qids):
        raise InputError(qrels_path, None, f"valid_holdout={n} leaves no training query "
                                           f"({len(train_qids)} have positives)")
    rng = np.random.default_rng([seed, 1717])
    held = set(rng.choice(train_qids, size=n, replace=False).tolist())
    return [q for q in train_qids if q in held]


def load_validation_set(corpus_path: str, queries_path: str, qrels_path: str, max_docs: int = 0,
                        seed: int = 0, *, judged_in_corpus: bool = True) -> ValidationSet:
    """A validation set read from its three files, references checked (``max_docs``: see restrict_corpus).
    ``judged_in_corpus=False`` accepts judged documents missing from the corpus (a subset such as
    msmarco-dl19-subset, evaluated as the pipeline evaluates it: they count, unretrieved)."""
    corpus = load_corpus_texts(corpus_path)
    queries, qrels = read_topics(queries_path), read_qrels(qrels_path)
    check_qrels(qrels_path, queries, corpus if judged_in_corpus else None,
                topics_name=f"the queries file {queries_path}", corpus_name=f"the corpus {corpus_path}")
    return ValidationSet(restrict_corpus(corpus, qrels, None, 0, max_docs, seed), queries, qrels)


def build_guard(cfg) -> ValidationSet | None:
    """The out-of-domain guard set of a config (``guard_corpus/queries/qrels``), or None."""
    if not cfg.guard_corpus:
        return None
    return load_validation_set(cfg.guard_corpus, cfg.guard_queries, cfg.guard_qrels, judged_in_corpus=False)


def build_data(cfg) -> tuple[TrainingData, ValidationSet | None]:
    """Training data and the validation set described by a :class:`~.config.TrainConfig`."""
    if cfg.triples:
        data: TrainingData = TriplesData(cfg.triples)
        valid = None
        if cfg.valid_queries:
            valid = load_validation_set(cfg.valid_corpus, cfg.valid_queries, cfg.valid_qrels, cfg.valid_max_docs,
                                        cfg.seed)
        return data, valid

    paths = {"corpus": cfg.corpus, "queries": cfg.queries, "qrels": cfg.qrels, "negatives": cfg.negatives,
             "teacher": cfg.teacher}
    corpus = load_corpus_texts(cfg.corpus)
    queries = read_topics(cfg.queries)
    qrels = read_qrels(cfg.qrels)
    run = read_ranked_run(cfg.negatives) if cfg.negatives else None
    check_references(corpus, queries, qrels, run, paths)
    teacher = read_scored_pairs(cfg.teacher) if cfg.teacher else None
    if teacher is not None:
        unknown = next((q for q in teacher if q not in queries), None)
        if unknown is not None:
            line = _first_line(cfg.teacher, lambda p: p[0] == unknown)
            raise InputError(cfg.teacher, line, f"unknown topic {unknown!r}: not in the queries file {cfg.queries}")

    train_qids = queries_with_positives(queries, qrels)
    valid = None
    if cfg.valid_holdout:
        held = held_out_qids(train_qids, cfg.valid_holdout, cfg.seed, cfg.qrels)
        vq = {q: queries[q] for q in held}
        vqrels = {q: qrels[q] for q in vq}
        vrun = run
        if cfg.valid_negatives:
            vrun = read_ranked_run(cfg.valid_negatives)
            check_references(corpus, queries, {}, vrun, {**paths, "negatives": cfg.valid_negatives})
        vcorpus = restrict_corpus(corpus, vqrels, vrun, cfg.valid_negatives_per_query, cfg.valid_max_docs, cfg.seed)
        valid = ValidationSet(vcorpus, vq, vqrels)
        train_qids = [q for q in train_qids if q not in vq]
    elif cfg.valid_queries:
        vcorpus_path = cfg.valid_corpus or cfg.corpus
        vcorpus = corpus if vcorpus_path == cfg.corpus else load_corpus_texts(vcorpus_path)
        vq, vqrels = read_topics(cfg.valid_queries), read_qrels(cfg.valid_qrels)
        check_references(vcorpus, vq, vqrels, None, {"qrels": cfg.valid_qrels, "queries": cfg.valid_queries,
                                                     "corpus": vcorpus_path})
        vcorpus = restrict_corpus(vcorpus, vqrels, None, 0, cfg.valid_max_docs, cfg.seed)
        valid = ValidationSet(vcorpus, vq, vqrels)
    data = QrelsData(corpus, queries, qrels, run, k=cfg.n_negatives, depth=cfg.negatives_depth,
                     teacher=teacher, qids=train_qids, paths=paths)
    return data, valid


class Stream:
    """The infinite, seeded walk over a :class:`TrainingData`'s examples."""

    def __init__(self, data: TrainingData, seed: int):
        self.data = data
        self.seed = seed
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def locate(self, position: int) -> tuple[int, int]:
        """``(epoch, example index)`` at stream ``position``."""
        epoch, offset = divmod(position, len(self.data))
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.data))
            self._perm_epoch = epoch
        return epoch, int(self._perm[offset])

    def get(self, position: int) -> Example:
        epoch, index = self.locate(position)
        return self.data.example(index, np.random.default_rng([self.seed, epoch, index, 99]))

    def batch(self, start: int, size: int) -> list[Example]:
        return [self.get(p) for p in range(start, start + size)]


def tokenize_batch(tokenizer, examples: Sequence[Example], max_length: int, query_max_length: int) -> dict:
    """Queries ``[B, Lq]`` and documents ``[B * (1 + k), Ld]``: all positives first (document ``i`` is
    query ``i``'s positive), then each query's ``k`` negatives in query order."""
    queries = [e.query for e in examples]
    docs = [e.positive for e in examples] + [n for e in examples for n in e.negatives]
    q = tokenizer(queries, max_length=query_max_length, truncation=True, padding=True, return_tensors="pt",
                  return_token_type_ids=False)
    d = tokenizer(docs, max_length=max_length, truncation=True, padding=True, return_tensors="pt",
                  return_token_type_ids=False)
    out = {"q_ids": q["input_ids"], "q_mask": q["attention_mask"], "d_ids": d["input_ids"], "d_mask": d["attention_mask"],
           "k": len(examples[0].negatives) if examples else 0}
    if examples and examples[0].teacher is not None:
        import torch

        out["teacher"] = torch.tensor([e.teacher for e in examples], dtype=torch.float32)
    return out
