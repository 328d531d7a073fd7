"""The one owner of writing and removing outputs: nothing the tool did not write is ever replaced.

Every command that creates, replaces, cleans or resumes an output goes through this module:

* An output folder (an index, a vector collection, an ONNX export, a training folder, a pipeline
  work folder) carries a marker, :data:`MARKER`, holding its ``kind``. A finished output gets it
  last (when it is complete); a container that is filled over time (``train --output_dir``,
  ``pipeline --work-dir``) gets it when it is created. A path is replaced or removed only when it
  carries the marker of the same kind; otherwise the command stops with one line
  ``error: DIR exists and was not written by splade-anserini (...); choose another path or remove
  it yourself`` (exit status 2) and touches nothing. An empty folder holds nothing to lose and may
  be used.
* An output file (a TREC run, an evaluation, encoded topics) written outside such a folder is
  recorded in the marker of the folder that holds it (``"files"``: name, kind, size and mtime); an
  existing file is replaced only when that record matches it.
* Whatever the marker says, ``/``, the home directory, the current folder and its parents, and the
  folders that hold the checkout or the data folder are never replaced or removed; a symbolic link
  given as an output is refused (never followed), and links met inside our own outputs are removed
  as links.
* Metadata files inside an output folder (the marker, summaries) begin with a line ``[]``: Anserini
  reads every file of a collection folder as documents, and finds none in them.
* Temporary names are unique (pid + random) and live in the target's folder; :func:`lock` is the
  one lock of an output (``flock``: a lock whose process died does not block, and its file is
  removed when released).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from splade_anserini.conversion.atomic import atomic_open, tmp_name, tmp_pattern
from splade_anserini.conversion.errors import UsageError

MARKER = ".splade-anserini-output.json"
TOOL = "splade-anserini"
#: The kind of the marker of a plain folder that only records the files written into it.
FILES = "files"


class OutputRefused(UsageError):
    """An output path holds something this tool did not write (or must never touch): one line, exit 2."""


def _version() -> str:
    from splade_anserini import __version__

    return __version__


# -- places never touched -------------------------------------------------------------------------
def _protected() -> list[tuple[Path, str]]:
    """Folders that are never replaced or removed, nor any folder holding one of them."""
    places: list[tuple[Path, str]] = []
    for home in {os.environ.get("HOME"), os.path.expanduser("~")}:
        if home:
            places.append((Path(home), "the home directory"))
    try:
        import pwd

        places.append((Path(pwd.getpwuid(os.getuid()).pw_dir), "the home directory"))
    except (ImportError, KeyError):
        pass
    places.append((Path.cwd(), "the current folder"))
    places.append((Path(__file__).resolve().parent.parent, "the splade-anserini checkout"))
    try:
        from splade_anserini.data import data_root

        places.append((data_root(), "the data folder"))
    except Exception:  # noqa: BLE001 - no data folder configured
        pass
    return places


def protected_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` may never be replaced or removed, or ``None``."""
    target = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    if target == Path(target.anchor) or real == Path(real.anchor):
        return "it is the root folder"
    for place, name in _protected():
        for p in {Path(os.path.abspath(place)), Path(os.path.realpath(place))}:
            for t in (target, real):
                if t == p:
                    return f"it is {name}"
                if p.is_relative_to(t):
                    return f"it holds {name}"
    return None


def refusal(path: str | os.PathLike, reason: str) -> OutputRefused:
    return OutputRefused(f"{path} exists and was not written by {TOOL} ({reason}); "
                         "choose another path or remove it yourself")


def _check_protected(path: Path) -> None:
    reason = protected_reason(path)
    if reason:
        raise OutputRefused(f"{path}: {TOOL} never replaces or removes this folder ({reason}); choose another path")


# -- metadata files and markers -------------------------------------------------------------------
_NO_DOCUMENTS = "[]\n"


