"""The exact int8-screened query decoder: the same weights as the full fp32 product, on real topics and
random inputs; PyTorch queries use it by default on CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splade_anserini.encode.amx import amx_int8_available
from splade_anserini.encode.int8_screen import KERNEL_ENV, Int8Screen, resolve_kernel
from splade_anserini.serve.export_onnx import fidelity
from splade_anserini.encode.splade import SpladeEncoder


@pytest.fixture(scope="module")
def decoder(encoder):
    dec = encoder.model.get_output_embeddings()
    return dec.weight.detach().numpy().copy(), dec.bias.detach().numpy().copy()


@pytest.fixture(scope="module")
def full_fp32(encoder):
    """Today's fp32 query encoder (no int8 screen)."""
    return SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, int8_queries=False)


def reference(h: np.ndarray, weight: np.ndarray, bias: np.ndarray, pooling: str) -> np.ndarray:
    logits = h.astype(np.float32) @ weight.T + bias
    act = np.log1p(np.maximum(logits, 0))
    return act.max(axis=0) if pooling == "max" else act.sum(axis=0)


def test_pytorch_queries_use_the_int8_screen(encoder, full_fp32):
    assert encoder.query_head_path == "int8" and full_fp32.query_head_path != "int8"
    assert encoder.head_path == full_fp32.head_path  # documents keep their decoder


@pytest.mark.parametrize("name,path", [("scifact", "queries.test.tsv"), ("cacm", "queries.tsv")])
def test_int8_queries_give_fp32_impacts_on_real_topics(encoder, full_fp32, data_dir, name, path):
    from splade_anserini.data import read_topics

    texts = list(read_topics(data_dir / name / path).values())
    fid = fidelity(full_fp32.encode_queries(texts), encoder.encode_queries(texts), 100, encoder.vocab_size)
    assert fid.max_abs_diff <= 1 and fid.identical >= 0.9999, fid.line()
    assert fid.pairs > 40 * len(texts)  # real vectors (about 50 terms a query)


@pytest.mark.parametrize("pooling", ["max", "sum"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 40), scale=st.floats(0.05, 20.0))
def test_screen_equals_the_full_product_on_random_states(decoder, pooling, seed, length, scale):
    """Random hidden states, real decoder: the screen keeps every positive entry, the weights are fp32's."""
    weight, bias = decoder
    h = (np.random.default_rng(seed).standard_normal((length, weight.shape[1])) * scale).astype(np.float32)
    screen = Int8Screen(weight, bias, pooling) if pooling == "sum" else _max_screen(weight, bias)
    vec = screen.pool(h)
    ref = reference(h, weight, bias, pooling)
    dense = np.zeros_like(ref)
    dense[vec.ids] = vec.weights
    assert set(np.flatnonzero(ref > 1e-3).tolist()) <= set(vec.ids.tolist())
    np.testing.assert_allclose(dense, ref, rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(vec.ids) > 0) and np.all(vec.weights > 0)


_SCREENS: dict = {}


def _max_screen(weight, bias):
    if "max" not in _SCREENS:  # building the int8 copy is the slow part: once per process
        _SCREENS["max"] = Int8Screen(weight, bias, "max")
    return _SCREENS["max"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=120), min_size=1, max_size=4))
def test_int8_queries_equal_fp32_on_random_texts(encoder, full_fp32, texts):
    got = encoder.encode_queries(texts)
    expected = full_fp32.encode_queries(texts)
    fid = fidelity(expected, got, 100, encoder.vocab_size)
    assert fid.max_abs_diff <= 1, fid.line()
    for x, y in zip(got, expected):  # a term may differ only where its weight is within rounding of 0
        for term in set(x.ids.tolist()) ^ set(y.ids.tolist()):
            w = dict(zip(x.ids.tolist(), x.weights.tolist())) | dict(zip(y.ids.tolist(), y.weights.tolist()))
            assert w[term] < 1e-4


def test_screen_keeps_few_candidates(encoder, decoder):
    """The point of the screen: a real query keeps well under 2% of the vocabulary as candidates."""
    weight, bias = decoder
    ids = encoder.tokenizer(["aspirin reduces the risk of heart attacks"], return_tensors="pt")
    with torch.inference_mode():
        h = encoder._head.hidden(ids["input_ids"], ids["attention_mask"])[0].numpy()
    screen = _max_screen(weight, bias)
    vec = screen.pool(h)
    assert len(vec) < screen.last_candidates < 0.02 * weight.shape[0]


