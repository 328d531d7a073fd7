"""The one lock of an output (:mod:`splade_anserini.outputs`): ``flock`` on a lock file that records its holder."""
from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from splade_anserini.output_places import OutputRefused

#: The lock files this process holds: inside a container it holds, its own files may be written.
HELD: set[Path] = set()

def lock_path(target: str | os.PathLike, *, inside: bool = False) -> Path:
    """The lock file of ``target``: inside a container folder, else beside the output."""
    target = Path(os.path.abspath(target))
    return target / ".splade-anserini.lock" if inside else target.with_name(f".{target.name}.lock")


@contextmanager
def lock(path: str | os.PathLike, what: str, *, wait: bool = False) -> Iterator[None]:
    """Hold the lock file ``path`` (see :func:`lock_path`) while the block runs; a second writer
    is refused in one line (or, with ``wait``, waits its turn). The file records the holder's pid
    and goes away when released; the lock of a process that died is free (``flock``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise OutputRefused(f"{what}: another splade-anserini process is writing it; wait for it to finish "
                                "or choose another path") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()  # the holder released and removed it meanwhile: take the new one
    try:
        fh.truncate(0)
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        HELD.add(Path(os.path.abspath(path)))
        yield
    finally:
        HELD.discard(Path(os.path.abspath(path)))
        path.unlink(missing_ok=True)  # while still held: a waiting process then takes a fresh file
        fh.close()
