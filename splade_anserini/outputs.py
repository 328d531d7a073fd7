"""The one owner of writing and removing outputs: nothing the tool did not write is ever replaced.

Every command that creates, replaces, cleans or resumes an output goes through this module:

* An output folder (an index, a vector collection, an ONNX export, a checkpoint, a training folder,
  a pipeline work folder) carries a marker, :data:`MARKER`: its ``kind``, the identity of the folder
  (device and inode: ``mv`` keeps them, a copy does not) and the record of every file the tool wrote
  in it (:mod:`splade_anserini.output_record`). A finished output gets it last, recording all its
  files; a container filled over time (``train --output_dir``, ``pipeline --work-dir``, ``encode
  --output``) gets it when it is created, and each file or output added to it is recorded
  (:func:`register`). A path is replaced or removed only when it carries a marker of the same kind
  that names it and holds nothing its record does not list; otherwise the command stops with one
  line (exit status 2) naming it (and up to five foreign paths) and touches nothing. Removing an
  output removes what its record lists, never more. A marker of an earlier version (no record) is
  refused: the user removes that folder. An empty folder holds nothing to lose and may be used.
* An output file (a TREC run, an evaluation, encoded topics) is never written inside another output;
  written into a plain folder it is recorded in the marker of that folder (``"files"``: name, kind,
  size and mtime, with the folder's identity); an existing file is replaced only when that record
  matches it (a plain folder's marker of an earlier version, without identity, still counts: it
  records each file's size and mtime).
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

import fcntl
import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from splade_anserini.conversion import atomic as _atomic
from splade_anserini.conversion.atomic import atomic_open, tmp_name, tmp_pattern
from splade_anserini import output_record as records
from splade_anserini.output_lock import HELD, lock, lock_path
from splade_anserini.output_places import OutputRefused, protected_reason

MARKER = ".splade-anserini-output.json"
TOOL = "splade-anserini"
#: The kind of the marker of a plain folder that only records the files written into it.
FILES = "files"


def _version() -> str:
    from splade_anserini import __version__

    return __version__


# -- places never touched: :mod:`splade_anserini.output_places` ------------------------------------


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


def raw_marker(folder: str | os.PathLike) -> dict | None:
    """The marker file of ``folder`` as it stands (whoever put it there), or ``None``."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return None
    data = read_meta(folder / MARKER)
    return data if data is not None and data.get("tool") == TOOL else None


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of ``folder`` (a real folder, not a link), or ``None``: a marker that names another
    folder (copied here with ``cp``) is none. A marker of an earlier version (no folder named) is returned
    as it is, :func:`check_dir` refuses it."""
    data = raw_marker(folder)
    if data is None or ("folder" in data and data["folder"] != records.identity(folder)):
        return None
    return data


def write_marker(folder: str | os.PathLike, kind: str, *, contents: dict | None = None, **extra) -> None:
    """Mark ``folder`` as an output of ``kind`` (for a finished output: the last file written): its
    identity and the record of what the tool wrote in it (``contents``; else the record kept so far)."""
    old = read_marker(folder) or {}
    body = {"tool": TOOL, "version": _version(), "kind": kind, **extra, "folder": records.identity(folder),
            "record": old.get("record", {}) if contents is None else contents}
    if old.get("files"):
        body["files"] = old["files"]
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


def _nested_foreign(path: Path) -> list[str] | None:
    """The foreign paths of a subfolder that is an output of ours (its own valid marker), else ``None``."""
    marker = read_marker(path)
    if marker is None or "folder" not in marker:
        return None
    return records.foreign_paths(path, marker.get("record", {}), MARKER, _nested_foreign)


def foreign(path: str | os.PathLike) -> list[str]:
    """What the output folder ``path`` holds that its marker does not record (relative paths)."""
    found = _nested_foreign(Path(path))
    return found if found is not None else ["."]


def check_dir(path: str | os.PathLike, kind: str) -> bool:
    """May ``path`` become (or be replaced by) an output folder of ``kind``? ``True`` when it is
    already one holding only what its record lists, ``False`` when it does not exist or is an empty
    folder; refused otherwise."""
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
        raw = raw_marker(path)
        raise refusal(path, f"its {MARKER} names another folder: a copy" if raw else f"no {MARKER} marker")
    if marker.get("kind") != kind:
        raise refusal(path, f"its marker says {marker.get('kind')!r}, not {kind!r}")
    if "folder" not in marker:
        raise OutputRefused(f"{path}: its {MARKER} was written by an earlier {TOOL} that did not record the files "
                            "it wrote; remove the folder yourself or choose another path")
    found = foreign(path)
    if found:
        names = ", ".join(os.path.join(path, p) for p in found[:records.NAMED]) + (", ..." if len(found) > records.NAMED else "")
        raise OutputRefused(f"{path} holds files {TOOL} did not write ({names}); move them out or choose another "
                            "path; nothing was touched")
    return True


def claim_dir(path: str | os.PathLike, kind: str) -> bool:
    """Create the container folder ``path`` (or take it back): marked as ``kind`` from the start, its
    record kept current by :func:`register` as files are added. Returns whether this call created it
    (see :func:`release_unused`)."""
    path = Path(path)
    if check_dir(path, kind):
        return False
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    register(path, output=kind)
    with _folder_locked(path):  # shards claiming one folder at once: one marker, no record lost
        write_marker(path, kind, container=True)
    return created


def _container_of(path: Path) -> Path | None:
    """The container folder of ours (:func:`claim_dir`) that holds ``path``, or ``None``."""
    for parent in list(_named(path).parents)[:6]:
        if (parent / MARKER).is_file():
            marker = read_marker(parent)
            return parent if marker is not None and marker.get("container") and "folder" in marker else None
    return None


def register(path: str | os.PathLike, **entry) -> None:
    """Record ``path`` (a file written, or about to be, or an output folder: ``output=KIND``) in the
    record of the container that holds it, if any: replacing the container removes it, and it counts as
    the tool's, not as a user's file. Every file :func:`atomic_open` writes is recorded so."""
    path = _named(path)
    container = _container_of(path)
    if container is None:
        return
    rel = os.path.relpath(path, container)
    if path.name == MARKER or any(records.TEMPORARY.match(part) for part in Path(rel).parts):
        return  # the tool's temporaries are known by their names
    if not entry and path.is_file() and not path.is_symlink():
        entry = {"size": path.stat().st_size}
    with _folder_locked(container):
        marker = read_marker(container)
        if marker is None or rel in marker.get("record", {}) and (marker["record"][rel] == entry or not entry):
            return
        write_meta(container / MARKER, {**marker, "record": {**marker.get("record", {}), rel: entry}})


_atomic.BEFORE_INSTALL.append(register)


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
    followed), but an output folder with a record only loses what its record lists (anything else in
    it stays, and so does the folder). Missing is fine; the places of :func:`protected_reason` are refused."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    _check_protected(path)
    marker = read_marker(path)
    if marker is not None and "folder" in marker:  # an output: only what its record lists
        records.remove_recorded(path, marker.get("record", {}), MARKER, remove)
        return
    if marker is None and raw_marker(path) is not None:
        raise refusal(path, f"its {MARKER} names another folder: a copy")
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
    """Mark the finished folder ``tmp`` as ``kind`` (recording every file in it and its identity, which
    the rename keeps) and move it to ``target``, replacing an earlier output of that kind only now that
    the new one is complete (checked again: someone may have put something there meanwhile)."""
    tmp, target = Path(tmp), _named(target)
    write_marker(tmp, kind, contents=records.record_tree(tmp, MARKER), **extra)
    old = None
    if check_dir(target, kind) or os.path.lexists(target):
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(target, old)
    register(target, output=kind)
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


def _enclosing_output(path: Path) -> tuple[Path, str] | None:
    """The output folder (of another kind than plain files) that holds ``path``, if any, unless it is a
    container whose lock this process holds (its own files go there)."""
    for parent in _named(path).parents:
        marker = raw_marker(parent)
        if marker is not None and marker.get("kind") != FILES:
            return None if lock_path(parent, inside=True) in HELD else (parent, marker.get("kind"))
    return None


def check_file(path: str | os.PathLike, kind: str) -> None:
    """May the file ``path`` be written as an output of ``kind``? Refused inside another output (an
    index, vectors, an export, a checkpoint, a training or work folder), and where something this tool
    did not write (or has changed since) is there."""
    path = Path(path)
    inside = _enclosing_output(path)
    if inside is not None:
        raise OutputRefused(f"{path}: inside {inside[0]}, a {inside[1]} output of {TOOL}; no {kind} file is ever "
                            "written into another output: choose a path outside it")
    if not os.path.lexists(path):
        return
    if path.is_symlink():
        raise refusal(path, "a symbolic link; it is never followed")
    if not path.is_file():
        raise refusal(path, "a folder, not a file" if path.is_dir() else "not a regular file")
    marker = read_marker(path.parent)
    if marker is not None and marker.get("kind") != FILES:
        return  # a file inside a container of ours this process claimed
    record = (marker or {}).get("files", {}).get(path.name)
    if record is None:
        raise refusal(path, f"no record of it in {path.parent / MARKER}")
    if record.get("kind") != kind:
        raise refusal(path, f"recorded as {record.get('kind')!r}, not {kind!r}")
    if {k: record.get(k) for k in ("size", "mtime_ns")} != _file_record(path):
        raise refusal(path, "changed since splade-anserini wrote it")


def record_file(path: str | os.PathLike, kind: str) -> None:
    """Record the file ``path`` just written as an output of ``kind`` in its folder's marker (the
    record of its container, when written into one of ours)."""
    path = Path(path)
    folder = path.parent
    marker = read_marker(folder)
    if marker is not None and marker.get("kind") != FILES:
        register(path)
        return
    with _folder_locked(folder):
        marker = read_marker(folder)
        files = {name: rec for name, rec in (marker or {}).get("files", {}).items() if (folder / name).is_file()}
        files[path.name] = {"kind": kind, **_file_record(path)}
        write_meta(folder / MARKER, {"tool": TOOL, "version": _version(), "kind": FILES,
                                     "folder": records.identity(folder), "files": files})


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


# -- the lock of an output: :mod:`splade_anserini.output_lock` ------------------------------------------

__all__ = ["MARKER", "OutputRefused", "check_dir", "check_file", "claim_dir", "foreign", "install_dir", "is_ours",
           "lock", "lock_path", "output_file", "protected_reason", "read_marker", "record_file", "register", "remove",
           "temp_dir", "tmp_name", "write_marker"]
