"""Gradient caching (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup"; sentence-transformers' ``CachedSpladeLoss``): in-batch negatives over a batch larger
than memory allows, with the gradients of the whole batch.

1. Encode the batch in chunks of ``mini_batch`` examples without a graph, keeping each chunk's RNG
   state (dropout).
2. Compute the loss on the full ``[B, V]`` / ``[N, V]`` representations and its gradient with
   respect to them (the loss sees every in-batch negative; nothing of the encoder is kept).
3. Re-encode each chunk with a graph under its saved RNG state (the same dropout masks, so the same
   representations) and back-propagate the cached representation gradients through it.

Peak memory is one chunk's activations instead of the batch's; the gradients equal the plain loss's
(up to float summation order). A chunk holds the queries ``[a, b)``, their positives and their hard
negatives, so both the query and the document encoder see every chunk (one forward per backward,
as DDP wants).
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch


class RandContext:
    """Captures the torch RNG state at construction and replays it inside ``with`` (the global RNG is
    left as it was before the ``with``), so a re-encoding draws the same dropout masks."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        self.cuda = [torch.cuda.get_rng_state(d) for d in self.devices]
        self._fork = None

    def __enter__(self):
        self._fork = torch.random.fork_rng(devices=self.devices)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu)
        for d, state in zip(self.devices, self.cuda):
            torch.cuda.set_rng_state(state, d)

    def __exit__(self, *exc):
        self._fork.__exit__(*exc)
        self._fork = None


def chunk_indices(batch_size: int, k: int, mini_batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(query rows, document rows)`` per chunk of ``mini_batch`` examples, in the document layout of
    :func:`~.data.tokenize_batch` (positives ``0..B-1``, then ``k`` negatives per query)."""
    if mini_batch < 1:
        raise ValueError(f"mini_batch must be >= 1, got {mini_batch}")
    out = []
    for a in range(0, batch_size, mini_batch):
        b = min(batch_size, a + mini_batch)
        q_rows = torch.arange(a, b)
        d_rows = torch.cat([q_rows, batch_size + torch.arange(a * k, b * k)])
        out.append((q_rows, d_rows))
    return out


def _trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop padding columns that no row of the chunk uses (as if the chunk were tokenized alone)."""
    length = int(mask.sum(dim=1).max()) if mask.numel() else 0
    return ids[:, :max(length, 1)], mask[:, :max(length, 1)]


def _chunk(batch: dict, q_rows: torch.Tensor, d_rows: torch.Tensor):
    q_ids, q_mask = _trim(batch["q_ids"][q_rows], batch["q_mask"][q_rows])
    d_ids, d_mask = _trim(batch["d_ids"][d_rows], batch["d_mask"][d_rows])
    return q_ids, q_mask, d_ids, d_mask


def cached_step(model: Callable, batch: dict, loss_fn: Callable, mini_batch: int, *,
                backward: Callable[[torch.Tensor], None] = torch.Tensor.backward, scale: float = 1.0,
                no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
                autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
    """One gradient-cached forward/backward over ``batch`` (as built by ``tokenize_batch``).

    ``model(q_ids, q_mask, d_ids, d_mask) -> (q_reps, d_reps)``; ``loss_fn(q, d) -> (loss, parts)``
    on the full representations. Gradients of ``scale * loss`` are accumulated into the parameters
    through ``backward`` (e.g. ``accelerator.backward``); ``no_sync()`` (DDP) wraps every chunk's
    backward but the last, so the gradients are all-reduced once. Returns ``(loss, parts)``.
    """
    B, k = batch["q_ids"].shape[0], batch["k"]
    chunks = chunk_indices(B, k, mini_batch)
    q_parts, d_parts, states = [], [], []
    with torch.no_grad():
        for q_rows, d_rows in chunks:
            states.append(RandContext())
            with autocast():
                q_c, d_c = model(*_chunk(batch, q_rows, d_rows))
            q_parts.append(q_c.float())
            d_parts.append(d_c.float())
    V = q_parts[0].shape[1]
    device = q_parts[0].device
    q = torch.zeros(B, V, device=device)
    d = torch.zeros(batch["d_ids"].shape[0], V, device=device)
    for (q_rows, d_rows), q_c, d_c in zip(chunks, q_parts, d_parts):
        q[q_rows.to(device)] = q_c
        d[d_rows.to(device)] = d_c
    del q_parts, d_parts
    q.requires_grad_(True)
    d.requires_grad_(True)
    loss, parts = loss_fn(q, d)
    grad_q, grad_d = torch.autograd.grad(loss * scale, [q, d], allow_unused=True)
    grad_q = torch.zeros_like(q) if grad_q is None else grad_q
    grad_d = torch.zeros_like(d) if grad_d is None else grad_d
    for i, ((q_rows, d_rows), state) in enumerate(zip(chunks, states)):
        last = i == len(chunks) - 1
        sync = contextlib.nullcontext() if (last or no_sync is None) else no_sync()
        with sync, state:
            with autocast():
                q_c, d_c = model(*_chunk(batch, q_rows, d_rows))
            # the surrogate's gradient w.r.t. the chunk's representations is the cached gradient
            surrogate = (q_c.float() * grad_q[q_rows.to(device)]).sum() + (d_c.float() * grad_d[d_rows.to(device)]).sum()
            backward(surrogate)
    return loss.detach(), parts
