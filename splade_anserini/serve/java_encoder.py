"""Java-side query encoding: Anserini's own ONNX SPLADE encoder, inside the JVM, runs an export.

Anserini has no way to name an ONNX model file: its encoders
(``io.anserini.encoder.sparse.SpladePlusPlusEnsembleDistilEncoder`` and siblings) open fixed file
names in a model cache: ``<user.home>/.cache/pyserini/encoders`` in Anserini 1.x; in Anserini 2.x the
first of ``-Dpyserini.cache``, ``$PYSERINI_CACHE``, ``<cwd>/.cache/pyserini`` and
``~/.cache/pyserini``. To never overwrite, shadow or read a model the user has cached in any of them,
the encoder is created inside :func:`private_encoder_cache`: a
temporary directory of this process only, where the export is placed under the encoder's file names
and which Anserini is checked to resolve before any model is loaded. If another caller initialized
Anserini 1.x's encoders earlier in the same JVM with the real home, we refuse rather than touch it.
ONNX Runtime's Java library unpacks its native libraries into ``java.io.tmpdir``: the JVM is started
with that folder private too (the private cache lives inside it), and it is removed when the process
exits (nothing is left in ``/tmp``).

Anserini quantizes Java-side query weights as ``round(w / 5 * 256)``. The graph placed in the
private cache multiplies its weights by ``factor * 5 / 256`` so that Anserini's integers are
``round(w * factor)``: the documents' own quantization (x100 by default), as on the Python side.
Anserini also drops term ids 0, 101 and 102 (BERT's ``[PAD]``, ``[CLS]``, ``[SEP]``).
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from splade_anserini import java
from splade_anserini.anserini_version import generation
from splade_anserini.java_errors import java_error
from splade_anserini.models import EXPORT_MODEL, EXPORT_VOCAB, ModelNotFoundError, read_export_metadata

#: The Anserini encoder whose file names carry the export (``-encoder`` / ``set_onnx_query_encoder`` name).
ENCODER = "SpladePlusPlusEnsembleDistil"
MODEL_FILE = "splade-pp-ed-optimized.onnx"
VOCAB_FILE = "splade-pp-ed-vocab.txt"
#: ``io.anserini.encoder.sparse.SpladeEncoder``: WEIGHT_RANGE and QUANT_RANGE.
ANSERINI_WEIGHT_RANGE = 5
ANSERINI_QUANT_RANGE = 256
ANSERINI_DROPPED_IDS = {"[PAD]": 0, "[CLS]": 101, "[SEP]": 102}

def private_home() -> Path:
    """This process's private ``user.home`` for Anserini's encoder cache: inside the JVM's private
    temporary folder (:func:`splade_anserini.java.private_tmp`), removed at exit."""
    from splade_anserini.java import private_tmp

    home = private_tmp() / "home"
    home.mkdir(exist_ok=True)
    return home


def scale_weights(src: str | os.PathLike, dst: str | os.PathLike, scale: float) -> None:
    """Copy the graph at ``src`` to ``dst`` with ``output_weights`` multiplied by ``scale``."""
    import onnx
    from onnx import helper, numpy_helper
    import numpy as np

    model = onnx.load(os.fspath(src))
    graph = model.graph
    raw = "output_weights_unscaled"
    for node in graph.node:
        node.output[:] = [raw if o == "output_weights" else o for o in node.output]
        node.input[:] = [raw if i == "output_weights" else i for i in node.input]
    graph.initializer.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), "anserini_weight_scale"))
    graph.node.append(helper.make_node("Mul", [raw, "anserini_weight_scale"], ["output_weights"],
                                       name="anserini_weight_scale_mul"))
    onnx.checker.check_model(model)
    from splade_anserini.outputs import tmp_name

    tmp = tmp_name(dst)
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)


def prepare(export_dir: str | os.PathLike, factor: float, target: Path) -> Path:
    """Place the export (weights rescaled for ``factor``) and its ``vocab.txt`` under the encoder's
    file names in the private cache folder ``target``; return it."""
    export_dir = Path(os.fspath(export_dir))
    meta = read_export_metadata(export_dir)
    if meta["splade_doc"]:
        raise ValueError(f"{export_dir}: a SPLADE-doc export; its queries are bags of tokens, "
                         "encoded without a model (use --model)")
    target.mkdir(parents=True, exist_ok=True)
    try:
        scale_weights(export_dir / EXPORT_MODEL, target / MODEL_FILE,
                      float(factor) * ANSERINI_WEIGHT_RANGE / ANSERINI_QUANT_RANGE)
    except Exception as exc:  # protobuf's DecodeError, onnx's ValidationError: the file is the problem
        raise ModelNotFoundError(f"{export_dir / EXPORT_MODEL}: corrupt or unreadable ONNX model "
                                 f"({java_error(exc)})") from None
    from splade_anserini.outputs import tmp_name

    tmp = tmp_name(target / VOCAB_FILE)
    shutil.copyfile(export_dir / EXPORT_VOCAB, tmp)
    os.replace(tmp, target / VOCAB_FILE)
    return target


def encoders_dir(home: Path) -> Path:
    """Where Anserini's ONNX encoders look for their models under a private ``home``."""
    return home / ".cache" / "pyserini" / "encoders"


