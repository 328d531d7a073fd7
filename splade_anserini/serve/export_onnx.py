"""Export a SPLADE checkpoint to ONNX with its pooling, in Anserini's query-encoder contract.

    python -m splade_anserini.export_onnx --model M --output DIR [--max-length 256]
        [--pooling max|sum] [--splade-doc [--query-weights INDEX_OR_FILE]] [--factor 100] [--parity-topics T.tsv]
        [--overwrite]

``DIR/model.onnx`` computes the whole SPLADE representation of one text: MLM logits, max (SPLADE-max)
or sum (SPLADE v1) pooling of ``log(1 + ReLU(.))`` under the attention mask, and the non-zero terms.
Its inputs and outputs are those of Anserini's ``io.anserini.encoder.sparse.SpladeEncoder``:
``input_ids``, ``attention_mask``, ``token_type_ids`` (int64 ``[1, seq]``; a padded batch works too)
-> ``output_idx`` (int64 term ids; ``row * vocab + term`` for a batch) and ``output_weights``
(float32), at opset 17 and IR version 8 or 9, which the ONNX Runtime 1.17 bundled in the Anserini
1.7.1 fatjar loads. Beside it: ``vocab.txt`` (read by Anserini's Java WordPiece tokenizer),
``tokenizer.json`` and the other HF tokenizer files, and ``splade_onnx.json`` (pooling, max length,
the documents' quantization factor, the source model and the sha256 of its weights, the parity
figures). fp32 exports also hold ``hidden.onnx`` and ``decoder.npz`` (:mod:`.query_graph`): the
exact int8-screened query path of the Python encoder, checked against PyTorch like the graph.

Before anything is written the exported graph is run on sample queries (and ``--parity-topics``)
and its integer impacts compared with the PyTorch encoder's: a model that disagrees is refused.
``--int8`` is kept for old scripts and writes the same fp32 export, with a one-line notice: the exact
int8 screen of the query graph (:mod:`.query_graph`) superseded the approximate, dynamically quantized
graph it used to write (exports written that way still load, with a notice). The directory appears
complete or not at all (built under a temporary
name, then renamed). A checkpoint that is not a masked LM, or whose tokenizer Anserini's Java
WordPiece tokenizer cannot read, is a one-line error (exit 2).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from splade_anserini import outputs
from splade_anserini.cli import ArgumentParser, command
from splade_anserini.models import (EXPORT_FORMAT, EXPORT_FORMAT_VERSION, EXPORT_HIDDEN, EXPORT_METADATA, EXPORT_MODEL,
                     EXPORT_TOKENIZER, EXPORT_VOCAB)
from splade_anserini.provenance import weights_sha256  # noqa: F401  (re-exported: the digest an export records)
# the graph's names stay importable from here (MAX_IR_VERSION, splade_graph, ...); the export calls
# the graph writer through this module's _export_graph, which a test replaces
from splade_anserini.serve.onnx_graph import (MAX_IR_VERSION, OPSET, check_ir,  # noqa: F401
                                              share_tied_embeddings, splade_graph)
from splade_anserini.serve.onnx_graph import export_graph as _export_graph
from splade_anserini.serve.query_graph import write_query_graph

#: The marker kind of an export folder (:mod:`splade_anserini.outputs`).
EXPORT_KIND = "onnx-export"
#: Tokens Anserini's Java encoder adds or looks up by name.
ANSERINI_TOKENS = ("[CLS]", "[SEP]", "[UNK]", "[PAD]")
#: fp32: share of (query, term) integer impacts identical to PyTorch, all others off by one at most.
FP32_MIN_IDENTICAL = 0.99
#: What ``--int8`` says: it asks for the fp32 export, whose screened query graph is the int8 path now.
INT8_NOTICE = ("notice: --int8 is no longer a separate export: the fp32 export's screened query graph runs the "
               "int8 product exactly (same impacts as PyTorch); writing the fp32 export")

#: Parity queries: short and long, punctuation, digits, accents, a text longer than any max length.
SAMPLE_QUERIES = (
    "what is splade", "aspirin reduces the risk of heart attacks",
    "0-dimensional biomaterials show inductive properties.",
    "A deficiency of vitamin B12 increases blood levels of homocysteine.",
    "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
    "how do neural ranking models handle out-of-vocabulary terms?",
    "Café au lait spots and naïve résumé: accents, Ünïcödé & symbols #1 (2024)!",
    "COVID-19 mRNA vaccines; efficacy >90% in phase-3 trials",
    "who wrote the art of computer programming", "inverted index compression techniques",
    "β-blockers after myocardial infarction", "x",
    "the the the of of and", "1 2 3 4 5 6 7 8 9 10",
    "Programming languages with garbage collection and their performance on time-sharing systems",
    " ".join(["long query about information retrieval evaluation"] * 80),
)


class ExportError(ValueError):
    """Bad input for an export: one line, exit status 2."""


class ParityError(RuntimeError):
    """The exported graph disagrees with the PyTorch encoder: nothing is written, exit status 1."""


@dataclass
class Fidelity:
    """Agreement of exported impacts with the PyTorch encoder's on the same queries."""

    queries: int
    pairs: int                 # (query, term) pairs non-zero on either side
    identical: float           # share of pairs with the same integer impact
    within_one: float          # share off by at most one
    max_abs_diff: int
    mean_cosine: float         # float vectors
    min_cosine: float

    def line(self) -> str:
        return (f"{self.identical:.4%} of {self.pairs:,} (query, term) impacts identical, {self.within_one:.4%} "
                f"within 1 (max diff {self.max_abs_diff}), cosine mean {self.mean_cosine:.6f} min "
                f"{self.min_cosine:.6f}, over {self.queries} queries")


