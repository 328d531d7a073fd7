"""Trainer losses, regularizers, the lambda schedule and the fused SPLADE-max head, against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from splade_anserini.train.losses import contrastive_loss, in_batch_scores, kl_loss, margin_mse_loss, own_scores
from splade_anserini.train.regularizers import (QuadraticWarmup, active_dims, batch_flops, flops_regularizer,
                                                l1_regularizer)

# two queries, four documents (positives first: d0 for q0, d1 for q1; then d2 = q0's negative, d3 = q1's)
Q = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
D = torch.tensor([[1.0, 0.0, 1.0],    # q0.d = 3, q1.d = 0
                  [0.0, 2.0, 0.0],    # q0.d = 0, q1.d = 2
                  [0.0, 0.0, 1.0],    # q0.d = 2, q1.d = 0
                  [1.0, 1.0, 0.0]])   # q0.d = 1, q1.d = 1


def test_score_layouts():
    assert in_batch_scores(Q, D).tolist() == [[3, 0, 2, 1], [0, 2, 0, 1]]
    assert own_scores(Q, D, k=1).tolist() == [[3, 2], [2, 1]]
    assert own_scores(Q, D[:2], k=0).tolist() == [[3], [2]]


def test_contrastive_in_batch_and_hard_negatives_by_hand():
    # q0: -log(e^3 / (e^3 + e^0 + e^2 + e^1)); q1: -log(e^2 / (e^0 + e^2 + e^0 + e^1))
    l0 = -3 + math.log(math.exp(3) + 1 + math.exp(2) + math.exp(1))
    l1 = -2 + math.log(1 + math.exp(2) + 1 + math.exp(1))
    got = contrastive_loss(in_batch_scores(Q, D), torch.tensor([0, 1]))
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_contrastive_hard_negatives_only_by_hand():
    l0 = -3 + math.log(math.exp(3) + math.exp(2))
    l1 = -2 + math.log(math.exp(2) + math.exp(1))
    got = contrastive_loss(own_scores(Q, D, 1), torch.tensor([0, 0]))
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_margin_mse_by_hand():
    student = torch.tensor([[3.0, 2.0, 0.0], [2.0, 1.0, 1.5]])
    teacher = torch.tensor([[5.0, 1.0, 4.0], [1.0, 2.0, 0.0]])
    # margins student: (1, 3), (1, 0.5); teacher: (4, 1), (-1, 1); squared errors 9, 4, 4, 0.25
    assert margin_mse_loss(student, teacher).item() == pytest.approx((9 + 4 + 4 + 0.25) / 4)


def test_kl_by_hand():
    student = torch.tensor([[1.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0]])
    ps = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    expected = 0.5 * math.log(0.5 / ps[0]) + 0.5 * math.log(0.5 / ps[1])
    assert kl_loss(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    # temperature 2: scores halved, loss scaled by T^2
    ps2 = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    expected2 = 4 * (0.5 * math.log(0.5 / ps2[0]) + 0.5 * math.log(0.5 / ps2[1]))
    assert kl_loss(student, teacher, 2.0).item() == pytest.approx(expected2, rel=1e-6)
    assert kl_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_flops_l1_and_stats_by_hand():
    reps = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # column means 2, 0, 1 -> 4 + 0 + 1
    assert flops_regularizer(reps).item() == pytest.approx(5.0)
    assert l1_regularizer(reps).item() == pytest.approx((3 + 3) / 2)
    assert active_dims(reps) == pytest.approx(1.5)
    q = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    # p(q) = (0.5, 1, 0), p(d) = (1, 0, 0.5) -> 0.5
    assert batch_flops(q, reps) == pytest.approx(0.5)


def test_regularizers_are_fp32_under_half_inputs():
    reps = torch.full((4, 8), 300.0, dtype=torch.float16)  # (mean)^2 * 8 overflows fp16
    out = flops_regularizer(reps)
    assert out.dtype == torch.float32 and math.isfinite(out.item())
    assert out.item() == pytest.approx(300.0 ** 2 * 8)


def test_quadratic_warmup_shape():
    sched = QuadraticWarmup(0.1, 10)
    values = [sched(t) for t in range(15)]
    assert values[0] == 0.0
    assert values[5] == pytest.approx(0.1 * 0.25)
    assert values[10:] == [0.1] * 5
    diffs = [b - a for a, b in zip(values[:10], values[1:11])]
    assert all(d2 > d1 for d1, d2 in zip(diffs, diffs[1:]))  # convex rise
    assert QuadraticWarmup(0.3, 0)(0) == 0.3
    with pytest.raises(ValueError):
        QuadraticWarmup(-1, 5)


@pytest.mark.parametrize("screen", [False, True])
def test_fused_max_head_matches_autograd_reference(encoder, screen):
    from splade_anserini.encode.splade import splade_activation
    from splade_anserini.train.fused import fused_max_splade

    model = encoder.model
    tok = encoder.tokenizer(["aspirin reduces heart attacks", "a longer second text about sparse retrieval models"],
                            padding=True, return_tensors="pt")
    ids, mask = tok["input_ids"], tok["attention_mask"]
    coef = torch.randn(model.config.vocab_size, generator=torch.Generator().manual_seed(0))
    head = model.cls.predictions

    def grads(fused: bool):  # noqa: FBT001
        model.zero_grad()
        if fused:
            hidden = head.transform(model.bert(input_ids=ids, attention_mask=mask).last_hidden_state)
            reps = fused_max_splade(hidden, head.decoder.weight, head.decoder.bias, mask, chunk=7000,
                                    screen=screen)
        else:
            reps = splade_activation(model(input_ids=ids, attention_mask=mask).logits, mask, "max")
        (reps * coef).sum().backward()
        return reps.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    try:
        r1, g1 = grads(True)
        r2, g2 = grads(False)
    finally:
        model.zero_grad(set_to_none=True)
    assert torch.equal(r1 > 0, r2 > 0) and torch.allclose(r1, r2, atol=1e-5)
    assert set(g1) == set(g2)
    scale = max(g.abs().max().item() for g in g2.values())
    for name in g2:
        assert torch.allclose(g1[name], g2[name], atol=1e-4 * scale, rtol=1e-3), name


def test_brute_force_search_matches_numba_index():
    import numpy as np

    from splade_anserini.encode.splade import SparseVector
    from splade_anserini.train.validate import brute_force_search, exact_search

    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(30)]
    docs = []
    for _ in range(50):
        ids = np.sort(rng.choice(30, size=6, replace=False)).astype(np.int32)
        docs.append(SparseVector(ids, rng.choice([0.01, 0.02, 0.05], size=6).astype(np.float32)))
    doc_ids = [f"d{i:02d}" for i in range(50)][::-1]
    queries = {f"q{j}": {f"t{i}": int(w) for i, w in zip(rng.choice(30, 3, replace=False), rng.integers(1, 4, 3))}
               for j in range(8)}
    a = brute_force_search(doc_ids, docs, queries, vocab, k=10)
    b = exact_search(doc_ids, docs, queries, vocab, k=10)
    assert {q: list(h.items()) for q, h in a.items()} == {q: list(h.items()) for q, h in b.items()}
