"""The training loop on accelerate: resumable, validated, logged.

The same code runs on one CPU, one GPU or several processes under ``accelerate launch`` /
``torchrun``. Per optimizer step, each of the ``W`` processes encodes ``batch_size`` queries with
their positive and ``n_negatives`` hard negatives, ``grad_accum`` times; stream position ``p`` of the
data goes to process ``(p // batch_size) % W``, so a step consumes ``batch_size * grad_accum * W``
examples whatever ``W``.

Determinism: data order and negatives depend on ``(seed, position)`` only; dropout draws from the
torch RNG, whose state (per process) is saved in ``checkpoint-last`` with the optimizer, the
scheduler and the :class:`TrainState`. Resuming from step ``k`` therefore reproduces the
uninterrupted run. Bookkeeping lives in :mod:`.state`, validation and checkpoint selection in
:mod:`.selection`.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from typing import Any

import torch

from splade_anserini.encode.head import fast_bf16_cpu
from splade_anserini.progress import Progress
from splade_anserini.train.checkpoint import BEST, LAST, WISE, write_checkpoint
from splade_anserini.train.config import ConfigError, TrainConfig
from splade_anserini.train.data import Stream, build_data, build_guard, tokenize_batch
from splade_anserini.train.distributed import all_gather, broadcast, make_accelerator, torch_threads
from splade_anserini.train.gradcache import cached_step
from splade_anserini.train.losses import contrastive_loss, in_batch_scores, kl_loss, margin_mse_loss, own_scores
from splade_anserini.train.model import SpladeTrainModel
from splade_anserini.train.regularizers import L2SP, REGULARIZERS, QuadraticWarmup, active_dims, batch_flops
from splade_anserini.train.runlog import JsonlLog, info
from splade_anserini.train.selection import CheckpointSelection
from splade_anserini.train.state import TRAIN_KIND, CheckpointBookkeeping, TrainState, prepare_output, seed_everything
from splade_anserini.train.teacher import KeepStart, TeacherCache

# TrainState, TRAIN_KIND, JsonlLog...: still importable from here, where they used to live
__all__ = ["TRAIN_KIND", "JsonlLog", "TeacherCache", "TrainState", "Trainer", "info", "make_accelerator",
           "param_groups", "seed_everything", "train"]


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW's parameter groups: no weight decay on biases and layer norms."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer(CheckpointBookkeeping, CheckpointSelection):
    """One training run: data, model, optimizer and bookkeeping for ``cfg`` (see :meth:`train`)."""

    def __init__(self, cfg: TrainConfig):
        cfg.validate()
        self.cfg = cfg
        self.acc = make_accelerator(cfg)
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        self._held = contextlib.ExitStack()  # the output folder's lock, released by close()
        try:
            self.out, self.resuming = prepare_output(cfg, self.acc, self._held)
            self._setup(cfg)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the output folder (its lock)."""
        self._held.close()

    # -- setup: the order of these steps is the order of the RNG draws ----------------------------
    def _setup(self, cfg: TrainConfig) -> None:
        """Data, models, optimizer, the resumed state and RNG, the validators (in this order)."""
        self.log = JsonlLog(self.out / "log.jsonl", self.acc.is_main_process)
        seed_everything(cfg.seed)
        self._load_data(cfg)
        hf = self._load_start(cfg)
        self._anchor_l2sp(cfg, hf)
        self._build_models(cfg, hf)
        self._build_optimizer(cfg)
        rng_states = self.load_last(cfg)
        self.model, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        self.restore_rng(cfg, rng_states)
        self.build_validators(cfg)

    def _load_data(self, cfg: TrainConfig) -> None:
        """The training data and its stream, the validation and out-of-domain guard sets."""
        self.data, self.valid = build_data(cfg)
        self.guard = build_guard(cfg)
        self.stream = Stream(self.data, cfg.seed)

    def _load_start(self, cfg: TrainConfig):
        """The HF model to train (in train mode), with its LoRA adapters if any."""
        from splade_anserini.models import load_model

        # under LoRA, checkpoint-last holds merged weights: a resumed run rebuilds the start + its adapters
        tokenizer, hf = load_model(self.out / LAST if (self.resuming and not cfg.lora) else cfg.model,
                                   max_length=max(cfg.max_length, cfg.query_max_length))
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
        return hf

    def _anchor_l2sp(self, cfg: TrainConfig, hf) -> None:
        """``--l2sp``: the penalty's anchor, the starting weights (or LoRA's zero update)."""
        if cfg.l2sp:
            if self.lora is not None:
                self.l2sp = L2SP.from_lora(cfg.l2sp, self.lora)
            else:  # anchored to the starting model, also when resuming from a later checkpoint
                from splade_anserini.models import load_model

                start = load_model(cfg.model)[1].state_dict() if self.resuming else hf.state_dict()
                self.l2sp = L2SP.from_start(cfg.l2sp, hf, start)

    def _build_models(self, cfg: TrainConfig, hf) -> None:
        """The SPLADE model around ``hf`` (query weights included) and the self-distillation teacher."""
        tokenizer = self.tokenizer
        self.query_table, qweights = self._query_weights(tokenizer)
        self.model = SpladeTrainModel(hf, tokenizer, pooling=cfg.pooling, splade_doc=cfg.splade_doc,
                                      fused=cfg.fused_head, query_weights=qweights).to(self.device)
        self.teacher = self.keep_start = None
        if cfg.self_distill or cfg.lwf_weight:
            from splade_anserini.models import load_model

            _, base = load_model(cfg.model)
            base.eval().requires_grad_(False)
            tmodel = SpladeTrainModel(base, tokenizer, pooling=cfg.pooling, splade_doc=cfg.splade_doc,
                                      fused=cfg.fused_head, query_weights=qweights).to(self.device)
            start = TeacherCache(tmodel, tokenizer)
            self.teacher = start if cfg.self_distill else None
            if cfg.lwf_weight:
                self.keep_start = KeepStart(cfg.lwf_triples, start, cfg.lwf_batch_size, cfg.seed, cfg.max_length,
                                            cfg.query_max_length, cfg.distill_temperature)

    def _build_optimizer(self, cfg: TrainConfig) -> None:
        """Run length, optimizer, learning-rate schedule, regularizers and their weights' schedules."""
        per_step = cfg.batch_size * cfg.grad_accum * self.world
        self.per_step = per_step
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(self.data) / per_step))
        warmup = cfg.warmup_steps or round(cfg.warmup_ratio * self.total_steps)
        from transformers import get_linear_schedule_with_warmup

        self.optimizer = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, self.total_steps)
        self.lambda_q = QuadraticWarmup(cfg.lambda_q, cfg.lambda_warmup_steps)
        self.lambda_d = QuadraticWarmup(cfg.lambda_d, cfg.lambda_warmup_steps)
        self.regularizer = REGULARIZERS[cfg.regularizer]

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

    # -- one step ---------------------------------------------------------------------------------
    def _loss(self, batch: dict, q: torch.Tensor, d: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, B, k = self.cfg, q.shape[0], batch["k"]
        q, d = q.float(), d.float()
        d_all, q_all, offset = d, q, 0
        if cfg.gather_across_devices and self.world > 1:
            d_all, q_all = all_gather(d), all_gather(q)
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
        if self.keep_start is not None:  # learning without forgetting: its own forward and backward
            with self.acc.autocast():
                lwf = self.keep_start.loss(self.model, step, self.rank, self.world, self.device)
            self.acc.backward(cfg.lwf_weight * lwf)
            sums["lwf"] = lwf.item()
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
        cfg = self.cfg
        self._t0 = time.time()
        self._log_start()
        self.measure_guard_start()
        if self.validator is not None and cfg.valid_at_start and self.state.step == 0 \
                and self.state.last_valid_step < 0:
            self.validate(self.elapsed())
        stop_reason, interrupted = self._run_steps(stop_after_steps)
        return self._finish(stop_reason, interrupted)

    def _log_start(self) -> None:
        """A fresh run (main process): what it will do, on stderr and as the log's first record."""
        cfg, acc = self.cfg, self.acc
        if acc.is_main_process and self.state.step == 0:
            info(f"data: {self.data.describe()}" + (f"; validation: {self.valid.describe()}" if self.valid else "")
                 + (f"; {self.keep_start.describe()}" if self.keep_start is not None else ""))
            info(f"{self.total_steps} steps of {self.per_step} examples ({self.world} process(es) x "
                 f"{cfg.batch_size} x {cfg.grad_accum} accumulation), "
                 f"{self.total_steps * self.per_step / len(self.data):.2f} epochs; "
                 f"{'fused' if acc.unwrap_model(self.model).fused else 'autograd'} SPLADE-{cfg.pooling} head"
                 + (", SPLADE-doc" if cfg.splade_doc else "") + f", device {self.device}")
            threads = torch.get_num_threads()
            if self.device.type == "cpu" and threads > 1:
                info(f"{threads} torch threads: the weights are reproducible byte for byte with {threads} threads "
                     "on this CPU; another --threads changes their last bits")
            self.log.write({"type": "start", "step": 0, "total_steps": self.total_steps, "examples": len(self.data),
                            "world_size": self.world, "torch_threads": threads,
                            "cpu_native_bf16": fast_bf16_cpu() if self.device.type == "cpu" else None,
                            "config": cfg.to_dict()})

    def _run_steps(self, stop_after_steps: int | None) -> tuple[str, bool]:
        """The optimizer steps, with logging, validation, snapshots and saves between them; returns
        why they stopped and whether as an interruption (``stop_after_steps``)."""
        cfg, acc = self.cfg, self.acc
        stop_reason = "completed"
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
                self._log_window(window, n_window)
                window, n_window = defaultdict(float), 0
            stop, validated, interrupted, reason = self._check_stop(stop_after_steps)
            if reason is not None:
                stop_reason = reason
            if cfg.snapshot_every and self.state.step % cfg.snapshot_every == 0 and acc.is_main_process:
                write_checkpoint(self.out, f"checkpoint-step-{self.state.step}", self.plain_model(),
                                 self.tokenizer, self.checkpoint_info())
            if stop:
                break
            if validated or (cfg.save_every and self.state.step % cfg.save_every == 0):
                self.save_last(self.elapsed())
        bar.close()
        return stop_reason, interrupted

    def _log_window(self, window: dict[str, float], n_window: int) -> None:
        """A ``train`` record: the step's position and the values averaged over the last ``n_window`` steps."""
        record = {"type": "train", "step": self.state.step,
                  "epoch": round(self.state.step * self.per_step / len(self.data), 4),
                  **{k: round(v / n_window, 6) for k, v in window.items()}, "elapsed": round(self.elapsed(), 1)}
        self.log.write(record)

    def _check_stop(self, stop_after_steps: int | None) -> tuple[bool, bool, bool, str | None]:
        """Validate when due; whether to stop (early stopping, ``stop_after_steps``, the time limit),
        whether it validated, whether it is an interruption, and the stop reason (None: unchanged)."""
        cfg = self.cfg
        stop, validated, interrupted, stop_reason = False, False, False, None
        if self.validator is not None and cfg.valid_every and self.state.step % cfg.valid_every == 0 \
                and self.state.step < self.total_steps:
            stop = self.validate(self.elapsed())
            validated = True
            if stop:
                stop_reason = f"early stopping (no gain in {cfg.early_stopping_patience} validations)"
        if stop_after_steps is not None and self.state.step >= stop_after_steps:
            stop, interrupted, stop_reason = True, True, f"stopped at step {self.state.step} (stop_after_steps)"
        if not stop and cfg.max_time_minutes:
            reserve = self.state.valid_seconds if self.validator is not None else 0.0
            if self.elapsed() + reserve >= cfg.max_time_minutes * 60:
                stop, stop_reason = True, f"time limit ({cfg.max_time_minutes:g} min)"
            stop = bool(broadcast(stop))
        return stop, validated, interrupted, stop_reason

    def _finish(self, stop_reason: str, interrupted: bool) -> dict[str, Any]:
        """Last validation, ``checkpoint-last``, WiSE-FT; the run's summary, logged."""
        cfg, acc = self.cfg, self.acc
        if self.validator is not None and not interrupted and self.state.last_valid_step != self.state.step:
            self.validate(self.elapsed())
        total_time = self.elapsed()
        self.save_last(total_time)
        wise = None
        if cfg.wise_alpha and not interrupted:
            self._write_wise()
            wise = str(self.out / WISE)
            total_time = self.elapsed()
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

    def _write_wise(self) -> None:
        """``checkpoint-wise`` (main process): the starting model interpolated towards the validated
        best checkpoint when there is one, else towards ``checkpoint-last``."""
        cfg, acc = self.cfg, self.acc
        if acc.is_main_process:
            from splade_anserini.train.interpolate import interpolate

            source = BEST if (self.out / BEST).is_dir() else LAST  # the validated best when there is one
            wise = interpolate(cfg.model, str(self.out / source), cfg.wise_alpha, str(self.out / WISE))
            info(f"wrote {wise}: (1 - {cfg.wise_alpha:g}) * {cfg.model} + {cfg.wise_alpha:g} * {source}")
        acc.wait_for_everyone()


def train(cfg: TrainConfig, *, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Build a :class:`Trainer` for ``cfg`` and run it (with ``cfg.threads`` torch threads)."""
    with torch_threads(cfg.threads):
        trainer = Trainer(cfg)
        try:
            return trainer.train(stop_after_steps=stop_after_steps)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(trainer.save_on_interrupt()) from None
        finally:
            trainer.close()
