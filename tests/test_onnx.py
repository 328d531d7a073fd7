"""ONNX export (SPLADE pooling in Anserini's contract), ONNX Runtime query encoding without torch,
and Java-side encoding by Anserini's own ONNX encoder, on real SciFact and CACM data.

The export (splade-tiny, fp32) is written once per module; the Lucene and Numba indexes hold a
150-document SciFact slice encoded by the exported model. Processes that must not import torch,
or that need a fresh JVM, run in subprocesses.
"""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT, run_python

N_DOCS = 150


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    from splade_anserini.serve.export_onnx import export as do_export

    out = tmp_path_factory.mktemp("onnx") / "splade-tiny"
    meta = do_export("splade-tiny", out, log=lambda *_: None)
    return SimpleNamespace(dir=out, meta=meta)


@pytest.fixture(scope="module")
def topics(data_dir):
    from splade_anserini.data import read_topics

    return {"scifact": read_topics(data_dir / "scifact" / "queries.test.tsv"),
            "cacm": read_topics(data_dir / "cacm" / "queries.tsv")}


@pytest.fixture(scope="module")
def sl(tmp_path_factory, data_dir, export, topics):
    """A SciFact slice (relevant documents of the first 40 test queries + others) encoded by the export,
    as a Lucene impact index and a Numba index."""
    from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
    from splade_anserini.conversion.quantize import guard_empty
    from splade_anserini.data import read_corpus, read_qrels
    from splade_anserini.index.build import build_lucene_index
    from splade_anserini.index.numba_index import NumbaIndex
    from splade_anserini.serve.onnx_encoder import OnnxSpladeEncoder

    root = tmp_path_factory.mktemp("onnx-slice")
    qrels = read_qrels(data_dir / "scifact" / "qrels.test.txt")
    qids = list(qrels)[:40]
    wanted = {d for q in qids for d in qrels[q]}
    corpus = data_dir / "scifact" / "corpus.jsonl"
    docs = [d for d in read_corpus(corpus) if d.docid in wanted]
    docs += list(itertools.islice((d for d in read_corpus(corpus) if d.docid not in wanted), N_DOCS - len(docs)))
    enc = OnnxSpladeEncoder(export.dir)
    vecs = enc.encode_documents([d.text for d in docs], batch_size=16)
    (root / "vectors").mkdir()
    write_jsonvector(root / "vectors" / "part-00000.jsonl",
                     (VectorDoc(d.docid, guard_empty(enc.to_impacts(v))[0]) for d, v in zip(docs, vecs)))
    build_lucene_index(root / "vectors", root / "lucene", threads=1)
    NumbaIndex.from_jsonvector(str(root / "vectors")).save(str(root / "numba"))
    (root / "topics.tsv").write_text("".join(f"{q}\t{topics['scifact'][q]}\n" for q in qids), encoding="utf-8")
    return SimpleNamespace(root=root, lucene=root / "lucene", numba=root / "numba", topics=root / "topics.tsv",
                           qids=qids)


