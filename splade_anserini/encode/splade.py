"""SPLADE encoder: MLM logits -> pooled ``log(1 + ReLU(.))`` -> sparse vectors over the WordPiece vocabulary.

``w_j = pool_i log(1 + ReLU(logit_ij))`` over the non-padding tokens ``i``, with ``pool`` = max
(SPLADE v2, the default) or sum (SPLADE v1). Since ``log(1 + ReLU(.))`` is monotone, max pooling is
taken on the raw logits and the activation applied to the ``[batch, vocab]`` result only; logits are
computed in sub-batches so the ``[batch, length, vocab]`` tensor stays within ``chunk_bytes``.

On CPU in fp32 the vocabulary projection (the MLM decoder, 94% of the work for a small BERT) runs
as an *exact screened* computation when the CPU has native bf16 dot products (AVX512-BF16, AMX):
a bf16 matmul (about 3x the fp32 speed there) gives every pooled logit up to a proven error bound;
only the terms whose bound reaches above 0 (a few hundred per document, out of 30,522) are
recomputed in fp32. Terms that are dropped
provably have a pooled logit <= 0 (weight 0), so the output is the fp32 output up to float
rounding (a weight within rounding of 0 may appear on one side only). The bound, the pooling and the
MLM head's parts live in :mod:`.head`, shared with the trainer. Other CPUs (or
``screen=False``) run the decoder in fp32 per text over cache-sized vocabulary slices, pooled at
once (``sliced``, about 2x the plain path); GPUs and fp16/bf16 autocast compute the full logits
in sub-batches (``plain``). :attr:`SpladeEncoder.head_path` says which.

SPLADE-doc (paper Eq. 7) encodes documents only; a query is the set of its WordPiece tokens,
weight 1 each (no [CLS]/[SEP]/[PAD]), as naver/splade does, or the weights of a table
(``query_weights``, e.g. the index's IDF: :mod:`.query_weights`).

Queries on CPU in fp32 run the exact int8-screened decoder (:mod:`.int8_screen`) when ONNX Runtime
is installed (:attr:`SpladeEncoder.query_head_path`): the same impacts as the fp32 decoder.
"""
from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from splade_anserini.encode.vectors import SparseVector, VocabularyOutput, bag_of_tokens, in_input_order, length_batches

from splade_anserini.encode.head import (POOLINGS, fast_bf16_cpu, head_reproduces_logits, mlm_head, pool_inference,  # noqa: F401
                   screen_candidates, splade_activation)

_SCREEN_SLICE_BYTES = 4 << 20  # bf16 [length, slice] logits of the screening pass
_SLICE_BYTES = 1 << 20         # fp32 [length, slice] logits of the sliced path (L2-sized)