def test_screen_gives_the_full_products_impacts_on_scifact_states(encoder, decoder, data_dir):
    """30 real SciFact queries' hidden states: every integer impact equals the full fp32 product's, and
    the weights its values (the exact pooling sums fp32 products in float64, in order)."""
    from splade_anserini.conversion.quantize import quantize
    from splade_anserini.data import read_topics

    weight, bias = decoder
    texts = list(read_topics(data_dir / "scifact" / "queries.test.tsv").values())[:30]
    screen = _max_screen(weight, bias)
    for text in texts:
        ids = encoder.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            h = encoder._head.hidden(ids["input_ids"], ids["attention_mask"])[0].numpy()
        vec = screen.pool(h)
        ref = reference(h, weight, bias, "max")
        dense = np.zeros_like(ref)
        dense[vec.ids] = vec.weights
        np.testing.assert_array_equal(quantize(dense, 100), quantize(ref, 100), err_msg=text)
        np.testing.assert_allclose(dense, ref, rtol=1e-6, atol=1e-6)
        assert len(vec) < screen.last_candidates < 0.02 * weight.shape[0]


# -- the int8 product's kernels: AMX tiles (one pass) and ONNX Runtime's MatMulInteger (two passes) ----------

needs_amx = pytest.mark.skipif(not amx_int8_available(), reason="this CPU or process cannot use AMX int8 tiles")


def _kernels(weight, bias):
    key = ("kernels", weight.shape)
    if key not in _SCREENS:
        _SCREENS[key] = (Int8Screen(weight, bias, "max", kernel="amx"), Int8Screen(weight, bias, "max", kernel="onnxruntime"))
    return _SCREENS[key]


@needs_amx
def test_amx_kernel_keeps_the_same_candidates_on_real_topics(encoder, decoder, data_dir):
    """SciFact and CACM queries (4 to 140 tokens: one, two and several tiles of 16 tokens): the one-pass
    AMX screen keeps exactly the two-pass screen's candidates, so the vectors are equal."""
    from splade_anserini.data import read_topics

    amx, ort = _kernels(*decoder)
    assert (amx.kernel, ort.kernel) == ("amx", "onnxruntime")
    texts = (list(read_topics(data_dir / "scifact" / "queries.test.tsv").values())[:60]
             + list(read_topics(data_dir / "cacm" / "queries.tsv").values()))
    lengths = set()
    for text in texts:
        ids = encoder.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            h = encoder._head.hidden(ids["input_ids"], ids["attention_mask"])[0].numpy()
        lengths.add(len(h) // 16)
        np.testing.assert_array_equal(amx.candidates(h), ort.candidates(h), err_msg=text)
        x, y = amx.pool(h), ort.pool(h)
        np.testing.assert_array_equal(x.ids, y.ids)
        np.testing.assert_array_equal(x.weights, y.weights)
    assert {0, 1, 2} <= lengths and max(lengths) >= 4


@needs_amx
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 70), vocab=st.integers(1, 200), hidden=st.integers(1, 200),
       scale=st.floats(0.05, 20.0), bias=st.floats(-3.0, 1.0))
def test_amx_kernel_equals_onnxruntime_on_random_decoders(seed, length, vocab, hidden, scale, bias):
    """Random decoders whose vocabulary is not a whole number of 16-entry blocks and whose width is
    not a multiple of 64 (both padded in the tiles), random states: the same candidates and vectors."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((vocab, hidden)).astype(np.float32)
    b = (rng.standard_normal(vocab) + bias).astype(np.float32)
    h = (rng.standard_normal((length, hidden)) * scale).astype(np.float32)
    amx, ort = Int8Screen(weight, b, "max", kernel="amx"), Int8Screen(weight, b, "max", kernel="onnxruntime")
    np.testing.assert_array_equal(amx.candidates(h), ort.candidates(h))
    ref = reference(h, weight, b, "max")
    assert set(np.flatnonzero(ref > 1e-3).tolist()) <= set(amx.candidates(h).tolist())
    x, y = amx.pool(h), ort.pool(h)
    np.testing.assert_array_equal(x.ids, y.ids)
    np.testing.assert_array_equal(x.weights, y.weights)


def test_kernel_choice(decoder, monkeypatch):
    """"auto" takes AMX exactly where this process may use it; the environment variable and the
    argument choose; an unknown kernel, or AMX where there is none, is refused in one line."""
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if "amx_int8" not in (cpuinfo.read_text() if cpuinfo.exists() else ""):
        assert not amx_int8_available()
    assert resolve_kernel("auto") == ("amx" if amx_int8_available() else "onnxruntime")
    monkeypatch.setenv(KERNEL_ENV, "onnxruntime")
    assert resolve_kernel() == "onnxruntime"
    weight, bias = decoder
    assert Int8Screen(weight[:100], bias[:100]).kernel == "onnxruntime"
    monkeypatch.setenv(KERNEL_ENV, "mkl")
    with pytest.raises(ValueError, match="int8 kernel must be one of auto, amx, onnxruntime, got 'mkl'"):
        Int8Screen(weight[:100], bias[:100])
    if not amx_int8_available():
        with pytest.raises(ValueError, match="cannot use AMX"):
            resolve_kernel("amx")
