"""Lucene impact index, Pyserini query encoder and the two search paths, on a real SciFact slice.

One JVM for this test process (``java.start_jvm``); the fresh-interpreter checks use ``run_python``.
The slice: the relevant documents of the first SciFact test queries plus other abstracts, 120 in all,
encoded once with splade-tiny.
"""
from __future__ import annotations

import itertools
import shutil
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT, run_python
from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
from splade_anserini.conversion.quantize import guard_empty
from splade_anserini.conversion.trec import write_run

pytestmark = pytest.mark.jvm

N_DOCS = 120
N_QUERIES_WITH_DOCS = 25


@pytest.fixture(scope="module")
def sl(tmp_path_factory, data_dir, encoder):
    """Vectors, Lucene index, topics and qrels of a small real SciFact slice."""
    from splade_anserini import java
    from splade_anserini.data import read_corpus, read_qrels, read_topics
    from splade_anserini.index.build import build_lucene_index
    from splade_anserini.search.query_encoder import QueryVectorizer

    java.start_jvm()
    root = tmp_path_factory.mktemp("slice")
    qrels_all = read_qrels(data_dir / "scifact" / "qrels.test.txt")
    topics_all = read_topics(data_dir / "scifact" / "queries.test.tsv")
    qids = list(qrels_all)[:N_QUERIES_WITH_DOCS]
    wanted = {d for q in qids for d in qrels_all[q]}
    docs = [d for d in read_corpus(data_dir / "scifact" / "corpus.jsonl") if d.docid in wanted]
    others = itertools.islice((d for d in read_corpus(data_dir / "scifact" / "corpus.jsonl")
                               if d.docid not in wanted), N_DOCS - len(docs))
    docs += list(others)
    vecs = encoder.encode_documents([d.text for d in docs], batch_size=32)
    vectors = root / "vectors"
    vectors.mkdir()
    half = len(docs) // 2  # two shards, as encode_corpus writes them
    for shard, part in enumerate((slice(0, half), slice(half, None))):
        write_jsonvector(vectors / f"part-{shard:05d}.jsonl",
                         (VectorDoc(d.docid, guard_empty(encoder.to_impacts(v))[0])
                          for d, v in zip(docs[part], vecs[part])))
    (vectors / "manifest.json").write_text('{"not": "a document"}\n')  # must not be indexed
    index = root / "index"
    report = build_lucene_index(vectors, index, threads=2)
    qenc = QueryVectorizer(encoder=encoder)
    topics = {q: topics_all[q] for q in qids}
    return SimpleNamespace(root=root, vectors=vectors, index=index, report=report, docs=docs, topics=topics,
                           qrels={q: qrels_all[q] for q in qids}, qenc=qenc,
                           qvecs=dict(zip(topics, qenc.encode_batch(list(topics.values())))))


@pytest.fixture(scope="module")
def pyserini_encoder(sl, encoder):
    from splade_anserini.search.query_encoder import SpladeQueryEncoder

    return SpladeQueryEncoder(encoder=encoder)


def index_vocabulary(index) -> set[str]:
    from splade_anserini import java

    reader = java.pyserini_lucene().LuceneImpactSearcher._compute_idf(str(index))
    return set(reader)


def test_index_reports_anserini_counters(sl):
    r = sl.report
    assert (r.input_documents, r.indexed, r.empty, r.unindexable, r.skipped, r.errors) == (N_DOCS, N_DOCS, 0, 0, 0, 0)
    assert r.size_bytes > 0 and r.seconds > 0
    assert json.loads((sl.index / "splade-anserini-index.json").read_text())["indexed"] == N_DOCS
    assert not [p for p in sl.index.parent.iterdir() if p.name.startswith(".")]  # no temporary dirs left


