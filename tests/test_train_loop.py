"""The training loop on real data: resume equivalence, SPLADE-doc, a mini-run whose loss falls,
crash-safe checkpoints, validation, and checkpoints the encoder loads unchanged."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from splade_anserini.encode.head import fast_bf16_cpu
from splade_anserini.train import config_from_dict, train
from splade_anserini.train.checkpoint import BEST, LAST, STATE_FILE, recover_checkpoints, write_checkpoint


@pytest.fixture
def triples(data_dir):
    return str(data_dir / "msmarco-toy" / "triples.train.tsv")


def small(triples, out, **kw):
    base = dict(triples=triples, output_dir=str(out), batch_size=2, max_length=48, query_max_length=16,
                lr=5e-5, lambda_q=1e-3, lambda_d=1e-3, lambda_warmup_steps=3, warmup_steps=1, max_steps=4,
                log_every=1, progress=False, seed=3, threads=1)
    base.update(kw)
    return config_from_dict(base)


def weights(checkpoint):
    from safetensors.torch import load_file

    return load_file(os.path.join(checkpoint, "model.safetensors"))


def test_resume_equals_straight_run(triples, tmp_path):
    # dropout on, gradient accumulation on: resume must restore the RNG, optimizer, scheduler and data position
    straight = train(small(triples, tmp_path / "a", grad_accum=2))
    assert straight["steps"] == 4
    first = train(small(triples, tmp_path / "b", grad_accum=2), stop_after_steps=2)
    assert first["steps"] == 2 and first["stop_reason"].startswith("stopped at step 2")
    resumed = train(small(triples, tmp_path / "b", grad_accum=2, resume=True))
    assert resumed["steps"] == 4
    wa, wb = weights(tmp_path / "a" / LAST), weights(tmp_path / "b" / LAST)
    assert set(wa) == set(wb)
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6, msg=name)
    # ... and the moved weights are not the starting ones (the check above is not vacuous)
    from splade_anserini.models import resolve_model

    w0 = weights(resolve_model("splade-tiny"))
    assert any(not torch.equal(w0[n], wa[n]) for n in wa if n in w0)
    # the logs agree step for step (the resumed log continues the interrupted one)
    def losses(path):
        return [r["loss"] for r in map(json.loads, open(path / "log.jsonl")) if r["type"] == "train"]
    assert losses(tmp_path / "b") == pytest.approx(losses(tmp_path / "a"), rel=1e-4)


def test_existing_output_needs_resume_or_overwrite(triples, tmp_path):
    from splade_anserini.train.config import ConfigError

    train(small(triples, tmp_path, max_steps=1))
    with pytest.raises(ConfigError, match="--resume .* or --overwrite"):
        train(small(triples, tmp_path, max_steps=1))
    assert train(small(triples, tmp_path, max_steps=1, overwrite=True))["steps"] == 1


def test_splade_doc_training_step(triples, tmp_path, encoder):
    from splade_anserini.encode.splade import SpladeEncoder
    from splade_anserini.train.model import SpladeTrainModel

    model = SpladeTrainModel(encoder.model, encoder.tokenizer, splade_doc=True)
    texts = ["what is the capital of france", "sparse [SEP] retrieval"]
    tok = encoder.tokenizer(texts, padding=True, return_tensors="pt")
    bag = model.bag_of_tokens(tok["input_ids"], tok["attention_mask"])
    ref = SpladeEncoder(tokenizer=encoder.tokenizer, hf_model=encoder.model, splade_doc=True).encode_queries(texts)
    for row, vec in zip(bag, ref):
        assert row.nonzero().flatten().tolist() == vec.ids.tolist() and set(row[row > 0].tolist()) == {1.0}

    out = train(small(triples, tmp_path, splade_doc=True, lambda_q=0.0, max_steps=2))
    assert out["steps"] == 2
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    steps = [r for r in records if r["type"] == "train"]
    assert all("reg_q" not in r and r["d_active"] > 0 and np.isfinite(r["loss"]) for r in steps)
    # query side has no parameters: the step moved the document encoder
    w0, w1 = weights(encoder.model.name_or_path), weights(tmp_path / LAST)
    assert any(not torch.equal(w0[n], w1[n]) for n in w1 if n in w0)


def test_mini_run_loss_decreases_and_log_is_complete(triples, tmp_path):
    from splade_anserini.data import read_triples
    from splade_anserini.models import load_model
    from splade_anserini.train.losses import contrastive_loss, in_batch_scores
    from splade_anserini.train.model import SpladeTrainModel

    rows = list(read_triples(triples))

    @torch.no_grad()
    def eval_loss(path):
        tok, hf = load_model(path)
        model = SpladeTrainModel(hf, tok)
        total = 0.0
        for i in range(0, len(rows), 20):
            part = rows[i:i + 20]
            q = tok([r.query for r in part], padding=True, truncation=True, max_length=16, return_tensors="pt")
            d = tok([r.positive for r in part] + [r.negative for r in part], padding=True, truncation=True,
                    max_length=48, return_tensors="pt")
            qr, dr = model(q["input_ids"], q["attention_mask"], d["input_ids"], d["attention_mask"])
            total += contrastive_loss(in_batch_scores(qr, dr), torch.arange(len(part))).item()
        return total

    out = train(small(triples, tmp_path, batch_size=8, max_steps=12, lr=1e-4, lambda_q=0.0, lambda_d=0.0,
                      log_every=3))
    assert out["steps"] == 12
    before, after = eval_loss("splade-tiny"), eval_loss(tmp_path / LAST)
    assert after < 0.8 * before, (before, after)
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert records[0]["type"] == "start" and records[-1]["type"] == "end"
    # what decides whether the run's bits can be reproduced: the thread count and the head path
    assert records[0]["torch_threads"] == 1  # small() trains with threads=1
    assert records[0]["cpu_native_bf16"] == fast_bf16_cpu()
    steps = [r for r in records if r["type"] == "train"]
    assert [r["step"] for r in steps] == [3, 6, 9, 12]
    for key in ("loss", "contrastive", "reg_q", "reg_d", "lambda_q", "lambda_d", "q_active", "d_active", "flops", "lr"):
        assert all(key in r for r in steps), key

    # WiSE-FT: the interpolated checkpoint lies on the straight line between the start and the run
    from splade_anserini.models import resolve_model
    from splade_anserini.train.interpolate import interpolate

    mid = interpolate("splade-tiny", str(tmp_path / LAST), 0.25, str(tmp_path / "wise"))
    w0, w1, wm = weights(resolve_model("splade-tiny")), weights(tmp_path / LAST), weights(mid)
    for name in w1:
        torch.testing.assert_close(wm[name], w0[name] + 0.25 * (w1[name] - w0[name]), rtol=1e-5, atol=1e-6)


def test_validation_best_checkpoint_loads_in_the_encoder(data_dir, tmp_path):
    from splade_anserini.encode.splade import SpladeEncoder

    sci = data_dir / "scifact"
    cfg = config_from_dict(dict(
        corpus=str(sci / "corpus.jsonl"), queries=str(sci / "queries.train.tsv"), qrels=str(sci / "qrels.train.txt"),
        output_dir=str(tmp_path), valid_holdout=4, valid_max_docs=40, valid_every=1, valid_at_start=True,
        batch_size=2, max_length=32, query_max_length=16, max_steps=2, lr=1e-5, progress=False, threads=1,
        wise_alpha=0.5))
    out = train(cfg)
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    valid = [r for r in records if r["type"] == "valid"]
    assert [r["step"] for r in valid] == [0, 1, 2]
    for r in valid:
        assert 0 <= r["nDCG@10"] <= 1 and 0 <= r["RR@10"] <= 1 and r["doc_nonzeros"] > 0 and r["flops"] > 0
    assert out["best"] == max(r["nDCG@10"] for r in valid)
    enc = SpladeEncoder(str(tmp_path / BEST))
    assert len(enc.encode_queries(["a claim about proteins"])[0]) > 0
    info = json.loads((tmp_path / BEST / "splade_training.json").read_text())
    assert info["pooling"] == "max" and info["step"] == out["best_step"]
    # WiSE-FT from the validated best checkpoint
    wise = json.loads((tmp_path / "checkpoint-wise" / "splade_training.json").read_text())
    assert out["checkpoint_wise"] == str(tmp_path / "checkpoint-wise")
    assert wise["interpolated"] == {"base": "splade-tiny", "model": str(tmp_path / BEST), "alpha": 0.5}


def test_crash_while_writing_keeps_the_previous_checkpoint(encoder, tmp_path, monkeypatch):
    write_checkpoint(tmp_path, LAST, encoder.model, encoder.tokenizer, {"step": 1},
                     extra=lambda d: (d / STATE_FILE).write_text("state 1"))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(encoder.tokenizer, "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_checkpoint(tmp_path, LAST, encoder.model, encoder.tokenizer, {"step": 2})
    assert (tmp_path / LAST / STATE_FILE).read_text() == "state 1"
    assert json.loads((tmp_path / LAST / "splade_training.json").read_text())["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [LAST]  # no temporary left behind
    # a crash between the two renames: the old checkpoint is put back on the next start
    os.rename(tmp_path / LAST, tmp_path / f".{LAST}.old")
    (tmp_path / f".{LAST}.tmp123").mkdir()
    recover_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST]
    assert (tmp_path / LAST / STATE_FILE).read_text() == "state 1"


LEVERS = ["--lora", "4", "--l2sp", "0.1", "--grad-cache-mini-batch", "1"]


@pytest.mark.slow
@pytest.mark.parametrize("levers", [[], LEVERS], ids=["plain", "lora-l2sp-gradcache"])
def test_two_processes_under_torchrun(triples, tmp_path, levers):
    """The same command under torchrun (2 CPU processes, gloo): per-process batches, all-gathered
    in-batch negatives and FLOPS, one log and one checkpoint written by the main process; also with
    LoRA, L2-SP and gradient caching together."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "splade_anserini.train",
           "--triples", triples, "--output-dir", str(tmp_path), "--max-steps", "2", "--batch-size", "2",
           "--max-length", "32", "--query-max-length", "16", "--log-every", "1", "--progress", "false",
           "--threads", "1", "--gather-across-devices", "--lambda-d", "1e-3", *levers]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len([line for line in proc.stdout.splitlines() if line.startswith("{")]) == 1
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert records[0]["world_size"] == 2 and records[-1]["steps"] == 2
    assert [r["step"] for r in records if r["type"] == "train"] == [1, 2]
    assert (tmp_path / LAST / STATE_FILE).is_file()
    state = torch.load(tmp_path / LAST / STATE_FILE, weights_only=True)  # tensors and plain values only
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["position"] == 2 * 2 * 2
    if levers:
        steps = [r for r in records if r["type"] == "train"]
        assert steps[0]["l2sp_distance"] == 0.0 and steps[1]["l2sp_distance"] > 0  # LoRA B starts at 0
        assert (tmp_path / LAST / "lora_adapter.pt").is_file()
        info = json.loads((tmp_path / LAST / "splade_training.json").read_text())
        assert info["lora"]["rank"] == 4 and info["lora"]["merged"]
        from splade_anserini.models import load_model

        _, hf = load_model(tmp_path / LAST)  # a plain masked-LM checkpoint
        assert not any("lora" in n for n in hf.state_dict())


