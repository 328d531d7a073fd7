"""``python -m splade_anserini.evaluate``: see :mod:`splade_anserini.evaluate.measures`."""
import sys

from splade_anserini.evaluate.measures import main

sys.exit(main())
