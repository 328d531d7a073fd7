"""ONNX Runtime on the CPU, in one place: session options and sessions (the contract graph, the screened
query graph, the int8 screen's product). ``onnxruntime`` is imported here only, when a session opens."""
from __future__ import annotations


def session_options(threads: int = 0, prepack: bool = False):
    """ONNX Runtime CPU session options: ``threads`` intra-op threads (0: all cores), no prepacking
    unless ``prepack`` (the screened query graph's ``hidden.onnx``: no vocabulary projection to
    duplicate, and its run is about 20% faster with packed weights)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # ONNX Runtime's own warnings (e.g. unused initializers) are noise here
    # Prepacking copies every constant MatMul weight into a packed layout: the 15.6 MB vocabulary
    # projection twice in memory, for no measurable gain on a query's few rows (bench/query_latency.py).
    options.add_session_config_entry("session.disable_prepacking", "0" if prepack else "1")
    return options


def cpu_session(model: str | bytes, threads: int = 0, prepack: bool = False):
    """An ONNX Runtime CPU session for a model file's path or a serialized model, with :func:`session_options`."""
    import onnxruntime as ort

    return ort.InferenceSession(model, sess_options=session_options(threads, prepack), providers=["CPUExecutionProvider"])
