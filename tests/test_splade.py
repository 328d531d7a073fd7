"""SpladeEncoder: pooling against a plain reference, the exact screened decoder, SPLADE-doc queries."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from splade_anserini.encode.splade import SpladeEncoder, SparseVector

TEXTS = [
    "aspirin reduces the risk of heart attacks",
    "a",
    "Microstructural development of human newborn cerebral white matter assessed in vivo by diffusion tensor "
    "magnetic resonance imaging. Alterations of the architecture of cerebral white matter in the developing "
    "human brain can affect cortical development and result in functional disabilities.",
    "0-dimensional biomaterials show inductive properties",
]


@pytest.fixture(scope="module")
def sum_encoder(encoder):
    return SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, pooling="sum")


def reference(encoder, texts, pooling, max_length=256):
    """The textbook formula on the full logits: pool_i log(1 + relu(logit_ij)) over non-padding tokens."""
    batch = encoder.tokenizer(texts, max_length=max_length, truncation=True, padding=True, return_tensors="pt",
                              return_token_type_ids=False)
    with torch.no_grad():
        logits = encoder.model(**batch).logits
    act = torch.log(1 + torch.relu(logits)) * batch["attention_mask"].unsqueeze(-1)
    return (act.max(dim=1).values if pooling == "max" else act.sum(dim=1)).numpy()


def dense(vec: SparseVector, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float32)
    out[vec.ids] = vec.weights
    return out


@pytest.mark.parametrize("pooling", ["max", "sum"])
@pytest.mark.parametrize("path", ["screened", "sliced", "plain"])
def test_pooling_matches_plain_reference(encoder, pooling, path):
    enc = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, pooling=pooling,
                        screen=path == "screened")
    assert enc.screening is (path == "screened")
    enc.head_path = path
    ref = reference(enc, TEXTS, pooling)
    got = enc.encode_documents(TEXTS, batch_size=3)
    for r, v in zip(ref, got):
        assert np.all(np.diff(v.ids) > 0) and v.ids.dtype == np.int32 and v.weights.dtype == np.float32
        assert np.all(v.weights > 0)
        # same active terms (up to weights within float noise of 0) and the same weights
        np.testing.assert_allclose(dense(v, enc.vocab_size), r, rtol=1e-5, atol=1e-5)
        assert set(np.flatnonzero(r > 1e-5).tolist()) <= set(v.ids.tolist())


def test_sum_pooling_is_not_max(encoder, sum_encoder):
    m = encoder.encode_documents(TEXTS[2:3])[0]
    s = sum_encoder.encode_documents(TEXTS[2:3])[0]
    assert np.array_equal(m.ids, s.ids)  # the same terms are active ...
    assert np.all(s.weights >= m.weights - 1e-6) and np.sum(s.weights > m.weights * 1.1) >= 10  # ... summed


def test_fast_decoders_are_exact_on_scifact(encoder, data_dir):
    lines = (data_dir / "scifact" / "corpus.jsonl").read_text().splitlines()[:48]
    texts = [f"{d['title']} {d['text']}" for d in map(json.loads, lines)]
    plain = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, screen=False, max_length=128)
    sliced = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, screen=False, max_length=128)
    fast = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, screen=True, max_length=128)
    plain.head_path = "plain"
    assert fast.screening and sliced.head_path == "sliced"
    reference = plain.encode_documents(texts)
    for enc in (fast, sliced):
        for x, y in zip(enc.encode_token_ids(enc.tokenize(texts, 128), workers=2), reference):
            assert np.array_equal(x.ids, y.ids)
            np.testing.assert_allclose(x.weights, y.weights, rtol=1e-5, atol=1e-6)
            assert enc.to_impacts(x, 100) == plain.to_impacts(y, 100)


def test_workers_give_the_same_numbers(encoder):
    """Workers run batches with one torch thread each: the same numbers as one thread, one batch at a time."""
    texts = TEXTS * 5
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = encoder.encode_documents(texts, batch_size=2)
    finally:
        torch.set_num_threads(threads)
    two = encoder.encode_token_ids(encoder.tokenize(texts, encoder.max_length), 2, workers=2)
    assert torch.get_num_threads() == threads
    for x, y in zip(one, two):
        assert np.array_equal(x.ids, y.ids) and np.array_equal(x.weights, y.weights)


def test_capture_hook_is_removed(encoder):
    encoder.encode_documents(TEXTS[:2])
    decoder = encoder.model.get_output_embeddings()
    assert len(decoder._forward_pre_hooks) == 0
    batch = encoder.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        assert encoder.model(**batch).logits.shape[-1] == encoder.vocab_size


def test_documents_get_expansion_terms(encoder):
    text = "aspirin reduces the risk of heart attacks"
    vec = encoder.encode_documents([text])[0]
    impacts = encoder.to_impacts(vec, 100)
    own = set(encoder.tokenizer.tokenize(text))
    expansion = set(impacts) - own
    assert own & set(impacts) and len(expansion) >= 10
    assert {"[CLS]", "[SEP]", "[PAD]"}.isdisjoint(impacts)


def test_splade_doc_queries_are_bags_of_wordpieces(encoder):
    doc_mode = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, splade_doc=True)
    text = "Embedding embeddings: the the THE aspirin"
    vec = doc_mode.encode_queries([text])[0]
    pieces = encoder.tokenizer.tokenize(text)
    assert "##s" in pieces or "##dings" in pieces or len(set(pieces)) < len(pieces)
    assert sorted(doc_mode.vocab[i] for i in vec.ids) == sorted(set(pieces))
    assert np.all(vec.weights == 1.0) and np.all(np.diff(vec.ids) > 0)
    assert doc_mode.to_impacts(vec, 100) == {p: 100 for p in set(pieces)}
    # documents are still encoded by the model
    assert len(doc_mode.encode_documents([text])[0]) > len(set(pieces))
    # the ordinary mode encodes queries with the model
    assert len(encoder.encode_queries([text])[0]) > len(set(pieces))


def test_query_and_document_max_lengths_are_separate(encoder):
    enc = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, max_length=8, query_max_length=64)
    long = TEXTS[2]
    assert not np.array_equal(enc.encode_documents([long])[0].ids, enc.encode_queries([long])[0].ids)
    short = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, max_length=8, query_max_length=8)
    q, d = short.encode_queries([long])[0], short.encode_documents([long])[0]
    assert np.array_equal(q.ids, d.ids)
