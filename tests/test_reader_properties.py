"""Property tests for every reader: random valid files round-trip; harmless changes (blank lines, CRLF,
no final newline) read the same; random corruptions either read as valid data or raise the project's
InputError naming a line, never another exception."""
from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.jsonvector import MAX_IMPACT, docid_problem, read_jsonvector, vector_problem
from splade_anserini.conversion.topics import read_tsvint, tsvint_line
from splade_anserini.conversion.trec import format_score, read_run
from splade_anserini.data import read_corpus, read_qrels, read_topics, read_triples

SETTINGS = settings(max_examples=int(os.environ.get("READER_PROPERTY_EXAMPLES", "100")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ids: no whitespace (str.isspace covers categories Z* and the Cc separators), no surrogates
ids = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=12)
# free text on one line (tabs and newlines are the formats' separators)
line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), max_size=40)
tokens = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=10)


def unique_by_first(items):
    return st.lists(items, min_size=1, max_size=8, unique_by=lambda x: x[0])


# -- the formats: (strategy of valid data, writer to bytes, reader from a path, validity check of what was read) --
def corpus_jsonl_bytes(docs) -> bytes:
    return "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, t, x in docs).encode()


def read_corpus_jsonl(path):
    return [(d.docid, d.text) for d in read_corpus(path, "beir")]


def expected_corpus_jsonl(docs):
    return [(d, f"{t} {x}".strip() if t else x.strip()) for d, t, x in docs]


def corpus_tsv_bytes(docs) -> bytes:
    return "".join(f"{d}\t{x}\n" for d, x in docs).encode()


def read_corpus_tsv(path):
    return [(d.docid, d.text) for d in read_corpus(path, "msmarco")]


def topics_bytes(topics) -> bytes:
    return "".join(f"{q}\t{x}\n" for q, x in topics).encode()


def qrels_bytes(rows) -> bytes:
    return "".join(f"{q} 0 {d} {r}\n" for q, d, r in rows).encode()


def expected_qrels(rows):
    out: dict = {}
    for q, d, r in rows:
        out.setdefault(q, {})[d] = r
    return out


def run_bytes(rows) -> bytes:
    return "".join(f"{q} Q0 {d} {i} {format_score(s)} tag\n" for i, (q, d, s) in enumerate(rows, 1)).encode()


def expected_run(rows):
    out: dict = {}
    for q, d, s in rows:
        out.setdefault(q, {})[d] = float(format_score(s))
    return out


def triples_bytes(rows) -> bytes:
    return "".join("\t".join(r) + "\n" for r in rows).encode()


def jsonvector_bytes(docs) -> bytes:
    return "".join(json.dumps({"id": d, "contents": c, "vector": v}) + "\n" for d, v, c in docs).encode()


def read_vectors(path):
    return [(d.docid, d.vector, d.contents) for d in read_jsonvector(path)]


def tsvint_bytes(topics) -> bytes:
    return "".join(tsvint_line(q, v) + "\n" for q, v in topics).encode()


def valid_corpus(docs):
    assert len({d for d, _ in docs}) == len(docs)
    assert all(docid_problem(d) is None and isinstance(x, str) for d, x in docs)


def valid_topics(topics):
    assert all(docid_problem(q, "query id") is None for q in topics)


def valid_qrels(qrels):
    assert all(not any(c.isspace() for c in q + d) and type(r) is int for q, ds in qrels.items() for d, r in ds.items())


def valid_run(run):
    assert all(math.isfinite(s) for ds in run.values() for s in ds.values())


def valid_triples(rows):
    assert all(len(r) == 3 and all(x and "\t" not in x for x in r[1:]) for r in rows)


def valid_vectors(docs):
    assert len({d for d, _, _ in docs}) == len(docs)
    assert all(docid_problem(d) is None and vector_problem(v) is None for d, v, _ in docs)


def valid_tsvint(topics):
    assert all(docid_problem(q, "query id") is None and all(w >= 1 for w in v.values()) for q, v in topics.items())