def fidelity(reference: Sequence, candidate: Sequence, factor: float, vocab_size: int) -> Fidelity:
    """Compare two lists of :class:`SparseVector` (same queries) as integer impacts and as floats."""
    from splade_anserini.conversion.quantize import quantize

    pairs = same = near = 0
    worst = 0
    cosines = []
    for ref, got in zip(reference, candidate):
        a = np.zeros(vocab_size, dtype=np.float32)
        b = np.zeros(vocab_size, dtype=np.float32)
        a[ref.ids] = ref.weights
        b[got.ids] = got.weights
        ia, ib = quantize(a, factor), quantize(b, factor)
        union = (ia != 0) | (ib != 0)
        diff = np.abs(ia[union] - ib[union])
        pairs += int(union.sum())
        same += int((diff == 0).sum())
        near += int((diff <= 1).sum())
        worst = max(worst, int(diff.max(initial=0)))
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosines.append(float(a @ b) / norm if norm else float(np.array_equal(a, b)))
    return Fidelity(len(cosines), pairs, same / max(pairs, 1), near / max(pairs, 1), worst,
                    float(np.mean(cosines)) if cosines else 1.0, float(np.min(cosines)) if cosines else 1.0)


# -- the vocabulary Anserini reads ------------------------------------------------------------------
def anserini_vocabulary(tokenizer_json: dict, source: str) -> list[str]:
    """The ``vocab.txt`` lines (id order) for Anserini's ``BertFullTokenizer`` (lower-casing WordPiece).

    Raises :class:`ExportError` for a tokenizer it cannot read: not WordPiece (BPE, Unigram), cased
    (Anserini always lower-cases), a token with whitespace (one token a line), a missing
    ``[CLS]``/``[SEP]``/``[UNK]``/``[PAD]``, or ids that are not ``0..n-1``."""
    model = tokenizer_json.get("model") or {}
    kind = model.get("type")
    if kind != "WordPiece":
        raise ExportError(f"model {source}: its tokenizer is {kind or 'unknown'}, not WordPiece: Anserini's Java "
                          "tokenizer (BertFullTokenizer) cannot read its vocabulary")
    normalizer = tokenizer_json.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer" and not normalizer.get("lowercase", True):
        raise ExportError(f"model {source}: a cased WordPiece vocabulary; Anserini's Java tokenizer always "
                          "lower-cases, so its queries would not match the model's tokens")
    vocab: dict[str, int] = model.get("vocab") or {}
    size = len(vocab)
    lines = [""] * size
    for token, idx in vocab.items():
        if not isinstance(idx, int) or not 0 <= idx < size or lines[idx]:
            raise ExportError(f"model {source}: vocabulary ids are not 0..{size - 1} (token {token!r} has id {idx})")
        if not token or any(ch.isspace() for ch in token):
            raise ExportError(f"model {source}: vocabulary token {token!r} (id {idx}) is empty or holds whitespace; "
                              "vocab.txt holds one token a line")
        lines[idx] = token
    missing = [t for t in ANSERINI_TOKENS if t not in vocab]
    if missing:
        raise ExportError(f"model {source}: vocabulary lacks {', '.join(missing)}, which Anserini's Java encoder uses")
    return lines


