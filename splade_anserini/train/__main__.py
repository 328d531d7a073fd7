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


@command
def main(argv: list[str] | None = None) -> int:
    from splade_anserini.train import parse_args, train

    cfg = parse_args(argv)
    check_train_extra()
    summary = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # one summary line under torchrun / accelerate launch
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