def test_export_is_in_anserinis_contract(export):
    import onnx

    files = {p.name for p in export.dir.iterdir()}
    assert {"model.onnx", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "splade_onnx.json"} <= files
    assert not [p for p in export.dir.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    model = onnx.load(str(export.dir / "model.onnx"))
    assert model.ir_version <= 9  # ONNX Runtime 1.17 (Java, Anserini 1.7.1)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 20
    int64, float32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    assert [(i.name, i.type.tensor_type.elem_type, len(i.type.tensor_type.shape.dim)) for i in model.graph.input] == \
        [("input_ids", int64, 2), ("attention_mask", int64, 2), ("token_type_ids", int64, 2)]
    assert [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output] == \
        [("output_idx", int64), ("output_weights", float32)]
    # the tied word embeddings are stored once (lookup and vocabulary projection share E^T)
    vocab_sized = [i.name for i in model.graph.initializer if sorted(i.dims) == [128, 30522]]
    assert len(vocab_sized) == 1 and list(next(i for i in model.graph.initializer if i.name == vocab_sized[0]).dims) \
        == [128, 30522]
    meta = json.loads((export.dir / "splade_onnx.json").read_text())
    assert meta["pooling"] == "max" and meta["factor"] == 100 and meta["quantization"] == "fp32"
    assert len(meta["source_sha256"]) == 64 and meta["parity"]["single"]["max_abs_diff"] <= 1
    vocab = (export.dir / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(vocab) == meta["vocab_size"] == 30522
    assert (vocab[0], vocab[100], vocab[101], vocab[102]) == ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def test_onnx_impacts_match_pytorch_on_scifact_and_cacm(export, encoder, topics):
    from splade_anserini.serve.export_onnx import fidelity
    from splade_anserini.serve.onnx_encoder import OnnxSpladeEncoder

    onnx_enc = OnnxSpladeEncoder(export.dir)
    for name, n in (("scifact", 120), ("cacm", 64)):
        texts = list(topics[name].values())[:n]
        expected = encoder.encode_queries(texts)
        single = onnx_enc.encode_queries(texts, batch_size=1)   # Anserini's [1, seq]
        batched = onnx_enc.encode_queries(texts, batch_size=16)  # padded rows, flattened output ids
        for got in (single, batched):
            fid = fidelity(expected, got, 100, 30522)
            assert fid.max_abs_diff <= 1 and fid.identical >= 0.999, (name, fid.line())


def test_serving_process_imports_neither_torch_nor_transformers(export, sl, tmp_path):
    """search --model EXPORT on Lucene and on Numba, and QueryVectorizer, in one process: no torch."""
    code = (
        "import sys\n"
        "from splade_anserini.search.run import main\n"
        "from splade_anserini.search.query_encoder import QueryVectorizer\n"
        f"for backend, index in (('lucene', {str(sl.lucene)!r}), ('numba', {str(sl.numba)!r})):\n"
        f"    assert main(['--index', index, '--topics', {str(sl.topics)!r}, '--model', {str(export.dir)!r},\n"
        f"                 '--backend', backend, '--output', {str(tmp_path)!r} + '/' + backend + '.trec',\n"
        "                 '--hits', '100', '--threads', '1', '--tag', 't']) == 0\n"
        f"v = QueryVectorizer({str(export.dir)!r}).encode('aspirin and heart attacks')\n"
        "assert v and all(type(w) is int for w in v.values())\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    lucene = (tmp_path / "lucene.trec").read_bytes()
    assert lucene and lucene == (tmp_path / "numba.trec").read_bytes()  # both exact on the same vectors


def test_java_side_encoder_ranks_like_python_and_leaves_the_user_cache_alone(export, sl, tmp_path):
    from pathlib import Path

    from splade_anserini.conversion.trec import read_ranked

    user_cache = Path.home() / ".cache" / "pyserini" / "encoders"
    before = sorted((p.name, p.stat().st_mtime_ns) for p in user_cache.iterdir()) if user_cache.is_dir() else None
    common = ["--index", str(sl.lucene), "--topics", str(sl.topics), "--hits", "100", "--threads", "1"]
    py = subprocess.run([sys.executable, "-m", "splade_anserini.search", *common, "--model", str(export.dir),
                         "--output", str(tmp_path / "py.trec")], capture_output=True, text=True, cwd=ROOT,
                        timeout=600)
    assert py.returncode == 0, py.stderr[-2000:]
    jv = subprocess.run([sys.executable, "-m", "splade_anserini.search", *common, "--java-encoder", str(export.dir),
                         "--output", str(tmp_path / "java.trec")], capture_output=True, text=True, cwd=ROOT,
                        timeout=600)
    assert jv.returncode == 0, jv.stderr[-2000:]
    assert "Java ONNX SPLADE encoder" in jv.stdout
    a, b = read_ranked(tmp_path / "py.trec"), read_ranked(tmp_path / "java.trec")
    assert set(a) == set(b) == set(sl.qids)
    same_top10 = sum([d for d, _ in a[q][:10]] == [d for d, _ in b[q][:10]] for q in a)
    assert same_top10 >= 0.95 * len(a)
    # x100 on both sides (Anserini's 256/5 undone in the graph): equal scores, not scores x 0.512
    assert sum(a[q][0][1] == b[q][0][1] for q in a) >= 0.95 * len(a)
    after = sorted((p.name, p.stat().st_mtime_ns) for p in user_cache.iterdir()) if user_cache.is_dir() else None
    assert after == before


def test_scaled_graph_for_anserini(export, tmp_path):
    import onnxruntime as ort

    from splade_anserini.serve.java_encoder import scale_weights

    scale_weights(export.dir / "model.onnx", tmp_path / "scaled.onnx", 100 * 5 / 256)
    feeds = {"input_ids": np.array([[101, 2054, 2003, 11867, 25712, 102]]), "attention_mask": np.ones((1, 6), np.int64),
             "token_type_ids": np.zeros((1, 6), np.int64)}
    idx, w = ort.InferenceSession(str(export.dir / "model.onnx")).run(None, feeds)
    idx2, w2 = ort.InferenceSession(str(tmp_path / "scaled.onnx")).run(None, feeds)
    assert np.array_equal(idx, idx2) and len(idx) > 5
    # Anserini's Math.round(w / 5 * 256) on the scaled weights == our rint(w * 100)
    assert np.array_equal(np.floor(w2.astype(np.float32) / 5 * 256 + 0.5), np.rint(w * np.float32(100)))


def test_broken_export_directories_fail_in_one_line(export, sl, tmp_path):
    from splade_anserini.models import ModelNotFoundError
    from splade_anserini.search.query_encoder import QueryVectorizer

    cases = {}
    for name, damage in (("no-vocab", lambda d: (d / "vocab.txt").unlink()),
                         ("corrupt-model", lambda d: [(d / "model.onnx").write_bytes(b"\x08\x07garbage"),
                                                      (d / "hidden.onnx").unlink()]),
                         ("corrupt-query-graph", lambda d: (d / "hidden.onnx").write_bytes(b"\x08\x07garbage")),
                         ("corrupt-metadata", lambda d: (d / "splade_onnx.json").write_text("{\"format\": ")),
                         ("no-tokenizer", lambda d: (d / "tokenizer.json").unlink())):
        broken = tmp_path / name
        shutil.copytree(export.dir, broken)
        damage(broken)
        cases[name] = broken
        with pytest.raises(ModelNotFoundError) as err:
            QueryVectorizer(str(broken)).encode("aspirin")
        assert "\n" not in str(err.value) and str(broken) in str(err.value)
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.search", "--index", str(sl.numba), "--backend",
                           "numba", "--topics", str(sl.topics), "--model", str(cases["corrupt-model"]),
                           "--output", str(tmp_path / "x.trec")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and not (tmp_path / "x.trec").exists()
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _variant(tmp_path, name, edit_tokenizer=None, edit_config=None):
    from splade_anserini.models import fetch_splade_tiny

    target = tmp_path / name
    shutil.copytree(fetch_splade_tiny(), target)
    for file, edit in (("tokenizer.json", edit_tokenizer), ("tokenizer_config.json", edit_config)):
        if edit:
            data = json.loads((target / file).read_text())
            edit(data)
            (target / file).write_text(json.dumps(data))
    return target


def test_export_refuses_bad_models_without_a_partial_directory(tmp_path, capsys):
    from transformers import BertConfig, BertModel

    from splade_anserini.serve.export_onnx import main
    from splade_anserini.models import fetch_splade_tiny

    no_mlm = tmp_path / "no-mlm"
    BertModel(BertConfig.from_pretrained(fetch_splade_tiny())).save_pretrained(no_mlm)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(fetch_splade_tiny() / f, no_mlm / f)
    cased = _variant(tmp_path, "cased", lambda t: t["normalizer"].update(lowercase=False),
                     lambda c: c.update(do_lower_case=False))
    word_level = _variant(tmp_path, "wordlevel",
                          lambda t: t.update(model={"type": "WordLevel", "vocab": t["model"]["vocab"],
                                                    "unk_token": "[UNK]"}, decoder=None),
                          lambda c: c.update(tokenizer_class="PreTrainedTokenizerFast"))
    out = tmp_path / "exports"
    out.mkdir()
    for model, expected in ((no_mlm, "masked-LM"), (cased, "cased"), (word_level, "not WordPiece"),
                            (tmp_path / "nowhere", "no such directory")):
        capsys.readouterr()
        assert main(["--model", str(model), "--output", str(out / model.name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert expected in err
        assert list(out.iterdir()) == []
    # and through the command line: exit status 2, one line
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.export_onnx", "--model", str(cased),
                           "--output", str(out / "cli")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "cased" in proc.stderr
    assert list(out.iterdir()) == []


def test_export_refuses_a_graph_that_disagrees_with_pytorch(tmp_path, monkeypatch):
    """A graph pooled differently from the reference (sum instead of max) must not be written."""
    from splade_anserini.serve import export_onnx

    real = export_onnx._export_graph
    monkeypatch.setattr(export_onnx, "_export_graph", lambda m, t, pooling, path: real(m, t, "sum", path))
    with pytest.raises(export_onnx.ParityError, match="disagrees with the PyTorch encoder"):
        export_onnx.export("splade-tiny", tmp_path / "bad", log=lambda *_: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_int8_flag_writes_the_exact_screened_export_and_old_int8_exports_get_a_notice(tmp_path, capsys):
    from splade_anserini.serve.export_onnx import INT8_NOTICE, export as do_export
    from splade_anserini.serve.query_graph import old_int8_notice

    lines = []
    meta = do_export("splade-tiny", tmp_path / "int8", int8=True, log=lines.append)
    assert lines[0] == INT8_NOTICE and meta["quantization"] == "fp32" and meta["query_graph"] is True
    assert meta["parity_screened"]["max_abs_diff"] <= 1
    old_int8_notice({"quantization": "int8"}, "exports/old-int8")
    old_int8_notice(meta, tmp_path / "int8")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("notice: exports/old-int8: an approximate int8 graph")


def test_pre_encoded_queries_are_stateless():
    from splade_anserini.search.query_encoder import PreEncodedQueries

    vectors = {"q1": {"aspirin": 120, "heart": 40}}
    enc = PreEncodedQueries(vectors)
    got = enc.encode("q1")
    got["aspirin"] = 0
    vectors["q1"]["heart"] = 0
    assert enc.encode("q1") == {"aspirin": 120, "heart": 40}
    with pytest.raises(TypeError):
        enc.vectors["q2"] = {}
    with pytest.raises(KeyError):
        enc.encode("unknown")


def test_splade_doc_queries_need_only_the_tokenizer(export, topics, tmp_path):
    """SPLADE-doc: bags of WordPieces; a directory without model.onnx serves them, like PyTorch's encoder."""
    from splade_anserini.search.query_encoder import QueryVectorizer
    from splade_anserini.encode.splade import SpladeEncoder

    light = tmp_path / "splade-doc"
    shutil.copytree(export.dir, light)
    (light / "model.onnx").unlink()
    meta = json.loads((light / "splade_onnx.json").read_text())
    (light / "splade_onnx.json").write_text(json.dumps({**meta, "splade_doc": True}))
    texts = list(topics["cacm"].values())
    got = QueryVectorizer(str(light)).encode_batch(texts)
    expected = QueryVectorizer(encoder=SpladeEncoder("splade-tiny", splade_doc=True)).encode_batch(texts)
    assert got == expected and all(set(v.values()) == {100} for v in got if v)


@pytest.mark.parametrize("kernel", [None, "onnxruntime"])
def test_screened_query_graph_gives_the_graphs_impacts(export, encoder, topics, kernel):
    """fp32 exports carry the screened query graph; queries through it get the contract graph's impacts,
    with the default int8 kernel (AMX tiles where the CPU has them) and with ONNX Runtime's product."""
    from splade_anserini.serve.export_onnx import fidelity
    from splade_anserini.serve.onnx_encoder import OnnxSpladeEncoder
    from splade_anserini.encode.splade import SpladeEncoder

    assert {"hidden.onnx", "decoder.npz"} <= {p.name for p in export.dir.iterdir()} and export.meta["query_graph"]
    screened, graph = OnnxSpladeEncoder(export.dir, int8_kernel=kernel), OnnxSpladeEncoder(export.dir, screen=False)
    assert screened.screened and not graph.screened
    full = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, int8_queries=False)
    for name in ("scifact", "cacm"):
        texts = list(topics[name].values())
        got = screened.encode_queries(texts, batch_size=1)
        for reference in (graph.encode_queries(texts, batch_size=1), full.encode_queries(texts)):
            fid = fidelity(reference, got, 100, 30522)
            assert fid.max_abs_diff <= 1 and fid.identical >= 0.9999, (name, fid.line())
        padded = screened.encode_queries(texts, batch_size=16)
        assert all(np.array_equal(x.ids, y.ids) for x, y in zip(padded, got))
    assert screened._session is None  # the contract graph was never opened for screened queries
    from splade_anserini.encode.int8_screen import resolve_kernel

    assert screened.query_graph.screen.kernel == (kernel or resolve_kernel())


def test_query_graph_is_fused_and_the_contract_graph_is_not(export):
    """BERT exports' hidden.onnx carries ONNX Runtime's fused Attention (faster queries); model.onnx,
    which Anserini's Java encoder reads, keeps standard ONNX operators only."""
    import onnx

    hidden = {n.op_type for n in onnx.load(str(export.dir / "hidden.onnx")).graph.node}
    contract = onnx.load(str(export.dir / "model.onnx"))
    assert {"Attention", "BiasGelu"} <= hidden
    assert "SkipLayerNormalization" not in hidden  # slower than Add + LayerNormalization for a query's rows
    assert {n.domain for n in contract.graph.node} <= {"", "ai.onnx"}


@pytest.mark.jvm
def test_lean_lucene_route_at_k10_is_the_top_10_of_k1000(export, sl):
    """The serving route hands over only the hits asked for: the same ten as the first ten of 1,000."""
    from splade_anserini.data import read_topics
    from splade_anserini.search.impact_searcher import ImpactSearcher
    from splade_anserini.search.query_encoder import QueryVectorizer

    topics = read_topics(sl.topics)
    vectors = dict(zip(topics, QueryVectorizer(str(export.dir)).encode_batch(list(topics.values()))))
    searcher = ImpactSearcher(sl.lucene)
    try:
        for vec in vectors.values():
            top = searcher.search(vec, 10)
            assert len(top) == 10 and top == searcher.search(vec, 1000)[:10]
        assert searcher.batch_search(vectors, 10) == {q: h[:10] for q, h in searcher.batch_search(vectors, 1000).items()}
        assert len(searcher._integers) <= len({w for v in vectors.values() for w in v.values()})
    finally:
        searcher.close()
