"""The ONNX graph of an export: SPLADE pooling around the masked LM, tied embeddings stored once,
IR versions capped for the ONNX Runtime inside Anserini, and dynamic int8 quantization."""
from __future__ import annotations

from pathlib import Path

OPSET = 17
#: ONNX Runtime 1.17 (the Java build inside the Anserini 1.7.1 and 2.3.0 fatjars alike) reads IR versions up to 9.
MAX_IR_VERSION = 9


def splade_graph(hf_model, pooling: str):
    """A ``torch.nn.Module``: Anserini's three inputs -> (``output_idx``, ``output_weights``)."""
    import inspect

    import torch

    takes_types = "token_type_ids" in inspect.signature(hf_model.forward).parameters

    class SpladeGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlm = hf_model

        def forward(self, input_ids, attention_mask, token_type_ids):
            if takes_types:
                logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).logits
            else:  # keep the input in the graph: Anserini always feeds it
                logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask).logits
                logits = logits + (token_type_ids.sum() * 0).to(logits.dtype)
            keep = attention_mask.unsqueeze(-1) > 0
            if pooling == "max":  # log1p(relu(.)) is monotone: pool the logits, activate [batch, vocab] only
                masked = torch.where(keep, logits, torch.full_like(logits[:1, :1, :1], float("-inf")))
                rep = torch.log1p(torch.relu(masked.amax(dim=1)))
            else:
                rep = torch.where(keep, torch.log1p(torch.relu(logits)), torch.zeros_like(logits[:1, :1, :1]))
                rep = rep.sum(dim=1)
            flat = rep.reshape(-1)
            idx = torch.nonzero(flat > 0).squeeze(1)
            return idx, flat.index_select(0, idx)

    return SpladeGraph().eval()


def export_graph(hf_model, tokenizer, pooling: str, path: Path) -> None:
    """Write the SPLADE graph of ``hf_model`` with ``pooling`` to ``path`` (opset :data:`OPSET`), tied
    embeddings stored once."""
    import warnings

    import torch

    sample = tokenizer(["what is splade", "a second, longer text so that the batch has padding"],
                       padding=True, return_tensors="pt")
    args = (sample["input_ids"], sample["attention_mask"], torch.zeros_like(sample["input_ids"]))
    axes = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "token_type_ids")}
    axes.update({"output_idx": {0: "terms"}, "output_weights": {0: "terms"}})
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes (checked by parity)
        torch.onnx.export(splade_graph(hf_model, pooling), args, str(path),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["output_idx", "output_weights"], dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    import onnx

    graph = onnx.load(str(path))
    if share_tied_embeddings(graph):
        onnx.save(graph, str(path))


def share_tied_embeddings(model) -> bool:
    """Keep one copy of tied word embeddings (in place); True when the graph changed.

    The exporter writes a tied matrix twice: ``E [V, H]`` for the input lookup and ``E^T [H, V]`` for
    the vocabulary projection, each 15.6 MB for BERT's vocabulary. The lookup is rewritten to read
    columns of ``E^T`` (``Gather(E^T, ids, axis=1)``, then ``[H, B, L] -> [B, L, H]``): the same values,
    one matrix in the file and in the serving process.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    ranks = {i.name: len(i.type.tensor_type.shape.dim) for i in graph.input}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    projections = [n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    for pos, node in enumerate(graph.node):
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if node.op_type != "Gather" or axis != 0 or node.input[0] not in inits or uses[node.input[0]] != 1 \
                or node.input[1] not in ranks:
            continue
        table = inits[node.input[0]]
        for name in projections:
            proj = inits[name]
            if list(proj.dims) != list(table.dims)[::-1] or proj.data_type != table.data_type \
                    or not np.array_equal(numpy_helper.to_array(proj).T, numpy_helper.to_array(table)):
                continue
            rank = ranks[node.input[1]]
            columns = node.output[0] + "_columns"
            graph.node.remove(node)
            graph.node.insert(pos, helper.make_node("Transpose", [columns], [node.output[0]],
                                                    perm=[*range(1, rank + 1), 0], name=node.name + "_rows"))
            graph.node.insert(pos, helper.make_node("Gather", [name, node.input[1]], [columns], axis=1,
                                                    name=node.name + "_tied"))
            graph.initializer.remove(table)
            onnx.checker.check_model(model)
            return True
    return False


def check_ir(path: Path) -> dict:
    """Cap the IR version at what ONNX Runtime 1.17 reads, validate, and return the graph's versions."""
    import onnx

    model = onnx.load(str(path))
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = MAX_IR_VERSION
        onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"ir_version": int(model.ir_version), "opset": int(opset)}


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the matrix products of ``src``, written to ``dst``."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its per-node INFO lines
    # uint8 weights and activations: without VNNI, the u8 x s8 kernels can saturate their int16
    # intermediate sums (measured on SciFact queries: cosine to PyTorch 0.997 with s8, 0.998 with u8).
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8, op_types_to_quantize=["MatMul"])
