"""The encoder side of the corpus encoding job (:mod:`splade_anserini.encode.corpus`): loading and
checking the document encoder, and turning one block of corpus documents into JsonVectorCollection
lines and their statistics."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.jsonvector import dumps
from splade_anserini.conversion.quantize import GUARD_TOKEN, quantize_sparse

from splade_anserini.encode.shards import EncodeError, IndexedDoc
from splade_anserini.progress import Progress


# -- the encoder ----------------------------------------------------------------------------------------
def check_mlm(encoder, model: str) -> None:
    """A checkpoint saved from a non-MLM class (e.g. ``BertModel``) would load with a random head."""
    config = encoder.model.config
    archs = getattr(config, "architectures", None) or []
    if archs and not any("MaskedLM" in a or "ForPreTraining" in a for a in archs):
        where = Path(getattr(config, "_name_or_path", "") or model)
        where = where / "config.json" if where.is_dir() else where
        raise InputError(where, None, f"not a masked-LM checkpoint (architectures: {', '.join(archs)}); "
                                      "SPLADE needs the MLM head")


def load_encoder(model: str, *, device: str, max_length: int, precision: str, pooling: str):
    """A :class:`~splade_anserini.encode.splade.SpladeEncoder` for documents of ``max_length`` tokens;
    raises :class:`InputError` for a checkpoint without its MLM head."""
    from splade_anserini.encode.splade import SpladeEncoder

    enc = SpladeEncoder(model, pooling=pooling, device=device, max_length=max_length,
                        query_max_length=max_length, precision=precision)
    check_mlm(enc, model)
    return enc


def check_encoder_max_length(encoder, max_length: int) -> None:
    """A max length beyond the model's position embeddings fails inside the model, late: refuse it now."""
    limit = getattr(encoder.model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise EncodeError(f"--max-length {max_length}: model {encoder.model_name} has {limit} positions "
                          f"(use --max-length {limit} or less)")


# -- one block ------------------------------------------------------------------------------------------
def _new_stats() -> dict:
    return {"docs": 0, "empty_text": 0, "guarded": 0, "nonzeros": 0, "expansion": 0, "df": {}}


def encode_block(encoder, docs: list[IndexedDoc], lo: int, hi: int, *, factor: float, batch_size: int,
                 contents: bool, progress: Progress, workers: int) -> tuple[list[str], dict]:
    """Encode a whole block (``docs`` = its documents, in corpus order); return the JSON lines and
    the statistics of the documents with corpus index in ``[lo, hi)`` (this shard's part of it)."""
    t0 = time.time()
    texts = [(i, d) for i, d in enumerate(docs) if d.text]
    token_ids = encoder.tokenize([d.text for _, d in texts], encoder.max_length) if texts else []
    vectors = encoder.encode_token_ids(token_ids, batch_size, progress, workers=workers) if texts else []
    progress.update(len(docs) - len(texts))
    by_pos = {i: (tok, vec) for (i, _), tok, vec in zip(texts, token_ids, vectors)}
    vocab = encoder.vocab
    lines: list[str] = []
    stats = _new_stats()
    df: dict[str, int] = stats["df"]
    for pos, doc in enumerate(docs):
        if not lo <= doc.index < hi:
            continue
        stats["docs"] += 1
        vector: dict[str, int] = {}
        if pos in by_pos:
            tok, vec = by_pos[pos]
            ids, impacts = quantize_sparse(vec.ids, vec.weights, factor)
            vector = {vocab[i]: int(v) for i, v in zip(ids, impacts)}
            stats["expansion"] += int(np.setdiff1d(ids, np.asarray(tok, dtype=np.int64)).size)
        else:
            stats["empty_text"] += 1
        if not vector:
            vector = {GUARD_TOKEN: 1}
            stats["guarded"] += 1
        stats["nonzeros"] += len(vector)
        for token in vector:
            df[token] = df.get(token, 0) + 1
        lines.append(dumps(doc.docid, vector, doc.text if contents else "") + "\n")
    stats["seconds"] = time.time() - t0
    return lines, stats
