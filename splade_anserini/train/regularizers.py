"""Sparsity regularizers and their schedule, always computed in fp32.

* FLOPS (Paria et al. 2020; SPLADE Eq. 4): ``sum_j (mean_i |w_ij|)^2`` over a batch of
  representations: a smooth relaxation of the expected number of multiplications per query-document
  pair, pushing down most the dimensions that are active in many texts.
* L1: ``mean_i sum_j |w_ij|``.
* :class:`QuadraticWarmup`: ``lambda(t) = lambda * min(1, (t / T)^2)``, as SPLADE grows
  ``lambda_q`` and ``lambda_d`` to step ``T`` and holds them (a model first learns to rank, then to be sparse).
"""
from __future__ import annotations

import torch


def flops_regularizer(reps: torch.Tensor) -> torch.Tensor:
    return reps.float().abs().mean(dim=0).pow(2).sum()


def l1_regularizer(reps: torch.Tensor) -> torch.Tensor:
    return reps.float().abs().sum(dim=-1).mean()


REGULARIZERS = {"flops": flops_regularizer, "l1": l1_regularizer}


class QuadraticWarmup:
    """``value(step) = lam * min(1, (step / warmup_steps)^2)``; constant ``lam`` when ``warmup_steps`` is 0."""

    def __init__(self, lam: float, warmup_steps: int):
        if lam < 0 or warmup_steps < 0:
            raise ValueError("lambda and warmup_steps must be >= 0")
        self.lam = float(lam)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int) -> float:
        if self.warmup_steps == 0 or step >= self.warmup_steps:
            return self.lam
        return self.lam * (max(step, 0) / self.warmup_steps) ** 2


@torch.no_grad()
def active_dims(reps: torch.Tensor) -> float:
    """Average number of non-zero dimensions per representation."""
    return float((reps > 0).sum(dim=-1).float().mean()) if reps.numel() else 0.0


@torch.no_grad()
def batch_flops(q: torch.Tensor, d: torch.Tensor) -> float:
    """``sum_j p_j(q) p_j(d)`` with the probabilities estimated on the batch (the paper's FLOPS)."""
    if not q.numel() or not d.numel():
        return 0.0
    return float(((q > 0).float().mean(0) * (d > 0).float().mean(0)).sum())
