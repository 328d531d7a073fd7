"""``python -m splade_anserini.index``: see :mod:`splade_anserini.index.build`."""
import sys

from splade_anserini.index.build import main

sys.exit(main())
