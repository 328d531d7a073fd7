"""splade-anserini: SPLADE learned-sparse retrieval, from training to a Lucene impact index."""
import os as _os

__version__ = "0.1.0"

# ONNX Runtime (Python and Java) otherwise writes a telemetry database under ~/.cache/Microsoft on
# import: the tool writes only where it is told to (set it to 0 to allow it).
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
