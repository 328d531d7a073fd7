"""The trainer's bookkeeping: its state besides the weights, RNG states, the output folder, and
``checkpoint-last`` (saved, restored on resume, saved on Ctrl-C).

Determinism: the torch RNG (dropout) state of every process is saved with the optimizer, the
scheduler and the :class:`TrainState`, so that resuming from step ``k`` reproduces the
uninterrupted run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splade_anserini import outputs
from splade_anserini.train.checkpoint import (BEST, LAST, STATE_FILE, STATE_FORMAT, WISE, load_state, recover_checkpoints,
                                              write_checkpoint)
from splade_anserini.train.config import ConfigError, TrainConfig
from splade_anserini.train.runlog import info

#: config keys that may change between a run and its resumption without a warning
RESUME_FREE = {"wise_alpha", "resume", "overwrite", "max_time_minutes", "progress", "max_steps", "epochs", "threads",
               "valid_every", "save_every", "snapshot_every", "log_every", "early_stopping_patience",
               "valid_batch_size"}

#: The marker kind of a training output folder (:mod:`splade_anserini.outputs`).
TRAIN_KIND = "train-output"


@dataclass
class TrainState:
    """The trainer's progress besides weights, optimizer, scheduler and RNG: saved in
    ``checkpoint-last`` (one key each), restored on resume, the same on every process."""

    step: int = 0
    best: float | None = None
    best_step: int | None = None
    bad_validations: int = 0
    #: seconds trained before this process started (when saved: up to the save)
    elapsed: float = 0.0
    last_valid: dict[str, float] | None = None
    last_valid_step: int = -1
    valid_seconds: float = 0.0
    #: the starting model's metric on the out-of-domain guard set (None: no guard)
    guard_start: float | None = None

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> "TrainState":
        return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})


def rng_state() -> dict[str, Any]:
    """The RNG states as tensors and plain values (a trainer state holds nothing else)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states :func:`rng_state` returned."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def earlier_run(out: Path) -> list[Path]:
    """What an earlier run left in ``out``: checkpoints and the log."""
    found = [out / name for name in (LAST, BEST, WISE, "log.jsonl") if (out / name).exists()]
    return found + sorted(out.glob("checkpoint-step-*"))


def prepare_output(cfg: TrainConfig, acc, held: contextlib.ExitStack) -> tuple[Path, bool]:
    """Claim and lock the output folder (a folder of the user's is refused, a second run on it too),
    recover interrupted checkpoint swaps; decide between resume, overwrite and refusal."""
    out = Path(cfg.output_dir)
    if acc.is_main_process:
        if outputs.claim_dir(out, TRAIN_KIND):  # created now: removed again if nothing gets written
            held.callback(outputs.release_unused, out)
        held.enter_context(outputs.lock(outputs.lock_path(out, inside=True), f"output_dir {out}"))
        for name in ("log.jsonl", "query_weights.json"):  # written by the loop: recorded before they are
            outputs.register(out / name, size=None)
        recover_checkpoints(out)
    acc.wait_for_everyone()
    has_last = (out / LAST / STATE_FILE).is_file()
    earlier = earlier_run(out)
    if earlier and not (cfg.resume and has_last):
        if not cfg.overwrite and not cfg.resume:
            raise ConfigError(f"output_dir {out} already holds {earlier[0].name}: pass --resume to continue it "
                              "or --overwrite to start over")
        if acc.is_main_process:
            for path in earlier:
                outputs.remove(path)
        acc.wait_for_everyone()
    if cfg.resume and not has_last:
        info(f"--resume: no {LAST} in {out}, starting from {cfg.model}")
    return out, bool(has_last and cfg.resume)


