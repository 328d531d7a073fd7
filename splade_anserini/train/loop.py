"""The training loop on accelerate: resumable, validated, logged.

The same code runs on one CPU, one GPU or several processes under ``accelerate launch`` /
``torchrun``. Per optimizer step, each of the ``W`` processes encodes ``batch_size`` queries with
their positive and ``n_negatives`` hard negatives, ``grad_accum`` times; stream position ``p`` of the
data goes to process ``(p // batch_size) % W``, so a step consumes ``batch_size * grad_accum * W``
examples whatever ``W``.

Determinism: data order and negatives depend on ``(seed, position)`` only; dropout draws from the
torch RNG, whose state (per process) is saved in ``checkpoint-last`` with the optimizer, the
scheduler and the :class:`TrainState`. Resuming from step ``k`` therefore reproduces the
uninterrupted run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splade_anserini.encode.head import fast_bf16_cpu
from splade_anserini.progress import Progress
from splade_anserini import outputs
from splade_anserini.train.checkpoint import BEST, LAST, STATE_FILE, STATE_FORMAT, WISE, load_state, recover_checkpoints, write_checkpoint
from splade_anserini.train.config import ConfigError, TrainConfig
from splade_anserini.train.data import Stream, build_data, build_guard, tokenize_batch
from splade_anserini.train.gradcache import cached_step
from splade_anserini.train.losses import contrastive_loss, in_batch_scores, kl_loss, margin_mse_loss, own_scores
from splade_anserini.train.model import SpladeTrainModel
from splade_anserini.train.regularizers import L2SP, REGULARIZERS, QuadraticWarmup, active_dims, batch_flops

#: config keys that may change between a run and its resumption without a warning
_RESUME_FREE = {"wise_alpha", "resume", "overwrite", "max_time_minutes", "progress", "max_steps", "epochs", "threads",
                "valid_every", "save_every", "snapshot_every", "log_every", "early_stopping_patience", "valid_batch_size"}


def info(msg: str) -> None:
    print(f"[train] {msg}", file=sys.stderr, flush=True)


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


def make_accelerator(cfg: TrainConfig):
    """An ``accelerate.Accelerator``: mixed precision on GPU only, several CPU processes (gloo)
    under ``torchrun`` / ``accelerate launch`` on a machine without GPU."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    if cfg.precision != "fp32" and not cuda:
        info(f"precision {cfg.precision} requested but no GPU: training in fp32 (autocast is GPU-only here)")
    return Accelerator(mixed_precision=cfg.precision.replace("fp32", "no") if cuda else "no", cpu=not cuda,
                       step_scheduler_with_optimizer=False)


def _broadcast(obj):
    """The main process's ``obj`` on every process."""
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj], from_process=0)[0]


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    """Differentiable all-gather along dim 0 (equal shapes): each process's gradient for the gathered
    tensor is summed and handed back slice by slice."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


#: The marker kind of a training output folder (:mod:`splade_anserini.outputs`).
TRAIN_KIND = "train-output"


def _rng_state() -> dict[str, Any]:
    """The RNG states as tensors and plain values (a trainer state holds nothing else)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


