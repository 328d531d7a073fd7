"""File formats and quantization for SPLADE vectors: numpy only (no torch, no JVM)."""
