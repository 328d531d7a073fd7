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


class L2SP:
    """L2-SP (Li et al. 2018): ``lam / 2 * ||theta - theta_0||^2``, a pull toward the starting weights
    instead of toward zero, so fine-tuning moves only as far from the start as the task pays for.

    ``pairs`` are ``(parameter, starting value)``; under LoRA the frozen weights cannot move and the
    distance is the adapters' ``B A`` product (``deltas``, a callable returning the differentiable
    deltas). :meth:`add_gradient` adds ``lam * (theta - theta_0)`` (through autograd for LoRA) to the
    parameters' ``.grad`` directly: the penalty is the same on every process, so it needs no
    all-reduce, and it never enters the DDP-wrapped forward.
    """

    def __init__(self, lam: float, pairs: list[tuple[torch.nn.Parameter, torch.Tensor]] | None = None,
                 deltas=None, params: list[torch.nn.Parameter] | None = None):
        if lam < 0:
            raise ValueError(f"L2-SP weight must be >= 0, got {lam}")
        if (pairs is None) == (deltas is None):
            raise ValueError("give either (parameter, start) pairs or a deltas callable")
        self.lam = float(lam)
        self.pairs = pairs
        self.deltas = deltas
        self.params = [p for p, _ in pairs] if pairs is not None else list(params or [])

    @classmethod
    def from_start(cls, lam: float, model: torch.nn.Module, start_state: dict[str, torch.Tensor]) -> "L2SP":
        """Anchor every trainable parameter of ``model`` to the tensor of the same name in
        ``start_state`` (a ``state_dict`` of the starting checkpoint; tied weights counted once)."""
        pairs, seen = [], set()
        for name, p in model.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if name not in start_state:
                raise ValueError(f"L2-SP: parameter {name} has no starting value")
            start = start_state[name]
            if start.shape != p.shape:
                raise ValueError(f"L2-SP: {name} is {tuple(p.shape)}, its starting value {tuple(start.shape)}")
            pairs.append((p, start.detach().to(device=p.device, dtype=torch.float32).clone()))
        return cls(lam, pairs=pairs)

    @classmethod
    def from_lora(cls, lam: float, adapter) -> "L2SP":
        """Under LoRA: the distance of the effective weights from the start is ``sum ||(alpha/r) B A||^2``."""
        params = [p for p in adapter.hf_model.parameters() if p.requires_grad]
        return cls(lam, deltas=adapter.delta_weights, params=params)

    def distance(self) -> torch.Tensor:
        """``||theta - theta_0||^2`` (fp32, differentiable)."""
        if self.pairs is not None:
            terms = [(p.float() - a).pow(2).sum() for p, a in self.pairs]
        else:
            terms = [d.float().pow(2).sum() for d in self.deltas()]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    def add_gradient(self, scale: float = 1.0) -> float:
        """Add ``scale * d(lam/2 * distance)/d theta`` to ``.grad``; returns the distance (for the log)."""
        if self.pairs is not None:  # closed form, no graph
            with torch.no_grad():
                dist = 0.0
                for p, a in self.pairs:
                    diff = p.float() - a
                    dist += float(diff.pow(2).sum())
                    if self.lam:
                        g = (self.lam * scale * diff).to(p.dtype)
                        p.grad = g if p.grad is None else p.grad.add_(g)
            return dist
        dist_t = self.distance()
        if self.lam and self.params:
            grads = torch.autograd.grad(0.5 * self.lam * scale * dist_t, self.params, allow_unused=True)
            for p, g in zip(self.params, grads):
                if g is not None:
                    p.grad = g.to(p.dtype) if p.grad is None else p.grad.add_(g.to(p.dtype))
        return float(dist_t.detach())
