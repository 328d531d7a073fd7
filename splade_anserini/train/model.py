"""The trainable SPLADE model: an HF masked-LM plus pooling, with SPLADE-doc's bag-of-token queries.

One ``forward(q_ids, q_mask, d_ids, d_mask) -> (q_reps, d_reps)`` call per step, so DDP (through
accelerate) sees a single forward per backward. Representations are fp32 ``[B, V]``.
"""
from __future__ import annotations

import torch
from torch import nn

from splade_anserini.encode.head import mlm_head, splade_activation
from splade_anserini.train.fused import fused_max_splade


class SpladeTrainModel(nn.Module):
    def __init__(self, hf_model, tokenizer, *, pooling: str = "max", splade_doc: bool = False, fused: bool = True,
                 query_weights: torch.Tensor | None = None):
        super().__init__()
        self.hf_model = hf_model
        self.pooling = pooling
        self.splade_doc = splade_doc
        self.vocab_size = hf_model.get_output_embeddings().weight.shape[0]
        self._head = mlm_head(hf_model) if (fused and pooling == "max") else None
        special = sorted(set(tokenizer.all_special_ids))
        self.register_buffer("special_ids", torch.tensor(special, dtype=torch.long), persistent=False)
        #: SPLADE-doc query token weights ``[V]`` (e.g. IDF, :mod:`splade_anserini.search.query_weights`), or None: 1.
        self.register_buffer("query_weights", None if query_weights is None else query_weights.float(),
                             persistent=False)

    @property
    def fused(self) -> bool:
        return self._head is not None

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """SPLADE representations ``[B, V]`` (fp32) of tokenized texts."""
        if self._head is not None:
            decoder = self._head.decoder
            return fused_max_splade(self._head.hidden(input_ids, attention_mask), decoder.weight, decoder.bias,
                                    attention_mask)
        logits = self.hf_model(input_ids=input_ids, attention_mask=attention_mask).logits
        return splade_activation(logits.float(), attention_mask, self.pooling)

    def bag_of_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """SPLADE-doc queries: 1 (or its ``query_weights`` entry) for every WordPiece of the text, special
        tokens excluded (the same vectors as ``SpladeEncoder(splade_doc=True).encode_queries``)."""
        keep = (attention_mask > 0) & ~torch.isin(input_ids, self.special_ids)
        reps = torch.zeros(input_ids.shape[0], self.vocab_size, device=input_ids.device)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device).unsqueeze(1).expand_as(input_ids)
        reps[rows[keep], input_ids[keep]] = 1.0 if self.query_weights is None else self.query_weights[input_ids[keep]]
        return reps

    def forward(self, q_ids, q_mask, d_ids, d_mask):
        q = self.bag_of_tokens(q_ids, q_mask) if self.splade_doc else self.encode(q_ids, q_mask)
        return q, self.encode(d_ids, d_mask)