def test_self_distillation_starts_from_agreement_and_is_logged(triples, tmp_path):
    # the teacher is a frozen copy of the starting model: at step 1 the student agrees with it (up to
    # dropout), so the KL term starts near 0
    out = train(small(triples, tmp_path, batch_size=4, max_steps=6, lr=2e-4, self_distill=True, distill="kl",
                      distill_weight=0.5))
    assert out["steps"] == 6
    steps = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    distill = [r["distill"] for r in steps if r["type"] == "train"]
    assert len(distill) == 6 and all(np.isfinite(distill))
    assert all(d >= 0 for d in distill) and distill[0] < 0.05, distill  # observed 0.006


def test_levers_deterministic_and_resume_equals_straight_run(triples, tmp_path):
    # LoRA + L2-SP + gradient caching, dropout on, gradient accumulation on: two straight runs give
    # the same bytes, and an interrupted + resumed run the same weights (the adapters are restored)
    pytest.importorskip("peft")
    kw = dict(grad_accum=2, lora=4, l2sp=0.1, grad_cache_mini_batch=1, lr=1e-3)
    straight = train(small(triples, tmp_path / "a", **kw))
    again = train(small(triples, tmp_path / "c", **kw))
    assert straight["steps"] == again["steps"] == 4
    wa, wc = weights(tmp_path / "a" / LAST), weights(tmp_path / "c" / LAST)
    assert all(torch.equal(wa[n], wc[n]) for n in wa)
    train(small(triples, tmp_path / "b", **kw), stop_after_steps=2)
    assert train(small(triples, tmp_path / "b", resume=True, **kw))["steps"] == 4
    wb = weights(tmp_path / "b" / LAST)
    assert set(wa) == set(wb) and not any("lora" in n for n in wa)
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6, msg=name)
    from splade_anserini.models import resolve_model

    w0 = weights(resolve_model("splade-tiny"))
    moved = [n for n in wa if n in w0 and not torch.equal(w0[n], wa[n])]
    assert moved and all(("attention" in n or "dense" in n) for n in moved)  # only adapted layers move

    records = [json.loads(line) for line in open(tmp_path / "a" / "log.jsonl")]
    dist = [r["l2sp_distance"] for r in records if r["type"] == "train"]
    assert dist[0] == 0.0 and dist[-1] > 0  # LoRA's B starts at 0 (and the first step has lr 0: warm-up)


