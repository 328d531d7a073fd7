"""What the marker of an output folder records, and what that record allows (:mod:`splade_anserini.outputs`).

A marker records the identity of its folder (``st_dev`` and ``st_ino``: a rename or ``mv`` on the same
file system keeps them, a copy does not) and, under ``record``, every file the tool wrote in it by its
path relative to the folder: its size, and its SHA-256 when it is small (:data:`DIGEST_LIMIT`; a
multi-GB index is not read again to be hashed). A folder is ours only when its marker names it; what
the record does not list (nor a tool temporary, nor an output of ours nested inside with its own valid
marker) is *foreign*, and an output holding anything foreign is never replaced or removed.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

#: Files up to this size get a SHA-256 in the record (metadata, small indexes); larger ones only a size.
DIGEST_LIMIT = 1 << 20
#: How many foreign paths a refusal names.
NAMED = 5
#: Names the tool gives its temporaries and locks inside a folder: a unique temporary file
#: (``.NAME.PID-RANDOM.tmp``, ``.NAME.tmp-PID``), a hidden build/swap folder (``.NAME.LABEL-PID-RANDOM``),
#: an encoding's work folder, a lock. No user names a file like these.
TEMPORARY = re.compile(r"^(?:\..+\.(?:\d+-[0-9a-f]+\.tmp|tmp-\d+|[a-z]+-\d+-[0-9a-f]{8}"
                       r"|encode-work(?:-shard-\d{5}-of-\d{5})?|lock)|\.splade-anserini\.lock)$")


def identity(folder: str | os.PathLike) -> dict[str, int]:
    """The identity of ``folder`` (not following a link): its device and inode."""
    st = os.stat(folder, follow_symlinks=False)
    return {"dev": st.st_dev, "ino": st.st_ino}


def file_entry(path: str | os.PathLike) -> dict:
    """The record of one file written: its size, and its SHA-256 when it is small."""
    st = os.stat(path, follow_symlinks=False)
    if os.path.islink(path):
        return {"link": True}
    entry: dict = {"size": st.st_size}
    if st.st_size <= DIGEST_LIMIT:
        with open(path, "rb") as fh:
            entry["sha256"] = hashlib.file_digest(fh, "sha256").hexdigest()
    return entry


def record_tree(folder: str | os.PathLike, skip: str) -> dict[str, dict]:
    """The record of every file under ``folder`` (a finished output about to be installed) but ``skip``."""
    folder = Path(folder)
    record = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = os.path.relpath(os.path.join(root, name), folder)
            if rel != skip:
                record[rel] = file_entry(os.path.join(root, name))
    return dict(sorted(record.items()))


def _covered_dirs(record: dict) -> set[str]:
    """The folders that hold a recorded path (the tool made them)."""
    dirs = set()
    for rel in record:
        parent = os.path.dirname(rel)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    return dirs


def foreign_paths(folder: Path, record: dict, marker_name: str, nested) -> list[str]:
    """What lies in ``folder`` that its ``record`` does not list (paths relative to it, sorted, walk
    order), at most :data:`NAMED` + 1. ``nested(path)`` returns the foreign paths of a subfolder that is an
    output of ours with its own valid marker (relative to it), or ``None`` when it is none."""
    found: list[str] = []
    covered = _covered_dirs(record)
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        rel_root = "" if rel_root == "." else rel_root
        keep = []
        for name in sorted(dirs):
            rel = os.path.join(rel_root, name)
            path = os.path.join(root, name)
            if os.path.islink(path) or TEMPORARY.match(name):
                if not TEMPORARY.match(name) and rel not in record:
                    found.append(rel)
                continue
            inner = None if rel in covered else nested(Path(path))
            if inner is not None:
                found += [os.path.join(rel, p) for p in inner]
            elif rel in covered:
                keep.append(name)
            else:
                found.append(rel + "/")
        dirs[:] = keep
        for name in sorted(files):
            rel = os.path.join(rel_root, name)
            if rel not in record and rel != marker_name and not TEMPORARY.match(name):
                found.append(rel)
        if len(found) > NAMED:
            break
    return found


def _inside(folder: Path, rel: str) -> bool:
    """Whether ``folder/rel`` lies inside ``folder`` with no link on the way."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        return False
    return not any((folder.joinpath(*parts[:i])).is_symlink() for i in range(1, len(parts)))


def remove_recorded(folder: Path, record: dict, marker_name: str, remove_nested) -> list[str]:
    """Remove what ``record`` lists in ``folder`` (``remove_nested`` for a subfolder that is an output of
    ours), the tool's temporaries, the folders left empty, then the marker and ``folder`` itself when
    nothing else is left. Returns what was left (foreign paths, nothing removed of them)."""
    for rel, entry in record.items():
        path = folder / rel
        if not _inside(folder, rel):
            continue  # an edited record never reaches outside its folder, nor through a link
        if entry.get("output") and path.is_dir() and not path.is_symlink():
            remove_nested(path)
        elif os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
            path.unlink(missing_ok=True)
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files + dirs:
            path = Path(root) / name
            if TEMPORARY.match(name):
                remove_nested(path)
            elif path.is_dir() and not path.is_symlink():
                try:
                    path.rmdir()  # only when empty: anything foreign inside stays
                except OSError:
                    pass
    left = [p.name for p in folder.iterdir() if p.name != marker_name]
    if not left:
        (folder / marker_name).unlink(missing_ok=True)
        folder.rmdir()
    return left
