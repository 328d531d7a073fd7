"""Accelerate and torch.distributed helpers of the trainer: the accelerator, collectives, threads."""
from __future__ import annotations

import contextlib

import torch

from splade_anserini.train.config import TrainConfig
from splade_anserini.train.runlog import info


def make_accelerator(cfg: TrainConfig):
    """An ``accelerate.Accelerator``: mixed precision on GPU only, several CPU processes (gloo)
    under ``torchrun`` / ``accelerate launch`` on a machine without GPU."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    if cfg.precision != "fp32" and not cuda:
        info(f"precision {cfg.precision} requested but no GPU: training in fp32 (autocast is GPU-only here)")
    return Accelerator(mixed_precision=cfg.precision.replace("fp32", "no") if cuda else "no", cpu=not cuda,
                       step_scheduler_with_optimizer=False)


def broadcast(obj):
    """The main process's ``obj`` on every process."""
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj], from_process=0)[0]


def all_gather(x: torch.Tensor) -> torch.Tensor:
    """Differentiable all-gather along dim 0 (equal shapes): each process's gradient for the gathered
    tensor is summed and handed back slice by slice."""
    from torch.distributed.nn.functional import all_gather as gather

    return torch.cat(gather(x.contiguous()))


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """``torch.set_num_threads(threads)`` for the block (no change when ``threads`` is falsy)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
