"""Encode a corpus with SPLADE into Anserini ``JsonVectorCollection`` files, resumably and atomically.

    python -m splade_anserini.encode_corpus --corpus corpus.jsonl --output vectors/scifact \\
        [--model splade-tiny] [--format auto|beir|msmarco] [--batch-size 32] [--max-length 256] \\
        [--factor 100|naver|pyserini|NUMBER] [--shard-id 0 --shard-num 1] \\
        [--num-files 1] [--gzip] [--device cpu] [--fp16|--bf16] [--threads N] [--pooling max|sum] \\
        [--block-size 1000] [--no-contents] [--overwrite] [--no-progress]
        [--passage-length N [--passage-stride S]]

Input: a BEIR ``corpus.jsonl`` (``_id``, ``title``, ``text``; title and text joined with a space, as
Pyserini does) or an MS MARCO ``collection.tsv`` (``pid<TAB>text``). The whole file is validated
before anything is written: a malformed line stops the run with ``error: file:line: problem`` (exit 2)
and no output. Empty text is a counted warning and gets the guard vector ``{"[unused993]": 1}``, as
does a vector whose impacts all quantize to 0 (Anserini rejects empty documents).

Output: ``--output`` holds the collection files, ``part-00000.jsonl`` ... (``--num-files`` of them,
contiguous and nearly equal, so Anserini can index with that many threads; ``.jsonl.gz`` with
``--gzip``). With ``--shard-num S`` the names are ``shard-0000I-of-0000S.part-0000K.jsonl`` so shards
can share a directory; shards are Pyserini's (contiguous, ``floor(N / S)`` documents, the last one
takes the rest). Beside them ``splade-anserini.provenance`` records the model (name and weights
digest), factor, max length, pooling and passages; ``index`` carries it into the index and
``search`` checks it (:mod:`splade_anserini.provenance`). A summary (documents, empty documents,
average non-zeros, FLOPS, wall time) is printed and written inside the directory as ``.summary.json``
(``.shard-...summary.json``), beside the folder's marker (:mod:`splade_anserini.outputs`); both start
with a line ``[]`` so that Anserini, which reads every file of the folder, finds no document in them.
``--output`` must be a new or empty folder, or one this tool wrote vectors into: anything else is
refused (exit status 2) and left as it is.

Resumable and atomic: the shard is encoded in blocks of ``--block-size`` documents, fixed by
position in the corpus. Each block is committed to a hidden work folder beside the output
(``.<output>.encode-work...``, with a manifest of the arguments) by atomic renames; the output
directory and its part files are made from the blocks when all are done (each file written under a
temporary name and renamed), then the work folder is removed. A run killed at any
point and restarted with the same arguments continues and produces byte-identical files; restarting
with other arguments is refused, and so is a second process on the same output while one runs. A block is always encoded whole (also the documents of a block
that straddles a shard boundary, whose other documents belong to the neighbour shard), so every
document sees the same batches whatever the sharding: shards concatenated equal the unsharded
output byte for byte.

Long documents: ``--passage-length N --passage-stride S`` first writes the corpus as passages of N
WordPiece tokens starting every S tokens (``docid#k``, the title on each; :mod:`splade_anserini.encode.passages`)
to ``<output>.passages-N-S.jsonl`` and encodes that; search them with ``search --max-passage``.

Many GPUs: under ``torchrun`` or ``accelerate launch`` without ``--shard-id/--shard-num`` each
process encodes shard ``RANK`` of ``WORLD_SIZE`` (on GPU ``LOCAL_RANK`` with ``--device cuda``);
all shards go to the same ``--output`` folder and index as one collection.

Python API: :func:`encode_corpus` (also accepts an already loaded :class:`SpladeEncoder`), or
:func:`encode` of an :class:`EncodeConfig`. The work folder and the part files:
:mod:`splade_anserini.encode.shards`; the encoder and one block: :mod:`splade_anserini.encode.blocks`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

# Blocks are encoded (``_encode_block``), and block and part files written (``atomic_open``), through
# this module's names, so that a test can interrupt a run at a chosen step with monkeypatch.
from splade_anserini.conversion.atomic import atomic_open
from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.quantize import GUARD_TOKEN, resolve_factor

from splade_anserini.cli import ArgumentParser, command
from splade_anserini.encode.blocks import check_encoder_max_length, load_encoder
from splade_anserini.encode.blocks import encode_block as _encode_block
from splade_anserini.encode.config import EncodeConfig
from splade_anserini.encode.shards import (DEFAULT_BLOCK, VECTORS_KIND, EncodeError, EncodeJob, part_names,
                                           part_ranges, read_summary, shard_range, summary_path, work_dir)
from splade_anserini.progress import Progress

# The output's layout is public here too: it lived here before the work folder had its own module.
__all__ = ["DEFAULT_BLOCK", "MANIFEST_VERSION", "VECTORS_KIND", "EncodeConfig", "EncodeError", "EncodeRun",
           "build_parser", "encode", "encode_corpus", "format_summary", "launcher_shard", "main", "part_names",
           "part_ranges", "passage_input", "read_summary", "shard_range", "summary_path", "work_dir"]

MANIFEST_VERSION = 1
MAX_WARNINGS = 10


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def _log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the steps of a job -----------------------------------------------------------------------------------
class EncodeRun:
    """One run of an :class:`EncodeConfig`; :meth:`run` takes the steps in order."""

    def __init__(self, config: EncodeConfig):
        self.config = config
        self.log = config.log or _log_stderr
        self.started = time.time()
        self.model = config.model
        self.encoder = config.encoder
        self.factor = 0.0
        self.workers = 1
        self.job: EncodeJob

    def run(self) -> dict:
        """Check, read the corpus and load the model before anything is written; then, under the job's
        lock: the earlier run if finished, else resume or start, encode, write the files."""
        self.check()
        self.scan()
        provenance = self.load()
        self.job.config = self.manifest()
        with self.job.lock():
            previous = self.previous_run(provenance)
            if previous is not None:
                return previous
            done = self.resume()
            encoded_docs, encode_seconds = self.encode_blocks(done)
            return self.finish(provenance, encoded_docs, encode_seconds)

    def check(self) -> None:
        """The arguments, and the device and model unless an encoder is given."""
        c = self.config
        self.factor = resolve_factor(c.factor)
        c.check()
        if self.encoder is None:
            from splade_anserini.models import check_device, resolve_model

            check_device(c.device)
            resolve_model(c.model)  # a missing model directory fails now, not after reading a big corpus
        else:
            self.model = self.encoder.model_name

    def scan(self) -> None:
        """Validate and count the whole corpus; warn about the shard's documents with empty text."""
        from splade_anserini.data import detect_format

        c = self.config
        self.job = EncodeJob(c.corpus, c.output, detect_format(c.corpus) if c.fmt == "auto" else c.fmt,
                             shard_id=c.shard_id, shard_num=c.shard_num, num_files=c.num_files, gzipped=c.gzipped,
                             block_size=c.block_size, opener=atomic_open)
        empties = self.job.scan()
        for _, line, docid in empties[:MAX_WARNINGS]:
            _warn(f"{c.corpus}:{line}: document {docid!r} has empty text; it gets the guard vector "
                  f"{{{GUARD_TOKEN!r}: 1}}")
        if len(empties) > MAX_WARNINGS:
            _warn(f"{c.corpus}: {len(empties) - MAX_WARNINGS} more documents with empty text (guard vectors)")

    def load(self) -> dict:
        """Load (unless given) and check the encoder; returns the provenance of its vectors."""
        c = self.config
        if self.encoder is None:
            self.encoder = load_encoder(self.model, device=c.device, max_length=c.max_length,
                                        precision=c.precision, pooling=c.pooling)
        check_encoder_max_length(self.encoder, self.encoder.max_length)
        from splade_anserini.provenance import for_documents

        provenance = for_documents(self.encoder, name=self.model, factor=self.factor, passages=c.passages)
        # CPU: `threads` batches at once, each with one torch thread, so the numbers do not depend on it.
        import torch

        self.workers = (c.threads or torch.get_num_threads()) if self.on_cpu else 1
        return provenance

    @property
    def on_cpu(self) -> bool:
        return self.encoder.device.type == "cpu"

    def manifest(self) -> dict:
        """The arguments a run is resumed or reused with (recorded in the work folder and the summary)."""
        c, enc = self.config, self.encoder
        stat = c.corpus.stat()
        manifest = {
            "version": MANIFEST_VERSION, "corpus": str(c.corpus.resolve()), "corpus_bytes": stat.st_size,
            "corpus_mtime_ns": stat.st_mtime_ns, "format": self.job.fmt, "documents_in_corpus": self.job.n_docs,
            "model": str(self.model), "max_length": enc.max_length, "pooling": enc.pooling,
            "device": str(enc.device), "precision": enc.precision, "batch_size": c.batch_size,
            "quantization_factor": self.factor, "shard_id": c.shard_id, "shard_num": c.shard_num,
            "num_files": c.num_files, "gzip": c.gzipped, "block_size": c.block_size,
            "contents": c.contents,
        }
        if c.fingerprint is not None:
            manifest["fingerprint"] = c.fingerprint
        return manifest

    def previous_run(self, provenance: dict) -> dict | None:
        """The summary of a finished run with these arguments, or ``None`` (``overwrite``: none, after
        discarding it)."""
        c = self.config
        if c.overwrite:
            self.job.discard()
        previous = self.job.finished(c.discard_other)
        if previous is not None:
            from splade_anserini.provenance import check_vectors

            # the same arguments, but the model may have been retrained in place: the record decides
            check_vectors(c.output, provenance, "already encoded by another model or with other settings")
            self.log(f"{c.output}: already encoded with these arguments (see {self.job.summary_file})")
        return previous

    def resume(self) -> set[int]:
        """Start, or resume an unfinished run with these arguments; returns the blocks already done."""
        done = self.job.prepare(self.config.discard_other)
        if done:
            self.log(f"resuming {self.config.output}: {len(done)} of {len(self.job.blocks)} blocks already encoded")
        return done

    def encode_blocks(self, done: set[int]) -> tuple[int, float]:
        """Encode the missing blocks, each committed on its own; returns this run's documents and seconds."""
        import torch

        c, job = self.config, self.job
        blocks = job.blocks
        start, end = job.range
        bar = Progress("encode", sum(job.block_len(b) for b in blocks), initial=sum(job.block_len(b) for b in done),
                       unit="doc", enabled=c.progress, smoothing=0.1)
        encoded_docs = 0
        encode_seconds = 0.0
        torch_threads = torch.get_num_threads()
        if self.on_cpu:
            torch.set_num_threads(1)
        try:
            with bar:  # a summary line off a terminal, none when the stage fails
                for b, docs in job.documents({b for b in blocks if b not in done}):
                    lines, stats = _encode_block(self.encoder, docs, start, end, factor=self.factor,
                                                 batch_size=c.batch_size, contents=c.contents, progress=bar,
                                                 workers=self.workers)
                    job.commit_block(b, lines, stats)
                    encoded_docs += stats["docs"]
                    encode_seconds += stats["seconds"]
        finally:
            torch.set_num_threads(torch_threads)
        return encoded_docs, encode_seconds

    def finish(self, provenance: dict, encoded_docs: int, encode_seconds: float) -> dict:
        """All blocks committed: the part files, the provenance, the summary; then the work folder goes."""
        from splade_anserini.provenance import write_vectors

        c = self.config
        totals, df = self.job.assemble()
        summary = self.summary(totals, df, encoded_docs, encode_seconds)
        write_vectors(c.output, provenance, shared=c.shard_num > 1 and not c.overwrite)
        self.job.finish(summary)
        return summary

    def summary(self, totals: dict, df: dict[str, int], encoded_docs: int, encode_seconds: float) -> dict:
        """The run's summary: counts and averages of the shard, this run's speed, the arguments."""
        from splade_anserini.evaluate.stats import document_flops

        n = totals["docs"]
        job = self.job
        return {
            "output": str(self.config.output), "files": job.names, "summary_file": str(job.summary_file),
            "documents": n, "empty_documents": totals["empty_text"], "guarded_documents": totals["guarded"],
            "empty_guarded": totals["guarded"],
            "avg_nonzeros": totals["nonzeros"] / n if n else 0.0,
            "avg_expansion_terms": totals["expansion"] / n if n else 0.0,
            "flops": document_flops(df, n), "distinct_terms": len(df),
            "encode_seconds_this_run": encode_seconds,
            "docs_per_second_this_run": encoded_docs / encode_seconds if encode_seconds else None,
            "encode_seconds_all_runs": totals["seconds"],
            "wall_seconds": time.time() - self.started,
            "decoder": getattr(self.encoder, "head_path", "plain"), "workers": self.workers,
            "arguments": job.config, "parts": job.parts,
        }


