"""SPLADE-max head without the ``[B, L, V]`` tensor in memory or in the backward pass.

``rep[b, v] = log1p(relu(max_l (h[b, l] . W[v] + c[v])))`` over the unpadded positions ``l``. The
forward pass computes each text's MLM logits as ``W @ h[b]^T`` (``[V, L_b]``, padding skipped) and
keeps only the maximum and its position. The gradient of a max flows to its argmax alone, and
``log1p(relu(.))`` has zero gradient where the maximum is not positive, so the backward pass touches
only the active ``(b, v)`` pairs (a few hundred per text) instead of ``B x L x V`` logits. Values and
gradients equal :func:`splade_anserini.encode.head.splade_activation` on the full logits (up to exact ties
in the max); a training step on CPU is about 3x faster than autograd through the logits.

Screening (CPU, fp32 inputs): the ``[V, L_b]`` product is first taken in bf16 (about 2.5x faster on
CPUs with bf16 dot products), and :func:`splade_anserini.encode.head.screen_candidates` (the bound the
inference encoder uses) keeps the vocabulary entries whose exact pooled logit may be positive; the
others have weight 0 and gradient 0. Only the entries that pass (a few hundred to a few thousand of
30,522) are recomputed in fp32, so the result is the fp32 result: the same active terms, the same
maxima and argmaxes.
"""
from __future__ import annotations

import torch

from splade_anserini.encode.head import fast_bf16_cpu, screen_candidates


def _exact_max(w: torch.Tensor, c: torch.Tensor | None, hb_t: torch.Tensor):
    logits = torch.matmul(w, hb_t) if c is None else torch.addmm(c, w, hb_t)
    return logits.max(dim=1)          # contiguous reduction over positions


class _FusedMaxSplade(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, mask, chunk, screen):
        B, L, H = hidden.shape
        V = weight.shape[0]
        maxes = torch.zeros((B, V), dtype=torch.float32, device=hidden.device)
        argmax = torch.zeros((B, V), dtype=torch.long, device=hidden.device)
        w = weight.to(hidden.dtype)
        c = None if bias is None else bias.to(hidden.dtype).unsqueeze(1)
        if screen:
            w16 = w.to(torch.bfloat16)
            w_norm = w.norm(dim=1)
        for b in range(B):
            pos = mask[b].nonzero(as_tuple=True)[0]
            if pos.numel() == 0:
                continue
            hb_t = hidden[b, pos].t()                   # [H, L_b]
            if screen:
                h16 = hb_t.to(torch.bfloat16)
                h_norm = hb_t.norm(dim=0).max()
                for lo in range(0, V, chunk):
                    hi = min(V, lo + chunk)
                    approx = torch.matmul(w16[lo:hi], h16).amax(dim=1).float()
                    keep = screen_candidates(approx, None if c is None else c[lo:hi, 0], w_norm[lo:hi],
                                             h_norm).nonzero(as_tuple=True)[0]
                    if keep.numel():
                        v = keep + lo
                        m, a = _exact_max(w[v], None if c is None else c[v], hb_t)
                        maxes[b, v] = m.float()
                        argmax[b, v] = pos[a]
            else:
                for lo in range(0, V, chunk):
                    hi = min(V, lo + chunk)
                    m, a = _exact_max(w[lo:hi], None if c is None else c[lo:hi], hb_t)
                    maxes[b, lo:hi] = m.float()
                    argmax[b, lo:hi] = pos[a]
        ctx.save_for_backward(hidden, weight, maxes, argmax)
        ctx.has_bias = bias is not None
        return torch.log1p(torch.relu(maxes))

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, maxes, argmax = ctx.saved_tensors
        b_idx, v_idx = (maxes > 0).nonzero(as_tuple=True)
        g = grad_out.float()[b_idx, v_idx] / (1.0 + maxes[b_idx, v_idx])
        l_idx = argmax[b_idx, v_idx]
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            B, L, H = hidden.shape
            grad_hidden = torch.zeros((B * L, H), dtype=torch.float32, device=hidden.device)
            # index_add_, not index_put_(accumulate=True): on CPU the latter sums duplicates in a thread-dependent
            # order, so two runs with more than one thread gave different weights
            grad_hidden.index_add_(0, b_idx * L + l_idx, g.unsqueeze(1) * weight[v_idx].float())
            grad_hidden = grad_hidden.view(B, L, H).to(hidden.dtype)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            grad_weight.index_add_(0, v_idx, g.unsqueeze(1) * hidden[b_idx, l_idx].float())
            grad_weight = grad_weight.to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
            grad_bias.index_add_(0, v_idx, g)
            grad_bias = grad_bias.to(weight.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None


def fused_max_splade(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     mask: torch.Tensor, chunk: int = 32768, screen: bool | None = None) -> torch.Tensor:
    """SPLADE-max representation ``[B, V]`` (fp32) from the MLM head's transformed hidden states
    ``[B, L, H]``, the decoder ``weight [V, H]`` and ``bias [V]``, and the attention ``mask [B, L]``.

    ``screen`` (default: on CPU with fp32 inputs and native bf16 dot products) takes the exact
    bf16-screened path described above; without native bf16 it is about 6x slower than fp32.
    """
    if screen is None:
        screen = hidden.device.type == "cpu" and hidden.dtype == torch.float32 and weight.dtype == torch.float32 \
            and fast_bf16_cpu()
    return _FusedMaxSplade.apply(hidden, weight, bias, mask, chunk, bool(screen))
