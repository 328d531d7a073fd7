"""Fine-tuning levers on their own: LoRA adapters merged into plain checkpoints, L2-SP toward the
starting weights, and gradient caching with the gradients of the plain loss."""
from __future__ import annotations

import pytest
import torch

from splade_anserini.train.gradcache import RandContext, cached_step, chunk_indices
from splade_anserini.train.losses import contrastive_loss, in_batch_scores
from splade_anserini.train.regularizers import L2SP, flops_regularizer

QUERIES = ["what reduces heart attacks", "sparse retrieval with lucene", "protein folding in cells"]
POSITIVES = ["aspirin reduces the risk of heart attacks in adults",
             "anserini builds lucene impact indexes for learned sparse retrieval",
             "chaperones help proteins fold correctly inside the cell"]
NEGATIVES = ["the stock market fell sharply on monday", "a recipe for tomato soup with basil",
             "football results of the weekend", "heart rate monitors for runners",
             "lucene is a java library", "cells divide by mitosis"]


def batch_of(tokenizer, k: int = 2) -> dict:
    from splade_anserini.train.data import Example, tokenize_batch

    examples = [Example(q, p, NEGATIVES[i * k:(i + 1) * k]) for i, (q, p) in enumerate(zip(QUERIES, POSITIVES))]
    return tokenize_batch(tokenizer, examples, max_length=32, query_max_length=12)


def loss_fn(q, d):
    loss = contrastive_loss(in_batch_scores(q, d), torch.arange(q.shape[0])) + 1e-2 * flops_regularizer(d) \
        + 1e-2 * flops_regularizer(q)
    return loss, {"loss": loss.item()}


