"""Validation and checkpoint selection: ``checkpoint-best``, early stopping, and the out-of-domain
guard that keeps a checkpoint from becoming the best when it lost too much outside the domain."""
from __future__ import annotations

from splade_anserini.train.checkpoint import BEST, write_checkpoint
from splade_anserini.train.config import TrainConfig
from splade_anserini.train.distributed import broadcast
from splade_anserini.train.runlog import info


class CheckpointSelection:
    """The :class:`~splade_anserini.train.loop.Trainer`'s validation: which weights become
    ``checkpoint-best`` and when to stop early. Uses the trainer's ``cfg``, ``acc``, ``state``, ``log``,
    ``out``, ``tokenizer``, ``valid``, ``guard`` and its bookkeeping (``plain_model``, ``checkpoint_info``)."""

    def build_validators(self, cfg: TrainConfig) -> None:
        """A validator for the validation set and one for the guard set (each None without its set)."""
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

    def validate(self, elapsed: float) -> bool:
        """Validate (main process), keep the best checkpoint; returns whether to stop early."""
        stop, st = False, self.state
        if self.acc.is_main_process:
            hf = self.plain_model()
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
                write_checkpoint(self.out, BEST, hf, self.tokenizer, self.checkpoint_info())
            patience = self.cfg.early_stopping_patience
            stop = bool(patience and st.bad_validations >= patience)
        stop, self.state = broadcast((stop, st))
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
            value = self.guard_validator(self.plain_model(), self.tokenizer)[self.cfg.valid_metric]
            self.state.guard_start = value
            self.log.write({"type": "guard_start", "step": self.state.step, f"guard_{self.cfg.valid_metric}": value})
            info(f"out-of-domain guard: starting model {self.cfg.valid_metric}={value:.4f}; a checkpoint may "
                 f"become the best while it stays >= {value - self.cfg.guard_max_drop:.4f}")
        self.state = broadcast(self.state)