class JsonlLog:
    """Append-only JSONL log (main process only); on resume, entries after the resumed step are dropped."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.is_file():
            return
        keep = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


class TeacherCache:
    """Frozen teacher representations, cached per text (sparse, on CPU): a text seen again costs nothing."""

    def __init__(self, teacher: SpladeTrainModel, tokenizer, max_entries: int = 200_000):
        self.teacher, self.tokenizer, self.max_entries = teacher, tokenizer, max_entries
        self.cache: dict[tuple[bool, str], tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def reps(self, texts: list[str], is_query: bool, max_length: int, device) -> torch.Tensor:
        missing = list(dict.fromkeys(t for t in texts if (is_query, t) not in self.cache))
        if missing:
            tok = self.tokenizer(missing, max_length=max_length, truncation=True, padding=True, return_tensors="pt",
                                 return_token_type_ids=False)
            ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
            if is_query and self.teacher.splade_doc:
                reps = self.teacher.bag_of_tokens(ids, mask)
            else:
                reps = self.teacher.encode(ids, mask)
            for text, rep in zip(missing, reps.float().cpu()):
                nz = rep.nonzero(as_tuple=True)[0]
                if len(self.cache) < self.max_entries:
                    self.cache[(is_query, text)] = (nz, rep[nz])
                else:  # full: keep the dense row for this call only
                    self.cache.setdefault(("tmp", text), (nz, rep[nz]))  # type: ignore[index]
        out = torch.zeros(len(texts), self.teacher.vocab_size)
        for i, t in enumerate(texts):
            idx, val = self.cache.get((is_query, t)) or self.cache[("tmp", t)]  # type: ignore[index]
            out[i, idx] = val
        for key in [k for k in self.cache if k[0] == "tmp"]:
            del self.cache[key]
        return out.to(device)


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _earlier_run(out: Path) -> list[Path]:
    """What an earlier run left in ``out``: checkpoints and the log."""
    found = [out / name for name in (LAST, BEST, WISE, "log.jsonl") if (out / name).exists()]
    return found + sorted(out.glob("checkpoint-step-*"))


def _prepare_output(cfg: TrainConfig, acc, held: contextlib.ExitStack) -> tuple[Path, bool]:
    """Claim and lock the output folder (a folder of the user's is refused, a second run on it too),
    recover interrupted checkpoint swaps; decide between resume, overwrite and refusal."""
    out = Path(cfg.output_dir)
    if acc.is_main_process:
        if outputs.claim_dir(out, TRAIN_KIND):  # created now: removed again if nothing gets written
            held.callback(outputs.release_unused, out)
        held.enter_context(outputs.lock(outputs.lock_path(out, inside=True), f"output_dir {out}"))
        recover_checkpoints(out)
    acc.wait_for_everyone()
    has_last = (out / LAST / STATE_FILE).is_file()
    earlier = _earlier_run(out)
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


class Trainer:
    def __init__(self, cfg: TrainConfig):
        cfg.validate()
        self.cfg = cfg
        self.acc = make_accelerator(cfg)
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        self._held = contextlib.ExitStack()  # the output folder's lock, released by close()
        try:
            self.out, self.resuming = _prepare_output(cfg, self.acc, self._held)
            self._setup(cfg)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the output folder (its lock)."""
        self._held.close()

    def _setup(self, cfg: TrainConfig) -> None:
        self.log = JsonlLog(self.out / "log.jsonl", self.acc.is_main_process)
        seed_everything(cfg.seed)

        from splade_anserini.models import load_model

        self.data, self.valid = build_data(cfg)
        self.guard = build_guard(cfg)
        self.stream = Stream(self.data, cfg.seed)
        # under LoRA, checkpoint-last holds merged weights: a resumed run rebuilds the start + its adapters
        tokenizer, hf = load_model(self.out / LAST if (self.resuming and not cfg.lora) else cfg.model)
        self.tokenizer = tokenizer
        hf.train()
        self.device = self.acc.device
        self.lora = self.l2sp = None
        if cfg.lora:
            from splade_anserini.train.lora import ADAPTER_FILE, LoraAdapter

            self.lora = LoraAdapter(hf, cfg.lora, cfg.lora_alpha or None, cfg.lora_dropout, cfg.lora_targets)
            if self.resuming:
                self.lora.load_adapter_state(torch.load(self.out / LAST / ADAPTER_FILE, map_location="cpu",
                                                        weights_only=True))
            if self.acc.is_main_process:
                info(self.lora.describe())
        if cfg.l2sp:
            if self.lora is not None:
                self.l2sp = L2SP.from_lora(cfg.l2sp, self.lora)
            else:  # anchored to the starting model, also when resuming from a later checkpoint
                start = load_model(cfg.model)[1].state_dict() if self.resuming else hf.state_dict()
                self.l2sp = L2SP.from_start(cfg.l2sp, hf, start)
        self.query_table, qweights = self._query_weights(tokenizer)
        self.model = SpladeTrainModel(hf, tokenizer, pooling=cfg.pooling, splade_doc=cfg.splade_doc,
                                      fused=cfg.fused_head, query_weights=qweights).to(self.device)
        self.teacher = None
        if cfg.self_distill:
            _, base = load_model(cfg.model)
            base.eval().requires_grad_(False)
            tmodel = SpladeTrainModel(base, tokenizer, pooling=cfg.pooling, splade_doc=cfg.splade_doc,
                                      fused=cfg.fused_head, query_weights=qweights).to(self.device)
            self.teacher = TeacherCache(tmodel, tokenizer)

        per_step = cfg.batch_size * cfg.grad_accum * self.world
        self.per_step = per_step
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(self.data) / per_step))
        warmup = cfg.warmup_steps or round(cfg.warmup_ratio * self.total_steps)
        from transformers import get_linear_schedule_with_warmup

        self.optimizer = torch.optim.AdamW(_param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, self.total_steps)
        self.lambda_q = QuadraticWarmup(cfg.lambda_q, cfg.lambda_warmup_steps)
        self.lambda_d = QuadraticWarmup(cfg.lambda_d, cfg.lambda_warmup_steps)
        self.regularizer = REGULARIZERS[cfg.regularizer]

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
        self.model, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        if rng_states is not None:
            _set_rng_state(rng_states[self.rank])
        elif self.resuming:
            seed_everything(cfg.seed + 1000003 * self.state.step + self.rank)

        self.validator = self.guard_validator = None
        if self.valid is not None:
            from splade_anserini.train.validate import Validator

            kwargs = dict(metric=cfg.valid_metric, pooling=cfg.pooling, splade_doc=cfg.splade_doc,
                          max_length=cfg.max_length, query_max_length=cfg.query_max_length,
                          batch_size=cfg.valid_batch_size, device=str(self.device), query_weights=self.query_table,
                          precision=cfg.precision if self.device.type == "cuda" else "fp32")
            self.validator = Validator(self.valid, **kwargs)
            if self.guard is not None:
                self.guard_validator = Validator(self.guard, **kwargs)

    def _query_weights(self, tokenizer):
        """``--query-weights idf``: the training corpus's table (written to the output folder) and its
        ``[V]`` tensor; else (None, None)."""
        if self.cfg.query_weights != "idf":
            return None, None
        from splade_anserini.search.query_weights import QUERY_WEIGHTS, corpus_idf_table, weights_by_id, write_table

        corpus = getattr(self.data, "corpus", None)
        if not corpus:
            raise ConfigError("query_weights idf needs a training corpus (corpus/queries/qrels, not triples)")
        table = corpus_idf_table(corpus.values(), tokenizer)
        if self.acc.is_main_process:
            write_table(self.out / QUERY_WEIGHTS, table)
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        return table, torch.from_numpy(weights_by_id(table, vocab))

    # -- bookkeeping ------------------------------------------------------------------------------
    def _check_resume_config(self, saved: dict[str, Any]) -> None:
        current = self.cfg.to_dict()
        changed = sorted(k for k in current if k not in _RESUME_FREE and k in saved and saved[k] != current[k])
        if changed:
            info("warning: resuming with changed settings: " +
                 ", ".join(f"{k}={saved[k]!r}->{current[k]!r}" for k in changed))

    def _plain_model(self):
        """The HF model to save or validate: under LoRA, the adapters merged into a plain copy."""
        return self.lora.merged() if self.lora is not None else self.acc.unwrap_model(self.model).hf_model

    def _info(self) -> dict[str, Any]:
        cfg = self.cfg
        from splade_anserini.train.lora import info as lora_info

        extra = {"lora": lora_info(self.lora)} if self.lora is not None else {}
        return {**extra, "base_model": cfg.model, "pooling": cfg.pooling, "splade_doc": cfg.splade_doc,
                "max_length": cfg.max_length, "query_max_length": cfg.query_max_length, "step": self.state.step,
                "epoch": self.state.step * self.per_step / len(self.data), "validation": self.state.last_valid}

    def save_last(self, elapsed: float) -> None:
        from accelerate.utils import gather_object

        rng = gather_object([_rng_state()])
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

            write_checkpoint(self.out, LAST, self._plain_model(), self.tokenizer, self._info(), extra)
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
            self.save_last(self.state.elapsed + time.time() - self._t0)
        except Exception as exc:  # noqa: BLE001 - report it, the interruption stands
            return f"stopped at step {step}; saving {LAST} failed ({exc}); an earlier {LAST}, if any, is kept"
        return f"stopped at step {step}; {self.out / LAST} saved: rerun with --resume to continue"

    def validate(self, elapsed: float) -> bool:
        """Validate (main process), keep the best checkpoint; returns whether to stop early."""
        stop, st = False, self.state
        if self.acc.is_main_process:
            hf = self._plain_model()
            metrics = self.validator(hf, self.tokenizer)
            eligible = self._guard(hf, metrics)
            st.valid_seconds = metrics["valid_seconds"]
            value = metrics[self.cfg.valid_metric]
            improved = eligible and (st.best is None or value > st.best)
            if improved:
                st.best, st.best_step, st.bad_validations = value, st.step, 0
            else:
                st.bad_validations += 1
            st.last_valid, st.last_valid_step = metrics, st.step
            record = {"type": "valid", "step": st.step, **{k: round(v, 6) for k, v in metrics.items()},
                      "best": improved, "elapsed": round(elapsed, 1)}
            self.log.write(record)
            info(f"step {st.step}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                                  if k != "valid_seconds") + (" (best)" if improved else ""))
            if improved:
                write_checkpoint(self.out, BEST, hf, self.tokenizer, self._info())
            patience = self.cfg.early_stopping_patience
            stop = bool(patience and st.bad_validations >= patience)
        stop, self.state = _broadcast((stop, st))
        self.acc.wait_for_everyone()
        return stop

    def _guard(self, hf, metrics: dict[str, float]) -> bool:
        """Measure the out-of-domain guard into ``metrics``; whether the weights may become the best:
        their guard metric within ``guard_max_drop`` of the starting model's."""
        if self.guard_validator is None:
            return True
        name = self.cfg.valid_metric
        guard = self.guard_validator(hf, self.tokenizer)
        metrics[f"guard_{name}"] = guard[name]
        metrics["valid_seconds"] += guard["valid_seconds"]
        return guard[name] >= self.state.guard_start - self.cfg.guard_max_drop - 1e-9

    def measure_guard_start(self) -> None:
        """The starting model's guard metric, once per run (kept in the state across resumption)."""
        if self.guard_validator is None or self.state.guard_start is not None:
            return
        if self.acc.is_main_process:
            value = self.guard_validator(self._plain_model(), self.tokenizer)[self.cfg.valid_metric]
            self.state.guard_start = value
            self.log.write({"type": "guard_start", "step": self.state.step, f"guard_{self.cfg.valid_metric}": value})
            info(f"out-of-domain guard: starting model {self.cfg.valid_metric}={value:.4f}; a checkpoint may "
                 f"become the best while it stays >= {value - self.cfg.guard_max_drop:.4f}")
        self.state = _broadcast(self.state)

    # -- one step ---------------------------------------------------------------------------------
    def _loss(self, batch: dict, q: torch.Tensor, d: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, B, k = self.cfg, q.shape[0], batch["k"]
        q, d = q.float(), d.float()
        d_all, q_all, offset = d, q, 0
        if cfg.gather_across_devices and self.world > 1:
            d_all, q_all = _all_gather(d), _all_gather(q)
            offset = self.rank * d.shape[0]
        parts: dict[str, float] = {}
        loss = torch.zeros((), device=q.device)
        if cfg.contrastive_weight:
            if cfg.in_batch_negatives:
                scores = in_batch_scores(q, d_all)
                targets = offset + torch.arange(B, device=q.device)
            else:
                scores = own_scores(q, d, k)
                targets = torch.zeros(B, dtype=torch.long, device=q.device)
            c = contrastive_loss(scores, targets)
            loss = loss + cfg.contrastive_weight * c
            parts["contrastive"] = c.item()
        if cfg.distill != "none":
            if self.teacher is not None:
                tq = self.teacher.reps(batch["q_texts"], True, cfg.query_max_length, q.device)
                td = self.teacher.reps(batch["d_texts"], False, cfg.max_length, q.device)
                if cfg.distill == "kl" and cfg.in_batch_negatives:
                    student, teacher = in_batch_scores(q, d), in_batch_scores(tq, td)
                else:
                    student, teacher = own_scores(q, d, k), own_scores(tq, td, k)
            else:
                student, teacher = own_scores(q, d, k), batch["teacher"]
            dl = margin_mse_loss(student, teacher) if cfg.distill == "margin_mse" else \
                kl_loss(student, teacher, cfg.distill_temperature)
            loss = loss + cfg.distill_weight * dl
            parts["distill"] = dl.item()
        lam_q, lam_d = self.lambda_q(step), self.lambda_d(step)
        reg_d = self.regularizer(d_all)
        parts["reg_d"] = reg_d.item()
        if lam_d:
            loss = loss + lam_d * reg_d
        if not cfg.splade_doc:
            reg_q = self.regularizer(q_all)
            parts["reg_q"] = reg_q.item()
            if lam_q:
                loss = loss + lam_q * reg_q
        parts.update(loss=loss.item(), q_active=active_dims(q), d_active=active_dims(d), flops=batch_flops(q, d))
        return loss, parts

    def _micro_batch(self, step: int, micro: int) -> dict:
        cfg = self.cfg
        start = ((step * cfg.grad_accum + micro) * self.world + self.rank) * cfg.batch_size
        examples = self.stream.batch(start, cfg.batch_size)
        batch = tokenize_batch(self.tokenizer, examples, cfg.max_length, cfg.query_max_length)
        for key in ("q_ids", "q_mask", "d_ids", "d_mask", "teacher"):
            if key in batch:
                batch[key] = batch[key].to(self.device)
        if self.teacher is not None:
            batch["q_texts"] = [e.query for e in examples]
            batch["d_texts"] = [e.positive for e in examples] + [n for e in examples for n in e.negatives]
        return batch

    def train_step(self) -> dict[str, float]:
        cfg, step = self.cfg, self.state.step
        sums: dict[str, float] = defaultdict(float)
        for micro in range(cfg.grad_accum):
            batch = self._micro_batch(step, micro)
            sync = micro == cfg.grad_accum - 1 or self.world == 1
            with (contextlib.nullcontext() if sync else self.acc.no_sync(self.model)):
                if cfg.grad_cache_mini_batch:
                    no_sync = (lambda: self.acc.no_sync(self.model)) if self.world > 1 else None
                    _, parts = cached_step(self.model, batch, lambda q, d: self._loss(batch, q, d, step),
                                           cfg.grad_cache_mini_batch, backward=self.acc.backward,
                                           scale=1.0 / cfg.grad_accum, no_sync=no_sync, autocast=self.acc.autocast)
                else:
                    with self.acc.autocast():
                        q, d = self.model(batch["q_ids"], batch["q_mask"], batch["d_ids"], batch["d_mask"])
                    loss, parts = self._loss(batch, q, d, step)
                    self.acc.backward(loss / cfg.grad_accum)
            for key, value in parts.items():
                sums[key] += value / cfg.grad_accum
        if self.l2sp is not None:  # the same on every process: added after the all-reduce, before clipping
            scaler = getattr(self.acc, "scaler", None)
            sums["l2sp_distance"] = self.l2sp.add_gradient(scaler.get_scale() if scaler is not None else 1.0)
        if cfg.max_grad_norm > 0:
            sums["grad_norm"] = float(self.acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm))
        sums["lr"] = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        sums["lambda_q"], sums["lambda_d"] = self.lambda_q(step), self.lambda_d(step)
        self.state.step += 1
        return dict(sums)

    # -- the loop ---------------------------------------------------------------------------------
    def train(self, stop_after_steps: int | None = None) -> dict[str, Any]:
        """Train to ``total_steps`` (or an earlier stop); returns a summary. ``stop_after_steps``
        interrupts at that absolute step (saving ``checkpoint-last``) as a crash would, so that a
        later ``--resume`` continues the same run."""
        cfg, acc = self.cfg, self.acc
        t0 = self._t0 = time.time()
        elapsed = lambda: self.state.elapsed + time.time() - t0  # noqa: E731
        if acc.is_main_process and self.state.step == 0:
            info(f"data: {self.data.describe()}" + (f"; validation: {self.valid.describe()}" if self.valid else ""))
            info(f"{self.total_steps} steps of {self.per_step} examples ({self.world} process(es) x "
                 f"{cfg.batch_size} x {cfg.grad_accum} accumulation), "
                 f"{self.total_steps * self.per_step / len(self.data):.2f} epochs; "
                 f"{'fused' if acc.unwrap_model(self.model).fused else 'autograd'} SPLADE-{cfg.pooling} head"
                 + (", SPLADE-doc" if cfg.splade_doc else "") + f", device {self.device}")
            threads = torch.get_num_threads()
            if self.device.type == "cpu" and threads > 1:
                info(f"{threads} torch threads: the weights are bit-for-bit reproducible on an otherwise idle "
                     "machine only (--threads 1 is, under any load)")
            self.log.write({"type": "start", "step": 0, "total_steps": self.total_steps, "examples": len(self.data),
                            "world_size": self.world, "torch_threads": threads,
                            "cpu_native_bf16": fast_bf16_cpu() if self.device.type == "cpu" else None,
                            "config": cfg.to_dict()})
        stop_reason = "completed"
        self.measure_guard_start()
        if self.validator is not None and cfg.valid_at_start and self.state.step == 0 \
                and self.state.last_valid_step < 0:
            self.validate(elapsed())
        bar = Progress("train", self.total_steps, initial=self.state.step, unit="step",
                       enabled=acc.is_main_process and cfg.progress)
        window: dict[str, float] = defaultdict(float)
        n_window = 0
        interrupted = False
        while self.state.step < self.total_steps:
            parts = self.train_step()
            for key, value in parts.items():
                window[key] += value
            n_window += 1
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}", d=f"{parts['d_active']:.0f}", q=f"{parts['q_active']:.0f}")
            if self.state.step % cfg.log_every == 0 or self.state.step == self.total_steps:
                record = {"type": "train", "step": self.state.step,
                          "epoch": round(self.state.step * self.per_step / len(self.data), 4),
                          **{k: round(v / n_window, 6) for k, v in window.items()}, "elapsed": round(elapsed(), 1)}
                self.log.write(record)
                window, n_window = defaultdict(float), 0
            stop = False
            validated = False
            if self.validator is not None and cfg.valid_every and self.state.step % cfg.valid_every == 0 \
                    and self.state.step < self.total_steps:
                stop = self.validate(elapsed())
                validated = True
                if stop:
                    stop_reason = f"early stopping (no gain in {cfg.early_stopping_patience} validations)"
            if stop_after_steps is not None and self.state.step >= stop_after_steps:
                stop, interrupted, stop_reason = True, True, f"stopped at step {self.state.step} (stop_after_steps)"
            if not stop and cfg.max_time_minutes:
                reserve = self.state.valid_seconds if self.validator is not None else 0.0
                if elapsed() + reserve >= cfg.max_time_minutes * 60:
                    stop, stop_reason = True, f"time limit ({cfg.max_time_minutes:g} min)"
                stop = bool(_broadcast(stop))
            if cfg.snapshot_every and self.state.step % cfg.snapshot_every == 0 and acc.is_main_process:
                write_checkpoint(self.out, f"checkpoint-step-{self.state.step}", self._plain_model(),
                                 self.tokenizer, self._info())
            if stop:
                break
            if validated or (cfg.save_every and self.state.step % cfg.save_every == 0):
                self.save_last(elapsed())
        bar.close()
        if self.validator is not None and not interrupted and self.state.last_valid_step != self.state.step:
            self.validate(elapsed())
        total_time = elapsed()
        self.save_last(total_time)
        wise = None
        if cfg.wise_alpha and not interrupted:
            if acc.is_main_process:
                from splade_anserini.train.interpolate import interpolate

                source = BEST if (self.out / BEST).is_dir() else LAST  # the validated best when there is one
                wise = interpolate(cfg.model, str(self.out / source), cfg.wise_alpha, str(self.out / WISE))
                info(f"wrote {wise}: (1 - {cfg.wise_alpha:g}) * {cfg.model} + {cfg.wise_alpha:g} * {source}")
            acc.wait_for_everyone()
            wise = str(self.out / WISE)
            total_time = elapsed()
        summary = {"stop_reason": stop_reason, "steps": self.state.step, "total_steps": self.total_steps,
                   "epochs": self.state.step * self.per_step / len(self.data), "elapsed_seconds": round(total_time, 1),
                   "best": self.state.best, "best_step": self.state.best_step, "last_validation": self.state.last_valid,
                   "checkpoint_last": str(self.out / LAST),
                   "checkpoint_best": str(self.out / BEST) if self.state.best is not None else None,
                   "checkpoint_wise": wise}
        if acc.is_main_process:
            self.log.write({"type": "end", "step": self.state.step, **{k: v for k, v in summary.items()
                                                                if k != "last_validation"}})
            st = self.state
            info(f"{stop_reason}: {st.step} steps in {total_time / 60:.1f} min"
                 + (f"; best {cfg.valid_metric} {st.best:.4f} at step {st.best_step}" if st.best is not None else ""))
        return summary


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """``torch.set_num_threads(threads)`` for the block (no change when ``threads`` is falsy)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train(cfg: TrainConfig, *, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Build a :class:`Trainer` for ``cfg`` and run it (with ``cfg.threads`` torch threads)."""
    with _torch_threads(cfg.threads):
        trainer = Trainer(cfg)
        try:
            return trainer.train(stop_after_steps=stop_after_steps)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(trainer.save_on_interrupt()) from None
        finally:
            trainer.close()