strip_text = line_text.map(str.strip)
FORMATS = {
    "corpus jsonl": (unique_by_first(st.tuples(ids, line_text, line_text)), corpus_jsonl_bytes, read_corpus_jsonl,
                     expected_corpus_jsonl, valid_corpus, "corpus.jsonl"),
    "corpus tsv": (unique_by_first(st.tuples(ids, strip_text)), corpus_tsv_bytes, read_corpus_tsv, list,
                   valid_corpus, "collection.tsv"),
    "topics tsv": (unique_by_first(st.tuples(ids, strip_text)), topics_bytes, read_topics, dict, valid_topics,
                   "queries.tsv"),
    "qrels trec": (st.lists(st.tuples(ids, ids, st.integers(-2, 3)), min_size=1, max_size=8,
                            unique_by=lambda r: (r[0], r[1])), qrels_bytes, read_qrels,
                   expected_qrels, valid_qrels, "qrels.txt"),
    "run trec": (st.lists(st.tuples(ids, ids, st.floats(-1e6, 1e6)), min_size=1, max_size=8, unique_by=lambda r: (r[0], r[1])),
                 run_bytes, read_run, expected_run, valid_run, "run.trec"),
    "triples": (st.lists(st.tuples(*[strip_text.filter(bool)] * 3), min_size=1, max_size=6), triples_bytes,
                lambda p: [tuple(t[1:]) for t in read_triples(p)], list, valid_triples, "triples.tsv"),
    "jsonvector": (unique_by_first(st.tuples(ids, st.dictionaries(tokens, st.integers(1, MAX_IMPACT), min_size=1,
                                                                  max_size=5), line_text)),
                   jsonvector_bytes, read_vectors, list, valid_vectors, "part-00000.jsonl"),
    "jsonvector gz": (unique_by_first(st.tuples(ids, st.dictionaries(tokens, st.integers(1, MAX_IMPACT), min_size=1,
                                                                     max_size=5), line_text)),
                      lambda docs: gzip.compress(jsonvector_bytes(docs), mtime=0), read_vectors, list, valid_vectors,
                      "part-00000.jsonl.gz"),
    "tsvint topics": (unique_by_first(st.tuples(ids, st.dictionaries(tokens, st.integers(1, 4), min_size=1, max_size=4))),
                      tsvint_bytes, read_tsvint, dict, valid_tsvint, "topics.tsvint"),
}


def read_file(fmt: str, data: bytes):
    *_, reader, _, _, name = FORMATS[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        result = reader(path)
        return list(result) if not isinstance(result, dict) else result


def harmless(data: bytes, blank_every: int, crlf: bool, drop_last_newline: bool) -> bytes:
    lines = data.split(b"\n")
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if blank_every and i % blank_every == 0:
            out.append(b"  ")
    text = b"\n".join(out)
    if crlf:
        text = text.replace(b"\n", b"\r\n")
    return text.rstrip(b"\r\n") if drop_last_newline else text


@st.composite
def corruption(draw, data: bytes) -> bytes:
    """A random damage at a uniformly drawn place: a byte changed, bytes deleted or inserted, the file
    cut, a line repeated."""
    rnd = draw(st.randoms(use_true_random=False))
    n = len(data)
    kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "repeat line"]))
    at = rnd.randrange(max(1, n))
    if kind == "flip" and n:
        return data[:at] + bytes([rnd.choice([rnd.randrange(256), *b" \t\n\"{}:,.-0a\\"])]) + data[at + 1:]
    if kind == "delete":
        return data[:at] + data[at + rnd.randint(1, 8):]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
    if kind == "truncate":
        return data[:at]
    lines = data.split(b"\n")
    i = rnd.randrange(len(lines))
    return b"\n".join(lines[:i + 1] + lines[i:])


@pytest.mark.parametrize("fmt", list(FORMATS))
@SETTINGS
@given(st.data())
def test_valid_files_round_trip_and_harmless_changes_read_the_same(fmt, data):
    strategy, write, _, expected, _, _ = FORMATS[fmt]
    value = data.draw(strategy)
    raw = write(value)
    want = expected(value)
    assert read_file(fmt, raw) == want
    if not fmt.endswith("gz"):
        changed = harmless(raw, data.draw(st.integers(0, 3)), data.draw(st.booleans()), data.draw(st.booleans()))
        assert read_file(fmt, changed) == want


@pytest.mark.parametrize("fmt", list(FORMATS))
@SETTINGS
@given(st.data())
def test_corrupted_files_read_as_valid_data_or_fail_naming_a_line(fmt, data):
    strategy, write, _, _, valid, _ = FORMATS[fmt]
    raw = write(data.draw(strategy))
    damaged = data.draw(corruption(raw))
    try:
        result = read_file(fmt, damaged)
    except InputError as err:
        assert err.line is not None and err.line >= 1, str(err)
        assert "\n" not in str(err)
    else:
        valid(result)
