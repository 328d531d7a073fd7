"""README command 1: check the stack works end to end (grown into the full SciFact pipeline)."""
from __future__ import annotations

import sys


def smoke() -> None:
    """JVM up, Anserini classes load, splade-tiny encodes a sentence with expansion terms."""
    from . import java
    from .splade import SpladeEncoder

    java.start_jvm()
    version = java.autoclass("java.lang.System").getProperty("java.version")
    java.autoclass("io.anserini.index.IndexCollection")
    java.pyserini_lucene()
    print(f"JVM {version} started; Anserini classes and pyserini.search.lucene loaded")
    enc = SpladeEncoder("splade-tiny")
    text = "aspirin reduces the risk of heart attacks"
    impacts = enc.to_impacts(enc.encode_queries([text])[0])
    top = sorted(impacts.items(), key=lambda kv: -kv[1])[:10]
    print(f"splade-tiny: {text!r} -> {len(impacts)} terms; top: {top}")


def main(argv: list[str] | None = None) -> int:
    smoke()
    return 0


if __name__ == "__main__":
    sys.exit(main())
