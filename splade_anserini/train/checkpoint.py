"""Crash-safe checkpoints: ``<out>/checkpoint-last`` and ``<out>/checkpoint-best``.

A checkpoint is written complete into a hidden temporary directory, marked as a checkpoint
(:mod:`splade_anserini.outputs`), then swapped in with two renames (old -> ``.<name>.old-...``,
temporary -> ``<name>``). A crash while writing leaves the previous checkpoint untouched. A visible
checkpoint is never partial, and only a checkpoint this tool wrote is ever replaced.

Each checkpoint holds ``save_pretrained`` model + tokenizer files (loadable by ``encode_corpus`` and
the query encoder as is), ``splade_training.json`` (variant, lengths, step, metrics) and, for
``checkpoint-last``, ``trainer_state.pt`` (optimizer, scheduler, RNG states, data position): tensors
and plain values only, read back with ``torch.load(weights_only=True)`` so that no code in the file
can run (:func:`load_state`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from splade_anserini import outputs

LAST, BEST, WISE = "checkpoint-last", "checkpoint-best", "checkpoint-wise"
STATE_FILE = "trainer_state.pt"
INFO_FILE = "splade_training.json"
#: The marker kind of a checkpoint folder (:mod:`splade_anserini.outputs`).
CHECKPOINT_KIND = "checkpoint"


def _fsync_tree(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def recover_checkpoints(out: str | os.PathLike) -> None:
    """Finish an interrupted swap and drop leftover temporary directories (inside a training folder
    of this tool: the caller holds its lock)."""
    out = Path(out)
    if not out.is_dir():
        return
    for name in (LAST, BEST, WISE):
        final = out / name
        for old in sorted(out.glob(f".{name}.old*")):  # a swap stopped between its two renames
            if final.exists():
                outputs.remove(old)
            else:
                os.rename(old, final)
    for tmp in out.glob(".checkpoint-*.tmp*"):
        outputs.remove(tmp)


def write_checkpoint(out: str | os.PathLike, name: str, hf_model, tokenizer, info: dict[str, Any],
                     extra: Callable[[Path], None] | None = None) -> Path:
    """Write checkpoint ``name`` under ``out`` atomically; ``extra(tmpdir)`` may add files. An
    existing ``out/name`` is replaced only when it is a checkpoint this tool wrote."""
    final = Path(out) / name
    outputs.check_dir(final, CHECKPOINT_KIND)
    tmp = outputs.temp_dir(final)
    try:
        from splade_anserini.models import hf_progress_bars_off

        with hf_progress_bars_off():
            hf_model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        with open(tmp / INFO_FILE, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2, sort_keys=True)
            fh.write("\n")
        if extra is not None:
            extra(tmp)
        _fsync_tree(tmp)
        return outputs.install_dir(tmp, final, CHECKPOINT_KIND)
    except BaseException:
        outputs.remove(tmp)
        raise


#: ``format`` of a trainer state this version writes and reads.
STATE_FORMAT = "splade-anserini-trainer-state-2"


class StateFormatError(ValueError):
    """A trainer state that is not read (an older or foreign format): one line, exit status 2."""


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a trainer state written by this version, without unpickling anything but tensors and
    plain values; anything else is refused in one line (nothing in it is executed)."""
    import torch

    path = Path(path)
    how = (f"start over with --overwrite, or train from its weights with --model {path.parent} and "
           "another output_dir")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - whatever the unpickler refused: the file is not read
        raise StateFormatError(f"{path}: not a trainer state this version reads (an older format, or not written "
                               f"by splade-anserini); it was not loaded: {how}") from None
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise StateFormatError(f"{path}: trainer state format {found!r}, this version reads {STATE_FORMAT!r}: {how}")
    return saved


def read_info(checkpoint: str | os.PathLike) -> dict[str, Any]:
    path = Path(checkpoint) / INFO_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
