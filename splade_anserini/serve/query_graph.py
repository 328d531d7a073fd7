"""The second graph of an ONNX export: the model up to the decoder's input, for screened query encoding.

``hidden.onnx`` maps ``input_ids``, ``attention_mask`` (int64 ``[batch, seq]``) to ``hidden``
(float32 ``[batch, seq, H]``, the MLM head's transformed states); ``decoder.npz`` holds the
vocabulary projection (``weight [V, H]``, ``bias [V]``, fp32). :class:`~.onnx_encoder.OnnxSpladeEncoder`
runs them with :class:`~.int8_screen.Int8Screen`: the same impacts as the contract's graph
(``model.onnx``, which Anserini's Java encoder reads and which stays as it is) at a fraction of its
cost. Written for fp32 exports whose MLM head :func:`.head.mlm_head` takes apart.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from splade_anserini.models import EXPORT_DECODER, EXPORT_HIDDEN, ModelNotFoundError

HIDDEN_INPUTS = ("input_ids", "attention_mask")


#: ``config.model_type`` values whose graphs ONNX Runtime's transformer optimizer fuses (its "bert" type).
FUSABLE_MODEL_TYPES = ("bert",)
#: Largest difference of the fused graph's hidden states from the plain one's: a fusion that drifts
#: further is not kept (measured on splade-tiny: 1e-5; SciFact and CACM impacts identical).
FUSION_MAX_ABS_DIFF = 1e-4


def write_query_graph(hf_model, tokenizer, directory: str | os.PathLike, opset: int) -> bool:
    """Write ``hidden.onnx`` and ``decoder.npz`` into ``directory``; False (nothing written) when the
    model's head cannot be taken apart exactly. BERT-family graphs are fused (:func:`fuse_hidden_graph`)."""
    import torch

    from splade_anserini.encode.head import head_reproduces_logits, mlm_head

    head = mlm_head(hf_model)
    if head is None or not head_reproduces_logits(hf_model, head, tokenizer, torch.device("cpu")):
        return False
    directory = Path(os.fspath(directory))
    fuse = getattr(hf_model.config, "model_type", None) in FUSABLE_MODEL_TYPES
    with _attention(hf_model, "eager" if fuse else None):  # eager attention: the pattern the optimizer fuses
        _export_hidden(hf_model, head, tokenizer, directory / EXPORT_HIDDEN, opset)
    if fuse:
        fuse_hidden_graph(directory / EXPORT_HIDDEN, hf_model.config, tokenizer)
    weight = head.decoder.weight.detach().float().cpu().numpy()
    bias = head.decoder.bias
    bias = np.zeros(weight.shape[0], np.float32) if bias is None else bias.detach().float().cpu().numpy()
    with open(directory / EXPORT_DECODER, "wb") as fh:
        np.savez(fh, weight=weight, bias=bias)
    return True


@contextlib.contextmanager
def _attention(hf_model, implementation: str | None):
    """Switch the model's attention implementation for the duration (None: leave it): the contract
    graph and the PyTorch reference keep the model's own."""
    before = getattr(hf_model.config, "_attn_implementation", None)
    if implementation is None or before == implementation or not hasattr(hf_model, "set_attn_implementation"):
        yield
        return
    hf_model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        hf_model.set_attn_implementation(before)


def _export_hidden(hf_model, head, tokenizer, path: Path, opset: int) -> None:
    """``torch.onnx.export`` of the model up to the decoder's input (dynamic batch and length)."""
    import warnings

    import torch

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlm = hf_model  # registered, so that the transform's parameters are too

        def forward(self, input_ids, attention_mask):
            return head.hidden(input_ids, attention_mask)

    sample = _sample(tokenizer)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "hidden": {0: "batch", 1: "sequence"}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden().eval(), (sample["input_ids"], sample["attention_mask"]), str(path),
                          input_names=list(HIDDEN_INPUTS), output_names=["hidden"],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)


def _sample(tokenizer, texts=("what is splade", "a second, longer text so that the batch has padding")):
    return tokenizer(list(texts), padding=True, return_tensors="pt")