@contextmanager
def private_encoder_cache(home: Path) -> Iterator[Path]:
    """While the block runs, the Anserini ONNX encoders created in it read and write their models in
    :func:`encoders_dir` of ``home`` only; yields that folder. Never a user's cache: not
    ``~/.cache/pyserini``, ``$PYSERINI_CACHE``, ``-Dpyserini.cache`` nor ``<cwd>/.cache/pyserini``."""
    java.start_jvm()
    target = encoders_dir(home)
    target.mkdir(parents=True, exist_ok=True)
    if generation().anserini_major < 2:
        found = _initialize_static_cache(home)
        if Path(found).resolve() != target.resolve():
            raise RuntimeError(f"Anserini's ONNX encoders were already initialized in this JVM with cache {found}; "
                               "run the Java-side encoder in a fresh process (its models are never written there)")
        yield target
        return
    System = java.autoclass("java.lang.System")
    saved = System.getProperty("pyserini.cache")
    System.setProperty("pyserini.cache", str(target.parent))  # outranks $PYSERINI_CACHE and <cwd>/.cache
    try:
        found = str(java.autoclass("io.anserini.util.CacheDirectoryResolver").getEncodersCachePath().toString())
        if Path(found).resolve() != target.resolve():
            raise RuntimeError(f"Anserini resolves its encoder cache to {found}, not to the private {target}")
        yield target
    finally:
        if saved is None:
            System.clearProperty("pyserini.cache")
        else:
            System.setProperty("pyserini.cache", saved)


def _initialize_static_cache(home: Path) -> str:
    """Anserini 1.x: ``OnnxEncoder.CACHE_DIR``, initializing the class with ``user.home = home`` if it
    is not yet (the field is set once per JVM, when the class initializes)."""
    System = java.autoclass("java.lang.System")
    saved = System.getProperty("user.home")
    System.setProperty("user.home", str(home))
    try:  # JNI reads the private static field (and initializes the class on first access)
        return str(java.autoclass("io.anserini.encoder.OnnxEncoder", include_protected=True,
                                  include_private=True).CACHE_DIR)
    finally:
        System.setProperty("user.home", saved)


# -- importing Pyserini offline ----------------------------------------------------------------------
def java_searcher(index: str | os.PathLike, export_dir: str | os.PathLike, factor: float):
    """An :class:`~splade_anserini.search.impact_searcher.ImpactSearcher` whose text queries are encoded by
    Anserini's Java ONNX encoder running ``export_dir``."""
    from splade_anserini.search.impact_searcher import ImpactSearcher

    with private_encoder_cache(private_home()) as target:
        prepare(export_dir, factor, target)
        searcher = ImpactSearcher(index)
        try:
            searcher.object.set_onnx_query_encoder(ENCODER)
        except Exception as exc:  # jnius.JavaException: the Java error, with its cause
            searcher.close()
            raise ModelNotFoundError(f"{Path(os.fspath(export_dir)) / EXPORT_MODEL}: Anserini could not load it "
                                     f"({java_error(exc)})") from None
    return searcher


def check_special_ids(export_dir: str | os.PathLike) -> list[str]:
    """Tokens whose ids differ from those Anserini's Java encoder drops (their weights would be kept)."""
    from splade_anserini.serve.onnx_encoder import read_vocab

    vocab = read_vocab(Path(os.fspath(export_dir)) / EXPORT_VOCAB)
    return [t for t, i in ANSERINI_DROPPED_IDS.items() if i >= len(vocab) or vocab[i] != t]


__all__ = ["java_search", "java_searcher", "prepare", "scale_weights", "private_home", "ENCODER", "ModelNotFoundError"]


def java_search(index: str | os.PathLike, topics, export_dir: str | os.PathLike, factor: float, *,
                k: int = 1000) -> dict[str, list[tuple[str, float]]]:
    """Search ``{qid: text}`` with the topics encoded inside the JVM by Anserini's ONNX encoder."""
    import sys

    odd = check_special_ids(export_dir)
    if odd:
        print(f"warning: {export_dir}: {', '.join(odd)} not at the ids Anserini's Java encoder drops "
              f"({ANSERINI_DROPPED_IDS}); their weights stay in the Java-side queries", file=sys.stderr)
    searcher = java_searcher(index, export_dir, factor)
    try:
        from splade_anserini.java_errors import answer_every_query

        return answer_every_query(lambda: searcher.batch_search_texts(topics, k), list(topics),
                                  lambda qid: searcher.search_text(topics[qid], k), "Anserini's Java-side encoder")
    finally:
        searcher.close()
