"""``python -m splade_anserini.export_onnx``: the entry point of :mod:`splade_anserini.serve.export_onnx`."""
import sys

from splade_anserini.serve.export_onnx import main

if __name__ == "__main__":
    sys.exit(main())