# -- the Python API ---------------------------------------------------------------------------------------
def encode(config: EncodeConfig) -> dict:
    """Run the job ``config`` describes; returns its summary (see :func:`encode_corpus`)."""
    return EncodeRun(config).run()


def encode_corpus(corpus: str | os.PathLike, output: str | os.PathLike, *, model: str = "splade-tiny",
                  encoder=None, fmt: str = "auto", batch_size: int = 32, max_length: int = 256,
                  factor: str | float = 100, shard_id: int = 0, shard_num: int = 1, num_files: int = 1,
                  gzipped: bool = False, device: str = "cpu", precision: str = "fp32",
                  threads: int | None = None, pooling: str = "max", block_size: int = DEFAULT_BLOCK,
                  contents: bool = True, overwrite: bool = False, discard_other: bool = False,
                  fingerprint: str | None = None, progress: bool = True, passages: dict | None = None,
                  log: Callable[[str], None] | None = None) -> dict:
    """Encode ``corpus`` (or shard ``shard_id`` of ``shard_num``) into JsonVectorCollection files
    under ``output``; returns the summary (also written to :func:`summary_path`).

    ``encoder``: an already loaded :class:`~splade_anserini.encode.splade.SpladeEncoder`; its model, max
    length, pooling, device and precision are used instead of those arguments. ``overwrite``
    discards any earlier run; ``discard_other`` only one with other arguments (a run with the same
    arguments is resumed). ``fingerprint``: recorded with the arguments (e.g. the model weights'
    stamp), so a run is resumed only with the same one. ``passages``: the corpus holds passages
    (:func:`splade_anserini.provenance.passages_record`), recorded in the folder's provenance.
    Raises :class:`InputError` (bad corpus or model) or :class:`EncodeError` (bad arguments).
    """
    return encode(EncodeConfig(
        corpus, output, model=model, encoder=encoder, fmt=fmt, batch_size=batch_size, max_length=max_length,
        factor=factor, shard_id=shard_id, shard_num=shard_num, num_files=num_files, gzipped=gzipped,
        device=device, precision=precision, threads=threads, pooling=pooling, block_size=block_size,
        contents=contents, overwrite=overwrite, discard_other=discard_other, fingerprint=fingerprint,
        progress=progress, passages=passages, log=log))


