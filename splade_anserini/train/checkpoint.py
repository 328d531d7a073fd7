"""Crash-safe checkpoints: ``<out>/checkpoint-last`` and ``<out>/checkpoint-best``.

A checkpoint is written complete into a hidden temporary directory, then swapped in with two
renames (old -> ``.<name>.old``, temporary -> ``<name>``). A crash while writing leaves the previous
checkpoint untouched; a crash between the renames leaves ``.<name>.old``, which
:func:`recover_checkpoints` renames back on the next start. A visible checkpoint is never partial.

Each checkpoint holds ``save_pretrained`` model + tokenizer files (loadable by ``encode_corpus`` and
the query encoder as is), ``splade_training.json`` (variant, lengths, step, metrics) and, for
``checkpoint-last``, ``trainer_state.pt`` (optimizer, scheduler, RNG states, data position).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

LAST, BEST, WISE = "checkpoint-last", "checkpoint-best", "checkpoint-wise"
STATE_FILE = "trainer_state.pt"
INFO_FILE = "splade_training.json"


def _fsync_tree(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def recover_checkpoints(out: str | os.PathLike) -> None:
    """Finish an interrupted swap and drop leftover temporary directories."""
    out = Path(out)
    if not out.is_dir():
        return
    for name in (LAST, BEST, WISE):
        final, old = out / name, out / f".{name}.old"
        if old.exists():
            if final.exists():
                shutil.rmtree(old)
            else:
                os.rename(old, final)
    for tmp in out.glob(".checkpoint-*.tmp*"):
        shutil.rmtree(tmp, ignore_errors=True)


def write_checkpoint(out: str | os.PathLike, name: str, hf_model, tokenizer, info: dict[str, Any],
                     extra: Callable[[Path], None] | None = None) -> Path:
    """Write checkpoint ``name`` under ``out`` atomically; ``extra(tmpdir)`` may add files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    final, old, tmp = out / name, out / f".{name}.old", out / f".{name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        from ..models import hf_progress_bars_off

        with hf_progress_bars_off():
            hf_model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        with open(tmp / INFO_FILE, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2, sort_keys=True)
            fh.write("\n")
        if extra is not None:
            extra(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    return final


def read_info(checkpoint: str | os.PathLike) -> dict[str, Any]:
    path = Path(checkpoint) / INFO_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
