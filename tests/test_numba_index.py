"""Numba reference index: build/save/load, exact top-k against brute force, ties, edge queries,
batch search, format versioning, and parity with a Lucene impact index on a real SciFact slice."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
from splade_anserini.conversion.quantize import guard_empty
from splade_anserini.index.numba_index import FORMAT_VERSION, IndexFormatError, NumbaIndex

DOCS = [
    ("d3", {"a": 3, "b": 1}),
    ("d10", {"a": 2, "c": 5}),
    ("d2", {"b": 4}),
    ("d1", {"a": 2, "c": 5}),   # same vector as d10: a tie, d1 < d10 as strings
    ("d9", {"a": 2, "c": 5}),   # and d10 < d9
    ("e", {"z": 7}),
]


def brute_force(docs, query, k):
    """Reference ranking: every document's dot product, score desc then docid asc, zero scores out."""
    scored = [(docid, sum(w * vec.get(t, 0) for t, w in query.items() if w > 0)) for docid, vec in docs]
    ranked = sorted((h for h in scored if h[1] > 0), key=lambda h: (-h[1], h[0]))
    return ranked[:k]


def random_collection(rng, n_docs, n_terms, max_len, max_impact, id_fmt="doc{}"):
    docs = []
    for i in rng.permutation(n_docs):
        length = int(rng.integers(1, max_len))
        terms = rng.choice(n_terms, size=min(length, n_terms), replace=False)
        docs.append((id_fmt.format(i), {f"t{t}": int(rng.integers(1, max_impact)) for t in terms}))
    return docs


def test_small_example_ranks_by_score_then_docid():
    idx = NumbaIndex.from_vectors(DOCS)
    assert idx.n_docs == 6 and set(idx.vocab) == {"a", "b", "c", "z"}
    assert idx.search({"a": 1, "c": 1}, k=10) == [("d1", 7), ("d10", 7), ("d9", 7), ("d3", 3)]
    assert idx.search({"a": 1, "c": 1}, k=2) == [("d1", 7), ("d10", 7)]  # the tie is cut by docid
    assert idx.search({"b": 2}, k=10) == [("d2", 8), ("d3", 2)]


def test_ties_follow_docid_string_order_across_blocks_and_at_the_cutoff():
    # 70,000 documents (two blocks of 65,536), every one scoring 5 or 6: ties everywhere
    n = 70_000
    ids = [str(i) for i in range(n)]  # string order: "0", "1", "10", "100", ...
    rng = np.random.default_rng(3)
    six = rng.random(n) < 0.3
    indptr = np.arange(n + 1)
    idx = NumbaIndex.from_arrays(indptr, np.where(six, 1, 0), np.ones(n, np.int64), ["five", "six"], ids)
    hits = idx.search({"five": 5, "six": 6}, k=1000)
    expected = sorted(((d, 6 if s else 5) for d, s in zip(ids, six)), key=lambda h: (-h[1], h[0]))[:1000]
    assert hits == expected
    assert idx.batch_search([{"five": 5, "six": 6}], k=1000, threads=2)[0] == expected


def test_empty_and_absent_queries():
    idx = NumbaIndex.from_vectors(DOCS)
    assert idx.search({}, k=10) == []
    assert idx.search({"nowhere": 3, "[unused1]": 1}, k=10) == []
    assert idx.search({"a": 1, "nowhere": 9}, k=10) == idx.search({"a": 1}, k=10)
    assert idx.search({"a": 0, "b": -1}, k=10) == []  # weights <= 0 never score
    assert idx.search({"a": 1}, k=0) == []
    assert idx.batch_search([{}, {"nowhere": 1}], k=5) == [[], []]
    with pytest.raises(ValueError, match="quantize"):
        idx.search({"a": 0.5}, k=3)
    with pytest.raises(ValueError, match="'b' is 'x'"):
        idx.search({"a": 1, "b": "x"}, k=3)
    assert idx.search({"a": 1.0, "c": 1.0}, k=2) == idx.search({"a": 1, "c": 1}, k=2)  # integral floats are fine


@pytest.mark.parametrize("dense_min_df", [0.1, 0.0, 1.1])  # default, everything dense, nothing dense
def test_exact_against_brute_force(dense_min_df):
    rng = np.random.default_rng(7)
    docs = random_collection(rng, 3000, 60, 25, 40)
    idx = NumbaIndex.from_vectors(docs, dense_min_df=dense_min_df)
    for _ in range(25):
        terms = rng.choice(70, size=int(rng.integers(1, 20)), replace=False)  # t60..t69 are unknown
        query = {f"t{t}": int(rng.integers(1, 6)) for t in terms}
        expected = brute_force(docs, query, len(docs))
        for k in (1, 10, 1000, 5000):
            assert idx.search(query, k) == expected[:k]


