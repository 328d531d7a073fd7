"""Inference-free SPLADE-doc queries: the index's IDF table, used by search on both backends and by the
tokenizer-only ONNX path, equals an explicitly IDF-weighted query."""
from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT

from splade_anserini.search.query_weights import QUERY_WEIGHTS, read_table


@pytest.fixture(scope="module")
def sl(tmp_path_factory, data_dir, encoder):
    """SciFact: 150 documents encoded by splade-tiny, indexed for Numba (the IDF table beside it) and the
    topics of the first 30 test queries."""
    from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
    from splade_anserini.data import read_corpus, read_topics
    from splade_anserini.index.build import build_numba_index

    root = tmp_path_factory.mktemp("inference-free")
    docs = list(itertools.islice(read_corpus(data_dir / "scifact" / "corpus.jsonl"), 150))
    vecs = encoder.encode_documents([d.text for d in docs], batch_size=16)
    vectors = {d.docid: encoder.to_impacts(v) for d, v in zip(docs, vecs)}
    (root / "vectors").mkdir()
    write_jsonvector(root / "vectors" / "part-00000.jsonl", (VectorDoc(i, v) for i, v in vectors.items()))
    build_numba_index(root / "vectors", root / "numba")
    topics = dict(itertools.islice(read_topics(data_dir / "scifact" / "queries.test.tsv").items(), 30))
    (root / "topics.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in topics.items()), encoding="utf-8")
    return SimpleNamespace(root=root, vectors=vectors, topics=topics, numba=root / "numba")


def explicit_query(encoder, text: str, vectors: dict) -> dict[str, int]:
    """The IDF-weighted bag of WordPieces, written out: BM25's idf over the indexed vectors, x100, rounded."""
    n = len(vectors)
    tokens = {t for t in encoder.tokenizer.tokenize(text)}
    out = {}
    for token in tokens:
        df = sum(1 for v in vectors.values() if v.get(token, 0) > 0)
        out[token] = int(np.rint(math.log(1 + (n - df + 0.5) / (df + 0.5)) * 100))
    return out


def test_index_stores_the_idf_table(sl):
    table = read_table(sl.numba)
    assert (sl.numba / QUERY_WEIGHTS).is_file() and table["kind"] == "idf" and table["documents"] == 150
    df = sum(1 for v in sl.vectors.values() if "protein" in v)
    assert 0 < df < 150 and table["weights"]["protein"] == pytest.approx(math.log(1 + (150 - df + 0.5) / (df + 0.5)))


def test_inference_free_search_equals_an_explicit_idf_query(sl, encoder, tmp_path):
    from splade_anserini.conversion.trec import read_run
    from splade_anserini.index.numba_index import NumbaIndex

    out = tmp_path / "idf.trec"
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.search", "--index", str(sl.numba), "--backend",
                           "numba", "--topics", str(sl.root / "topics.tsv"), "--splade-doc", "--query-weights", "idf",
                           "--hits", "20", "--threads", "1", "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = read_run(out)
    index = NumbaIndex.load(str(sl.numba))
    for qid, text in sl.topics.items():
        query = explicit_query(encoder, text, sl.vectors)
        expected = index.search(query, 20)
        assert [(d, float(s)) for d, s in expected] == list(run.get(qid, {}).items()), qid
    changed = 0
    for qid, text in sl.topics.items():  # the weights do change rankings
        ones = index.search({t: 100 for t in explicit_query(encoder, text, sl.vectors)}, 20)
        changed += [d for d, _ in ones] != list(run.get(qid, {}))
    assert changed >= len(sl.topics) // 2


def test_onnx_tokenizer_only_path_uses_the_table(sl, encoder, tmp_path):
    """A SPLADE-doc export without model.onnx: tokenizer + table, the same impacts as the PyTorch encoder."""
    from splade_anserini.serve.export_onnx import anserini_vocabulary
    from splade_anserini.search.query_encoder import QueryVectorizer
    from splade_anserini.encode.splade import SpladeEncoder

    light = tmp_path / "doc-export"
    light.mkdir()
    tok_json = encoder.tokenizer.backend_tokenizer.to_str()
    (light / "tokenizer.json").write_text(tok_json, encoding="utf-8")
    (light / "vocab.txt").write_text("".join(f"{t}\n" for t in anserini_vocabulary(json.loads(tok_json), "t")))
    meta = {"format": "splade-anserini-onnx", "format_version": 1, "pooling": "max", "max_length": 256,
            "factor": 100, "splade_doc": True, "quantization": "fp32", "vocab_size": 30522,
            "special_ids": sorted(encoder.tokenizer.all_special_ids), "source_model": "splade-tiny",
            "source_sha256": "0" * 64}
    (light / "splade_onnx.json").write_text(json.dumps(meta))
    (light / QUERY_WEIGHTS).write_bytes((sl.numba / QUERY_WEIGHTS).read_bytes())
    texts = list(sl.topics.values())
    got = QueryVectorizer(str(light)).encode_batch(texts)
    torch_side = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, splade_doc=True,
                               query_weights=read_table(sl.numba))
    assert got == QueryVectorizer(encoder=torch_side).encode_batch(texts)
    assert got == [explicit_query(encoder, t, sl.vectors) for t in texts]


