"""Write files under a temporary name and rename on success, so no partial file is ever visible."""
from __future__ import annotations

import gzip
import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def tmp_name(path: str | os.PathLike) -> Path:
    """The temporary sibling name used while ``path`` is being written."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, gzipped: bool | None = None) -> Iterator[IO]:
    """Open ``path`` for writing (text ``"w"`` or binary ``"wb"``) through a temporary file that is
    renamed into place on success and removed on error. ``gzipped`` defaults to a ``.gz`` suffix."""
    path = Path(path)
    tmp = tmp_name(path)
    if gzipped is None:
        gzipped = path.suffix == ".gz"
    raw = open(tmp, "wb")
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
        os.replace(tmp, path)
    except BaseException:
        raw.close()
        tmp.unlink(missing_ok=True)
        raise
