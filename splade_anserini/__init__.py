"""splade-anserini: SPLADE learned-sparse retrieval, from training to a Lucene impact index.

The public Python API, imported lazily (PEP 562): ``import splade_anserini`` loads no torch, JVM, Numba or
ONNX Runtime; each name below imports its module on first access. Accessing ``SpladeQueryEncoder`` starts
the JVM (the safe way, :mod:`splade_anserini.java`), as building a Pyserini encoder class needs it.

>>> from splade_anserini import SpladeQueryEncoder, OnnxSpladeEncoder, NumbaIndex
"""
import importlib as _importlib
import os as _os

__version__ = "0.1.0"

# ONNX Runtime (Python and Java) otherwise writes a telemetry database under ~/.cache/Microsoft on
# import: the tool writes only where it is told to (set it to 0 to allow it).
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

#: Each public name and the module that defines it (the subpackage paths stay importable too).
_API = {
    # encoding
    "SpladeEncoder": "splade_anserini.encode.splade",
    "encode_corpus": "splade_anserini.encode.corpus",
    # indexing
    "build_index": "splade_anserini.index.build",
    "NumbaIndex": "splade_anserini.index.numba_index",
    # searching
    "SpladeQueryEncoder": "splade_anserini.search.query_encoder",
    "QueryVectorizer": "splade_anserini.search.query_encoder",
    "OnnxSpladeEncoder": "splade_anserini.serve.onnx_encoder",
    "pyserini_search": "splade_anserini.search.run",
    "impact_search": "splade_anserini.search.impact_searcher",
    # evaluating
    "evaluate_run": "splade_anserini.evaluate.measures",
    "evaluate_files": "splade_anserini.evaluate.measures",
    # the whole pipeline, data and models
    "run_pipeline": "splade_anserini.pipeline",
    "PipelineConfig": "splade_anserini.pipeline_run",
    "resolve_dataset": "splade_anserini.data",
    "read_corpus": "splade_anserini.data",
    "resolve_model": "splade_anserini.models",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    """Import a public name's module on first access and cache the name in this module."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
