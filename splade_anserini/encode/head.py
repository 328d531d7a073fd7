"""The SPLADE head, shared by inference (:mod:`.splade`) and training (:mod:`.train`).

``w_j = pool_i log(1 + ReLU(logit_ij))`` over the non-padding tokens ``i`` of a text, with ``pool`` =
max (SPLADE v2) or sum (SPLADE v1), where ``logit_ij = h_i . W_j + b_j`` is the masked-LM vocabulary
projection (the decoder) of the head's transformed hidden state ``h_i``.

This module holds the parts of that computation written once: the MLM head split into encoder,
transform and decoder (:func:`mlm_head`), the pooling, and the exact bf16 *screen*
(:func:`screen_candidates`): with a bf16 approximation of each pooled logit, a proven error bound
tells which vocabulary entries can have a positive pooled logit. Entries screened out have weight 0
(and gradient 0) in fp32 as well, so recomputing only the candidates in fp32 gives the fp32 result.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("max", "sum")

# The screening bound. bf16 has 8 significant bits, unit roundoff u = 2^-8. For a dot product of
# bf16-rounded factors with fp32 accumulation, |approx - exact| <= (2u + u^2 + fp32 terms) * sum_k
# |h_k w_k| <= ~2^-7 ||h|| ||w||, and rounding the bf16 output adds at most u |approx| / (1 - u).
# The screen uses twice both bounds plus a constant: an entry is a candidate when
#     approx + 2^-7 |approx| + b + 2^-6 max_i ||h_i|| ||W_j|| + 10^-3 > 0.
# As x + 2^-7 |x| is monotone, the bound holds for the max over tokens as for each token.
SCREEN_ABS_COEF = 2.0 ** -7
SCREEN_NORM_COEF = 2.0 ** -6
SCREEN_CONST = 1e-3


def screen_candidates(approx: torch.Tensor, bias: torch.Tensor | None, weight_norm: torch.Tensor,
                      hidden_norm: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the vocabulary entries whose pooled logit may be positive.

    ``approx``: ``max_i bf16(h_i) . bf16(W_j)`` in fp32, bias excluded (any leading shape, vocabulary
    last); ``bias``: ``b_j`` or None; ``weight_norm``: ``||W_j||``; ``hidden_norm``: ``max_i ||h_i||``,
    broadcastable against ``approx`` (e.g. ``[B, 1]`` or a scalar). A False entry provably has
    ``max_i h_i . W_j + b_j <= 0``. ``approx`` is left unchanged.
    """
    bound = approx.abs().mul_(SCREEN_ABS_COEF).add_(approx)
    if bias is not None:
        bound.add_(bias)
    bound.add_(hidden_norm * weight_norm * SCREEN_NORM_COEF).add_(SCREEN_CONST)
    return bound > 0


def splade_activation(logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "max") -> torch.Tensor:
    """Differentiable SPLADE pooling for training: ``[B, L, V]`` logits -> ``[B, V]`` representation."""
    act = torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1).to(logits.dtype)
    if pooling == "max":
        return act.amax(dim=1)
    if pooling == "sum":
        return act.sum(dim=1)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def pool_inference(logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Inference pooling that reuses ``logits`` in place (it is consumed)."""
    pad = attention_mask == 0
    if pooling == "max":
        if pad.any():
            logits.masked_fill_(pad.unsqueeze(-1), float("-inf"))
        return torch.log1p(torch.relu(logits.amax(dim=1)))
    logits.relu_().log1p_()
    if pad.any():
        logits.masked_fill_(pad.unsqueeze(-1), 0.0)
    return logits.sum(dim=1)


@dataclass(frozen=True)
class MlmHead:
    """A masked LM taken apart: ``logits = decoder(transform(encoder(ids, mask).last_hidden_state))``."""

    encoder: nn.Module
    transform: Callable[[torch.Tensor], torch.Tensor]
    decoder: nn.Linear

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The decoder's input ``[B, L, H]``: the model's forward pass without the vocabulary projection."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.transform(out)


def mlm_head(hf_model: nn.Module) -> MlmHead | None:
    """The parts of a BERT-, DistilBERT-, RoBERTa- or ModernBERT-style ``AutoModelForMaskedLM``,
    or None for other layouts (whose callers then compute the full logits)."""
    preds = getattr(getattr(hf_model, "cls", None), "predictions", None)
    if preds is not None and hasattr(preds, "transform") and isinstance(getattr(preds, "decoder", None), nn.Linear):
        return MlmHead(hf_model.base_model, preds.transform, preds.decoder)
    if all(hasattr(hf_model, n) for n in ("vocab_transform", "activation", "vocab_layer_norm")) \
            and isinstance(getattr(hf_model, "vocab_projector", None), nn.Linear):
        def distilbert(h: torch.Tensor, m=hf_model) -> torch.Tensor:
            return m.vocab_layer_norm(m.activation(m.vocab_transform(h)))
        return MlmHead(hf_model.base_model, distilbert, hf_model.vocab_projector)
    lm_head = getattr(hf_model, "lm_head", None)
    if all(hasattr(lm_head, n) for n in ("dense", "layer_norm")) \
            and isinstance(getattr(lm_head, "decoder", None), nn.Linear):
        from transformers.activations import gelu

        def roberta(h: torch.Tensor, m=lm_head) -> torch.Tensor:
            return m.layer_norm(gelu(m.dense(h)))
        return MlmHead(hf_model.base_model, roberta, lm_head.decoder)
    if isinstance(getattr(hf_model, "head", None), nn.Module) \
            and isinstance(getattr(hf_model, "decoder", None), nn.Linear):
        return MlmHead(hf_model.base_model, hf_model.head, hf_model.decoder)
    return None


@torch.inference_mode()
def head_reproduces_logits(hf_model: nn.Module, head: MlmHead, tokenizer, device: torch.device) -> bool:
    """Whether ``head``'s parts give the model's own logits (fp32 hidden states, a plain linear
    decoder): checked on a padded two-text batch before relying on them."""
    try:
        ids = tokenizer(["splade encodes documents", "a longer second text to force some padding here"],
                        padding=True, return_tensors="pt", return_token_type_ids=False)
        ids = {k: v.to(device) for k, v in ids.items()}
        full = hf_model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
        hidden = head.hidden(ids["input_ids"], ids["attention_mask"])
        if hidden.shape[:2] != ids["input_ids"].shape or hidden.dtype != torch.float32:
            return False
        mine = F.linear(hidden, head.decoder.weight, head.decoder.bias)
        keep = ids["attention_mask"].bool()
        return bool(torch.allclose(full[keep].float(), mine[keep], rtol=1e-4, atol=1e-4))
    except Exception:  # noqa: BLE001 - any surprise means: do not use the parts
        return False


@functools.lru_cache(maxsize=1)
def fast_bf16_cpu() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX) through oneDNN: only
    then is the screened decoder faster than the plain fp32 one. Asked once per process (the fused
    training head asks at every forward pass)."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = fh.read()
    except OSError:  # pragma: no cover - not Linux
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
