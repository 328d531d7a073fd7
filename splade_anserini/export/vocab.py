"""Term -> dimension: the vocabulary ids of the model's WordPiece tokenizer.

Engines with numeric dimensions (Milvus ``SPARSE_FLOAT_VECTOR``) need a stable mapping from the
tokens the vectors hold to integers; the tokenizer's own ids are that mapping, and a query encoded by
the same model maps the same way. The vocabulary is read from ``tokenizer.json`` (a checkpoint
folder, ``splade-tiny`` or an ONNX export) or ``vocab.txt``; its digest is recorded with the export
and checked when a query model's vocabulary is used against it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from splade_anserini.conversion.errors import UsageError


@dataclass(frozen=True)
class Vocabulary:
    """``ids``: token -> id; ``source``: where it was read; ``sha256``: digest of the sorted mapping."""

    ids: dict[str, int]
    source: str
    sha256: str

    def record(self) -> dict:
        return {"source": self.source, "size": len(self.ids), "sha256": self.sha256}

    def tokens(self) -> list[str]:
        """Tokens by id (``tokens()[i]`` is the token of dimension ``i``)."""
        out = [""] * (max(self.ids.values()) + 1)
        for token, i in self.ids.items():
            out[i] = token
        return out


def _digest(ids: dict[str, int]) -> str:
    h = hashlib.sha256()
    for token, i in sorted(ids.items(), key=lambda kv: kv[1]):
        h.update(f"{i}\t{token}\n".encode("utf-8"))
    return h.hexdigest()


def _model_folder(model: str) -> Path:
    from splade_anserini.models import SPLADE_TINY, fetch_splade_tiny, is_onnx_export

    if model == SPLADE_TINY:
        return fetch_splade_tiny()
    path = Path(model).expanduser()
    if path.is_dir() or is_onnx_export(path):
        return path
    raise UsageError(f"model {model}: not a local folder; its vocabulary (tokenizer.json or vocab.txt) maps "
                     "tokens to dimensions: give --model a checkpoint or ONNX export folder")


def read_vocabulary(model: str) -> Vocabulary:
    """The WordPiece vocabulary of ``model`` (``splade-tiny``, a checkpoint folder, an ONNX export)."""
    folder = _model_folder(model)
    tok, txt = folder / "tokenizer.json", folder / "vocab.txt"
    if tok.is_file():
        try:
            ids = json.loads(tok.read_text(encoding="utf-8"))["model"]["vocab"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{tok}: no WordPiece vocabulary in it ({exc})") from None
        if not isinstance(ids, dict):
            raise UsageError(f"{tok}: model.vocab is not a token -> id table (not a WordPiece tokenizer)")
    elif txt.is_file():
        ids = {line.rstrip("\n"): i for i, line in enumerate(txt.read_text(encoding="utf-8").splitlines(True))}
    else:
        raise UsageError(f"model {model}: {folder} holds neither tokenizer.json nor vocab.txt")
    return Vocabulary({str(t): int(i) for t, i in ids.items()}, os.fspath(model), _digest(ids))


def to_dimensions(vector: dict[str, int], vocab: Vocabulary, *, docid: str | None = None) -> dict[int, int]:
    """``{token: impact}`` -> ``{id: impact}``. A document token outside the vocabulary is refused
    (``docid`` given); a query token outside it is dropped (no document can hold it)."""
    out = {}
    for token, weight in vector.items():
        i = vocab.ids.get(token)
        if i is None:
            if docid is not None:
                raise UsageError(f"document {docid}: token {token!r} is not in the vocabulary of {vocab.source}; "
                                 "export with the --model that encoded the vectors")
            continue
        out[i] = weight
    return out


def check_same(recorded: dict | None, vocab: Vocabulary, where: str) -> None:
    """The query model's vocabulary must be the one the export recorded."""
    if recorded and recorded.get("sha256") != vocab.sha256:
        raise UsageError(f"{where}: its dimensions are the vocabulary ids of {recorded.get('source')} (sha256 "
                         f"{str(recorded.get('sha256'))[:12]}), but the query model {vocab.source} has another "
                         f"vocabulary (sha256 {vocab.sha256[:12]})")
