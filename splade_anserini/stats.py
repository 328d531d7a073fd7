"""``python -m splade_anserini.stats``: the entry point of :mod:`splade_anserini.evaluate.stats`."""
import sys

from splade_anserini.evaluate.stats import main

if __name__ == "__main__":
    sys.exit(main())