class CheckpointBookkeeping:
    """The :class:`~splade_anserini.train.loop.Trainer`'s ``checkpoint-last``: restore on resume, save,
    save on Ctrl-C. Uses the trainer's ``cfg``, ``acc``, ``out``, ``state``, ``optimizer``, ``scheduler``,
    ``lora``, ``model``, ``log`` and sizes."""

    def load_last(self, cfg: TrainConfig) -> list[dict[str, Any]] | None:
        """Start a fresh :class:`TrainState`; when resuming, restore it, the optimizer and the scheduler
        from ``checkpoint-last``. Returns the saved per-process RNG states (None: re-seed or keep)."""
        self.state = TrainState()
        rng_states = None
        if self.resuming:
            saved = load_state(self.out / LAST / STATE_FILE)
            self._check_resume_config(saved.get("config", {}))
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.state = TrainState.from_saved(saved)
            rng_states = saved.get("rng")
            if saved.get("world_size", 1) != self.world:
                info(f"resuming a {saved.get('world_size')}-process run on {self.world} processes: "
                     "the data position is kept, dropout RNG streams are re-seeded")
                rng_states = None
            self.log.truncate_after(self.state.step)
            info(f"resumed from {self.out / LAST} at step {self.state.step}")
        return rng_states

    def restore_rng(self, cfg: TrainConfig, rng_states: list[dict[str, Any]] | None) -> None:
        """This process's saved RNG state; resumed on another number of processes: a seed per step and rank."""
        if rng_states is not None:
            set_rng_state(rng_states[self.rank])
        elif self.resuming:
            seed_everything(cfg.seed + 1000003 * self.state.step + self.rank)

    def _check_resume_config(self, saved: dict[str, Any]) -> None:
        current = self.cfg.to_dict()
        changed = sorted(k for k in current if k not in RESUME_FREE and k in saved and saved[k] != current[k])
        if changed:
            info("warning: resuming with changed settings: " +
                 ", ".join(f"{k}={saved[k]!r}->{current[k]!r}" for k in changed))

    def plain_model(self):
        """The HF model to save or validate: under LoRA, the adapters merged into a plain copy."""
        return self.lora.merged() if self.lora is not None else self.acc.unwrap_model(self.model).hf_model

    def checkpoint_info(self) -> dict[str, Any]:
        """What a checkpoint's ``splade_training.json`` says of the run."""
        cfg = self.cfg
        from splade_anserini.train.lora import info as lora_info

        extra = {"lora": lora_info(self.lora)} if self.lora is not None else {}
        return {**extra, "base_model": cfg.model, "pooling": cfg.pooling, "splade_doc": cfg.splade_doc,
                "max_length": cfg.max_length, "query_max_length": cfg.query_max_length, "step": self.state.step,
                "epoch": self.state.step * self.per_step / len(self.data), "validation": self.state.last_valid}

    def elapsed(self) -> float:
        """Seconds trained so far: before this process started, and since ``train`` began."""
        return self.state.elapsed + time.time() - self._t0

    def save_last(self, elapsed: float) -> None:
        """Write ``checkpoint-last``: weights, trainer state (every process's RNG) and config."""
        from accelerate.utils import gather_object

        rng = gather_object([rng_state()])
        if self.acc.is_main_process:
            state = {"format": STATE_FORMAT, **dataclasses.asdict(dataclasses.replace(self.state, elapsed=elapsed)),
                     "position": self.state.step * self.per_step, "world_size": self.world,
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "rng": rng, "config": self.cfg.to_dict()}

            def extra(tmp: Path) -> None:
                torch.save(state, tmp / STATE_FILE)
                with open(tmp / "training_config.json", "w", encoding="utf-8") as fh:
                    json.dump(self.cfg.to_dict(), fh, indent=2)
                if self.lora is not None:
                    from splade_anserini.train.lora import ADAPTER_FILE

                    torch.save(self.lora.adapter_state(), tmp / ADAPTER_FILE)

            write_checkpoint(self.out, LAST, self.plain_model(), self.tokenizer, self.checkpoint_info(), extra)
        self.acc.wait_for_everyone()

    def save_on_interrupt(self) -> str:
        """Ctrl-C: save ``checkpoint-last`` at the last finished step (one process); says what was kept."""
        step = self.state.step
        if step == 0 or not hasattr(self, "_t0"):
            return "stopped before the first step, nothing saved: rerun the same command to start again"
        if self.world > 1:  # the other processes cannot join a save now
            return (f"stopped at step {step}; {self.out / LAST} holds the last step saved before: "
                    "rerun with --resume to continue from it")
        try:
            self.save_last(self.elapsed())
        except Exception as exc:  # noqa: BLE001 - report it, the interruption stands
            return f"stopped at step {step}; saving {LAST} failed ({exc}); an earlier {LAST}, if any, is kept"
        return f"stopped at step {step}; {self.out / LAST} saved: rerun with --resume to continue"
