"""The places no output command ever replaces or removes, whatever a marker says, and the refusal
of an output path (:mod:`splade_anserini.outputs`)."""
from __future__ import annotations

import os
from pathlib import Path

from splade_anserini.conversion.errors import UsageError


class OutputRefused(UsageError):
    """An output path holds something this tool did not write (or must never touch): one line, exit 2."""


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
