"""SPLADE training losses (SPLADE v2 paper, Eqs. 3-5, and the distillation losses of SPLADE++).

Scores are dot products of sparse representations. Documents of a batch are laid out as in
:func:`splade_anserini.train.data.tokenize_batch`: the ``B`` positives first (row ``i`` is query
``i``'s), then each query's ``k`` hard negatives in query order.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def in_batch_scores(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` scores of every query against every document of the batch."""
    return q @ d.t()


def own_scores(q: torch.Tensor, d: torch.Tensor, k: int) -> torch.Tensor:
    """``[B, 1 + k]`` scores of each query against its positive and its own ``k`` negatives."""
    B = q.shape[0]
    pos = (q * d[:B]).sum(-1, keepdim=True)
    if k == 0:
        return pos
    negs = d[B:B + B * k].view(B, k, -1)
    return torch.cat([pos, torch.einsum("bv,bkv->bk", q, negs)], dim=1)


def contrastive_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """InfoNCE: ``-log softmax(scores)[target]`` averaged over queries (paper Eq. 3 with in-batch
    and hard negatives when ``scores`` covers the whole batch, Eq. 3 with hard negatives alone when
    it covers ``own_scores``)."""
    return F.cross_entropy(scores.float(), targets)


def margin_mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Margin-MSE (Hofstätter et al. 2020): ``mean((s+ - s-) - (t+ - t-))^2`` over queries and negatives.

    ``student`` and ``teacher`` are ``[B, 1 + k]`` with the positive in column 0.
    """
    s_margin = student[:, :1] - student[:, 1:]
    t_margin = teacher[:, :1] - teacher[:, 1:]
    return F.mse_loss(s_margin.float(), t_margin.float())


def kl_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, summed over candidates, mean over queries."""
    t = temperature
    log_p_s = F.log_softmax(student.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher.float() / t, dim=-1)
    return (t * t) * (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()