def test_index_search_evaluate(sl, pyserini_encoder):
    from splade_anserini.evaluate.measures import evaluate_run
    from splade_anserini.search.run import pyserini_search

    results = pyserini_search(sl.index, sl.topics, pyserini_encoder, k=100, threads=2)
    assert set(results) == set(sl.topics)
    assert all(0 < len(h) <= 100 for h in results.values())
    ev = evaluate_run(sl.qrels, {q: dict(h) for q, h in results.items()}, ["nDCG@10", "R@100"])
    assert ev.warning() is None
    # every relevant document is in the slice: splade-tiny finds most of them
    assert ev.scores["nDCG@10"] > 0.6 and ev.scores["R@100"] > 0.9
    # Lucene scores are exactly the integer dot products of the quantized vectors
    from splade_anserini.conversion.jsonvector import read_jsonvector

    vec = {d.docid: d.vector for d in read_jsonvector(sl.vectors / "part-00000.jsonl")}
    vec.update({d.docid: d.vector for d in read_jsonvector(sl.vectors / "part-00001.jsonl")})
    qid, hits = next(iter(results.items()))
    q = sl.qvecs[qid]
    for docid, score in hits[:20]:
        assert score == sum(w * vec[docid].get(t, 0) for t, w in q.items())


def test_pyserini_and_tsvint_paths_give_identical_runs(sl, pyserini_encoder, tmp_path):
    from splade_anserini.search.run import anserini_search, pyserini_search, write_tsvint_topics

    a = pyserini_search(sl.index, sl.topics, pyserini_encoder, k=50, threads=2)
    tsv = tmp_path / "topics.tsvint"
    write_tsvint_topics(tsv, sl.qvecs)
    b = anserini_search(sl.index, tsv, k=50, threads=2)
    write_run(tmp_path / "a.trec", a, tag="t")
    write_run(tmp_path / "b.trec", {q: b.get(q, []) for q in sl.topics}, tag="t")
    assert (tmp_path / "a.trec").read_bytes() == (tmp_path / "b.trec").read_bytes()
    # and through the CLI (pre-encoded topics, no model): same file again
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.search", "--index", str(sl.index),
                           "--encoded-topics", str(tsv), "--output", str(tmp_path / "c.trec"), "--hits", "50",
                           "--threads", "2", "--tag", "t"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c.trec").read_bytes() == (tmp_path / "a.trec").read_bytes()


def test_ties_at_the_cutoff_follow_docid_order(sl, pyserini_encoder, tmp_path):
    """Cut a ranking inside a group of equal scores: both paths keep the smallest docids."""
    from splade_anserini.search.run import anserini_search, pyserini_search, write_tsvint_topics

    def both(vector, k):
        a = pyserini_search(sl.index, {"1": "q"}, pyserini_encoder, k=k, vectors=[vector])
        write_tsvint_topics(tmp_path / "t.tsv", {"1": vector})
        b = anserini_search(sl.index, tmp_path / "t.tsv", k=k)
        # compared as written: a one-term Lucene query scores 2 as 1.9999990 (both paths alike),
        # which the Anserini run file holds as 1.999999
        write_run(tmp_path / "a.trec", a)
        write_run(tmp_path / "b.trec", b)
        assert (tmp_path / "a.trec").read_bytes() == (tmp_path / "b.trec").read_bytes()
        return [(d, round(s, 6)) for d, s in a["1"]]

    vocab = index_vocabulary(sl.index)
    for token in ("the", "of", "and", "in", "cell", "cells", "protein", "disease"):
        if token not in vocab:
            continue
        deep = both({token: 1}, N_DOCS)
        cut = next((i for i in range(1, len(deep)) if deep[i - 1][1] == deep[i][1]), None)
        if cut is not None:
            break
    else:
        pytest.skip("no tied scores in the slice")
    assert deep == sorted(deep, key=lambda h: (-h[1], h[0]))
    assert both({token: 1}, cut) == deep[:cut]  # the tie straddles the cut-off: smaller docid kept