def _has_onnxruntime() -> bool:
    """Whether ONNX Runtime (the int8 product of the query screen) can be imported."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


class SpladeEncoder(VocabularyOutput):
    """Encode texts into SPLADE sparse vectors with any HF ``AutoModelForMaskedLM`` checkpoint.

    >>> enc = SpladeEncoder("splade-tiny")
    >>> vec = enc.encode_queries(["what is splade"])[0]
    >>> enc.to_impacts(vec)  # {token: int impact}
    """

    def __init__(self, model: str = "splade-tiny", *, pooling: str = "max", device: str = "cpu",
                 max_length: int = 256, query_max_length: int = 256, precision: str = "fp32",
                 splade_doc: bool = False, chunk_bytes: int = 256 << 20, tokenizer=None, hf_model=None,
                 screen: bool | None = None, workers: int = 1, int8_queries: bool | None = None,
                 query_weights: dict | None = None):
        from splade_anserini.models import load_model

        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")
        if hf_model is None:
            tokenizer, hf_model = load_model(model, device=device, max_length=max(max_length, query_max_length))
        self.tokenizer = tokenizer
        self.model = hf_model.to(device).eval()
        self.model_name = str(model)
        self.pooling = pooling
        self.device = torch.device(device)
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.precision = precision
        self.splade_doc = splade_doc
        self.chunk_bytes = chunk_bytes
        self.vocab_size = self.model.get_output_embeddings().weight.shape[0]
        inv = {i: t for t, i in self.tokenizer.get_vocab().items()}
        self.vocab: list[str] = [inv.get(i, f"[id{i}]") for i in range(self.vocab_size)]
        self._special = np.array(sorted(set(self.tokenizer.all_special_ids)), dtype=np.int64)
        self._query_weights = None
        if query_weights is not None:
            from splade_anserini.search.query_weights import weights_by_id

            self._query_weights = weights_by_id(query_weights, self.vocab)
        self._screen_cache: tuple | None = None
        #: Batches encoded concurrently by this many threads (CPU: each with one torch thread).
        self.workers = max(1, int(workers))
        self._head = mlm_head(self.model)
        #: How the MLM decoder runs: "screened" (CPU fp32, native bf16: exact bf16 screening),
        #: "sliced" (CPU fp32: per text, cache-sized vocabulary slices) or "plain" (full logits).
        self.head_path = "plain"
        cpu_fp32 = self.device.type == "cpu" and precision == "fp32"
        if screen or cpu_fp32:
            if self._head_supported():
                if screen or (screen is None and fast_bf16_cpu()):
                    self.head_path = "screened"
                elif cpu_fp32:
                    self.head_path = "sliced"
            elif screen:
                raise ValueError(f"model {model}: screened decoding needs an MLM head taken apart by "
                                 "splade_anserini.encode.head.mlm_head (use screen=None or False)")
        #: How queries' decoders run: "int8" (exact int8-screened, :mod:`.int8_screen`) or head_path.
        self.query_head_path = self.head_path
        if int8_queries or (int8_queries is None and cpu_fp32 and _has_onnxruntime()):
            if not (self.head_path in ("screened", "sliced") or self._head_supported()):
                if int8_queries:
                    raise ValueError(f"model {model}: int8-screened queries need an MLM head taken apart by "
                                     "splade_anserini.encode.head.mlm_head (use int8_queries=None or False)")
            else:
                self.query_head_path = "int8"
        self._int8 = None

    # -- forward -----------------------------------------------------------------------------------
    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _head_input(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The ``[B, L, hidden]`` input of the decoder (the vocabulary projection is not run)."""
        return self._head.hidden(input_ids, attention_mask)

    @property
    def screening(self) -> bool:
        """Whether the exact bf16-screened decoder is used."""
        return self.head_path == "screened"

    def _head_supported(self) -> bool:
        """The screened and sliced paths need the MLM head's parts (:func:`.head.mlm_head`) to give
        the model's own logits."""
        return self._head is not None and head_reproduces_logits(self.model, self._head, self.tokenizer, self.device)

    def _screen_weights(self):
        """fp32 decoder weight and bias, a bf16 copy and row norms (refreshed when the weights change)."""
        decoder = self._head.decoder
        weight = decoder.weight
        bias = decoder.bias
        key = (weight.data_ptr(), weight._version, None if bias is None else (bias.data_ptr(), bias._version))
        if self._screen_cache is None or self._screen_cache[0] != key:
            w = weight.detach().float().contiguous()
            b = (torch.zeros(w.shape[0], device=w.device) if bias is None else bias.detach().float()).contiguous()
            self._screen_cache = (key, w, b, w.to(torch.bfloat16).contiguous(), w.norm(dim=1))
        return self._screen_cache[1:]

    def _int8_screen(self):
        """The decoder's :class:`.int8_screen.Int8Screen`, rebuilt when the weights change."""
        from splade_anserini.encode.int8_screen import Int8Screen

        weight, bias, _, _ = self._screen_weights()
        key = self._screen_cache[0]
        if self._int8 is None or self._int8[0] != key:
            self._int8 = (key, Int8Screen(weight.cpu().numpy(), bias.cpu().numpy(), self.pooling, threads=1))
        return self._int8[1]

    def _encode_batch_int8(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[SparseVector]:
        """The exact fp32 vectors: the body in torch, the vocabulary projection int8-screened."""
        screen = self._int8_screen()
        width = int(attention_mask.sum(dim=1).max())
        ids, mask = input_ids[:, :width].to(self.device), attention_mask[:, :width].to(self.device)
        hidden = self._head_input(ids, mask).float().cpu().numpy()
        return [screen.pool(hidden[row, :length]) for row, length in enumerate(mask.sum(dim=1).tolist())]

    @torch.inference_mode()
    def _encode_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      path: str | None = None) -> list[SparseVector]:
        path = path or self.head_path
        if path == "int8":
            return self._encode_batch_int8(input_ids, attention_mask)
        if path == "screened":
            return self._encode_batch_screened(input_ids, attention_mask)
        if path == "sliced":
            return self._encode_batch_sliced(input_ids, attention_mask)
        return self._encode_batch_plain(input_ids, attention_mask)

    def _encode_batch_plain(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[SparseVector]:
        """Full ``[sub-batch, length, vocab]`` logits, pooled (GPUs, autocast, unusual heads)."""
        batch, length = input_ids.shape
        per_row = max(1, length * self.vocab_size * 4)
        step = max(1, self.chunk_bytes // per_row)
        out: list[SparseVector] = []
        for lo in range(0, batch, step):
            ids = input_ids[lo:lo + step].to(self.device)
            mask = attention_mask[lo:lo + step].to(self.device)
            width = int(mask.sum(dim=1).max())  # trim columns that are padding in every row
            ids, mask = ids[:, :width], mask[:, :width]
            with self._autocast():
                logits = self.model(input_ids=ids, attention_mask=mask).logits
            reps = pool_inference(logits.float(), mask, self.pooling).cpu().numpy()
            for rep in reps:
                nz = np.flatnonzero(rep > 0).astype(np.int32)
                out.append(SparseVector(nz, rep[nz].astype(np.float32)))
        return out

    def _encode_batch_screened(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[SparseVector]:
        """Exact output of the plain path at a fraction of its cost (see the module docstring).

        For each text, ``M_j = max_i bf16(h_i) . bf16(w_j)`` (bf16 output) over its tokens;
        :func:`.head.screen_candidates` bounds the error of ``M_j`` and keeps the terms whose pooled
        logit may be positive. The others have weight 0 in fp32 as well; the kept ones are recomputed
        in fp32.
        """
        weight, bias, weight_bf16, weight_norm = self._screen_weights()
        ids = input_ids.to(self.device)
        mask = attention_mask.to(self.device)
        width = int(mask.sum(dim=1).max())
        ids, mask = ids[:, :width], mask[:, :width]
        hidden = self._head_input(ids, mask).float()
        lengths = mask.sum(dim=1).tolist()
        vocab = weight.shape[0]
        pooled = torch.empty((len(lengths), vocab), dtype=torch.bfloat16, device=hidden.device)
        max_norm = torch.empty(len(lengths), dtype=torch.float32, device=hidden.device)
        texts = []
        for row, length in enumerate(lengths):
            h = hidden[row, :length]                       # this text's tokens, padding skipped
            texts.append(h)
            max_norm[row] = h.norm(dim=1).max()
            hb = h.to(torch.bfloat16)
            # Vocabulary slices small enough for the [length, slice] bf16 logits to stay in cache.
            step = max(256, min(vocab, (_SCREEN_SLICE_BYTES // (2 * length)) // 256 * 256))
            for lo in range(0, vocab, step):
                torch.amax(F.linear(hb, weight_bf16[lo:lo + step]), dim=0, out=pooled[row, lo:lo + step])
        candidates = screen_candidates(pooled.float(), bias, weight_norm, max_norm.unsqueeze(1))
        out: list[SparseVector] = []
        for row, h in enumerate(texts):
            cand = candidates[row].nonzero().squeeze(1)
            logits = F.linear(h, weight[cand], bias[cand])  # exact fp32 logits of the candidates
            if self.pooling == "max":
                rep = torch.log1p(torch.relu(logits.amax(dim=0))) if cand.numel() else logits.new_empty(0)
            else:
                rep = logits.relu_().log1p_().sum(dim=0)
            keep = rep > 0
            out.append(SparseVector(cand[keep].cpu().numpy().astype(np.int32),
                                    rep[keep].cpu().numpy().astype(np.float32)))
        return out

    def _encode_batch_sliced(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[SparseVector]:
        """fp32, one text at a time, the vocabulary in slices whose ``[length, slice]`` logits stay in
        cache, pooled at once: the plain path's numbers without its memory traffic."""
        weight, bias, _, _ = self._screen_weights()
        ids = input_ids.to(self.device)
        mask = attention_mask.to(self.device)
        width = int(mask.sum(dim=1).max())
        ids, mask = ids[:, :width], mask[:, :width]
        hidden = self._head_input(ids, mask).float()
        vocab = weight.shape[0]
        out: list[SparseVector] = []
        rep = torch.empty(vocab, dtype=torch.float32, device=hidden.device)
        for row, length in enumerate(mask.sum(dim=1).tolist()):
            h = hidden[row, :length]
            step = max(128, min(vocab, (_SLICE_BYTES // (4 * length)) // 128 * 128))
            for lo in range(0, vocab, step):
                logits = F.linear(h, weight[lo:lo + step], bias[lo:lo + step])
                if self.pooling == "max":
                    torch.amax(logits, dim=0, out=rep[lo:lo + step])
                else:
                    torch.sum(logits.relu_().log1p_(), dim=0, out=rep[lo:lo + step])
            if self.pooling == "max":
                rep.relu_().log1p_()
            nz = rep.nonzero().squeeze(1)
            out.append(SparseVector(nz.cpu().numpy().astype(np.int32), rep[nz].cpu().numpy().astype(np.float32)))
        return out

    def tokenize(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """WordPiece ids of ``texts`` with the special tokens, truncated to ``max_length``."""
        return self.tokenizer(list(texts), max_length=max_length, truncation=True, add_special_tokens=True,
                              return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    def encode_token_ids(self, token_ids: Sequence[Sequence[int]], batch_size: int = 32,
                         progress=None, workers: int | None = None, head_path: str | None = None) -> list[SparseVector]:
        """Encode already-tokenized inputs, in length-sorted batches; results keep the input order.

        The batches depend only on ``token_ids`` and ``batch_size`` (a stable sort by decreasing
        length). With ``workers`` > 1 (default ``self.workers``) on CPU, that many threads encode
        different batches at once, each with a single torch thread: no synchronisation between
        cores inside an operation, and the same numbers whatever the number of workers.
        ``head_path``: the decoder path (default :attr:`head_path`; queries use :attr:`query_head_path`).
        """
        pad_id = self.tokenizer.pad_token_id or 0
        batches = length_batches(token_ids, batch_size)

        def run(idx: list[int]) -> tuple[list[int], list[SparseVector]]:
            width = max(len(token_ids[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = token_ids[i]
                ids[row, :len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                mask[row, :len(seq)] = 1
            return idx, self._encode_batch(ids, mask, head_path)

        workers = self.workers if workers is None else max(1, int(workers))
        if workers > 1 and self.device.type == "cpu" and len(batches) > 1:
            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splade") as pool:
                    return in_input_order(len(token_ids), pool.map(run, batches), progress)
            finally:
                torch.set_num_threads(previous)
        return in_input_order(len(token_ids), map(run, batches), progress)

    # -- public API --------------------------------------------------------------------------------
    def encode_documents(self, texts: Sequence[str], batch_size: int = 32, progress=None) -> list[SparseVector]:
        """Encode documents (max length ``self.max_length``)."""
        return self.encode_token_ids(self.tokenize(texts, self.max_length), batch_size, progress)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> list[SparseVector]:
        """Encode queries: the model (max length ``self.query_max_length``) or, for SPLADE-doc, the
        set of their WordPiece tokens with weight 1 (or the ``query_weights`` table's)."""
        if not self.splade_doc:
            return self.encode_token_ids(self.tokenize(texts, self.query_max_length), batch_size,
                                         head_path=self.query_head_path)
        return [bag_of_tokens(seq, self._special, self._query_weights)
                for seq in self.tokenize(texts, self.query_max_length)]
