"""Numbered UTF-8 lines of plain or gzip text files, with one-line errors for undecodable bytes."""
from __future__ import annotations

import gzip
import os
from typing import IO, Iterator

from .errors import InputError


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open ``path`` for reading bytes; a ``.gz`` name is decompressed on the fly."""
    return gzip.open(path, "rb") if os.fspath(path).endswith(".gz") else open(path, "rb")


def numbered_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line without its line break)`` for every non-blank line of ``path``."""
    try:
        with open_binary(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(path, lineno, f"invalid UTF-8 at byte {exc.start}") from None
                line = line.rstrip("\r\n")
                if line.strip():
                    yield lineno, line
    except (gzip.BadGzipFile, EOFError) as exc:
        raise InputError(path, None, f"not a readable gzip file ({exc})") from None


def first_line(path: str | os.PathLike) -> str:
    """The first non-blank line of ``path`` ("" for an empty file)."""
    for _, line in numbered_lines(path):
        return line
    return ""


def strip_gz(path: str | os.PathLike) -> str:
    """The file name without a ``.gz`` suffix, for detecting a format from the name."""
    return os.path.basename(os.fspath(path)).removesuffix(".gz")