def grads_of(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture
def train_model(encoder):
    import copy

    from splade_anserini.train.model import SpladeTrainModel

    return SpladeTrainModel(copy.deepcopy(encoder.model), encoder.tokenizer)


# -- gradient caching ---------------------------------------------------------------------------------
def test_chunks_cover_the_batch_layout():
    chunks = chunk_indices(5, 2, 2)
    assert [q.tolist() for q, _ in chunks] == [[0, 1], [2, 3], [4]]
    assert [d.tolist() for _, d in chunks] == [[0, 1, 5, 6, 7, 8], [2, 3, 9, 10, 11, 12], [4, 13, 14]]
    assert sorted(i for _, d in chunks for i in d.tolist()) == list(range(15))


@pytest.mark.parametrize("mini_batch", [1, 2])
def test_cached_gradients_equal_the_plain_loss(encoder, train_model, mini_batch):
    batch = batch_of(encoder.tokenizer)
    model = train_model.eval()  # no dropout: the plain and the chunked forward see the same network
    model.zero_grad()
    q, d = model(batch["q_ids"], batch["q_mask"], batch["d_ids"], batch["d_mask"])
    plain_loss, _ = loss_fn(q, d)
    (0.5 * plain_loss).backward()
    plain = grads_of(model)
    model.zero_grad()
    cached_loss, _ = cached_step(model, batch, loss_fn, mini_batch, scale=0.5)
    cached = grads_of(model)
    assert cached_loss.item() == pytest.approx(plain_loss.item(), rel=1e-5)
    assert set(cached) == set(plain) and len(plain) > 10
    scale = max(g.abs().max().item() for g in plain.values())
    assert scale > 0
    for name in plain:
        torch.testing.assert_close(cached[name], plain[name], atol=1e-5 * scale, rtol=1e-4, msg=name)


def test_cached_step_replays_dropout(encoder, train_model):
    # with dropout on, the re-encoding must draw the masks of the first pass: the gradient equals the
    # one of a plain loss over the same chunks encoded once with those RNG states
    batch = batch_of(encoder.tokenizer, k=1)
    model = train_model.train()
    torch.manual_seed(5)
    model.zero_grad()
    cached_step(model, batch, loss_fn, 2)
    cached = grads_of(model)
    after_cached = torch.get_rng_state()

    torch.manual_seed(5)
    model.zero_grad()
    from splade_anserini.train.gradcache import _chunk

    qs, ds = [], []
    chunks = chunk_indices(3, 1, 2)
    for q_rows, d_rows in chunks:
        q_c, d_c = model(*_chunk(batch, q_rows, d_rows))
        qs.append(q_c)
        ds.append(d_c)
    q = torch.zeros(3, qs[0].shape[1]).index_put((torch.cat([c[0] for c in chunks]),), torch.cat(qs))
    d = torch.zeros(6, ds[0].shape[1]).index_put((torch.cat([c[1] for c in chunks]),), torch.cat(ds))
    loss_fn(q, d)[0].backward()
    reference = grads_of(model)
    assert torch.equal(torch.get_rng_state(), after_cached)  # the replay leaves the RNG where pass 1 left it
    scale = max(g.abs().max().item() for g in reference.values())
    for name in reference:
        torch.testing.assert_close(cached[name], reference[name], atol=1e-5 * scale, rtol=1e-4, msg=name)


def test_rand_context_replays_and_restores():
    torch.manual_seed(0)
    ctx = RandContext()
    first = torch.rand(4)
    after = torch.get_rng_state()
    with ctx:
        again = torch.rand(4)
    assert torch.equal(first, again) and torch.equal(torch.get_rng_state(), after)


# -- L2-SP ------------------------------------------------------------------------------------------
def test_l2sp_value_and_gradient_by_hand():
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        layer.bias.copy_(torch.tensor([0.5, -0.5]))
    start = {k: v.clone() for k, v in layer.state_dict().items()}
    reg = L2SP.from_start(0.1, layer, start)
    assert reg.add_gradient() == 0.0 and torch.equal(layer.weight.grad, torch.zeros(2, 2))
    layer.zero_grad()
    with torch.no_grad():
        layer.weight += torch.tensor([[1.0, 0.0], [0.0, -2.0]])
    # distance 1 + 4; gradient lam * (theta - theta_0) (penalty lam/2 * distance)
    assert reg.add_gradient() == pytest.approx(5.0)
    torch.testing.assert_close(layer.weight.grad, torch.tensor([[0.1, 0.0], [0.0, -0.2]]))
    torch.testing.assert_close(layer.bias.grad, torch.zeros(2))
    # the closed form equals autograd on the penalty
    layer.zero_grad()
    (0.5 * 0.1 * reg.distance()).backward()
    torch.testing.assert_close(layer.weight.grad, torch.tensor([[0.1, 0.0], [0.0, -0.2]]))
    with pytest.raises(ValueError, match="no starting value"):
        L2SP.from_start(0.1, layer, {"weight": start["weight"]})


def test_l2sp_pulls_a_model_back_toward_its_start():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)
    start = {k: v.clone() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        layer.weight.add_(torch.randn(4, 4))
    reg = L2SP.from_start(1.0, layer, start)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    dists = []
    for _ in range(5):
        opt.zero_grad()
        dists.append(reg.add_gradient())
        opt.step()
    assert all(b == pytest.approx(a * 0.81, rel=1e-5) for a, b in zip(dists, dists[1:]))  # (1 - lr*lam)^2


# -- LoRA ------------------------------------------------------------------------------------------
def test_lora_trains_adapters_only_and_merges_into_a_plain_checkpoint(encoder, tmp_path):
    import copy

    pytest.importorskip("peft")
    from splade_anserini.encode.splade import SpladeEncoder
    from splade_anserini.train.lora import LoraAdapter
    from splade_anserini.train.model import SpladeTrainModel

    hf = copy.deepcopy(encoder.model)
    adapter = LoraAdapter(hf, rank=4)
    n_train = adapter.trainable_parameters()
    assert 0 < n_train < 0.05 * sum(p.numel() for p in hf.parameters())
    assert all("lora_" in n for n, p in hf.named_parameters() if p.requires_grad)
    model = SpladeTrainModel(hf, encoder.tokenizer).train()
    assert model.fused  # the fused head still finds the MLM parts of the adapted model
    batch = batch_of(encoder.tokenizer)
    opt = torch.optim.AdamW([p for p in hf.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        q, d = model(batch["q_ids"], batch["q_mask"], batch["d_ids"], batch["d_mask"])
        loss_fn(q, d)[0].backward()
        opt.step()
    # L2-SP under LoRA: the distance is that of the effective weights, sum ||(alpha/r) B A||^2
    reg = L2SP.from_lora(0.1, adapter)
    assert reg.add_gradient() > 0

    model.eval()
    with torch.no_grad():
        q_lora, d_lora = model(batch["q_ids"], batch["q_mask"], batch["d_ids"], batch["d_mask"])
    merged = adapter.merged()
    assert not any("lora" in n for n in merged.state_dict())
    assert type(merged) is type(encoder.model)
    merged.save_pretrained(tmp_path / "ckpt")
    encoder.tokenizer.save_pretrained(tmp_path / "ckpt")
    # the merged checkpoint loads as any model and encodes as the adapted model does
    enc = SpladeEncoder(str(tmp_path / "ckpt"), max_length=32, query_max_length=12)
    ref = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=copy.deepcopy(encoder.model), max_length=32,
                        query_max_length=12)
    got = enc.encode_documents(POSITIVES + NEGATIVES)
    base = ref.encode_documents(POSITIVES + NEGATIVES)
    n = len(POSITIVES) + len(NEGATIVES)
    for i in range(n):
        dense = torch.zeros(d_lora.shape[1])
        dense[torch.as_tensor(got[i].ids, dtype=torch.long)] = torch.as_tensor(got[i].weights)
        torch.testing.assert_close(dense, d_lora[i], atol=1e-4, rtol=1e-4)
    assert any(len(a.ids) != len(b.ids) or not torch.allclose(torch.as_tensor(a.weights), torch.as_tensor(b.weights))
               for a, b in zip(got, base))  # training moved the model
    # adapter state round-trips (resume), and a mismatched state is refused
    state = adapter.adapter_state()
    other = LoraAdapter(copy.deepcopy(encoder.model), rank=4)
    other.load_adapter_state(state)
    for (n1, p1), (n2, p2) in zip(sorted(adapter.adapter_state().items()), sorted(other.adapter_state().items())):
        assert n1 == n2 and torch.equal(p1, p2)
    with pytest.raises(ValueError, match="does not match"):
        LoraAdapter(copy.deepcopy(encoder.model), rank=4, target_modules="query").load_adapter_state(state)


# -- second-stage negatives: mine_negatives --model ------------------------------------------------------
@pytest.mark.one_leg  # the model's vectors and the Numba index it searches are checked in both legs elsewhere
def test_mine_negatives_with_a_splade_model(scifact_train_slice, tmp_path):
    from splade_anserini.conversion.trec import read_ranked
    from splade_anserini.data import read_topics
    from splade_anserini.encode.splade import SpladeEncoder
    from splade_anserini.train.data import load_corpus_texts
    from splade_anserini.train.mine_negatives import main
    from splade_anserini.train.validate import brute_force_search

    s = scifact_train_slice
    args = ["--model", "splade-tiny", "--corpus", str(s / "corpus.jsonl"), "--queries", str(s / "queries.tsv"),
            "--qrels", str(s / "qrels.txt"), "--hits", "20", "--max-length", "64", "--index", str(tmp_path / "idx")]
    assert main(args + ["--output", str(tmp_path / "a.trec")]) == 0
    run = read_ranked(tmp_path / "a.trec")
    assert len(run) == 6 and all(len(h) == 20 for h in run.values())
    # the same ranking as a brute-force sparse product over the model's x100 impacts
    enc = SpladeEncoder("splade-tiny", max_length=64, query_max_length=64)
    corpus = load_corpus_texts(s / "corpus.jsonl")
    ids = list(corpus)
    topics = read_topics(s / "queries.tsv")
    queries = {q: enc.to_impacts(v) for q, v in zip(topics, enc.encode_queries(list(topics.values())))}
    ref = brute_force_search(ids, enc.encode_documents([corpus[d] for d in ids]), queries, enc.vocab, k=20)
    assert {q: [(d, float(sc)) for d, sc in hits] for q, hits in run.items()} == \
        {q: list(h.items()) for q, h in ref.items()}
    # --vectors: the corpus as encode_corpus wrote it (x100 JsonVectorCollection): the same run
    from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector

    vec_dir = tmp_path / "vectors"
    vec_dir.mkdir()
    doc_vecs = enc.encode_documents([corpus[d] for d in ids])
    write_jsonvector(vec_dir / "part-00000.jsonl", [VectorDoc(d, enc.to_impacts(v), "") for d, v in zip(ids, doc_vecs)])
    assert main(args[:-2] + ["--vectors", str(vec_dir), "--output", str(tmp_path / "v.trec")]) == 0
    assert (tmp_path / "a.trec").read_bytes() == (tmp_path / "v.trec").read_bytes()
    write_jsonvector(vec_dir / "part-00000.jsonl", [VectorDoc(d, enc.to_impacts(v), "")
                                                    for d, v in list(zip(ids, doc_vecs))[:-1]])
    assert main(args[:-2] + ["--vectors", str(vec_dir), "--output", str(tmp_path / "w.trec")]) == 2
    assert not (tmp_path / "w.trec").exists()
    # a second run reuses the stamped index; another model on it is refused in one line, exit 2
    assert main(args + ["--output", str(tmp_path / "b.trec")]) == 0
    assert (tmp_path / "a.trec").read_bytes() == (tmp_path / "b.trec").read_bytes()
    assert main([*args[:-1], str(tmp_path / "idx"), "--max-length", "32", "--output", str(tmp_path / "c.trec")]) == 2
    assert not (tmp_path / "c.trec").exists()
