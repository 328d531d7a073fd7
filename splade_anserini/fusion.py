"""``python -m splade_anserini.fusion``: the entry point of :mod:`splade_anserini.search.fusion`."""
import sys

from splade_anserini.search.fusion import main

if __name__ == "__main__":
    sys.exit(main())
