"""``python -m splade_anserini.search``: see :mod:`splade_anserini.search.run`."""
import sys

from splade_anserini.search.run import main

sys.exit(main())
