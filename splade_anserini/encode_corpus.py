"""``python -m splade_anserini.encode_corpus``: the entry point of :mod:`splade_anserini.encode.corpus`."""
import sys

from splade_anserini.encode.corpus import main

if __name__ == "__main__":
    sys.exit(main())
