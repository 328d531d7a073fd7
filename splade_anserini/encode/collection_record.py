"""The record of a vector collection ``encode`` wrote, and its check before indexing.

Each summary (``.summary.json``, one per shard) lists under ``parts`` every part file of its shard with
the number of documents it holds and the SHA-256 of its lines (uncompressed). ``index`` checks a
collection against that record before reading it: a part deleted, cut short (a truncated copy), with
lines deleted or edited, or a part file the record does not know (an unfinished encoding) is refused
in one line naming the part. Vectors without a record (written by other tools) are indexed as they are.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

from splade_anserini.conversion.errors import InputError


class PartRecorder:
    """Counts and hashes the lines of one part file as they are written."""

    def __init__(self) -> None:
        self.documents = 0
        self._sha = hashlib.sha256()

    def add(self, line: str) -> None:
        self.documents += 1
        self._sha.update(line.encode("utf-8"))

    def record(self) -> dict:
        return {"documents": self.documents, "sha256": self._sha.hexdigest()}


def _measure(path: Path) -> tuple[int, str]:
    """``(lines, sha256)`` of a part file's content (a last line without newline counts)."""
    sha, lines, last = hashlib.sha256(), 0, b"\n"
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as fh:
            while chunk := fh.read(1 << 20):
                sha.update(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except (OSError, EOFError) as exc:
        raise InputError(path, None, f"unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    return lines + (last != b"\n"), sha.hexdigest()


def recorded_parts(folder: Path) -> dict[str, tuple[dict, Path]]:
    """The parts the summaries in ``folder`` record: name -> (record, summary file)."""
    from splade_anserini.outputs import read_meta

    parts: dict[str, tuple[dict, Path]] = {}
    for summary in sorted(folder.glob(".*summary.json")):
        for name, rec in ((read_meta(summary) or {}).get("parts") or {}).items():
            parts[name] = (rec, summary)
    return parts


def check_collection(input_path: str | os.PathLike) -> list[Path]:
    """Refuse a collection whose part files do not match the record ``encode`` left (if any); returns
    its files (:func:`~splade_anserini.conversion.jsonvector.collection_files`)."""
    from splade_anserini.conversion.jsonvector import collection_files

    folder = Path(input_path)
    parts = recorded_parts(folder) if folder.is_dir() else {}
    if not parts:
        return collection_files(folder)
    for name, (rec, summary) in sorted(parts.items()):
        path = folder / name
        expected = rec.get("documents")
        if not path.is_file():
            raise InputError(path, None, f"missing: the record in {summary} says {expected} documents, found 0 "
                                         "(a part deleted); encode the collection again or restore the part")
        found, digest = _measure(path)
        if found != expected:
            raise InputError(path, None, f"the record in {summary} says {expected} documents, found {found} (a "
                                         "truncated or edited part); encode the collection again or restore it")
        if rec.get("sha256") not in (None, digest):
            raise InputError(path, None, f"{found} documents as recorded in {summary}, but their content differs "
                                         "from what encode wrote; encode the collection again or restore the part")
    files = collection_files(folder)
    unknown = [f for f in files if f.name not in parts]
    if unknown:
        summaries = ", ".join(sorted({str(s) for _, s in parts.values()}))
        raise InputError(unknown[0], None, f"not in the collection's record ({summaries}): a file added, or an "
                                           "encoding that did not finish; move it out or finish the encoding")
    return files
