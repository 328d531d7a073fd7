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

Python API: :func:`encode_corpus` (also accepts an already loaded :class:`SpladeEncoder`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from splade_anserini.conversion.atomic import atomic_open
from splade_anserini.conversion.errors import InputError, UsageError
from splade_anserini.conversion.jsonvector import dumps
from splade_anserini.conversion.quantize import GUARD_TOKEN, quantize_sparse, resolve_factor

from splade_anserini import outputs
from splade_anserini.cli import ArgumentParser, command
from splade_anserini.data import read_corpus
from splade_anserini.progress import Progress

MANIFEST_VERSION = 1
DEFAULT_BLOCK = 1000
MAX_WARNINGS = 10
#: The marker kind of a vectors folder (:mod:`splade_anserini.outputs`).
VECTORS_KIND = "vectors"


class EncodeError(UsageError):
    """A usage problem (bad arguments, output in the way, resume with other arguments): one line."""


# -- layout -------------------------------------------------------------------------------------------
def shard_range(n_docs: int, shard_id: int, shard_num: int) -> tuple[int, int]:
    """Pyserini's shard ``[start, end)``: ``floor(n / shard_num)`` documents each, the last takes the rest."""
    size = n_docs // shard_num
    start = shard_id * size
    end = n_docs if shard_id == shard_num - 1 else min(start + size, n_docs)
    return start, end


def part_ranges(start: int, end: int, num_files: int) -> list[tuple[int, int]]:
    """Split ``[start, end)`` into ``num_files`` contiguous ranges whose sizes differ by at most one."""
    n = end - start
    return [(start + k * n // num_files, start + (k + 1) * n // num_files) for k in range(num_files)]


def _prefix(shard_id: int, shard_num: int) -> str:
    return "" if shard_num == 1 else f"shard-{shard_id:05d}-of-{shard_num:05d}."


def part_names(shard_id: int, shard_num: int, num_files: int, gzipped: bool) -> list[str]:
    ext = ".jsonl.gz" if gzipped else ".jsonl"
    return [f"{_prefix(shard_id, shard_num)}part-{k:05d}{ext}" for k in range(num_files)]


def summary_path(output: Path, shard_id: int = 0, shard_num: int = 1) -> Path:
    """The shard's summary inside the output directory: ``.summary.json`` (``.shard-...summary.json``)."""
    return Path(output) / f".{_prefix(shard_id, shard_num)}summary.json"


def read_summary(output: str | os.PathLike, shard_id: int = 0, shard_num: int = 1) -> dict | None:
    """The summary of a finished encoding of ``output`` (of one shard), or ``None``."""
    return outputs.read_meta(summary_path(Path(output), shard_id, shard_num))


def work_dir(output: Path, shard_id: int, shard_num: int) -> Path:
    """The hidden work folder beside the output directory: the output only ever holds finished files."""
    out = output.resolve()
    suffix = "" if shard_num == 1 else f"-shard-{shard_id:05d}-of-{shard_num:05d}"
    return out.parent / f".{out.name}.encode-work{suffix}"


# -- small helpers --------------------------------------------------------------------------------------
def _write_json(path: Path, obj: dict) -> None:
    outputs.write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def _check_mlm(encoder, model: str) -> None:
    """A checkpoint saved from a non-MLM class (e.g. ``BertModel``) would load with a random head."""
    config = encoder.model.config
    archs = getattr(config, "architectures", None) or []
    if archs and not any("MaskedLM" in a or "ForPreTraining" in a for a in archs):
        where = Path(getattr(config, "_name_or_path", "") or model)
        where = where / "config.json" if where.is_dir() else where
        raise InputError(where, None, f"not a masked-LM checkpoint (architectures: {', '.join(archs)}); "
                                      "SPLADE needs the MLM head")


# -- the encoder ----------------------------------------------------------------------------------------
def _load_encoder(model: str, *, device: str, max_length: int, precision: str, pooling: str):
    from splade_anserini.encode.splade import SpladeEncoder

    enc = SpladeEncoder(model, pooling=pooling, device=device, max_length=max_length,
                        query_max_length=max_length, precision=precision)
    _check_mlm(enc, model)
    return enc


def _check_max_length(encoder, max_length: int) -> None:
    """A max length beyond the model's position embeddings fails inside the model, late: refuse it now."""
    limit = getattr(encoder.model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise EncodeError(f"--max-length {max_length}: model {encoder.model_name} has {limit} positions "
                          f"(use --max-length {limit} or less)")


def _encode_block(encoder, docs: list, lo: int, hi: int, *, factor: float, batch_size: int,
                  contents: bool, progress: Progress, workers: int) -> tuple[list[str], dict]:
    """Encode a whole block (``docs`` = its documents, in corpus order); return the JSON lines and
    the statistics of the documents with corpus index in ``[lo, hi)`` (this shard's part of it)."""
    t0 = time.time()
    texts = [(i, d) for i, d in enumerate(docs) if d.text]
    token_ids = encoder._tokenize([d.text for _, d in texts], encoder.max_length) if texts else []
    vectors = encoder.encode_token_ids(token_ids, batch_size, progress, workers=workers) if texts else []
    progress.update(len(docs) - len(texts))
    by_pos = {i: (tok, vec) for (i, _), tok, vec in zip(texts, token_ids, vectors)}
    vocab = encoder.vocab
    lines: list[str] = []
    stats = {"docs": 0, "empty_text": 0, "guarded": 0, "nonzeros": 0, "expansion": 0, "df": {}}
    df: dict[str, int] = stats["df"]
    for pos, doc in enumerate(docs):
        index = doc.index
        if not lo <= index < hi:
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


class _IndexedDoc:
    __slots__ = ("index", "line", "docid", "text")

    def __init__(self, index: int, doc):
        self.index, self.line, self.docid, self.text = index, doc.line, doc.docid, doc.text


# -- the encode job -------------------------------------------------------------------------------------
@dataclass
class EncodeJob:
    """One encoding of a corpus shard: where it reads and writes, its manifest, its lock and its
    blocks. Its steps run in order: :meth:`scan`, then under :meth:`lock`: :meth:`finished` or
    :meth:`prepare`, :meth:`encode`, :meth:`assemble`."""

    corpus: Path
    output: Path
    fmt: str
    shard_id: int = 0
    shard_num: int = 1
    num_files: int = 1
    gzipped: bool = False
    block_size: int = DEFAULT_BLOCK
    config: dict = field(default_factory=dict)
    n_docs: int = 0

    # layout
    @property
    def work(self) -> Path:
        return work_dir(self.output, self.shard_id, self.shard_num)

    @property
    def manifest_file(self) -> Path:
        return self.work / "manifest.json"

    @property
    def summary_file(self) -> Path:
        return summary_path(self.output, self.shard_id, self.shard_num)

    @property
    def names(self) -> list[str]:
        return part_names(self.shard_id, self.shard_num, self.num_files, self.gzipped)

    @property
    def range(self) -> tuple[int, int]:
        return shard_range(self.n_docs, self.shard_id, self.shard_num)

    @property
    def blocks(self) -> list[int]:
        start, end = self.range
        last = (end - 1) // self.block_size if end > start else start // self.block_size - 1
        return list(range(start // self.block_size, last + 1))

    def block_files(self, b: int) -> tuple[Path, Path]:
        """The block's JSON lines and its statistics (written last: the commit point)."""
        return self.work / f"block-{b:07d}.jsonl", self.work / f"block-{b:07d}.json"

    def block_len(self, b: int) -> int:
        return min((b + 1) * self.block_size, self.n_docs) - b * self.block_size

    # reading
    def scan(self) -> list[tuple[int, int, str]]:
        """Validate the whole corpus and count it; returns the empty-text documents of the shard as
        ``(index, line, docid)``."""
        empties: list[tuple[int, int, str]] = []
        n = 0
        for doc in read_corpus(self.corpus, self.fmt):
            if not doc.text:
                empties.append((n, doc.line, doc.docid))
            n += 1
        if n == 0:
            raise InputError(self.corpus, None, "no documents")
        self.n_docs = n
        start, end = self.range
        return [e for e in empties if start <= e[0] < end]

    def documents(self, blocks: set[int]) -> Iterator[tuple[int, list[_IndexedDoc]]]:
        """The documents to encode: ``(block, its documents in corpus order)`` for each of ``blocks``."""
        if not blocks:
            return
        lo, hi = min(blocks) * self.block_size, min((max(blocks) + 1) * self.block_size, self.n_docs)
        current: list[_IndexedDoc] = []
        current_block = None
        for index, doc in enumerate(read_corpus(self.corpus, self.fmt, check_duplicates=False)):
            if index < lo:
                continue
            if index >= hi:
                break
            b = index // self.block_size
            if b not in blocks:
                continue
            if current_block is not None and b != current_block:
                yield current_block, current
                current = []
            current_block = b
            current.append(_IndexedDoc(index, doc))
        if current_block is not None:
            yield current_block, current

    # the lock: held from before anything is deleted or written until the work folder is gone
    @contextmanager
    def lock(self) -> Iterator["EncodeJob"]:
        """Hold the work folder's lock (created with the folder); a second process is refused."""
        with outputs.lock(self.work / "lock", f"{self.output}"):
            try:
                yield self
            finally:
                if self.work.is_dir() and not self.manifest_file.is_file():
                    outputs.remove(self.work)  # nothing started: leave nothing behind

    # state
    def discard(self) -> None:
        """Remove an earlier run (finished or not) of this shard; the lock is held."""
        for p in self.work.iterdir():
            if p.name != "lock":
                outputs.remove(p)
        if outputs.check_dir(self.output, VECTORS_KIND):  # only in a folder this tool wrote vectors into
            outputs.remove(self.summary_file)
            ours = re.compile(re.escape(_prefix(self.shard_id, self.shard_num))
                              + r"part-\d{5}\.jsonl(\.gz)?(\.\d+-[0-9a-f]+\.tmp)?$")
            for p in self.output.iterdir():
                if p.is_file() and ours.match(p.name.lstrip(".")):
                    outputs.remove(p)

    def finished(self, discard_other: bool = False) -> dict | None:
        """The summary of a finished run with these arguments, or ``None`` (after discarding one with
        other arguments when ``discard_other``)."""
        if not self.summary_file.is_file():  # written last: the run is finished
            return None
        previous = read_summary(self.output, self.shard_id, self.shard_num) or {}
        if previous.get("arguments") == self.config and all((self.output / n).is_file() for n in self.names):
            outputs.remove(self.work)  # in case the final clean-up was interrupted
            return previous
        if discard_other:
            self.discard()
            return None
        raise EncodeError(f"{self.output}: holds a finished encoding with other arguments ({self.summary_file}); "
                          "use --overwrite or another --output")

    def prepare(self, discard_other: bool = False) -> set[int]:
        """Start, or resume an unfinished run with the same arguments; returns the blocks done."""
        if self.manifest_file.is_file():
            recorded = json.loads(self.manifest_file.read_text())
            if recorded != self.config:
                if not discard_other:
                    diff = sorted(k for k in set(recorded) | set(self.config) if recorded.get(k) != self.config.get(k))
                    details = "; ".join(f"{k}: {recorded.get(k)!r} -> {self.config.get(k)!r}" for k in diff)
                    raise EncodeError(f"{self.work}: an unfinished run with other arguments ({details}); rerun it "
                                      "with its arguments to resume, or pass --overwrite to start again")
                self.discard()
        if not self.manifest_file.is_file():
            clash = [n for n in self.names if (self.output / n).exists()]
            if clash:
                raise EncodeError(f"{self.output / clash[0]}: exists (not from a run with these arguments); "
                                  "use --overwrite or another --output")
            _write_json(self.manifest_file, self.config)
        return {b for b in self.blocks if all(f.is_file() for f in self.block_files(b))}

    # writing
    def commit_block(self, b: int, lines: list[str], stats: dict) -> None:
        lines_file, stats_file = self.block_files(b)
        with atomic_open(lines_file) as fh:
            fh.writelines(lines)
        _write_json(stats_file, dict(stats, block=b))  # the commit point of the block

    def assemble(self) -> tuple[dict, dict[str, int]]:
        """All blocks committed: write the part files; returns the totals and document frequencies."""
        totals = {"docs": 0, "empty_text": 0, "guarded": 0, "nonzeros": 0, "expansion": 0, "seconds": 0.0}
        df: dict[str, int] = {}
        for b in self.blocks:
            stats = json.loads(self.block_files(b)[1].read_text())
            for key in totals:
                totals[key] += stats[key]
            for token, count in stats["df"].items():
                df[token] = df.get(token, 0) + count

        def shard_lines() -> Iterator[str]:
            for b in self.blocks:
                with open(self.block_files(b)[0], encoding="utf-8") as fh:
                    yield from fh

        lines = shard_lines()
        outputs.claim_dir(self.output, VECTORS_KIND)  # shards of one collection share the folder
        for name, (lo, hi) in zip(self.names, part_ranges(*self.range, self.num_files)):
            with atomic_open(self.output / name, gzipped=self.gzipped) as fh:
                for _ in range(hi - lo):
                    fh.write(next(lines))
        if next(lines, None) is not None:  # pragma: no cover - a bug, never bad input
            raise RuntimeError("block files hold more documents than the shard")
        return totals, df

    def finish(self, summary: dict) -> None:
        """Write the summary (the run is finished), then remove the work folder."""
        outputs.write_meta(self.summary_file, summary)
        outputs.remove(self.work)


# -- main entry -----------------------------------------------------------------------------------------
def _check_arguments(*, batch_size: int, max_length: int, shard_id: int, shard_num: int, num_files: int,
                     block_size: int, threads: int | None, fmt: str, corpus: Path, output: Path) -> None:
    for name, value, least in (("batch size", batch_size, 1), ("max length", max_length, 2),
                               ("shard count", shard_num, 1), ("number of files", num_files, 1),
                               ("block size", block_size, 1)):
        if value < least:
            raise EncodeError(f"{name} must be >= {least}, got {value}")
    if not 0 <= shard_id < shard_num:
        raise EncodeError(f"shard id must be in [0, {shard_num}), got {shard_id}")
    if threads is not None and threads < 1:
        raise EncodeError(f"threads must be >= 1, got {threads}")
    if fmt not in ("auto", "beir", "msmarco"):
        raise EncodeError(f"format must be auto, beir or msmarco, got {fmt}")
    if not corpus.is_file():
        raise InputError(corpus, None, "no such file" if not corpus.exists() else "not a file")
    outputs.check_dir(output, VECTORS_KIND)  # a folder of the user's is refused before any work


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
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    session_start = time.time()
    corpus, output = Path(corpus), Path(output)
    factor = resolve_factor(factor)
    _check_arguments(batch_size=batch_size, max_length=max_length, shard_id=shard_id, shard_num=shard_num,
                     num_files=num_files, block_size=block_size, threads=threads, fmt=fmt, corpus=corpus,
                     output=output)

    # 1. the whole corpus validated and the model loaded before anything is written
    if encoder is None:
        from splade_anserini.models import check_device, resolve_model

        check_device(device)
        resolve_model(model)  # a missing model directory fails now, not after reading a big corpus
    else:
        model = encoder.model_name
    from splade_anserini.data import detect_format

    job = EncodeJob(corpus, output, detect_format(corpus) if fmt == "auto" else fmt, shard_id=shard_id,
                    shard_num=shard_num, num_files=num_files, gzipped=gzipped, block_size=block_size)
    shard_empties = job.scan()
    for _, line, docid in shard_empties[:MAX_WARNINGS]:
        _warn(f"{corpus}:{line}: document {docid!r} has empty text; it gets the guard vector {{{GUARD_TOKEN!r}: 1}}")
    if len(shard_empties) > MAX_WARNINGS:
        _warn(f"{corpus}: {len(shard_empties) - MAX_WARNINGS} more documents with empty text (guard vectors)")

    if encoder is None:
        encoder = _load_encoder(model, device=device, max_length=max_length, precision=precision, pooling=pooling)
    _check_max_length(encoder, encoder.max_length)
    from splade_anserini.provenance import check_vectors, for_documents, write_vectors

    provenance = for_documents(encoder, name=model, factor=factor, passages=passages)
    # CPU: `threads` batches at once, each with one torch thread, so the numbers do not depend on it.
    import torch

    cpu = encoder.device.type == "cpu"
    workers = (threads or torch.get_num_threads()) if cpu else 1
    stat = corpus.stat()
    job.config = {
        "version": MANIFEST_VERSION, "corpus": str(corpus.resolve()), "corpus_bytes": stat.st_size,
        "corpus_mtime_ns": stat.st_mtime_ns, "format": job.fmt, "documents_in_corpus": job.n_docs,
        "model": str(model), "max_length": encoder.max_length, "pooling": encoder.pooling,
        "device": str(encoder.device), "precision": encoder.precision, "batch_size": batch_size,
        "quantization_factor": factor, "shard_id": shard_id, "shard_num": shard_num,
        "num_files": num_files, "gzip": gzipped, "block_size": block_size,
        "contents": contents,
    }
    if fingerprint is not None:
        job.config["fingerprint"] = fingerprint

    # 2. under the lock: finished before? resuming? something else in the way?
    with job.lock():
        if overwrite:
            job.discard()
        previous = job.finished(discard_other)
        if previous is not None:
            # the same arguments, but the model may have been retrained in place: the record decides
            check_vectors(output, provenance, "already encoded by another model or with other settings")
            log(f"{output}: already encoded with these arguments (see {job.summary_file})")
            return previous
        done = job.prepare(discard_other)
        blocks = job.blocks
        if done:
            log(f"resuming {output}: {len(done)} of {len(blocks)} blocks already encoded")

        # 3. encode the missing blocks, each committed on its own
        start, end = job.range
        bar = Progress("encode", sum(job.block_len(b) for b in blocks), initial=sum(job.block_len(b) for b in done),
                       unit="doc", enabled=progress, smoothing=0.1)
        encoded_docs = 0
        encode_seconds = 0.0
        torch_threads = torch.get_num_threads()
        if cpu:
            torch.set_num_threads(1)
        try:
            with bar:  # a summary line off a terminal, none when the stage fails
                for b, docs in job.documents({b for b in blocks if b not in done}):
                    lines, stats = _encode_block(encoder, docs, start, end, factor=factor, batch_size=batch_size,
                                                 contents=contents, progress=bar, workers=workers)
                    job.commit_block(b, lines, stats)
                    encoded_docs += stats["docs"]
                    encode_seconds += stats["seconds"]
        finally:
            torch.set_num_threads(torch_threads)

        # 4. all blocks committed: the part files, then the summary, then the work folder goes
        totals, df = job.assemble()
        n = totals["docs"]
        from splade_anserini.evaluate.stats import document_flops

        flops = document_flops(df, n)
        summary = {
            "output": str(output), "files": job.names, "summary_file": str(job.summary_file),
            "documents": n, "empty_documents": totals["empty_text"], "guarded_documents": totals["guarded"],
            "empty_guarded": totals["guarded"],
            "avg_nonzeros": totals["nonzeros"] / n if n else 0.0,
            "avg_expansion_terms": totals["expansion"] / n if n else 0.0,
            "flops": flops, "distinct_terms": len(df),
            "encode_seconds_this_run": encode_seconds,
            "docs_per_second_this_run": encoded_docs / encode_seconds if encode_seconds else None,
            "encode_seconds_all_runs": totals["seconds"],
            "wall_seconds": time.time() - session_start,
            "decoder": getattr(encoder, "head_path", "plain"), "workers": workers,
            "arguments": job.config,
        }
        write_vectors(output, provenance, shared=shard_num > 1 and not overwrite)
        job.finish(summary)
    return summary


def format_summary(s: dict) -> str:
    rate = s.get("docs_per_second_this_run")
    return (f"encoded {s['documents']} documents into {len(s['files'])} file(s) under {s['output']}: "
            f"{s['empty_documents']} empty, {s['guarded_documents']} guard vectors, "
            f"{s['avg_nonzeros']:.1f} non-zeros/doc ({s['avg_expansion_terms']:.1f} expansion terms), "
            f"FLOPS {s['flops']:.3f}, wall {s['wall_seconds']:.1f}s"
            + (f", {rate:.1f} docs/s" if rate else "") + f"; summary: {s['summary_file']}")


def build_parser() -> argparse.ArgumentParser:
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
    from splade_anserini.provenance import passages_record

    check_max_length(args.model, args.max_length)  # before the passages are written
    if args.passage_length:
        check_max_length(args.model, args.passage_length, "--passage-length")
    corpus = passage_input(args)
    summary = encode_corpus(
        corpus, args.output, model=args.model, fmt="beir" if args.passage_length else args.format,
        batch_size=args.batch_size, max_length=args.max_length, factor=args.factor,
        shard_id=shard_id, shard_num=shard_num, num_files=args.num_files, gzipped=args.gzip, device=device,
        precision="fp16" if args.fp16 else "bf16" if args.bf16 else "fp32", threads=args.threads,
        pooling=args.pooling, block_size=args.block_size, contents=not args.no_contents,
        overwrite=args.overwrite, progress=not args.no_progress,
        passages=passages_record(args.passage_length, args.passage_stride))
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