# -- the export -------------------------------------------------------------------------------------
def export(model: str, output: str | os.PathLike, *, int8: bool = False, max_length: int = 256,
           pooling: str = "max", splade_doc: bool = False, factor: float | str | None = None,
           parity_queries: Sequence[str] = (), overwrite: bool = False, log=print,
           index: str | os.PathLike | None = None, allow_other: bool = False,
           query_weights: str | os.PathLike | None = None) -> dict:
    """Write the export directory; return its metadata. See the module docstring. ``index``: the
    index the export will search; its factor is the default, and a model other than the one that
    encoded it is refused unless ``allow_other``."""
    from splade_anserini.conversion.quantize import resolve_factor

    from splade_anserini.encode.splade import POOLINGS

    if int8:
        log(INT8_NOTICE)
    output = Path(os.fspath(output))
    if pooling not in POOLINGS:
        raise ExportError(f"--pooling must be one of {POOLINGS}, got {pooling!r}")
    if max_length < 2:
        raise ExportError(f"--max-length must be at least 2, got {max_length}")
    plan = None
    if index is not None:
        from splade_anserini.provenance import plan_search

        plan = plan_search(index, factor=factor)
        factor = plan.factor
    factor = resolve_factor(factor if factor is not None else 100)
    if outputs.check_dir(output, EXPORT_KIND) and not overwrite:
        raise ExportError(f"{output}: already exists; pass --overwrite to replace it")
    with outputs.lock(outputs.lock_path(output), f"export {output}"):
        return _export(model, output, max_length=max_length, pooling=pooling, splade_doc=splade_doc,
                       factor=factor, parity_queries=parity_queries, overwrite=overwrite, log=log,
                       query_weights=query_weights, index=index, plan=plan, allow_other=allow_other)


@dataclass
class _Source:
    """The model to export, checked, and the PyTorch encoder the export must agree with."""

    tokenizer: object
    hf_model: object
    source_dir: object
    vocab: list[str]
    vocab_size: int
    reference: object


def _load_source(model, *, max_length, pooling, index, plan, allow_other) -> _Source:
    """Load ``model``; refuse one other than the index's (unless ``allow_other``), one without a fast
    tokenizer, or one whose vocabulary Anserini cannot read or that does not match its MLM outputs."""
    from splade_anserini.models import load_model, resolve_model
    from splade_anserini.encode.splade import SpladeEncoder

    tokenizer, hf_model = load_model(model)
    source_dir = resolve_model(model)
    if plan is not None:
        from splade_anserini.provenance import check_query_model

        check_query_model(plan, index, {"name": str(model), "sha256": weights_sha256(hf_model)}, allow_other=allow_other)
    tokenizer_json = json.loads(tokenizer.backend_tokenizer.to_str()) if hasattr(tokenizer, "backend_tokenizer") \
        else None
    if tokenizer_json is None:
        raise ExportError(f"model {model}: no fast (tokenizers) tokenizer; ONNX serving needs tokenizer.json")
    vocab = anserini_vocabulary(tokenizer_json, model)
    vocab_size = hf_model.get_output_embeddings().weight.shape[0]
    if vocab_size != len(vocab):
        raise ExportError(f"model {model}: {vocab_size} MLM outputs but {len(vocab)} vocabulary tokens")
    reference = SpladeEncoder(model, pooling=pooling, tokenizer=tokenizer, hf_model=hf_model,
                              query_max_length=max_length, int8_queries=False)
    return _Source(tokenizer, hf_model, source_dir, vocab, vocab_size, reference)