def test_scores_beyond_32_bits_use_wide_accumulators():
    docs = [("x", {"a": 250, "b": 3}), ("y", {"a": 200}), ("w", {"b": 9})]
    idx = NumbaIndex.from_vectors(docs)
    query = {"a": 10**8, "b": 10**9}
    assert idx.search(query, k=3) == brute_force(docs, query, 3)
    assert idx.search(query, k=3)[0] == ("x", 250 * 10**8 + 3 * 10**9)
    assert idx.batch_search([query, {"a": 1}], k=3) == [idx.search(query, 3), idx.search({"a": 1}, 3)]


def test_batch_equals_looped_single_search():
    rng = np.random.default_rng(11)
    docs = random_collection(rng, 2000, 50, 30, 200)
    idx = NumbaIndex.from_vectors(docs)
    queries = [{f"t{t}": int(rng.integers(1, 100)) for t in rng.choice(55, size=int(rng.integers(0, 15)), replace=False)}
               for _ in range(40)]
    single = [idx.search(q, k=50) for q in queries]
    assert idx.batch_search(queries, k=50, threads=1) == single
    assert idx.batch_search(queries, k=50, threads=2) == single
    by_qid = idx.search_run({f"q{i}": q for i, q in enumerate(queries)}, k=50, threads=2)
    assert list(by_qid) == [f"q{i}" for i in range(40)]
    assert list(by_qid.values()) == single


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    docs = random_collection(rng, 500, 40, 20, 300, id_fmt="p{}")  # impacts > 255: uint16 postings
    vectors = tmp_path / "vectors"
    vectors.mkdir()
    write_jsonvector(vectors / "part-0.jsonl", (VectorDoc(d, v) for d, v in docs[:250]))
    write_jsonvector(vectors / "part-1.jsonl.gz", (VectorDoc(d, v) for d, v in docs[250:]))
    built = NumbaIndex.from_jsonvector(vectors, factor=100.0)
    built.save(tmp_path / "index")
    header = json.loads((tmp_path / "index" / "header.json").read_text())
    assert header["version"] == FORMAT_VERSION and header["n_docs"] == 500 and header["factor"] == 100.0
    for mmap in (True, False):
        loaded = NumbaIndex.load(tmp_path / "index", mmap=mmap)
        assert loaded.n_docs == 500 and loaded.vocab == built.vocab and loaded.docids == built.docids
        for _ in range(10):
            query = {f"t{t}": int(rng.integers(1, 50)) for t in rng.choice(40, size=8, replace=False)}
            assert loaded.search(query, 100) == built.search(query, 100) == brute_force(docs, query, 100)
    ids, impacts = loaded.postings("t3")
    assert list(impacts) == [v["t3"] for _, v in sorted(docs) if "t3" in v]
    assert [loaded.docids[i] for i in ids] == sorted(d for d, v in docs if "t3" in v)


def test_version_mismatch_is_a_clear_error(tmp_path):
    NumbaIndex.from_vectors(DOCS).save(tmp_path / "index")
    head = tmp_path / "index" / "header.json"
    header = json.loads(head.read_text())
    header["version"] = FORMAT_VERSION + 1
    head.write_text(json.dumps(header))
    with pytest.raises(IndexFormatError, match=rf"version {FORMAT_VERSION + 1}.*reads version {FORMAT_VERSION}.*rebuild"):
        NumbaIndex.load(tmp_path / "index")
    with pytest.raises(IndexFormatError, match="no header.json"):
        NumbaIndex.load(tmp_path)


def test_duplicate_docids_and_float_impacts_are_refused():
    with pytest.raises(ValueError, match="duplicate document id 'd1'"):
        NumbaIndex.from_vectors([("d1", {"a": 1}), ("d1", {"b": 1})])
    with pytest.raises(ValueError, match="quantize"):
        NumbaIndex.from_arrays([0, 1], [0], [0.5], ["a"], ["d"])


