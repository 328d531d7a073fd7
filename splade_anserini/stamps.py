"""Stage bookkeeping of the pipeline (:mod:`splade_anserini.pipeline`): one JSON stamp per stage.

A stage is redone only when the parameters it was stamped with (inputs' fingerprints, options and the
keys of the stages upstream) changed, or its outputs are gone; :class:`Stamps` also keeps every stage's
time for the report.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence


def file_fingerprint(path: str | os.PathLike) -> dict:
    """A file's resolved path, size and mtime: a changed input redoes the stages that read it."""
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def model_fingerprint(model: str) -> dict:
    """A model name plus, for a local directory, its weights' size and mtime (retrained -> re-encode)."""
    from splade_anserini.models import resolve_model

    resolved = resolve_model(model)
    fp: dict = {"model": str(model)}
    path = Path(resolved)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin", "config.json"):
            if (path / name).is_file():
                fp[name] = file_fingerprint(path / name)
    return fp


@dataclass
class Stage:
    """One line of the report: a stage's time (its recorded time when reused) and note."""

    name: str
    seconds: float = 0.0
    reused: bool = False
    note: str = ""


@dataclass
class Stamps:
    """One JSON stamp per stage: the key of the parameters (and upstream stamps) that produced it."""

    folder: Path
    force: bool = False
    stages: list[Stage] = field(default_factory=list)

    def key(self, params: dict) -> str:
        """The stage key of ``params``: a short hash of their JSON."""
        return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def fresh(self, name: str, key: str, *outputs: Path) -> bool:
        """Whether stage ``name`` is stamped with ``key`` and its ``outputs`` exist (never under ``force``)."""
        stamp = self.folder / f"{name}.json"
        if self.force or not stamp.is_file() or not all(p.exists() for p in outputs):
            return False
        try:
            return json.loads(stamp.read_text()).get("key") == key
        except (OSError, ValueError):
            return False

    def record(self, name: str, key: str, params: dict, **extra) -> None:
        """Write stage ``name``'s stamp: its key, parameters and ``extra`` figures."""
        from splade_anserini.outputs import write_text

        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(self.folder / f"{name}.json", json.dumps({"key": key, "params": params, **extra}, indent=2,
                                                            default=str) + "\n")

    def load(self, name: str) -> dict:
        """Stage ``name``'s stamp as written by :meth:`record`."""
        return json.loads((self.folder / f"{name}.json").read_text())

    def run(self, name: str, params: dict, outputs: Sequence[Path], fn: Callable[[], str | tuple[str, dict]], *,
            ready: Callable[[], bool] = lambda: True) -> str:
        """Run stage ``name`` unless its stamp records the same ``params`` and its ``outputs`` exist (and
        ``ready()``); return the stage key, for the stages downstream to include in their parameters.

        ``fn()`` does the work and returns a note for the report, or ``(note, extra)`` with figures kept
        in the stamp; the stage (its time, or its recorded time when reused) goes to :attr:`stages`.
        """
        key = self.key(params)
        if self.fresh(name, key, *outputs) and ready():
            prev = self.load(name)
            self.stages.append(Stage(name, prev.get("seconds", 0.0), reused=True, note=prev.get("note", "")))
            return key
        start = time.perf_counter()
        done = fn()
        note, extra = done if isinstance(done, tuple) else (done, {})
        seconds = time.perf_counter() - start
        self.record(name, key, params, seconds=seconds, note=note, **extra)
        self.stages.append(Stage(name, seconds, note=note))
        return key
