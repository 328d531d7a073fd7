"""Never silently wrong: provenance recorded and checked, every query answered, inputs refused early.

One real slice: 80 SciFact documents encoded by ``encode_corpus`` with splade-tiny at max length 32,
a Lucene and a Numba index of them, 20 SciFact test queries. The search CLI runs in this process
(one JVM); the Java-side encoder needs a fresh process and runs in one.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import ROOT
from splade_anserini.conversion.topics import write_tsvint

pytestmark = pytest.mark.jvm

N_DOCS, N_QUERIES, MAX_LENGTH = 80, 20, 32


@pytest.fixture(scope="module")
def sl(tmp_path_factory, data_dir):
    from splade_anserini.encode.corpus import encode_corpus
    from splade_anserini.index.build import build_lucene_index, build_numba_index

    root = tmp_path_factory.mktemp("provenance")
    with open(data_dir / "scifact" / "corpus.jsonl") as fin:
        (root / "corpus.jsonl").write_text("".join(next(fin) for _ in range(N_DOCS)))
    with open(data_dir / "scifact" / "queries.test.tsv") as fin:
        (root / "topics.tsv").write_text("".join(next(fin) for _ in range(N_QUERIES)))
    encode_corpus(root / "corpus.jsonl", root / "vectors", max_length=MAX_LENGTH, progress=False, log=lambda m: None)
    build_lucene_index(root / "vectors", root / "lucene")
    build_numba_index(root / "vectors", root / "numba")
    return SimpleNamespace(root=root, vectors=root / "vectors", lucene=root / "lucene", numba=root / "numba",
                           topics=root / "topics.tsv", qrels=data_dir / "scifact" / "qrels.test.txt")


def search(*args, **named) -> list[str]:
    from splade_anserini.search.run import main

    argv = [str(a) for a in args] + [x for k, v in named.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    return main(argv + ["--threads", "2"])


def one_error(capsys) -> str:
    # offline, Anserini 2.x's SearchCollection cannot fetch its catalog: the documented fallback warns first
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if "could not download its prebuilt-index catalog" not in line]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(scope="module")
def noisy_model(tmp_path_factory):
    """splade-tiny with noise on its weights: another model with the same vocabulary."""
    import torch

    from splade_anserini.models import load_model

    tokenizer, model = load_model("splade-tiny")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    path = tmp_path_factory.mktemp("noisy") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# -- provenance recorded and carried -------------------------------------------------------------
def test_vectors_and_both_indexes_record_the_model_and_factor(sl, encoder):
    from splade_anserini.index.build import build_numba_index
    from splade_anserini.provenance import ProvenanceError, read_index, read_vectors, weights_sha256

    prov = read_vectors(sl.vectors)
    assert prov["model"] == {"name": "splade-tiny", "sha256": weights_sha256(encoder.model)}
    assert (prov["factor"], prov["max_length"], prov["pooling"], prov["passages"]) == (100.0, MAX_LENGTH, "max", None)
    assert read_index(sl.lucene) == prov == read_index(sl.numba)
    with pytest.raises(ProvenanceError, match="quantized with factor 100"):
        build_numba_index(sl.vectors, sl.root / "numba-x50", factor=50)
    assert not (sl.root / "numba-x50").exists()


# -- mismatches refused ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["lucene", "numba"])
def test_another_query_model_is_refused_unless_allowed(sl, noisy_model, backend, tmp_path, capsys):
    index = sl.lucene if backend == "lucene" else sl.numba
    out = tmp_path / "run.trec"
    assert search("--index", index, "--backend", backend, "--topics", sl.topics, "--output", out,
                  "--model", noisy_model, "--max-length", MAX_LENGTH) == 2
    assert "--allow-other-query-encoder" in one_error(capsys) and not out.exists()
    assert search("--index", index, "--backend", backend, "--topics", sl.topics, "--output", out,
                  "--model", noisy_model, "--max-length", MAX_LENGTH, "--allow-other-query-encoder") == 0
    side = json.loads((tmp_path / "run.trec.provenance.json").read_text())
    assert side["other_query_encoder_allowed"] and side["query_model"]["name"] == str(noisy_model)
    assert "notice: query model" in capsys.readouterr().err

    from splade_anserini.evaluate.measures import main as evaluate

    assert evaluate(["--qrels", str(sl.qrels), str(out)]) == 0
    assert "searched with a query model other than the index's" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["lucene", "numba"])
def test_factor_defaults_to_the_index_and_another_is_refused(sl, backend, tmp_path, capsys):
    index = sl.lucene if backend == "lucene" else sl.numba
    common = ("--index", index, "--backend", backend, "--topics", sl.topics, "--max-length", MAX_LENGTH)
    assert search(*common, "--output", tmp_path / "x50.trec", "--factor", "50") == 2
    assert "--factor 50: the index" in one_error(capsys) and not (tmp_path / "x50.trec").exists()
    assert search(*common, "--output", tmp_path / "a.trec") == 0
    assert search(*common, "--output", tmp_path / "b.trec", "--factor", "100") == 0
    assert (tmp_path / "a.trec").read_text().replace(" a\n", "\n") == (tmp_path / "b.trec").read_text().replace(" b\n", "\n")


def test_max_passage_on_an_index_of_whole_documents_is_refused(sl, tmp_path, capsys):
    assert search("--index", sl.lucene, "--topics", sl.topics, "--output", tmp_path / "m.trec", "--max-passage",
                  "--max-length", MAX_LENGTH) == 2
    assert "holds whole documents" in one_error(capsys) and not (tmp_path / "m.trec").exists()


def test_an_index_without_provenance_searches_with_a_notice(sl, tmp_path, capsys):
    from splade_anserini.index.build import build_lucene_index

    old = tmp_path / "old-vectors"
    shutil.copytree(sl.vectors, old)
    (old / "splade-anserini.provenance").unlink()
    build_lucene_index(old, tmp_path / "old-index")
    assert search("--index", tmp_path / "old-index", "--topics", sl.topics, "--output", tmp_path / "old.trec",
                  "--max-length", MAX_LENGTH) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("notice: ") and "records no provenance" in err[0]
    assert search("--index", sl.lucene, "--topics", sl.topics, "--output", tmp_path / "new.trec",
                  "--tag", "old", "--max-length", MAX_LENGTH) == 0
    assert (tmp_path / "old.trec").read_bytes() == (tmp_path / "new.trec").read_bytes()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from splade_anserini.serve.export_onnx import export

    root = tmp_path_factory.mktemp("exports")
    export("splade-tiny", root / "x100", max_length=MAX_LENGTH, log=lambda m: None)
    x50 = root / "x50"
    shutil.copytree(root / "x100", x50)
    meta = json.loads((x50 / "splade_onnx.json").read_text())
    (x50 / "splade_onnx.json").write_text(json.dumps(dict(meta, factor=50.0)))
    bad = root / "corrupt"
    shutil.copytree(root / "x100", bad)
    (bad / "model.onnx").write_bytes(b"\x08\x07garbage")
    return SimpleNamespace(x100=root / "x100", x50=x50, corrupt=bad)


def _search_process(*args):
    return subprocess.run([sys.executable, "-m", "splade_anserini.search", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_an_export_with_another_factor_is_refused_on_both_routes(sl, exports, tmp_path, capsys):
    assert search("--index", sl.lucene, "--topics", sl.topics, "--output", tmp_path / "o.trec",
                  "--model", exports.x50) == 2
    assert "records factor 50" in one_error(capsys)
    proc = _search_process("--index", sl.lucene, "--topics", sl.topics, "--output", tmp_path / "j.trec",
                           "--java-encoder", exports.x50)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "records factor 50" in proc.stderr and not (tmp_path / "j.trec").exists()


def test_a_corrupt_export_on_the_java_route_is_one_line_naming_the_file(sl, exports, tmp_path):
    proc = _search_process("--index", sl.lucene, "--topics", sl.topics, "--output", tmp_path / "j.trec",
                           "--java-encoder", exports.corrupt)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {exports.corrupt / 'model.onnx'}: corrupt") and "Traceback" not in proc.stderr
    assert not (tmp_path / "j.trec").exists()


# -- every query answered -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_query(sl):
    """One query of 5,000 terms (every term of the index, then tokens absent from it) and a short one."""
    import random

    from splade_anserini.conversion.jsonvector import read_jsonvector
    from splade_anserini.models import fetch_splade_tiny

    present = sorted({t for d in read_jsonvector(sl.vectors) for t in d.vector})
    vocab = json.loads((fetch_splade_tiny() / "tokenizer.json").read_text())["model"]["vocab"]
    absent = [t for t in sorted(vocab) if t not in set(present) and " " not in t]
    rng = random.Random(7)
    terms = present + absent[:5000 - len(present)]
    assert len(terms) == 5000 and len(present) > 1024  # beyond Lucene's default clause limit
    vectors = {"1": {t: rng.randint(1, 40) for t in terms}, "2": {"cancer": 40, "cells": 12}}
    tsv = sl.root / "long.tsv"
    write_tsvint(tsv, vectors.items())
    return SimpleNamespace(vectors=vectors, tsv=tsv)


def test_a_5000_term_query_gets_the_same_top_1000_on_every_route(sl, long_query):
    from splade_anserini.search.impact_searcher import impact_search
    from splade_anserini.search.run import anserini_search, numba_search, pyserini_search

    vectors = long_query.vectors
    numba = numba_search(sl.numba, vectors, k=1000)
    pyserini = pyserini_search(sl.lucene, vectors, None, k=1000, vectors=list(vectors.values()))
    collection = anserini_search(sl.lucene, long_query.tsv, k=1000)
    simple = impact_search(sl.lucene, vectors, k=1000)
    assert len(numba["1"]) == N_DOCS
    for run in (pyserini, collection, simple):
        assert {q: [(d, round(s)) for d, s in hits] for q, hits in run.items()} == numba


@pytest.fixture
def lucene_default_clause_limit():
    from splade_anserini import java

    searcher = java.autoclass("org.apache.lucene.search.IndexSearcher")
    searcher.setMaxClauseCount(1024)
    yield
    searcher.setMaxClauseCount(java.autoclass("java.lang.Integer").MAX_VALUE)


def test_a_query_a_backend_cannot_answer_fails_the_run_naming_it(sl, long_query, lucene_default_clause_limit,
                                                               tmp_path, capfd):
    from splade_anserini.search.run import UnansweredQueryError, pyserini_search

    out = tmp_path / "run.trec"
    assert search("--index", sl.lucene, "--encoded-topics", long_query.tsv, "--output", out) == 1
    message = one_error(capfd)  # file-descriptor capture: a Java stack trace would show here
    # SearchCollection names the queries left without hits; offline on Anserini 2.x the same search runs
    # through SimpleImpactSearcher, which names the first failing query
    assert "could not answer 1 of" in message and ("without hits: 1)" in message or "(first: query 1:" in message)
    assert "TooManyClauses" in message and not out.exists()
    with pytest.raises(UnansweredQueryError, match=r"could not answer 1 of 2 queries \(first: query 1: .*TooManyClauses"):
        pyserini_search(sl.lucene, long_query.vectors, None, vectors=list(long_query.vectors.values()))


# -- inputs --------------------------------------------------------------------------------------
def test_fusion_refuses_runs_over_different_topics(tmp_path, capsys):
    from splade_anserini.conversion.trec import write_run
    from splade_anserini.search.fusion import main as fusion

    write_run(tmp_path / "a.trec", {f"q{i}": [("d1", 2.0), ("d2", 1.0)] for i in range(20)}, tag="a")
    write_run(tmp_path / "b.trec", {f"q{i}": [("d2", 3.0)] for i in range(10)}, tag="b")
    runs = ["--runs", str(tmp_path / "a.trec"), str(tmp_path / "b.trec")]
    assert fusion(runs + ["--output", str(tmp_path / "f.trec")]) == 2
    assert "a.trec: 20" in one_error(capsys) and not (tmp_path / "f.trec").exists()
    assert fusion(runs + ["--output", str(tmp_path / "f.trec"), "--union-topics"]) == 0
    assert capsys.readouterr().err.startswith("warning: the runs cover different topics")


def test_blank_queries_are_named_and_a_file_of_only_blank_ones_refused(sl, tmp_path, capsys):
    topics = tmp_path / "topics.tsv"
    topics.write_text(sl.topics.read_text() + "9001\t   \n9002\t\u200b \u200b\n")
    out = tmp_path / "run.trec"
    assert search("--index", sl.numba, "--backend", "numba", "--topics", topics, "--output", out,
                  "--max-length", MAX_LENGTH) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and err[0].endswith("get no hits: 9001, 9002")
    assert not {line.split()[0] for line in out.read_text().splitlines()} & {"9001", "9002"}
    topics.write_text("9001\t \n9002\t\u200b\n")
    assert search("--index", sl.numba, "--backend", "numba", "--topics", topics, "--output", tmp_path / "b.trec") == 2
    assert "all 2 queries are blank" in one_error(capsys) and not (tmp_path / "b.trec").exists()


def test_passages_longer_than_the_max_length_are_refused_before_anything_is_written(sl, tmp_path, capsys):
    from splade_anserini.encode.corpus import main as encode

    assert encode(["--corpus", str(sl.root / "corpus.jsonl"), "--output", str(tmp_path / "v"),
                   "--passage-length", "128", "--max-length", "64"]) == 2
    assert "--passage-length 128 is longer than --max-length 64" in one_error(capsys)
    assert encode(["--corpus", str(sl.root / "corpus.jsonl"), "--output", str(tmp_path / "v"),
                   "--passage-length", "1000", "--max-length", "512"]) == 2
    assert "--passage-length 1000: model splade-tiny has 512 positions" in one_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_passage_index_records_its_passages_for_max_passage(sl, tmp_path, capsys):
    from splade_anserini.encode.corpus import main as encode
    from splade_anserini.index.build import build_numba_index
    from splade_anserini.provenance import read_index

    small = tmp_path / "corpus.jsonl"
    small.write_text("".join((sl.root / "corpus.jsonl").read_text().splitlines(True)[:10]))
    assert encode(["--corpus", str(small), "--output", str(tmp_path / "v"), "--passage-length", "24",
                   "--max-length", "24", "--no-progress"]) == 0
    build_numba_index(tmp_path / "v", tmp_path / "idx")
    assert read_index(tmp_path / "idx")["passages"] == {"length": 24, "stride": 24, "delimiter": "#"}
    assert search("--index", tmp_path / "idx", "--backend", "numba", "--topics", sl.topics, "--output",
                  tmp_path / "m.trec", "--max-passage", "--max-length", "24") == 0
    docs = {line.split()[2] for line in (tmp_path / "m.trec").read_text().splitlines()}
    assert docs and not any("#" in d for d in docs)


@pytest.mark.parametrize("argv, expected", [
    (["--threads", "-1"], "argument --threads: must be >= 1"),
    (["--hits", "0"], "argument --hits: must be >= 1"),
    (["--max-length", "0"], "argument --max-length: must be >= 1"),
    (["--max-length", "1000"], "--max-length 1000: model splade-tiny has 512 positions"),
    (["--passage-length", "128", "--max-length", "64"], "--passage-length 128 is longer than --max-length 64"),
])
def test_pipeline_options_are_refused_before_any_work(argv, expected, tmp_path, capsys):
    from splade_anserini.pipeline import main as pipeline

    assert pipeline(["--dataset", "scifact", "--work-dir", str(tmp_path / "w"), "--runs-dir", str(tmp_path / "r"),
                     "--no-bm25", *argv]) == 2
    assert expected in one_error(capsys) and list(tmp_path.iterdir()) == []


def test_search_refuses_options_its_backend_ignores(sl, tmp_path, capsys):
    assert search("--index", sl.numba, "--backend", "numba", "--topics", sl.topics, "--output", tmp_path / "r.trec",
                  "--pretokenized-topics", tmp_path / "t.tsv") == 2
    assert "numba backend would ignore it" in one_error(capsys)
    assert search("--index", sl.lucene, "--topics", sl.topics, "--output", tmp_path / "r.trec",
                  "--max-length", "1000") == 2
    assert "has 512 positions" in one_error(capsys) and list(tmp_path.iterdir()) == []


def test_parity_takes_the_indexes_factor_and_refuses_another(sl, capsys):
    from splade_anserini.evaluate.parity import main as parity

    common = ["--index", str(sl.lucene), "--numba-index", str(sl.numba), "--topics", str(sl.topics),
              "--max-length", str(MAX_LENGTH)]
    assert parity(common + ["--factor", "50"]) == 2
    assert "--factor 50: the index" in one_error(capsys)
    assert parity(common) == 0
    assert f"{N_QUERIES}/{N_QUERIES} queries identical" in capsys.readouterr().out


def test_export_for_an_index_refuses_another_model(sl, noisy_model, tmp_path):
    from splade_anserini.serve.export_onnx import export
    from splade_anserini.provenance import ProvenanceError

    with pytest.raises(ProvenanceError, match="--allow-other-query-encoder"):
        export(str(noisy_model), tmp_path / "export", index=sl.lucene, log=lambda m: None)
    assert not (tmp_path / "export").exists()


def test_a_model_retrained_in_place_does_not_pass_for_the_encoded_one(sl, noisy_model, tmp_path, capsys):
    from splade_anserini.encode.corpus import main as encode
    from splade_anserini.models import fetch_splade_tiny

    model = tmp_path / "model"
    shutil.copytree(noisy_model, model)
    small = tmp_path / "corpus.jsonl"
    small.write_text("".join((sl.root / "corpus.jsonl").read_text().splitlines(True)[:5]))
    argv = ["--corpus", str(small), "--output", str(tmp_path / "v"), "--model", str(model), "--max-length", "16",
            "--no-progress"]
    assert encode(argv) == 0
    capsys.readouterr()
    shutil.copyfile(fetch_splade_tiny() / "model.safetensors", model / "model.safetensors")  # "retrained"
    assert encode(argv) == 2
    assert "already encoded by another model or with other settings (model)" in one_error(capsys)