# -- the command line -------------------------------------------------------------------------------------
def format_summary(s: dict) -> str:
    """The one-line report of a summary that the command prints."""
    rate = s.get("docs_per_second_this_run")
    return (f"encoded {s['documents']} documents into {len(s['files'])} file(s) under {s['output']}: "
            f"{s['empty_documents']} empty, {s['guarded_documents']} guard vectors, "
            f"{s['avg_nonzeros']:.1f} non-zeros/doc ({s['avg_expansion_terms']:.1f} expansion terms), "
            f"FLOPS {s['flops']:.3f}, wall {s['wall_seconds']:.1f}s"
            + (f", {rate:.1f} docs/s" if rate else "") + f"; summary: {s['summary_file']}")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m splade_anserini.encode_corpus``."""
    p = ArgumentParser(prog="python -m splade_anserini.encode_corpus",
                                description="Encode a corpus with SPLADE into Anserini JsonVectorCollection files.")
    p.add_argument("--model", default="splade-tiny", help="checkpoint directory, hub id or splade-tiny")
    p.add_argument("--corpus", required=True, help="BEIR corpus.jsonl or MS MARCO collection.tsv (optionally .gz)")
    p.add_argument("--output", required=True, help="output directory: collection files, a hidden summary and marker "
                                                   "(new, empty, or written by this tool)")
    p.add_argument("--format", default="auto", choices=("auto", "beir", "msmarco"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--factor", default="100",
                   help="impact = rint(weight * factor): a number, naver (100) or pyserini (256/5)")
    p.add_argument("--quantization-factor", dest="factor", help=argparse.SUPPRESS)  # the former name
    p.add_argument("--shard-id", type=int, default=None,
                   help="default: the process rank under torchrun / accelerate launch (RANK), else 0")
    p.add_argument("--shard-num", type=int, default=None,
                   help="default: the world size under torchrun / accelerate launch (WORLD_SIZE), else 1")
    p.add_argument("--num-files", type=int, default=1, help="split the output into N files (Anserini indexing threads)")
    p.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    p.add_argument("--device", default="cpu")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp16", action="store_true")
    prec.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads: batches encoded at once, one torch thread each (default: torch's thread count); "
                        "the output does not depend on it")
    p.add_argument("--pooling", default="max", choices=("max", "sum"))
    p.add_argument("--block-size", type=int, default=DEFAULT_BLOCK,
                   help="documents per resumable block (fixed positions in the corpus)")
    p.add_argument("--no-contents", action="store_true", help="write an empty 'contents' field")
    p.add_argument("--overwrite", action="store_true",
                   help="discard an earlier (finished or unfinished) run of this tool in --output")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--passage-length", type=int, default=None,
                   help="split documents into passages of N WordPiece tokens (title repeated), ids docid#k")
    p.add_argument("--passage-stride", type=int, default=None,
                   help="tokens between passage starts (default: the passage length, no overlap)")
    return p


# -- launcher and passages: the inputs of encode_corpus -----------------------------------------------
def launcher_shard(shard_id: int | None, shard_num: int | None, device: str) -> tuple[int, int, str]:
    """The shard (and device) of this process: the flags when given, else the rank and world size that
    ``torchrun`` / ``accelerate launch`` export (``RANK``, ``WORLD_SIZE``; ``LOCAL_RANK`` picks the GPU)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if shard_id is None and shard_num is None and world > 1:
        shard_id, shard_num = int(env["RANK"]), world
        if device == "cuda" and "LOCAL_RANK" in env:
            device = f"cuda:{int(env['LOCAL_RANK'])}"
    elif shard_id is None or shard_num is None:
        if (shard_id is None) != (shard_num is None):
            raise EncodeError("--shard-id and --shard-num go together")
        shard_id, shard_num = 0, 1
    return shard_id, shard_num, device