def _cacm_guard(data_dir, tmp_path, n_queries=6, extra_docs=30):
    """A small out-of-domain set: CACM's first judged queries, their judged documents and a few others."""
    from splade_anserini.conversion.trec import read_qrels
    from splade_anserini.data import read_corpus, read_topics

    cacm = data_dir / "cacm"
    qrels = read_qrels(cacm / "qrels.txt")
    qids = [q for q in read_topics(cacm / "queries.tsv") if q in qrels][:n_queries]
    judged = {d for q in qids for d in qrels[q]}
    docs = [d for d in read_corpus(cacm / "corpus.jsonl")]
    keep = [d for d in docs if d.docid in judged] + [d for d in docs if d.docid not in judged][:extra_docs]
    (tmp_path / "g.jsonl").write_text("".join(json.dumps({"_id": d.docid, "text": d.text}) + "\n" for d in keep))
    topics = read_topics(cacm / "queries.tsv")
    (tmp_path / "g.tsv").write_text("".join(f"{q}\t{topics[q]}\n" for q in qids))
    (tmp_path / "g.qrels").write_text("".join(f"{q} 0 {d} {r}\n" for q in qids for d, r in qrels[q].items()))
    return dict(guard_corpus=str(tmp_path / "g.jsonl"), guard_queries=str(tmp_path / "g.tsv"),
                guard_qrels=str(tmp_path / "g.qrels"))


