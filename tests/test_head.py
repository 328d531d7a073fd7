"""The SPLADE head's parts: the MLM head taken apart for each supported architecture gives the
model's own logits, and the screen never drops a term whose exact pooled logit is positive."""
from __future__ import annotations

import io

import pytest
import torch

from splade_anserini.encode.head import head_reproduces_logits, mlm_head, screen_candidates
from splade_anserini.progress import Progress


def _tiny(kind: str, vocab_size: int):
    import transformers as tf

    small = dict(vocab_size=vocab_size, hidden_size=32, num_attention_heads=2, intermediate_size=48)
    if kind == "bert":
        return tf.BertForMaskedLM(tf.BertConfig(num_hidden_layers=1, **small))
    if kind == "distilbert":
        return tf.DistilBertForMaskedLM(tf.DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=1, n_heads=2,
                                                            hidden_dim=48))
    if kind == "roberta":
        return tf.RobertaForMaskedLM(tf.RobertaConfig(num_hidden_layers=1, pad_token_id=0, **small))
    if kind == "modernbert":
        return tf.ModernBertForMaskedLM(tf.ModernBertConfig(num_hidden_layers=1, pad_token_id=0,
                                                            attn_implementation="eager", **small))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "modernbert"])
def test_mlm_head_parts_give_the_model_logits(encoder, kind):
    torch.manual_seed(0)
    model = _tiny(kind, encoder.vocab_size).eval()
    head = mlm_head(model)
    assert head is not None and head.decoder is model.get_output_embeddings()
    assert head_reproduces_logits(model, head, encoder.tokenizer, torch.device("cpu"))


def test_mlm_head_of_the_encoder_and_an_unknown_layout(encoder):
    head = mlm_head(encoder.model)
    assert head is not None and head_reproduces_logits(encoder.model, head, encoder.tokenizer, torch.device("cpu"))
    assert mlm_head(torch.nn.Linear(4, 4)) is None


def test_screen_keeps_every_positive_pooled_logit():
    torch.manual_seed(1)
    h, w, b = torch.randn(7, 64) * 3, torch.randn(500, 64), torch.randn(500) * 2
    exact = (h @ w.T + b).amax(dim=0)
    approx = (h.to(torch.bfloat16) @ w.to(torch.bfloat16).T).amax(dim=0).float()
    keep = screen_candidates(approx, b, w.norm(dim=1), h.norm(dim=1).max())
    assert bool(keep[exact > 0].all())          # no positive term is ever dropped
    assert 0 < int(keep.sum()) < len(keep)        # and the screen does drop some


def test_progress_writes_one_line_when_not_a_terminal():
    out = io.StringIO()
    with Progress("encode", 5, unit="doc", file=out) as bar:
        bar.update(2)
        bar.update(3)
        bar.set_postfix(loss="0.1")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("encode: 5/5 doc in ") and "\r" not in out.getvalue()
    quiet = io.StringIO()
    Progress("encode", 5, file=quiet, enabled=False).close()
    assert quiet.getvalue() == ""
