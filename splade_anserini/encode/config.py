"""The options of one corpus encoding job (:mod:`splade_anserini.encode.corpus`), built once from
:func:`~splade_anserini.encode.corpus.encode_corpus`'s arguments or from the command line."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from splade_anserini.conversion.errors import InputError

from splade_anserini import outputs
from splade_anserini.encode.shards import DEFAULT_BLOCK, VECTORS_KIND, EncodeError


@dataclass
class EncodeConfig:
    """The options of one encoding job: the arguments of
    :func:`~splade_anserini.encode.corpus.encode_corpus`, or of the command line (:meth:`from_args`).
    ``encoder``: an already loaded :class:`~splade_anserini.encode.splade.SpladeEncoder`, used instead
    of ``model``, ``max_length``, ``pooling``, ``device`` and ``precision``; ``log``: where progress
    messages go (default: stderr)."""

    corpus: Path
    output: Path
    model: str = "splade-tiny"
    encoder: object | None = None
    fmt: str = "auto"
    batch_size: int = 32
    max_length: int = 256
    factor: str | float = 100
    shard_id: int = 0
    shard_num: int = 1
    num_files: int = 1
    gzipped: bool = False
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None
    pooling: str = "max"
    block_size: int = DEFAULT_BLOCK
    contents: bool = True
    overwrite: bool = False
    discard_other: bool = False
    fingerprint: str | None = None
    progress: bool = True
    passages: dict | None = None
    log: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.corpus, self.output = Path(self.corpus), Path(self.output)

    @classmethod
    def from_args(cls, args: argparse.Namespace, corpus: Path, shard_id: int, shard_num: int,
                  device: str) -> "EncodeConfig":
        """The job of the parsed command line; ``corpus``, shard and device as the command resolved them."""
        from splade_anserini.provenance import passages_record

        return cls(corpus, args.output, model=args.model, fmt="beir" if args.passage_length else args.format,
                   batch_size=args.batch_size, max_length=args.max_length, factor=args.factor,
                   shard_id=shard_id, shard_num=shard_num, num_files=args.num_files, gzipped=args.gzip,
                   device=device, precision="fp16" if args.fp16 else "bf16" if args.bf16 else "fp32",
                   threads=args.threads, pooling=args.pooling, block_size=args.block_size,
                   contents=not args.no_contents, overwrite=args.overwrite, progress=not args.no_progress,
                   passages=passages_record(args.passage_length, args.passage_stride))

    def check(self) -> None:
        """Refuse bad arguments, a missing corpus and an output folder of the user's, before any work."""
        for name, value, least in (("batch size", self.batch_size, 1), ("max length", self.max_length, 2),
                                   ("shard count", self.shard_num, 1), ("number of files", self.num_files, 1),
                                   ("block size", self.block_size, 1)):
            if value < least:
                raise EncodeError(f"{name} must be >= {least}, got {value}")
        if not 0 <= self.shard_id < self.shard_num:
            raise EncodeError(f"shard id must be in [0, {self.shard_num}), got {self.shard_id}")
        if self.threads is not None and self.threads < 1:
            raise EncodeError(f"threads must be >= 1, got {self.threads}")
        if self.fmt not in ("auto", "beir", "msmarco"):
            raise EncodeError(f"format must be auto, beir or msmarco, got {self.fmt}")
        if not self.corpus.is_file():
            raise InputError(self.corpus, None, "no such file" if not self.corpus.exists() else "not a file")
        outputs.check_dir(self.output, VECTORS_KIND)