# -- a real SciFact slice -------------------------------------------------------------------------
N_SLICE = 150


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory, data_dir, encoder):
    """splade-tiny vectors of SciFact documents (the relevant ones of the first test queries, then
    others) and of 30 test queries."""
    from splade_anserini.data import read_corpus, read_qrels, read_topics

    qrels = read_qrels(data_dir / "scifact" / "qrels.test.txt")
    topics = read_topics(data_dir / "scifact" / "queries.test.tsv")
    qids = list(qrels)[:30]
    wanted = {d for q in qids for d in qrels[q]}
    corpus = list(read_corpus(data_dir / "scifact" / "corpus.jsonl"))
    docs = [d for d in corpus if d.docid in wanted]
    docs += list(itertools.islice((d for d in corpus if d.docid not in wanted), N_SLICE - len(docs)))
    vecs = encoder.encode_documents([d.text for d in docs], batch_size=32)
    root = tmp_path_factory.mktemp("numba-slice")
    write_jsonvector(root / "vectors.jsonl",
                     (VectorDoc(d.docid, guard_empty(encoder.to_impacts(v))[0]) for d, v in zip(docs, vecs)))
    queries = {q: encoder.to_impacts(v) for q, v in zip(qids, encoder.encode_queries([topics[q] for q in qids]))}
    return {"root": root, "vectors": root / "vectors.jsonl", "docids": [d.docid for d in docs], "vecs": vecs,
            "queries": queries, "encoder": encoder}


def test_exact_against_numpy_dot_product_on_scifact(scifact_slice):
    s = scifact_slice
    idx = NumbaIndex.from_jsonvector(s["vectors"])
    vocab = {t: i for i, t in enumerate(s["encoder"].vocab)}
    doc_matrix = np.zeros((len(s["docids"]), len(vocab)), dtype=np.int64)
    for row, vec in enumerate(s["vecs"]):
        for token, impact in guard_empty(s["encoder"].to_impacts(vec))[0].items():
            doc_matrix[row, vocab[token]] = impact
    for qid, query in s["queries"].items():
        qv = np.zeros(len(vocab), dtype=np.int64)
        for token, weight in query.items():
            qv[vocab[token]] = weight
        scores = doc_matrix @ qv
        expected = sorted(((d, int(sc)) for d, sc in zip(s["docids"], scores) if sc > 0), key=lambda h: (-h[1], h[0]))
        assert idx.search(query, k=1000) == expected, qid
    # the encoder's float output indexes to the same thing as its JsonVectorCollection
    direct = NumbaIndex.from_encoded(s["docids"], s["vecs"], s["encoder"].vocab, factor=100.0)
    for query in s["queries"].values():
        assert direct.search(query, k=100) == idx.search(query, k=100)


@pytest.mark.jvm
@pytest.mark.slow
def test_parity_with_lucene_on_scifact_slice(scifact_slice):
    """Identical (docid, score) lists at k=1000 between the Numba index and a Lucene impact index
    built by Anserini from the same JsonVectorCollection (k exceeds the slice: full rankings)."""
    from splade_anserini.evaluate import parity
    from splade_anserini.index.build import build_lucene_index

    s = scifact_slice
    lucene_index = s["root"] / "lucene"
    build_lucene_index(s["vectors"], lucene_index, threads=2)
    NumbaIndex.from_jsonvector(s["vectors"]).save(s["root"] / "numba")
    report = parity.check(lucene_index, s["root"] / "numba", s["queries"], k=1000, threads=2)
    assert report.queries == len(s["queries"]) and report.hits > 0
    assert report.ok, report.summary()
    # the command, on pre-encoded (TsvInt) topics
    from splade_anserini.conversion.topics import write_tsvint

    write_tsvint(s["root"] / "topics.tsv", s["queries"].items())
    assert parity.main(["--index", str(lucene_index), "--numba-index", str(s["root"] / "numba"),
                        "--encoded-topics", str(s["root"] / "topics.tsv"), "--hits", "1000"]) == 0


def test_parity_report_names_the_first_difference():
    from splade_anserini.evaluate.parity import compare

    same = compare({"q1": [("a", 5), ("b", 3)]}, {"q1": [("a", 5), ("b", 3)]})
    assert same.ok and same.summary().startswith("1/1 queries identical")
    diff = compare({"q1": [("a", 5), ("b", 3)], "q2": [("c", 1)]}, {"q1": [("a", 5), ("c", 3)], "q2": []})
    assert not diff.ok and diff.identical == 0
    assert "query q1: rank 2: lucene ('b', 3) vs numba ('c', 3)" in diff.summary()
    assert "query q2: lucene has 1 hits, numba 0" in diff.summary()