def write_meta(path: str | os.PathLike, obj: dict) -> None:
    """Write ``obj`` as a metadata file inside an output folder (atomically; Anserini sees no document)."""
    with atomic_open(path) as fh:
        fh.write(_NO_DOCUMENTS + json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_meta(path: str | os.PathLike) -> dict | None:
    """A metadata file written by :func:`write_meta`, or ``None`` when missing or unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text[len(_NO_DOCUMENTS):] if text.startswith(_NO_DOCUMENTS) else text)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of ``folder`` (a real folder, not a link), or ``None``."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return None
    data = read_meta(folder / MARKER)
    return data if data is not None and data.get("tool") == TOOL else None


def write_marker(folder: str | os.PathLike, kind: str, **extra) -> None:
    """Mark ``folder`` as an output of ``kind`` (for a finished output: the last file written)."""
    files = (read_marker(folder) or {}).get("files", {})
    body = {"tool": TOOL, "version": _version(), "kind": kind, **extra}
    if files:
        body["files"] = files
    write_meta(Path(folder) / MARKER, body)


def is_ours(path: str | os.PathLike, kind: str) -> bool:
    marker = read_marker(path)
    return marker is not None and marker.get("kind") == kind


#: What a folder being claimed may hold and still count as empty: a marker being written (under its
#: temporary name), a lock. Another process (a torchrun rank) may be claiming the same folder at that
#: very moment.
_CLAIMING = re.compile(rf"^(?:{tmp_pattern(re.escape(MARKER))}|\.splade-anserini\.lock)$")


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and all(_CLAIMING.match(p.name) for p in path.iterdir())


def check_dir(path: str | os.PathLike, kind: str) -> bool:
    """May ``path`` become (or be replaced by) an output folder of ``kind``? ``True`` when it is
    already one, ``False`` when it does not exist or is an empty folder; refused otherwise."""
    path = Path(path)
    if not os.path.lexists(path):
        return False
    _check_protected(path)
    if path.is_symlink():
        raise refusal(path, "a symbolic link; it is never followed")
    if not path.is_dir():
        raise refusal(path, "a file, not a folder")
    if _is_empty_dir(path):
        return False
    marker = read_marker(path)
    if marker is None:
        raise refusal(path, f"no {MARKER} marker")
    if marker.get("kind") != kind:
        raise refusal(path, f"its marker says {marker.get('kind')!r}, not {kind!r}")
    return True


def claim_dir(path: str | os.PathLike, kind: str) -> bool:
    """Create the container folder ``path`` (or take it back): marked as ``kind`` from the start.
    Returns whether this call created it (see :func:`release_unused`)."""
    path = Path(path)
    if check_dir(path, kind):
        return False
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    write_marker(path, kind)
    return created


def release_unused(path: str | os.PathLike) -> None:
    """Remove the folder :func:`claim_dir` created when a refused or failed command left nothing in
    it but its marker (and lock): a refusal leaves nothing behind."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink() and all(p.name == MARKER or _CLAIMING.match(p.name)
                                                       for p in path.iterdir()):
        remove(path)


# -- removing and replacing ---------------------------------------------------------------------
def _named(path: str | os.PathLike) -> Path:
    """``path`` made absolute, so that ``.`` and ``..`` have a name and a folder to live in."""
    return Path(os.path.abspath(path))


def remove(path: str | os.PathLike) -> None:
    """Remove a path this tool wrote (an output being replaced, a temporary or work folder): a link
    or file is unlinked, a folder removed with everything in it (links inside are removed, never
    followed). Missing is fine; the places of :func:`protected_reason` are refused."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    _check_protected(path)
    shutil.rmtree(path, ignore_errors=True)


def temp_dir(target: str | os.PathLike, label: str = "tmp") -> Path:
    """A new hidden folder beside ``target`` (``.NAME.LABEL-PID-RANDOM``), with normal permissions."""
    target = _named(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.with_name(f".{target.name}.{label}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


def install_dir(tmp: str | os.PathLike, target: str | os.PathLike, kind: str, **extra) -> Path:
    """Mark the finished folder ``tmp`` as ``kind`` and move it to ``target``, replacing an earlier
    output of that kind only now that the new one is complete (checked again: someone may have
    put something there meanwhile)."""
    tmp, target = Path(tmp), _named(target)
    write_marker(tmp, kind, **extra)
    old = None
    if check_dir(target, kind) or os.path.lexists(target):
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        remove(old)
    return target


def replace_file(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename the finished file ``tmp`` (written in ``target``'s folder) to ``target``."""
    os.replace(tmp, target)