def test_query_tokens_absent_from_index_are_dropped(sl, pyserini_encoder, tmp_path):
    from splade_anserini import java
    from splade_anserini.search.query_encoder import PreEncodedQueries
    from splade_anserini.search.run import anserini_search, write_tsvint_topics

    vocab = index_vocabulary(sl.index)
    # a real encoded query has expansion tokens the 120-document index never saw
    qid, text = next((q, t) for q, t in sl.topics.items() if set(sl.qvecs[q]) - vocab)
    absent = set(sl.qvecs[qid]) - vocab
    assert absent
    lucene = java.pyserini_lucene()
    searcher = lucene.LuceneImpactSearcher(str(sl.index), pyserini_encoder)
    hits = searcher.search(text, k=10)
    assert len(hits) == 10
    # the same query without the absent tokens ranks identically
    kept = {t: w for t, w in sl.qvecs[qid].items() if t in vocab}
    nothing = {"zzzqqq": 40, "[unused500]": 7}
    pre = lucene.LuceneImpactSearcher(str(sl.index), PreEncodedQueries({"kept": kept, "nothing": nothing}))
    same = pre.search("kept", k=10)
    assert [(h.docid, h.score) for h in hits] == [(h.docid, h.score) for h in same]
    # a query made only of absent tokens: no hit, no failure, on both paths
    assert len(pre.search("nothing", k=10)) == 0
    assert len(pre.batch_search(["nothing"], ["q0"], k=10).get("q0", [])) == 0
    searcher.close()
    pre.close()
    write_tsvint_topics(tmp_path / "absent.tsv", {"1": nothing, "2": sl.qvecs[qid]})
    res = anserini_search(sl.index, tmp_path / "absent.tsv", k=10)
    assert not res.get("1") and [d for d, _ in res["2"]] == [h.docid for h in hits]


def test_existing_index_is_not_overwritten(sl, tmp_path):
    from splade_anserini.index.build import IndexBuildError, build_lucene_index
    from splade_anserini.outputs import OutputRefused

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious").write_text("keep me")
    for overwrite in (False, True):  # a folder of the user's is never replaced
        with pytest.raises(OutputRefused, match="exists and was not written by splade-anserini"):
            build_lucene_index(sl.vectors, mine, overwrite=overwrite)
    assert (mine / "precious").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["precious"]
    target = tmp_path / "idx"
    build_lucene_index(sl.vectors, target, threads=1)
    with pytest.raises(IndexBuildError, match="already exists; pass --overwrite"):
        build_lucene_index(sl.vectors, target)
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.index", "--input", str(sl.vectors),
                           "--index", str(target), "--threads", "1"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2 and "already exists" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    report = build_lucene_index(sl.vectors, target, overwrite=True)
    assert report.indexed == N_DOCS and any(target.glob("segments_*"))