@pytest.mark.parametrize("max_drop", [0.0, 1.0])
def test_out_of_domain_guard_decides_which_checkpoint_may_be_best(data_dir, tmp_path, max_drop):
    """A checkpoint becomes checkpoint-best only while the guard set (CACM) stays within guard_max_drop of
    the starting model; a large learning rate breaks the model, so with no tolerance nothing qualifies."""
    sci = data_dir / "scifact"
    out = tmp_path / "out"
    cfg = config_from_dict(dict(
        corpus=str(sci / "corpus.jsonl"), queries=str(sci / "queries.train.tsv"), qrels=str(sci / "qrels.train.txt"),
        output_dir=str(out), valid_holdout=4, valid_max_docs=40, valid_every=1, batch_size=2, max_length=32,
        query_max_length=16, max_steps=3, lr=3e-3, progress=False, threads=1, guard_max_drop=max_drop,
        **_cacm_guard(data_dir, tmp_path)))
    result = train(cfg)
    records = [json.loads(line) for line in open(out / "log.jsonl")]
    start = next(r for r in records if r["type"] == "guard_start")["guard_nDCG@10"]
    valid = [r for r in records if r["type"] == "valid"]
    assert [r["step"] for r in valid] == [1, 2, 3] and 0 <= start <= 1
    eligible = [r for r in valid if r["guard_nDCG@10"] >= start - max_drop - 1e-9]
    assert all(r["best"] <= (r in eligible) for r in valid)
    if max_drop == 1.0:
        assert len(eligible) == 3 and result["best"] == pytest.approx(max(r["nDCG@10"] for r in valid), abs=1e-6)
    else:
        assert len(eligible) < 3  # the broken model lost on CACM: that checkpoint may not be the best
        assert result["best"] == (pytest.approx(max(r["nDCG@10"] for r in eligible), abs=1e-6) if eligible else None)
        assert (out / BEST).is_dir() == bool(eligible)


def test_guard_files_go_together(data_dir, tmp_path):
    from splade_anserini.train.config import ConfigError

    sci = data_dir / "scifact"
    with pytest.raises(ConfigError, match="go together"):
        config_from_dict(dict(corpus=str(sci / "corpus.jsonl"), queries=str(sci / "queries.train.tsv"),
                              qrels=str(sci / "qrels.train.txt"), output_dir=str(tmp_path), valid_holdout=4,
                              guard_corpus=str(sci / "corpus.jsonl"))).validate()


def test_guard_takes_a_subset_corpus_whose_qrels_judge_missing_documents(data_dir):
    """msmarco-dl19-subset holds the passages judged relevant; its qrels also judge passages left out. The guard
    (as the pipeline evaluates it) counts them unretrieved; a validation set still refuses them."""
    from types import SimpleNamespace

    from splade_anserini.conversion.errors import InputError
    from splade_anserini.train.data import build_guard, load_validation_set

    dl19 = data_dir / "msmarco-dl19-subset"
    files = [str(dl19 / "collection.tsv"), str(dl19 / "queries.dl19.tsv"), str(dl19 / "qrels.dl19.txt")]
    guard = build_guard(SimpleNamespace(guard_corpus=files[0], guard_queries=files[1], guard_qrels=files[2]))
    judged = {d for q in guard.qrels.values() for d in q}
    assert guard.queries and judged - set(guard.corpus)  # judged passages outside the subset are accepted
    with pytest.raises(InputError, match="is not in the corpus"):
        load_validation_set(*files)
