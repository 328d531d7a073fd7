"""SPLADE training: ``python -m splade_anserini.train`` (see :mod:`.config` for every option).

Nothing heavy at import: torch, transformers and accelerate load when training starts.
"""
from __future__ import annotations

from splade_anserini.train.config import ConfigError, TrainConfig, config_from_dict, parse_args

__all__ = ["ConfigError", "TrainConfig", "config_from_dict", "parse_args", "train"]


def train(cfg: TrainConfig, **kwargs):
    """Run training for ``cfg``; returns the summary dict (see :meth:`.loop.Trainer.train`)."""
    from splade_anserini.train.loop import train as _train

    return _train(cfg, **kwargs)
