"""The second graph of an ONNX export: the model up to the decoder's input, for screened query encoding.

``hidden.onnx`` maps ``input_ids``, ``attention_mask`` (int64 ``[batch, seq]``) to ``hidden``
(float32 ``[batch, seq, H]``, the MLM head's transformed states); ``decoder.npz`` holds the
vocabulary projection (``weight [V, H]``, ``bias [V]``, fp32). :class:`~.onnx_encoder.OnnxSpladeEncoder`
runs them with :class:`~.int8_screen.Int8Screen`: the same impacts as the contract's graph
(``model.onnx``, which Anserini's Java encoder reads and which stays as it is) at a fraction of its
cost. Written for fp32 exports whose MLM head :func:`.head.mlm_head` takes apart.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from splade_anserini.models import EXPORT_DECODER, EXPORT_HIDDEN, ModelNotFoundError

HIDDEN_INPUTS = ("input_ids", "attention_mask")


def write_query_graph(hf_model, tokenizer, directory: str | os.PathLike, opset: int) -> bool:
    """Write ``hidden.onnx`` and ``decoder.npz`` into ``directory``; False (nothing written) when the
    model's head cannot be taken apart exactly."""
    import warnings

    import torch

    from splade_anserini.encode.head import head_reproduces_logits, mlm_head

    head = mlm_head(hf_model)
    if head is None or not head_reproduces_logits(hf_model, head, tokenizer, torch.device("cpu")):
        return False

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlm = hf_model  # registered, so that the transform's parameters are too

        def forward(self, input_ids, attention_mask):
            return head.hidden(input_ids, attention_mask)

    directory = Path(os.fspath(directory))
    sample = tokenizer(["what is splade", "a second, longer text so that the batch has padding"],
                       padding=True, return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "hidden": {0: "batch", 1: "sequence"}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden().eval(), (sample["input_ids"], sample["attention_mask"]),
                          str(directory / EXPORT_HIDDEN), input_names=list(HIDDEN_INPUTS), output_names=["hidden"],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    weight = head.decoder.weight.detach().float().cpu().numpy()
    bias = head.decoder.bias
    bias = np.zeros(weight.shape[0], np.float32) if bias is None else bias.detach().float().cpu().numpy()
    with open(directory / EXPORT_DECODER, "wb") as fh:
        np.savez(fh, weight=weight, bias=bias)
    return True


def has_query_graph(export_dir: str | os.PathLike) -> bool:
    """Whether the export holds the screened query path's files."""
    root = Path(os.fspath(export_dir))
    return (root / EXPORT_HIDDEN).is_file() and (root / EXPORT_DECODER).is_file()


class QueryGraph:
    """``hidden.onnx`` on ONNX Runtime + the int8-screened decoder: ``run(seqs)`` -> sparse vectors."""

    def __init__(self, export_dir: str | os.PathLike, pooling: str, threads: int = 0):
        from splade_anserini.encode.int8_screen import Int8Screen
        from splade_anserini.serve.onnx_encoder import session_options

        import onnxruntime as ort

        root = Path(os.fspath(export_dir))
        try:
            with np.load(root / EXPORT_DECODER) as npz:
                weight, bias = npz["weight"], npz["bias"]
            self.session = ort.InferenceSession(str(root / EXPORT_HIDDEN), sess_options=session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # numpy and onnxruntime raise their own types on corrupt files
            raise ModelNotFoundError(f"{root}: corrupt screened query graph ({str(exc).splitlines()[0]})") from None
        self.screen = Int8Screen(weight, bias, pooling, threads=threads)

    def run(self, ids: np.ndarray, mask: np.ndarray, lengths) -> list:
        """Sparse vectors of the padded ``[batch, seq]`` inputs (rows of ``lengths`` real tokens)."""
        hidden = self.session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})[0]
        return [self.screen.pool(hidden[row, :length]) for row, length in enumerate(lengths)]
