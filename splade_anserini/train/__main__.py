"""CLI: ``python -m splade_anserini.train [--config FILE] [--flag value ...]``.

Works unchanged under ``accelerate launch -m splade_anserini.train ...`` and ``torchrun -m ...``.
Bad configuration or input data: a one-line ``error: ...`` on stderr and exit status 2.
"""
from __future__ import annotations

import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from conversion.errors import InputError

    from . import ConfigError, parse_args, train

    try:
        cfg = parse_args(argv)
        summary = train(cfg)
    except (ConfigError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one-line errors for the expected failures of loading a model or a file
        from ..models import ModelNotFoundError

        if isinstance(exc, (ModelNotFoundError, FileNotFoundError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    if os.environ.get("RANK", "0") == "0":  # one summary line under torchrun / accelerate launch
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
