"""What wrote a collection, recorded once and checked wherever it is searched.

``encode_corpus`` writes the provenance of its vectors (:func:`for_documents`) into the vectors
folder as ``splade-anserini.provenance`` (JSON; a name Anserini's JsonVectorCollection never reads);
``index`` carries it into the index metadata (Lucene: ``splade-anserini-index.json``, Numba:
``header.json``, key ``provenance``). It holds:

* ``model``: ``name`` and ``sha256``, the digest of its weights (:func:`weights_sha256`: parameter
  names, shapes and bytes; an ONNX export records its source model's digest as ``source_sha256``);
* ``factor`` (impact = ``rint(w * factor)``), ``max_length``, ``pooling``, ``splade_doc``;
* ``passages``: ``null``, or ``{"length", "stride", "delimiter"}`` when the documents are passages;
* ``splade_anserini``: the package version.

:func:`check_search` is the one place where a search is held against it: a query model with
another digest (unless ``--allow-other-query-encoder``), a ``--factor`` or an export factor other
than the index's, ``--max-passage`` on an index of whole documents are refused in one line. An
index without provenance (built before it was recorded, or from vectors of another tool) still
searches, with a one-line notice.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from splade_anserini.conversion.errors import UsageError

FORMAT = "splade-anserini-provenance"
VERSION = 1
VECTORS_FILE = "splade-anserini.provenance"
LUCENE_FILE = "splade-anserini-index.json"  # the index report (see splade_anserini.index.build)
NUMBA_FILE = "header.json"
KEY = "provenance"
ALLOW_OTHER_ENCODER = "--allow-other-query-encoder"
DEFAULT_FACTOR = 100.0
DEFAULT_DELIMITER = "#"
#: The fields two shards of one collection must agree on.
_SHARED = ("model", "factor", "max_length", "pooling", "splade_doc", "passages")


class ProvenanceError(UsageError):
    """A search (or a build) that does not match what wrote the collection: one line, exit 2."""


def package_version() -> str:
    from splade_anserini import __version__

    return __version__


def weights_sha256(hf_model) -> str:
    """sha256 of the parameters (names, shapes, bytes) in name order: the same for any file format."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(hf_model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(data.shape)}:{data.dtype}\n".encode())
        h.update(data.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_identity(encoder) -> dict:
    """``{"name", "sha256"}`` of a loaded SPLADE encoder: its weights' digest, or for an ONNX export
    the digest of the model it was exported from (computed once per encoder)."""
    cached = getattr(encoder, "_provenance_identity", None)
    if cached is None:
        meta = getattr(encoder, "meta", None)
        if isinstance(meta, dict) and "source_sha256" in meta:
            cached = {"name": str(meta.get("source_model", encoder.model_name)), "sha256": meta["source_sha256"]}
        else:
            cached = {"name": str(encoder.model_name), "sha256": weights_sha256(encoder.model)}
        encoder._provenance_identity = cached
    return cached


def passages_record(length: int | None, stride: int | None, delimiter: str = DEFAULT_DELIMITER) -> dict | None:
    return None if not length else {"length": int(length), "stride": int(stride or length), "delimiter": delimiter}


def for_documents(encoder, *, name: str, factor: float, passages: dict | None = None) -> dict:
    """The provenance of vectors ``encoder`` wrote (``name``: the model as the user named it)."""
    return {"format": FORMAT, "version": VERSION, "model": {**model_identity(encoder), "name": str(name)},
            "factor": float(factor), "max_length": int(encoder.max_length), "pooling": encoder.pooling,
            "splade_doc": False, "passages": passages, "splade_anserini": package_version()}


def unknown_model(factor: float) -> dict:
    """The provenance of float vectors from another tool quantized by ``index --quantize``: the factor only."""
    return {"format": FORMAT, "version": VERSION, "model": None, "factor": float(factor), "max_length": None,
            "pooling": None, "splade_doc": None, "passages": None, "splade_anserini": package_version()}


def _valid(prov, where) -> dict:
    if (not isinstance(prov, dict) or prov.get("format") != FORMAT
            or not isinstance(prov.get("model"), (dict, type(None))) or not isinstance(prov.get("factor"), (int, float))):
        raise ProvenanceError(f"{where}: corrupt provenance (not {FORMAT} metadata)")
    return prov


def write_vectors(folder: str | os.PathLike, prov: dict, *, shared: bool = False) -> Path:
    """Write ``prov`` into the vectors folder (atomically). ``shared``: other shards write the same
    folder, so a provenance there that differs (another model or setting) is refused."""
    path = Path(folder) / VECTORS_FILE
    if shared:
        check_vectors(folder, prov, "other shards of this folder were encoded differently")
    from splade_anserini.conversion.atomic import atomic_open  # a unique temporary name: shards may write it at the same moment

    with atomic_open(path) as fh:
        fh.write(json.dumps(prov, sort_keys=True) + "\n")
    return path


def check_vectors(folder: str | os.PathLike, prov: dict, what: str = "the vectors were encoded differently") -> None:
    """Refuse when the folder's recorded provenance differs from ``prov`` (model, factor, lengths...)."""
    def same(key: str, a, b) -> bool:  # a model is its weights, whatever name it was given
        return (a or {}).get("sha256") == (b or {}).get("sha256") if key == "model" else a == b

    old = read_vectors(folder)
    differing = [k for k in _SHARED if old is not None and not same(k, old.get(k), prov.get(k))]
    if differing:
        raise ProvenanceError(f"{Path(folder) / VECTORS_FILE}: {what} ({', '.join(differing)}); use --overwrite "
                              "to encode them again, or another --output")


def read_vectors(folder: str | os.PathLike) -> dict | None:
    """The provenance of a vectors folder (or of the folder holding a vectors file), ``None`` if none."""
    folder = Path(folder)
    path = (folder if folder.is_dir() else folder.parent) / VECTORS_FILE
    if not path.is_file():
        return None
    try:
        return _valid(json.loads(path.read_text(encoding="utf-8")), path)
    except ValueError as exc:
        raise ProvenanceError(f"{path}: corrupt provenance ({exc})") from None


def read_index(index: str | os.PathLike) -> dict | None:
    """The provenance an index carries (Lucene or Numba), ``None`` for an index without it."""
    index = Path(index)
    for name in (LUCENE_FILE, NUMBA_FILE):
        path = index / name
        if path.is_file():
            try:
                prov = json.loads(path.read_text(encoding="utf-8")).get(KEY)
            except (ValueError, AttributeError) as exc:
                raise ProvenanceError(f"{path}: unreadable index metadata ({exc})") from None
            return None if prov is None else _valid(prov, path)
    return None


def notice(message: str) -> None:
    print(f"notice: {message}", file=sys.stderr, flush=True)


def describe(prov: dict | None) -> str:
    if prov is None:
        return "no provenance"
    if prov["model"] is None:
        return f"vectors of another tool quantized x{prov['factor']:g}"
    psg = prov.get("passages")
    return (f"{prov['model']['name']} (sha256 {prov['model']['sha256'][:12]}), x{prov['factor']:g}, max length "
            f"{prov['max_length']}, {prov['pooling']} pooling"
            + (f", passages of {psg['length']} (stride {psg['stride']})" if psg else ""))


@dataclass
class SearchPlan:
    """What a search uses once checked against the index: the factor, the MaxP delimiter, the notes
    for the run's side file."""

    factor: float
    delimiter: str = DEFAULT_DELIMITER
    provenance: dict | None = None
    other_encoder: dict | None = None
    notes: list[str] = field(default_factory=list)

    def tell(self) -> None:
        """Print the notes, one ``notice:`` line each (once the work is done: an error stays one line)."""
        for note in self.notes:
            notice(note)

    def side_record(self, query_model: dict | None) -> dict:
        return {"index_provenance": self.provenance, "query_model": query_model, "factor": self.factor,
                "other_query_encoder_allowed": self.other_encoder is not None, "notes": self.notes}


def plan_search(index: str | os.PathLike, *, factor: str | None, max_passage: bool = False,
                delimiter: str | None = None) -> SearchPlan:
    """Check the options that need no model against the index's provenance: the factor (default:
    the index's), MaxP only on an index of passages (and their delimiter)."""
    from splade_anserini.conversion.quantize import resolve_factor

    prov = read_index(index)
    wanted = resolve_factor(factor) if factor is not None else None
    if prov is None:
        return SearchPlan(wanted or DEFAULT_FACTOR, delimiter or DEFAULT_DELIMITER, notes=[
            f"{index}: the index records no provenance (built before it was recorded, or from vectors another "
            "tool wrote): the query model and factor were not checked"])
    if wanted is not None and wanted != prov["factor"]:
        raise ProvenanceError(f"--factor {wanted:g}: the index {index} was quantized with factor {prov['factor']:g}; "
                              "leave --factor out to use the index's")
    psg = prov.get("passages")
    if max_passage and not psg and prov["model"] is not None:
        raise ProvenanceError(f"--max-passage: the index {index} holds whole documents, not passages (its metadata "
                              "records none); search it without --max-passage")
    if max_passage and psg and delimiter is not None and delimiter != psg["delimiter"]:
        raise ProvenanceError(f"--max-passage-delimiter {delimiter!r}: the index {index} names its passages "
                              f"docid{psg['delimiter']}k; leave the option out")
    return SearchPlan(prov["factor"], psg["delimiter"] if psg else delimiter or DEFAULT_DELIMITER, prov)


def check_query_model(plan: SearchPlan, index, query_model: dict, *, allow_other: bool) -> None:
    """A query model whose weights differ from the documents' model is refused unless ``allow_other``."""
    prov = plan.provenance
    if prov is None or prov["model"] is None or query_model["sha256"] == prov["model"]["sha256"]:
        return
    if not allow_other:
        raise ProvenanceError(f"query model {query_model['name']} (sha256 {query_model['sha256'][:12]}) is not the "
                              f"model that encoded the index {index} ({prov['model']['name']}, sha256 "
                              f"{prov['model']['sha256'][:12]}); pass {ALLOW_OTHER_ENCODER} if that is intended")
    plan.other_encoder = query_model
    plan.notes.append(f"query model {query_model['name']} (sha256 {query_model['sha256']}) differs from the "
                      f"documents' {prov['model']['name']} (sha256 {prov['model']['sha256']}); accepted by "
                      f"{ALLOW_OTHER_ENCODER}")


def check_export(plan: SearchPlan, index, export_dir, meta: dict) -> None:
    """An ONNX export quantizes with the factor it records: it must be the index's."""
    if plan.provenance is not None and float(meta["factor"]) != plan.factor:
        raise ProvenanceError(f"{export_dir}: the export records factor {float(meta['factor']):g} but the index "
                              f"{index} was quantized with {plan.factor:g}; export again with --factor {plan.factor:g}")


def side_file(run: str | os.PathLike) -> Path:
    """``<run>.provenance.json`` beside a run: what searched it (written when a check was overridden)."""
    run = Path(run)
    return run.with_name(run.name + ".provenance.json")


def run_provenance(run: str | os.PathLike) -> dict | None:
    """What a run's side file records (``file`` added), ``None`` without one."""
    path = side_file(run)
    try:
        return {**json.loads(path.read_text(encoding="utf-8")), "file": str(path)}
    except (OSError, ValueError, TypeError):
        return None