_PRIVATE: dict[str, Path] = {}


def private_temp_dir(label: str) -> Path:
    """A folder of this process under the system's temporary folder (``splade-anserini-LABEL-*``),
    created on first use and removed when the process exits (the JVM's temporary files go there)."""
    if label not in _PRIVATE:
        import atexit
        import tempfile

        path = Path(tempfile.mkdtemp(prefix=f"splade-anserini-{label}-{os.getpid()}-"))
        atexit.register(remove, path)
        _PRIVATE[label] = path
        mine = re.compile(rf"^splade-anserini-{re.escape(label)}-(\d+)-")
        for other in path.parent.iterdir():  # those of killed processes (no exit handler ran)
            m = mine.match(other.name)
            if m and other != path and not alive(int(m[1])) and other.is_dir() and not other.is_symlink() \
                    and other.stat().st_uid == os.getuid():
                remove(other)
    return _PRIVATE[label]


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (this process counts as not running: its own leftovers are stale)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- files written into plain folders -----------------------------------------------------------
@contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _file_record(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_file(path: str | os.PathLike, kind: str) -> None:
    """May the file ``path`` be written as an output of ``kind``? Refused when something this tool
    did not write (or has changed since) is there."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink():
        raise refusal(path, "a symbolic link; it is never followed")
    if not path.is_file():
        raise refusal(path, "a folder, not a file" if path.is_dir() else "not a regular file")
    marker = read_marker(path.parent)
    if marker is not None and marker.get("kind") != FILES:
        return  # a file inside one of our output folders
    record = (marker or {}).get("files", {}).get(path.name)
    if record is None:
        raise refusal(path, f"no record of it in {path.parent / MARKER}")
    if record.get("kind") != kind:
        raise refusal(path, f"recorded as {record.get('kind')!r}, not {kind!r}")
    if {k: record.get(k) for k in ("size", "mtime_ns")} != _file_record(path):
        raise refusal(path, "changed since splade-anserini wrote it")


def record_file(path: str | os.PathLike, kind: str) -> None:
    """Record the file ``path`` just written as an output of ``kind`` in its folder's marker."""
    path = Path(path)
    folder = path.parent
    with _folder_locked(folder):
        marker = read_marker(folder)
        if marker is not None and marker.get("kind") != FILES:
            return
        files = {name: rec for name, rec in (marker or {}).get("files", {}).items() if (folder / name).is_file()}
        files[path.name] = {"kind": kind, **_file_record(path)}
        write_meta(folder / MARKER, {"tool": TOOL, "version": _version(), "kind": FILES, "files": files})


@contextmanager
def output_file(path: str | os.PathLike, kind: str, *, inputs: tuple = ()) -> Iterator[Path]:
    """Check ``path`` before writing it (and that it is none of ``inputs``), record it after."""
    path = Path(path)
    for other in inputs:
        if other and os.path.lexists(other) and os.path.lexists(path) and os.path.samefile(other, path):
            raise OutputRefused(f"{path}: the output is also an input of this command; choose another path")
        if other and os.path.abspath(other) == os.path.abspath(path):
            raise OutputRefused(f"{path}: the output is also an input of this command; choose another path")
    check_file(path, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    yield path
    record_file(path, kind)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a unique temporary name (for files inside our own folders)."""
    with atomic_open(path) as fh:
        fh.write(text)


# -- the lock of an output ----------------------------------------------------------------------
def lock_path(target: str | os.PathLike, *, inside: bool = False) -> Path:
    """The lock file of ``target``: inside a container folder, else beside the output."""
    target = _named(target)
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
        yield
    finally:
        remove(path)  # while still held: a waiting process then takes a fresh file
        fh.close()


__all__ = ["MARKER", "OutputRefused", "check_dir", "check_file", "claim_dir", "install_dir", "is_ours", "lock",
           "lock_path", "output_file", "protected_reason", "read_marker", "record_file", "remove", "temp_dir",
           "tmp_name", "write_marker"]
