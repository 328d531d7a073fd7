"""Pseudo-queries from a corpus without labels (train.pseudo_queries), on real SciFact, CACM and MS MARCO slices."""
from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splade_anserini.conversion.trec import read_qrels
from splade_anserini.data import read_corpus, read_topics
from splade_anserini.train import pseudo_queries as pq


def _slice(src, dst, n):
    with open(src, encoding="utf-8") as fh:
        dst.write_text("".join(itertools.islice(fh, n)), encoding="utf-8")
    return dst


@pytest.fixture
def scifact60(data_dir, tmp_path):
    return _slice(data_dir / "scifact" / "corpus.jsonl", tmp_path / "corpus.jsonl", 60)


@pytest.fixture
def marco60(data_dir, tmp_path):
    return _slice(data_dir / "msmarco-dl19-subset" / "collection.tsv", tmp_path / "collection.tsv", 60)


def _run(corpus, out, *flags):
    return pq.main(["--corpus", str(corpus), "--output", str(out), *flags])


def _outputs(out):
    queries = read_topics(f"{out}.queries.tsv")
    qrels = read_qrels(f"{out}.qrels.txt")
    training = {d.docid: d.text for d in read_corpus(f"{out}.corpus.jsonl")}
    return queries, qrels, training


def test_titles_are_queries_and_leave_their_positive(scifact60, tmp_path):
    assert _run(scifact60, tmp_path / "pq", "--source", "title") == 0
    queries, qrels, training = _outputs(tmp_path / "pq")
    docs = {d.docid: d for d in read_corpus(scifact60)}
    assert set(training) == set(docs)  # every document stays in the training corpus
    assert len(queries) >= 50
    for qid, text in queries.items():
        (docid, rel), = qrels[qid].items()
        assert rel == 1 and text == " ".join(docs[docid].title.split())
        assert text not in training[docid]  # the title is cut out of the positive's training text
        assert training[docid] and training[docid] in " ".join(docs[docid].text.split())


def test_sentences_are_cut_out_and_reproducible(scifact60, tmp_path):
    assert _run(scifact60, tmp_path / "a", "--source", "sentence", "--per-document", "2", "--seed", "3") == 0
    assert _run(scifact60, tmp_path / "b", "--source", "sentence", "--per-document", "2", "--seed", "3") == 0
    assert _run(scifact60, tmp_path / "c", "--source", "sentence", "--per-document", "2", "--seed", "4") == 0
    for ext in ("queries.tsv", "qrels.txt", "corpus.jsonl"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
    assert (tmp_path / "a.queries.tsv").read_bytes() != (tmp_path / "c.queries.tsv").read_bytes()
    queries, qrels, training = _outputs(tmp_path / "a")
    per_doc: dict[str, int] = {}
    for qid, text in queries.items():
        (docid, _), = qrels[qid].items()
        per_doc[docid] = per_doc.get(docid, 0) + 1
        assert text not in training[docid]
        lo, hi = pq.SENTENCE_WORDS
        assert lo <= len(text.split()) <= hi
        assert len(training[docid].split()) >= 20
    assert max(per_doc.values()) == 2


def test_auto_takes_sentences_without_titles_and_spans_work(marco60, tmp_path):
    assert _run(marco60, tmp_path / "auto") == 0
    assert _run(marco60, tmp_path / "sent", "--source", "sentence") == 0
    assert (tmp_path / "auto.queries.tsv").read_bytes() == (tmp_path / "sent.queries.tsv").read_bytes()
    assert _run(marco60, tmp_path / "span", "--source", "span", "--min-remaining", "10") == 0
    queries, qrels, training = _outputs(tmp_path / "span")
    docs = {d.docid: " ".join(d.text.split()) for d in read_corpus(marco60)}
    assert queries
    for qid, text in queries.items():
        (docid, _), = qrels[qid].items()
        lo, hi = pq.SPAN_WORDS
        assert lo <= len(text.split()) <= hi
        assert training[docid].count(text) < docs[docid].count(text)  # (a phrase may occur twice)


def test_cacm_titles_keep_only_documents_with_text_left(data_dir, tmp_path):
    corpus = _slice(data_dir / "cacm" / "corpus.jsonl", tmp_path / "cacm.jsonl", 300)
    assert _run(corpus, tmp_path / "pq") == 0  # auto: CACM has titles
    queries, qrels, training = _outputs(tmp_path / "pq")
    docs = {d.docid: d for d in read_corpus(corpus)}
    kept = {docid for q in qrels.values() for docid in q}
    assert 0 < len(kept) < len(docs)  # title-only records (a date and authors left) give no query
    assert all(len(training[d].split()) >= 20 for d in kept)
    assert all(training[d] == docs[d].text for d in docs if d not in kept)


@pytest.mark.parametrize("flags, corpus_kind, message", [
    (["--source", "title"], "marco", "has no titles"),
    ([], "empty", "has no documents"),
    (["--per-document", "0"], "marco", "per-document"),
    (["--min-remaining", "100000"], "marco", "no sentence pseudo-query"),
])
def test_bad_input_is_one_line_and_writes_nothing(marco60, tmp_path, capsys, flags, corpus_kind, message):
    corpus = marco60 if corpus_kind == "marco" else tmp_path / "empty.tsv"
    if corpus_kind == "empty":
        corpus.write_text("")
    assert _run(corpus, tmp_path / "pq", *flags) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("error:")
    assert not list(tmp_path.glob("pq.*")) and not list(tmp_path.glob(".pq*"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["alpha", "beta", "gamma.", "Delta", "x", "7", "é"]), min_size=1, max_size=60),
       st.integers(0, 2**32 - 1))