def passage_input(args) -> Path:
    """The corpus to encode: ``--corpus`` itself, or (``--passage-length``) its passages, written once
    beside the output as ``<output>.passages-<N>-<S>.jsonl`` (see :mod:`splade_anserini.encode.passages`)."""
    from splade_anserini.encode.passages import check_passage_args, write_passage_corpus

    check_passage_args(args.passage_length, args.passage_stride, args.max_length)
    if not args.passage_length:
        return Path(args.corpus)
    if not Path(args.corpus).is_file():
        raise InputError(args.corpus, None, "no such file")
    out = Path(args.output).resolve()
    stride = args.passage_stride or args.passage_length
    target = out.parent / f"{out.name}.passages-{args.passage_length}-{stride}.jsonl"
    fmt = None if args.format == "auto" else args.format
    counts = write_passage_corpus(args.corpus, target, args.model, args.passage_length, args.passage_stride, fmt=fmt)
    print(f"{counts['documents']} documents -> {counts['passages']} passages of {args.passage_length} tokens "
          f"(stride {args.passage_stride or args.passage_length}; {counts['split_documents']} documents split) "
          f"in {target}", file=sys.stderr, flush=True)
    return target


@command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shard_id, shard_num, device = launcher_shard(args.shard_id, args.shard_num, args.device)
    from splade_anserini.models import check_max_length

    check_max_length(args.model, args.max_length)  # before the passages are written
    if args.passage_length:
        check_max_length(args.model, args.passage_length, "--passage-length")
    corpus = passage_input(args)
    summary = encode(EncodeConfig.from_args(args, corpus, shard_id, shard_num, device))
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
