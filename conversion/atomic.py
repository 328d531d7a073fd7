"""Write files under a temporary name and rename on success, so no partial file is ever visible."""
from __future__ import annotations

import gzip
import io
import os
import secrets
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Callable, Iterator

#: Called with the final path of each finished file just before it is renamed into place: the output
#: module (:func:`splade_anserini.outputs.register`) records it in the output folder that holds it.
BEFORE_INSTALL: list[Callable[[Path], None]] = []


def tmp_name(path: str | os.PathLike) -> Path:
    """A temporary sibling name for writing ``path``, unique to this process and call (pid + random),
    so that writers of one path at once never share a temporary file."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def tmp_pattern(name_pattern: str) -> str:
    """A regular expression for the :func:`tmp_name` of a file whose name matches ``name_pattern``."""
    return rf"\.{name_pattern}\.\d+-[0-9a-f]+\.tmp"


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, gzipped: bool | None = None) -> Iterator[IO]:
    """Open ``path`` for writing (text ``"w"`` or binary ``"wb"``) through a temporary file that is
    renamed into place on success and removed on error (also when the disk is full: an error while
    writing names ``path``)."""
    path = Path(path)
    tmp = tmp_name(path)
    if gzipped is None:
        gzipped = path.suffix == ".gz"
    raw = open(tmp, "wb")
    fh = stream = raw
    try:
        # mtime=0 keeps gzip output byte-identical across runs (a resumed run must reproduce files exactly).
        stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if gzipped else raw
        fh = io.TextIOWrapper(stream, encoding="utf-8", newline="\n") if "b" not in mode else stream
        yield fh
        fh.flush()
        if fh is not stream:
            fh.detach()
        if gzipped:
            stream.close()
        raw.flush()
        os.fsync(raw.fileno())
        raw.close()
        for hook in BEFORE_INSTALL:
            hook(path)
        os.replace(tmp, path)
    except BaseException as exc:
        # Closing flushes buffered data, which fails again on a full disk: the clean-up must not stop there.
        for layer in (fh, stream, raw):
            with suppress(Exception):
                layer.close()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, os.fspath(path)) from None
        raise