def fuse_hidden_graph(path: Path, config, tokenizer) -> bool:
    """Rewrite ``path`` with ONNX Runtime's transformer fusions (Attention, BiasGelu: 48 nodes instead
    of 278 for splade-tiny, its run about 1.3x faster for one query) when
    its hidden states stay within :data:`FUSION_MAX_ABS_DIFF` of the plain graph's on sample texts;
    True when rewritten. Any failure keeps the plain graph."""
    import logging

    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # its per-fusion INFO lines
        options = FusionOptions("bert")
        # Measured on splade-tiny (SciFact test queries one at a time): EmbedLayerNormalization moves one
        # impact (of 15,680) by one at the same speed; ONNX Runtime's SkipLayerNormalization kernel costs
        # three LayerNormalizations (run 0.29 ms instead of 0.24). Without either, the states equal the
        # plain graph's bit for bit.
        options.enable_embed_layer_norm = False
        options.enable_skip_layer_norm = False
        fused = optimize_model(str(path), model_type="bert", num_heads=int(config.num_attention_heads),
                               hidden_size=int(config.hidden_size), optimization_options=options, opt_level=1).model
        plain = path.read_bytes()
        if _max_hidden_diff(plain, fused.SerializeToString(), tokenizer) > FUSION_MAX_ABS_DIFF:
            return False
    except Exception:  # noqa: BLE001 - the optimizer's failures are many and undocumented: keep the plain graph
        return False
    import onnx

    onnx.save(fused, str(path))
    return True


def _max_hidden_diff(plain: bytes, fused: bytes, tokenizer) -> float:
    """Largest difference of two hidden graphs' outputs on sample texts (one alone, and a padded batch)."""
    from splade_anserini.serve.sessions import cpu_session

    texts = ("what is splade", "aspirin reduces the risk of heart attacks", "x",
             "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.")
    feeds = [_sample(tokenizer, texts[:1]), _sample(tokenizer, texts)]
    worst = 0.0
    runs = [cpu_session(g, 1) for g in (plain, fused)]
    for feed in feeds:
        inputs = {"input_ids": feed["input_ids"].numpy(), "attention_mask": feed["attention_mask"].numpy()}
        a, b = (s.run(["hidden"], inputs)[0] for s in runs)
        keep = inputs["attention_mask"].astype(bool)
        worst = max(worst, float(np.abs(a[keep] - b[keep]).max()))
    return worst


def has_query_graph(export_dir: str | os.PathLike) -> bool:
    """Whether the export holds the screened query path's files."""
    root = Path(os.fspath(export_dir))
    return (root / EXPORT_HIDDEN).is_file() and (root / EXPORT_DECODER).is_file()


class QueryGraph:
    """``hidden.onnx`` on ONNX Runtime + the int8-screened decoder: ``run(seqs)`` -> sparse vectors.
    ``kernel``: the screen's int8 product (:func:`~.int8_screen.resolve_kernel`)."""

    def __init__(self, export_dir: str | os.PathLike, pooling: str, threads: int = 0, kernel: str | None = None):
        from splade_anserini.encode.int8_screen import Int8Screen
        from splade_anserini.serve.sessions import cpu_session

        root = Path(os.fspath(export_dir))
        try:
            with np.load(root / EXPORT_DECODER) as npz:
                weight, bias = npz["weight"], npz["bias"]
            self.session = cpu_session(str(root / EXPORT_HIDDEN), threads, prepack=True)
        except Exception as exc:  # numpy and onnxruntime raise their own types on corrupt files
            raise ModelNotFoundError(f"{root}: corrupt screened query graph ({str(exc).splitlines()[0]})") from None
        self.screen = Int8Screen(weight, bias, pooling, threads=threads, kernel=kernel)

    def run(self, ids: np.ndarray, mask: np.ndarray, lengths) -> list:
        """Sparse vectors of the padded ``[batch, seq]`` inputs (rows of ``lengths`` real tokens)."""
        hidden = self.session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})[0]
        return [self.screen.pool(hidden[row, :length]) for row, length in enumerate(lengths)]


def old_int8_notice(meta: dict, export_dir) -> None:
    """One ``notice:`` line for an export written by the former ``--int8`` (an approximate,
    dynamically quantized graph): it still loads, and an fp32 export's exact screen supersedes it."""
    if meta.get("quantization") == "int8":
        import sys

        print(f"notice: {export_dir}: an approximate int8 graph (the former export-onnx --int8); export it again "
              "without --int8 for the exact screened query encoder (same impacts as PyTorch, faster)",
              file=sys.stderr, flush=True)
