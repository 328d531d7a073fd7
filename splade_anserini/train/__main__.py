"""CLI: ``python -m splade_anserini.train [--config FILE] [--flag value ...]``.

Works unchanged under ``accelerate launch -m splade_anserini.train ...`` and ``torchrun -m ...``.
Bad configuration or input data: a one-line ``error: ...`` on stderr and exit status 2.
"""
from __future__ import annotations

import json
import os
import sys


from splade_anserini.cli import command


@command
def main(argv: list[str] | None = None) -> int:
    from splade_anserini.train import parse_args, train

    cfg = parse_args(argv)
    summary = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # one summary line under torchrun / accelerate launch
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