def test_cut_removes_exactly_the_spans(words, seed):
    import numpy as np

    text = " ".join(words)
    spans = pq.span_candidates(text, np.random.default_rng(seed), 3)
    rest = pq.cut(text, spans)
    kept = [w for i, w in enumerate(words) if not any(a <= _start(words, i) < b for a, b in spans)]
    assert rest.split() == kept
    for a, b in spans:
        lo, hi = pq.SPAN_WORDS
        assert lo <= len(text[a:b].split()) <= hi


def _start(words, i):
    return sum(len(w) + 1 for w in words[:i])


def test_outputs_are_safe_and_their_folder_is_created(scifact60, tmp_path, capsys):
    out = tmp_path / "runs" / "adapt" / "pq"  # a folder that does not exist yet, as in a fresh checkout
    assert _run(scifact60, out) == 0
    first = {s: (tmp_path / "runs" / "adapt" / f"pq{s}").read_bytes() for s in pq.OUTPUT_SUFFIXES}
    assert _run(scifact60, out) == 0  # a rerun replaces the tool's own files, with the same bytes
    assert first == {s: (tmp_path / "runs" / "adapt" / f"pq{s}").read_bytes() for s in pq.OUTPUT_SUFFIXES}
    mine = tmp_path / "runs" / "adapt" / "other.qrels.txt"  # a file of the user's at one of the three names
    mine.write_text("mine\n")
    capsys.readouterr()
    assert _run(scifact60, tmp_path / "runs" / "adapt" / "other") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was not written by splade-anserini" in err[0]
    assert mine.read_text() == "mine\n"
    assert not (tmp_path / "runs" / "adapt" / "other.queries.tsv").exists()  # nothing written, not even the others


# -- synthetic shapes: SciFact slices transformed as other collections are stored ---------------------------

def _shape(scifact60, tmp_path, transform):
    """A corpus.jsonl of the slice's documents after ``transform(title, body) -> (title, body)``."""
    out = tmp_path / "shape.jsonl"
    with open(scifact60, encoding="utf-8") as fh, open(out, "w", encoding="utf-8") as fo:
        for line in fh:
            obj = json.loads(line)
            obj["title"], obj["text"] = transform(obj["title"], obj["text"])
            fo.write(json.dumps(obj) + "\n")
    return out


def _no_punctuation(text):
    import re

    return " ".join(re.sub(r"[^\w\s]", " ", text).lower().split())


SHAPES = {  # name: (transform, the source auto must choose)
    "title-repeated": (lambda t, b: (t, f"{t.upper()}  {b} {t}"), "title"),
    "no-punctuation": (lambda t, b: ("", _no_punctuation(b)), "span"),
    "upper-case": (lambda t, b: ("", _no_punctuation(b).upper()), "span"),
    "no-titles": (lambda t, b: ("", b), "sentence"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_auto_on_each_shape_cuts_queries_that_do_not_leak(scifact60, tmp_path, capsys, shape):
    transform, expected = SHAPES[shape]
    corpus = _shape(scifact60, tmp_path, transform)
    capsys.readouterr()
    assert _run(corpus, tmp_path / "pq") == 0
    err = capsys.readouterr().err
    assert f"({expected})" in err
    n = len(read_topics(tmp_path / "pq.queries.tsv"))
    assert f"leakage: 0 of {n} queries (0.00%)" in err and n >= 30
    queries, qrels, training = _outputs(tmp_path / "pq")
    for qid, text in queries.items():
        (docid, _), = qrels[qid].items()
        assert pq.normalise(text) not in pq.normalise(training[docid])  # no copy, whatever its case or spacing


def test_a_title_repeated_in_the_body_is_removed_everywhere(scifact60, tmp_path):
    corpus = _shape(scifact60, tmp_path, SHAPES["title-repeated"][0])
    assert _run(corpus, tmp_path / "pq", "--source", "title") == 0
    queries, qrels, training = _outputs(tmp_path / "pq")
    docs = {d.docid: d for d in read_corpus(corpus)}
    for qid, text in queries.items():
        (docid, _), = qrels[qid].items()
        assert pq.normalise(docs[docid].text).count(pq.normalise(text)) == 3  # the title, its upper case, the end
        assert len(training[docid].split()) == len(docs[docid].text.split()) - 3 * len(text.split())


def test_remove_copies_ignores_case_and_whitespace():
    assert pq.remove_copies("Gene  THERAPY works; gene\ntherapy heals", "gene therapy") == "works; heals"
    assert pq.remove_copies("a a b b c", "a b") == "c"  # a removal that joins a new copy removes it too
    assert not pq.leaks("gene therapy", "works; heals") and pq.leaks("Gene Therapy", "x GENE  therapy y")


@pytest.mark.parametrize("flags, transform, message", [
    (["--source", "sentence"], SHAPES["no-punctuation"][0], "no sentence of 5-40 words"),
    (["--source", "sentence"], SHAPES["no-punctuation"][0], "try --source span"),
    (["--source", "span", "--min-remaining", "100000"], SHAPES["no-titles"][0], "documents too short"),
])
def test_an_empty_yield_says_why_and_what_to_try(scifact60, tmp_path, capsys, flags, transform, message):
    corpus = _shape(scifact60, tmp_path, transform)
    assert _run(corpus, tmp_path / "pq", *flags) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("error:")
    assert not list(tmp_path.glob("pq.*"))