def test_malformed_input_is_refused_before_anserini_sees_it(sl, tmp_path):
    from splade_anserini.conversion.errors import InputError
    from splade_anserini.index.build import build_lucene_index

    bad = tmp_path / "bad"
    bad.mkdir()
    lines = (sl.vectors / "part-00000.jsonl").read_text().splitlines()
    lines.insert(3, '{"id": "broken", "contents": "", "vector": {"a": 1')  # truncated JSON
    (bad / "part-00000.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"part-00000.jsonl:4: malformed JSON"):
        build_lucene_index(bad, tmp_path / "idx")
    assert not (tmp_path / "idx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_documents_lost_by_anserini_fail_the_build():
    from splade_anserini.java import IndexCounters

    assert IndexCounters(indexed=10, empty=0, unindexable=0, skipped=0, errors=0).problems(10) == []
    assert IndexCounters(indexed=9, empty=1, unindexable=0, skipped=0, errors=0).problems(10) == [
        "1 documents empty", "the input holds 10 documents but Anserini indexed 9"]
    assert IndexCounters(indexed=8, empty=1, unindexable=0, skipped=1, errors=2).problems(9, expected_empty=1) == [
        "1 documents skipped by Anserini", "2 errors (malformed JSON or unreadable file segments)",
        "the input holds 9 documents but Anserini indexed 8"]


def test_paths_with_spaces_on_every_route(sl, pyserini_encoder, tmp_path):
    """Index, the three Lucene search routes and the Numba route, all through folders with spaces."""
    from conftest import run_python

    root = tmp_path / "my folder"
    root.mkdir()
    vectors = root / "vec tors"
    shutil.copytree(sl.vectors, vectors)
    topics = root / "top ics.tsv"
    topics.write_text("".join(f"{q}\t{t}\n" for q, t in list(sl.topics.items())[:5]))
    code = (
        "import sys\n"
        "from splade_anserini.index import build as index\nfrom splade_anserini.search import run as search\n"
        f"root = {str(root)!r}\n"
        f"assert index.main(['--input', root + '/vec tors', '--index', root + '/in dex', '--threads', '1']) == 0\n"
        f"assert index.main(['--input', root + '/vec tors', '--index', root + '/num ba', '--backend', 'numba']) == 0\n"
        "common = ['--index', root + '/in dex', '--hits', '20', '--threads', '1', '--tag', 't']\n"
        "assert search.main(common + ['--topics', root + '/top ics.tsv', '--output', root + '/a run.trec']) == 0\n"
        "assert search.main(common + ['--topics', root + '/top ics.tsv', '--output', root + '/b run.trec',\n"
        "                             '--pretokenized-topics', root + '/t s.tsv']) == 0\n"
        "assert search.main(common + ['--encoded-topics', root + '/t s.tsv', '--output', root + '/c run.trec']) == 0\n"
        "assert search.main(['--index', root + '/num ba', '--backend', 'numba', '--hits', '20', '--tag', 't',\n"
        "                    '--encoded-topics', root + '/t s.tsv', '--output', root + '/d run.trec']) == 0\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [(root / f"{x} run.trec").read_bytes() for x in "abcd"]
    assert runs[0] and runs[0] == runs[1] == runs[2] == runs[3]


def test_readme_three_lines_in_a_fresh_interpreter(sl):
    """A plain Pyserini user: no JAVA_HOME, no OPENAI_API_KEY, our encoder as a drop-in."""
    code = (
        "from splade_anserini.search.query_encoder import SpladeQueryEncoder\n"
        "from pyserini.search.lucene import LuceneImpactSearcher\n"
        f"hits = LuceneImpactSearcher({str(sl.index)!r}, SpladeQueryEncoder('splade-tiny')).search("
        f"{next(iter(sl.topics.values()))!r}, k=10)\n"
        "import pyserini.encode\n"
        "enc = SpladeQueryEncoder('splade-tiny')\n"
        "assert isinstance(enc, pyserini.encode.QueryEncoder)\n"
        "v = enc.encode('aspirin and heart attacks')\n"
        "assert v and all(type(w) is int and w > 0 for w in v.values())\n"
        "print(len(hits), hits[0].docid)\n")
    proc = run_python(code, env={"JAVA_HOME": None, "OPENAI_API_KEY": None})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[0] == "10"


def test_importing_the_encoder_module_starts_nothing():
    proc = run_python("import sys, splade_anserini.search.query_encoder, splade_anserini.search.run, splade_anserini.index.build, "
                      "splade_anserini.evaluate.measures, splade_anserini.evaluate.stats, splade_anserini.pipeline\n"
                      "print(sorted(m for m in ('jnius', 'pyserini', 'torch') if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_query_encoder_quantizes_like_documents(sl, pyserini_encoder):
    text = "aspirin reduces the risk of heart attacks"
    vec = sl.qenc.encoder.encode_queries([text])[0]
    floats = sl.qenc.encoder.to_weights(vec)
    impacts = pyserini_encoder.encode(text)
    expected = {t: int(np.rint(np.float32(w) * np.float32(100))) for t, w in floats.items()}
    assert impacts == {t: v for t, v in expected.items() if v > 0}
    assert set(impacts) <= set(sl.qenc.encoder.vocab)


def test_numba_backend_gives_the_lucene_run(sl, pyserini_encoder, tmp_path):
    from splade_anserini.index.build import build_index
    from splade_anserini.search.run import numba_search, pyserini_search

    report = build_index(sl.vectors, tmp_path / "numba", backend="numba", factor=100)
    assert report.indexed == N_DOCS
    with pytest.raises(Exception, match="already exists"):
        build_index(sl.vectors, tmp_path / "numba", backend="numba")
    lucene = pyserini_search(sl.index, sl.topics, pyserini_encoder, k=30, threads=2, vectors=list(sl.qvecs.values()))
    numba = numba_search(tmp_path / "numba", sl.qvecs, k=30, threads=2)
    write_run(tmp_path / "l.trec", lucene, tag="t")
    write_run(tmp_path / "n.trec", {q: numba[q] for q in sl.topics}, tag="t")
    assert (tmp_path / "l.trec").read_bytes() == (tmp_path / "n.trec").read_bytes()


def test_pipeline_names_trainer_checkpoints_by_their_run():
    from splade_anserini.pipeline import slug

    assert slug("splade-tiny") == "splade-tiny"
    assert slug("naver/splade-cocondenser-ensembledistil") == "splade-cocondenser-ensembledistil"
    assert slug("runs/train/accept/checkpoint-best/") == "accept-checkpoint-best"
    assert slug("runs/train/other/checkpoint-best") != slug("runs/train/accept/checkpoint-best")
