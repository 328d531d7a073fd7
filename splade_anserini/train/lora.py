"""LoRA fine-tuning (``peft``) that still saves plain masked-LM checkpoints.

Low-rank adapters (Hu et al. 2022) train ``W + (alpha / r) B A`` with ``W`` frozen: far fewer
trainable weights, and a fine-tuned model that stays close to its start, which is the point here
(forgetting less out of domain). :class:`LoraAdapter` injects the adapters *in place* into the HF
model, so :class:`~.model.SpladeTrainModel` and the fused SPLADE-max head run unchanged; the MLM
decoder (tied to the word embeddings) stays frozen, its input transform is adapted when ``dense``
is targeted.

Every checkpoint is written merged (:meth:`LoraAdapter.merged`): a plain ``AutoModelForMaskedLM``
that ``encode_corpus`` and the query encoder load as they load any model. ``checkpoint-last`` also
keeps the adapter weights (:meth:`adapter_state`), so a resumed run continues the same adapters.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

#: BERT-style names: attention projections and every dense layer (attention output, FFN, MLM transform)
DEFAULT_TARGETS = "query,key,value,dense"
ADAPTER_FILE = "lora_adapter.pt"


class LoraAdapter:
    """Rank-``rank`` LoRA adapters injected into ``hf_model`` (modified in place; the same object
    keeps serving forward passes). Only the adapter weights require gradients afterwards."""

    def __init__(self, hf_model, rank: int, alpha: float | None = None, dropout: float = 0.0,
                 target_modules: str = DEFAULT_TARGETS):
        from peft import LoraConfig, get_peft_model

        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        targets = [t.strip() for t in target_modules.split(",") if t.strip()]
        if not targets:
            raise ValueError("LoRA needs at least one target module name")
        self.config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else 2 * rank,
                                 lora_dropout=dropout, target_modules=targets, bias="none")
        self.hf_model = hf_model
        # get_peft_model replaces the targeted Linear layers of hf_model itself and freezes the rest
        self.peft_model = get_peft_model(hf_model, self.config)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.hf_model.parameters() if p.requires_grad)

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The adapter weights (``lora_A``/``lora_B`` of every adapted layer), detached copies on CPU."""
        return {n: p.detach().cpu().clone() for n, p in self.hf_model.named_parameters() if "lora_" in n}

    def load_adapter_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`adapter_state`; the names must match exactly (same rank and targets)."""
        params = {n: p for n, p in self.hf_model.named_parameters() if "lora_" in n}
        if set(params) != set(state):
            missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
            raise ValueError("LoRA adapter state does not match the configured adapters "
                             f"(missing {missing[:2]}, unexpected {extra[:2]})")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(state[name].to(p.device, p.dtype))

    @torch.no_grad()
    def merged(self):
        """A plain HF masked-LM with ``W + (alpha / r) B A`` folded into each adapted layer (a copy:
        the training model keeps its adapters)."""
        return copy.deepcopy(self.peft_model).merge_and_unload()

    def delta_weights(self) -> list[torch.Tensor]:
        """``(alpha / r) B A`` of every adapted layer, differentiable in the adapter weights: the
        distance of the effective weights from the frozen start (what L2-SP penalizes under LoRA)."""
        from peft.tuners.lora import LoraLayer

        out = []
        for module in self.hf_model.modules():
            if isinstance(module, LoraLayer):
                for name in module.active_adapters:
                    if name in module.lora_A:
                        out.append(module.get_delta_weight(name))
        return out

    def describe(self) -> str:
        total = sum(p.numel() for p in self.hf_model.parameters())
        return (f"LoRA r={self.config.r} alpha={self.config.lora_alpha:g} on {sorted(self.config.target_modules)}: "
                f"{self.trainable_parameters():,} of {total:,} weights trainable")


def info(adapter: LoraAdapter | None) -> dict[str, Any] | None:
    """What a checkpoint records about the adapters it was merged from."""
    if adapter is None:
        return None
    c = adapter.config
    return {"rank": c.r, "alpha": c.lora_alpha, "dropout": c.lora_dropout, "targets": sorted(c.target_modules),
            "merged": True}
