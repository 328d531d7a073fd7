"""Numbered UTF-8 lines of plain or gzip text files, with one-line errors for undecodable bytes."""
from __future__ import annotations

import gzip
import json
import os
import zlib
from typing import IO, Iterator

from .errors import InputError


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open ``path`` for reading bytes; a ``.gz`` name is decompressed on the fly."""
    return gzip.open(path, "rb") if os.fspath(path).endswith(".gz") else open(path, "rb")


def raw_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """``(1-based line number, raw line)`` of a plain or gzipped file; a truncated or corrupt ``.gz`` is
    an :class:`InputError` naming the line where the data stops."""
    lineno = 0
    try:
        with open_binary(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                yield lineno, raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(path, lineno + 1, f"truncated or corrupt gzip data ({exc})") from None


def numbered_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line without its line break)`` for every non-blank line of ``path``."""
    for lineno, raw in raw_lines(path):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(path, lineno, f"invalid UTF-8 at byte {exc.start}") from None
        line = line.rstrip("\r\n")
        if line.strip():
            yield lineno, line


def first_line(path: str | os.PathLike) -> str:
    """The first non-blank line of ``path`` ("" for an empty file)."""
    for _, line in numbered_lines(path):
        return line
    return ""


def strip_gz(path: str | os.PathLike) -> str:
    """The file name without a ``.gz`` suffix, for detecting a format from the name."""
    return os.path.basename(os.fspath(path)).removesuffix(".gz")


def json_object(path: str | os.PathLike, lineno: int, line: str | bytes, expected: str = "a JSON object") -> dict:
    """Parse one JSON-lines record; malformed or non-object lines are an :class:`InputError` naming the line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise InputError(path, lineno, "malformed JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise InputError(path, lineno, f"expected {expected}")
    return obj