def _write_files(tmp: Path, src: _Source, *, pooling, query_weights) -> tuple[dict, bool]:
    """The graph, the screened query graph, the query weights, the tokenizer files and ``vocab.txt``
    into ``tmp``; returns the graph's versions and whether it is screened."""
    tokenizer, hf_model = src.tokenizer, src.hf_model
    _export_graph(hf_model, tokenizer, pooling, tmp / EXPORT_MODEL)
    versions = check_ir(tmp / EXPORT_MODEL)
    screened = write_query_graph(hf_model, tokenizer, tmp, OPSET)
    if screened:
        check_ir(tmp / EXPORT_HIDDEN)
    if query_weights is not None:  # SPLADE-doc's inference-free query weights travel with the export
        from splade_anserini.search.query_weights import QUERY_WEIGHTS, read_table, write_table

        write_table(tmp / QUERY_WEIGHTS, read_table(query_weights))
    tokenizer.save_pretrained(str(tmp))  # tokenizer.json, tokenizer_config.json, ... (HF files)
    (tmp / EXPORT_TOKENIZER).write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
    (tmp / EXPORT_VOCAB).write_text("".join(f"{t}\n" for t in src.vocab), encoding="utf-8")
    return versions, screened


def _metadata(model, src: _Source, versions: dict, screened: bool, *, max_length, pooling, splade_doc,
              factor) -> dict:
    """``splade_onnx.json`` before the parity figures."""
    special = sorted({int(i) for i in src.tokenizer.all_special_ids})
    return {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "pooling": pooling,
            "max_length": int(max_length), "factor": factor, "splade_doc": bool(splade_doc),
            "quantization": "fp32", "vocab_size": int(src.vocab_size),
            "special_ids": special, "query_graph": bool(screened), "source_model": str(model), "source_path": str(src.source_dir),
            "source_sha256": weights_sha256(src.hf_model), **versions,
            "inputs": ["input_ids", "attention_mask", "token_type_ids"],
            "outputs": ["output_idx", "output_weights"]}


def _check_parity(tmp: Path, src: _Source, meta: dict, *, parity_queries, max_length, factor, screened,
                  log) -> None:
    """Parity on what was written, read back the way serving reads it; single texts (Anserini's
    ``[1, seq]``) and one padded batch must both agree. Adds the figures to ``meta``; raises
    :class:`ParityError` on disagreement."""
    from splade_anserini.serve.onnx_encoder import OnnxSpladeEncoder

    vocab_size = src.vocab_size
    queries = list(dict.fromkeys([*SAMPLE_QUERIES, *parity_queries]))
    expected = src.reference.encode_queries(queries, batch_size=32)
    onnx_enc = OnnxSpladeEncoder(tmp, query_max_length=max_length, splade_doc=False, screen=False)
    single = onnx_enc.encode_queries(queries, batch_size=1)
    batched = onnx_enc.encode_queries(queries, batch_size=32)
    fid = fidelity(expected, single, factor, vocab_size)
    fid_batch = fidelity(expected, batched, factor, vocab_size)
    log(f"parity vs PyTorch ({meta['quantization']}): {fid.line()}; padded batches: "
        f"{fid_batch.identical:.4%} identical")
    checked = [fid, fid_batch]
    if screened:  # the screened query graph answers like the contract's graph
        screen_enc = OnnxSpladeEncoder(tmp, query_max_length=max_length, splade_doc=False, screen=True)
        checked.append(fidelity(expected, screen_enc.encode_queries(queries, batch_size=8), factor, vocab_size))
        log(f"parity vs PyTorch (screened query graph): {checked[-1].line()}")
        meta["parity_screened"] = asdict(checked[-1])
        del screen_enc
    for f in checked:
        _refuse_disagreement(f)
    meta["parity"] = {"single": asdict(fid), "batched": asdict(fid_batch), "factor": factor}


