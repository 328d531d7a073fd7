"""The work folder of a corpus encoding: part-file layout, resumable blocks and atomic renames.

:class:`EncodeJob` is the on-disk side of :mod:`splade_anserini.encode.corpus`. A shard is encoded in
blocks of ``block_size`` documents, fixed by position in the corpus; each block is committed to a
hidden work folder beside the output (:func:`work_dir`, with a manifest of the arguments) by atomic
renames, so a killed run restarted with the same arguments continues where it stopped and one with
other arguments is refused. When all blocks are done the part files are made from them (each written
under a temporary name and renamed), then the summary, then the work folder is removed.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from splade_anserini.conversion.atomic import atomic_open, tmp_pattern
from splade_anserini.conversion.errors import InputError, UsageError

from splade_anserini import outputs
from splade_anserini.data import read_corpus
from splade_anserini.encode.collection_record import PartRecorder

DEFAULT_BLOCK = 1000
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


def _write_json(path: Path, obj: dict) -> None:
    outputs.write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class IndexedDoc:
    """A corpus document and its position in the corpus (``index``, from 0)."""

    __slots__ = ("index", "line", "docid", "text")

    def __init__(self, index: int, doc):
        self.index, self.line, self.docid, self.text = index, doc.line, doc.docid, doc.text


# -- the encode job -------------------------------------------------------------------------------------
@dataclass
class EncodeJob:
    """One encoding of a corpus shard: where it reads and writes, its manifest, its lock and its
    blocks. Its steps run in order: :meth:`scan`, then under :meth:`lock`: :meth:`finished` or
    :meth:`prepare`, :meth:`commit_block` for each block encoded, :meth:`assemble`, :meth:`finish`.
    ``opener`` writes the block and part files under a temporary name and renames them
    (:func:`~splade_anserini.conversion.atomic.atomic_open`'s signature)."""

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
    opener: Callable = atomic_open
    #: the record of each part file written by :meth:`assemble` (documents, SHA-256), kept in the summary
    parts: dict = field(default_factory=dict)

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

    def documents(self, blocks: set[int]) -> Iterator[tuple[int, list[IndexedDoc]]]:
        """The documents to encode: ``(block, its documents in corpus order)`` for each of ``blocks``."""
        if not blocks:
            return
        lo, hi = min(blocks) * self.block_size, min((max(blocks) + 1) * self.block_size, self.n_docs)
        current: list[IndexedDoc] = []
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
            current.append(IndexedDoc(index, doc))
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
            part = re.escape(_prefix(self.shard_id, self.shard_num)) + r"part-\d{5}\.jsonl(?:\.gz)?"
            ours = re.compile(f"(?:{part}|{tmp_pattern(part)})$")  # finished part files, or being written
            for p in self.output.iterdir():
                if p.is_file() and ours.match(p.name):
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
        with self.opener(lines_file) as fh:
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
        self.parts = {}
        for name, (lo, hi) in zip(self.names, part_ranges(*self.range, self.num_files)):
            outputs.register(self.output / name, size=None)  # recorded before it is written
            part = PartRecorder()  # the summary's record of the part, which index checks
            with self.opener(self.output / name, gzipped=self.gzipped) as fh:
                for _ in range(hi - lo):
                    line = next(lines)
                    part.add(line)
                    fh.write(line)
            self.parts[name] = part.record()
        if next(lines, None) is not None:  # pragma: no cover - a bug, never bad input
            raise RuntimeError("block files hold more documents than the shard")
        return totals, df

    def finish(self, summary: dict) -> None:
        """Write the summary (the run is finished), then remove the work folder."""
        outputs.write_meta(self.summary_file, summary)
        outputs.remove(self.work)


