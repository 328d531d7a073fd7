"""``python -m splade_anserini.parity``: the entry point of :mod:`splade_anserini.evaluate.parity`."""
import sys

from splade_anserini.evaluate.parity import main

if __name__ == "__main__":
    sys.exit(main())