def _refuse_disagreement(f: Fidelity) -> None:
    """:class:`ParityError` when ``f`` misses the fp32 rule."""
    rule = f">= {FP32_MIN_IDENTICAL:.0%} identical, others off by one"
    if f.max_abs_diff > 1 or f.identical < FP32_MIN_IDENTICAL:
        raise ParityError(f"the exported graph disagrees with the PyTorch encoder ({f.line()}; "
                          f"needed {rule}): not written")


def _export(model, output: Path, *, max_length, pooling, splade_doc, factor, parity_queries, overwrite,
            log, query_weights, index=None, plan=None, allow_other=False) -> dict:
    t0 = time.perf_counter()
    src = _load_source(model, max_length=max_length, pooling=pooling, index=index, plan=plan, allow_other=allow_other)
    tmp = outputs.temp_dir(output)
    try:
        versions, screened = _write_files(tmp, src, pooling=pooling, query_weights=query_weights)
        meta = _metadata(model, src, versions, screened, max_length=max_length, pooling=pooling,
                         splade_doc=splade_doc, factor=factor)
        (tmp / EXPORT_METADATA).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        _check_parity(tmp, src, meta, parity_queries=parity_queries, max_length=max_length, factor=factor,
                      screened=screened, log=log)
        (tmp / EXPORT_METADATA).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if outputs.check_dir(output, EXPORT_KIND) and not overwrite:  # made meanwhile
            raise ExportError(f"{output}: already exists; pass --overwrite to replace it")
        outputs.install_dir(tmp, output, EXPORT_KIND)
    except BaseException:
        outputs.remove(tmp)
        raise
    size = (output / EXPORT_MODEL).stat().st_size
    if plan is not None:
        plan.tell()
    log(f"exported {model} ({meta['quantization']}, {pooling} pooling, opset {meta['opset']}, IR "
        f"{meta['ir_version']}, {size / 2**20:.1f} MiB) to {output} in {time.perf_counter() - t0:.1f} s")
    return meta


@command
def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(description="Export a SPLADE checkpoint (with its pooling) to ONNX in Anserini's "
                                            "query-encoder contract, parity-checked against PyTorch.")
    p.add_argument("--model", default="splade-tiny", help="checkpoint directory, hub id or splade-tiny")
    p.add_argument("--output", required=True, help="export directory to create (--overwrite replaces only an export this tool wrote)")
    p.add_argument("--int8", action="store_true",
                   help="kept for old scripts: the fp32 export's screened query graph is the (exact) int8 path")
    p.add_argument("--max-length", type=int, default=256, help="query max length recorded for serving")
    p.add_argument("--pooling", default="max", help="max (SPLADE-max, default) or sum (SPLADE v1)")
    p.add_argument("--splade-doc", action="store_true", help="SPLADE-doc: queries are bags of WordPiece tokens")
    p.add_argument("--factor", default=None,
                   help="the documents' quantization factor (number, naver, pyserini; default: --index's, else 100)")
    p.add_argument("--index", default=None, help="the index the export will search: its factor and model are checked")
    p.add_argument("--allow-other-query-encoder", action="store_true",
                   help="with --index: export a model other than the one that encoded the index")
    p.add_argument("--parity-topics", help="qid<TAB>text queries added to the parity check")
    p.add_argument("--query-weights", metavar="FILE_OR_INDEX",
                   help="SPLADE-doc query weight table to ship with the export (a file, or an index's table)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    args = p.parse_args(argv)

    extra: list[str] = []
    if args.parity_topics:
        from splade_anserini.data import read_topics

        extra = list(read_topics(args.parity_topics).values())
    export(args.model, args.output, int8=args.int8, max_length=args.max_length, pooling=args.pooling,
           splade_doc=args.splade_doc, factor=args.factor, parity_queries=extra, overwrite=args.overwrite,
           index=args.index, allow_other=args.allow_other_query_encoder, query_weights=args.query_weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
