"""Serving without torch: ONNX export, the ONNX Runtime encoder with its screened query graph, and
Anserini's Java-side encoder (``python -m splade_anserini.export_onnx``)."""
