"""CLI: ``python -m splade_anserini.train [--config FILE] [--flag value ...]``.

Works unchanged under ``accelerate launch -m splade_anserini.train ...`` and ``torchrun -m ...``.
Bad configuration or input data: a one-line ``error: ...`` on stderr and exit status 2.
"""
from __future__ import annotations

import json
import os
import sys


from splade_anserini.cli import command


#: The packages of the ``train`` extra that training imports (peft only for LoRA, matplotlib for plots).
TRAIN_EXTRA = ("accelerate",)


class MissingExtraError(RuntimeError):
    """Training was asked for without the ``train`` extra installed (bad setup: exit status 2)."""

    exit_status = 2


def check_train_extra() -> None:
    """Refuse, in one line naming the extra, when a package training needs is not installed."""
    import importlib.util

    try:
        missing = any(importlib.util.find_spec(name) is None for name in TRAIN_EXTRA)
    except (ImportError, ValueError):  # a package blocked in sys.modules, or a broken install
        missing = True
    if missing:
        raise MissingExtraError('training needs the train extra: pip install "splade-anserini[train]"')


def check_guard_data(cfg) -> None:
    """A guard file that is not there: one line naming the options, before any work (not a bare path)."""
    from pathlib import Path

    from splade_anserini.conversion.errors import UsageError

    for option, path in (("--guard-corpus", cfg.guard_corpus), ("--guard-queries", cfg.guard_queries),
                         ("--guard-qrels", cfg.guard_qrels)):
        if path and not Path(path).is_file():
            raise UsageError(f"{option} {path}: no such file; the out-of-domain guard (a corpus, queries and qrels "
                             "of another domain) keeps checkpoint-best from losing more than --guard-max-drop "
                             'nDCG@10 outside the training data: give its files, or --guard-corpus "" '
                             '--guard-queries "" --guard-qrels "" to train without it')


@command
def main(argv: list[str] | None = None) -> int:
    from splade_anserini.train import parse_args, train

    cfg = parse_args(argv)
    check_train_extra()
    check_guard_data(cfg)
    summary = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # one summary line under torchrun / accelerate launch
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