def test_query_weights_need_splade_doc_and_a_table(sl, tmp_path):
    for extra, message in ((["--query-weights", "idf"], "--splade-doc"),
                           (["--splade-doc", "--query-weights", str(tmp_path / "none.json")], "no query weight table")):
        proc = subprocess.run([sys.executable, "-m", "splade_anserini.search", "--index", str(sl.numba), "--backend",
                               "numba", "--topics", str(sl.root / "topics.tsv"), "--output", str(tmp_path / "x.trec"),
                               *extra], capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert proc.returncode == 2 and message in proc.stderr and not (tmp_path / "x.trec").exists(), proc.stderr


@pytest.mark.jvm
def test_lucene_index_carries_the_table_and_ranks_like_numba(sl, tmp_path):
    """Built by Anserini, the Lucene index stores the same table; its inference-free run equals Numba's."""
    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]

    lucene = tmp_path / "lucene"
    cli("splade_anserini.index.build", "--input", str(sl.root / "vectors"), "--index", str(lucene), "--threads", "1")
    assert read_table(lucene) == read_table(sl.numba)
    runs = {}
    for backend, index in (("lucene", lucene), ("numba", sl.numba)):
        runs[backend] = tmp_path / f"{backend}.trec"
        cli("splade_anserini.search.run", "--index", str(index), "--backend", backend, "--topics",
            str(sl.root / "topics.tsv"), "--splade-doc", "--query-weights", "idf", "--hits", "20", "--threads", "1",
            "--output", str(runs[backend]), "--tag", "t")
    assert runs["lucene"].read_bytes() == runs["numba"].read_bytes()


def test_trainer_learns_with_idf_query_weights(data_dir, encoder, tmp_path):
    """--splade-doc --query-weights idf: the corpus table is written beside the checkpoints, the training
    queries carry it, and validation encodes queries with it like the encoder does."""
    from splade_anserini.encode.splade import SpladeEncoder
    from splade_anserini.train import config_from_dict, train
    from splade_anserini.train.model import SpladeTrainModel
    from splade_anserini.search.query_weights import weights_by_id

    sci = data_dir / "scifact"
    cfg = config_from_dict(dict(
        corpus=str(sci / "corpus.jsonl"), queries=str(sci / "queries.train.tsv"), qrels=str(sci / "qrels.train.txt"),
        output_dir=str(tmp_path), valid_holdout=4, valid_max_docs=40, valid_every=1, splade_doc=True,
        query_weights="idf", lambda_q=0.0, batch_size=2, max_length=32, query_max_length=16, max_steps=1,
        lr=1e-5, progress=False, threads=1))
    out = train(cfg)
    assert out["steps"] == 1
    table = read_table(tmp_path / QUERY_WEIGHTS)
    assert table["documents"] == 5183 and table["weights"]["the"] < table["weights"]["protein"]
    texts = ["aspirin lowers the risk of heart attacks", "protein folding"]
    tok = encoder.tokenizer(texts, padding=True, return_tensors="pt")
    vocab = encoder.tokenizer.convert_ids_to_tokens(list(range(len(encoder.tokenizer))))
    import torch

    model = SpladeTrainModel(encoder.model, encoder.tokenizer, splade_doc=True,
                             query_weights=torch.from_numpy(weights_by_id(table, vocab)))
    bag = model.bag_of_tokens(tok["input_ids"], tok["attention_mask"])
    ref = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, splade_doc=True,
                        query_weights=table).encode_queries(texts)
    for row, vec in zip(bag, ref):
        assert row.nonzero().flatten().tolist() == vec.ids.tolist()
        np.testing.assert_allclose(row[row > 0].numpy(), vec.weights, rtol=1e-6)
    with pytest.raises(ValueError, match="splade_doc"):
        config_from_dict(dict(triples="x", output_dir=str(tmp_path / "o"), query_weights="idf"))
