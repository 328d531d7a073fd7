"""Training configuration: one dataclass, filled from a YAML/JSON file and/or command-line flags.

Every field is a flag (``lambda_d`` -> ``--lambda-d``); a ``--config`` file gives defaults that flags
override. Unknown keys in a file, bad values or impossible combinations raise :class:`ConfigError`
with a one-line message.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from splade_anserini.cli import ArgumentParser


class ConfigError(ValueError):
    """A bad training configuration; ``str(err)`` is one line."""


@dataclass
class TrainConfig:
    # -- model ------------------------------------------------------------------------------------
    model: str = field(default="splade-tiny", metadata={"help": "starting checkpoint: directory, hub id or splade-tiny"})
    output_dir: str = field(default="", metadata={"help": "where checkpoint-last/, checkpoint-best/ and log.jsonl go "
                                                          "(new, empty, or made by this tool; one run at a time)"})
    pooling: str = field(default="max", metadata={"help": "max (SPLADE-max) or sum (SPLADE-sum)"})
    splade_doc: bool = field(default=False, metadata={"help": "SPLADE-doc: queries are bags of WordPiece tokens"})
    query_weights: str = field(default="ones", metadata={
        "help": "SPLADE-doc query token weights: ones, or idf (the training corpus's WordPiece IDF, written to "
                "OUTPUT_DIR/query_weights.json)"})
    max_length: int = field(default=256, metadata={"help": "document max tokens"})
    query_max_length: int = field(default=256, metadata={"help": "query max tokens"})
    fused_head: bool = field(default=True, metadata={
        "help": "SPLADE-max through the memory-light fused MLM head (exact; ~3x faster on CPU)"})

    # -- data ---------------------------------------------------------------------------------------
    triples: str | None = field(default=None, metadata={"help": "MS MARCO text triples query<TAB>pos<TAB>neg"})
    corpus: str | None = field(default=None, metadata={"help": "BEIR corpus.jsonl or collection.tsv"})
    queries: str | None = field(default=None, metadata={"help": "training queries qid<TAB>text"})
    qrels: str | None = field(default=None, metadata={"help": "training qrels (TREC)"})
    negatives: str | None = field(default=None, metadata={"help": "TREC run to mine hard negatives from"})
    negatives_depth: int = field(default=100, metadata={"help": "sample negatives from the run's top N"})
    n_negatives: int = field(default=1, metadata={"help": "hard negatives per query"})
    teacher: str | None = field(default=None, metadata={"help": "teacher scores: qid<TAB>docid<TAB>score or a TREC run"})

    # -- losses -----------------------------------------------------------------------------------
    in_batch_negatives: bool = field(default=True, metadata={"help": "other queries' documents as negatives"})
    gather_across_devices: bool = field(default=False, metadata={
        "help": "multi-GPU: all-gather document reps so in-batch negatives and FLOPS span the global batch"})
    contrastive_weight: float = 1.0
    distill: str = field(default="none", metadata={"help": "none, margin_mse or kl"})
    distill_weight: float = 1.0
    distill_temperature: float = field(default=1.0, metadata={"help": "KL temperature"})
    self_distill: bool = field(default=False, metadata={
        "help": "teacher = a frozen copy of the starting model (scores every pair of the batch)"})
    regularizer: str = field(default="flops", metadata={"help": "flops or l1"})
    lambda_q: float = 0.0
    lambda_d: float = 0.0
    lambda_warmup_steps: int = field(default=0, metadata={"help": "lambdas grow quadratically to this step"})

    lwf_triples: str | None = field(default=None, metadata={
        "help": "learning without forgetting: general-domain text triples (query<TAB>pos<TAB>neg, e.g. MS MARCO) "
                "on which a KL term keeps the starting model's in-batch score distribution (no labels used)"})
    lwf_weight: float = field(default=0.0, metadata={"help": "weight of the learning-without-forgetting term; 0 = off"})
    lwf_batch_size: int = field(default=16, metadata={"help": "general-domain queries per step for that term"})

    # -- optimisation -------------------------------------------------------------------------------
    batch_size: int = field(default=16, metadata={"help": "queries per micro-batch per device"})
    grad_accum: int = 1
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    max_steps: int = field(default=0, metadata={"help": "optimizer steps (0: from epochs)"})
    epochs: float = 1.0
    max_time_minutes: float = field(default=0.0, metadata={"help": "stop (and save) after this wall time; 0 = none"})
    max_grad_norm: float = 1.0
    seed: int = 42
    precision: str = field(default="fp32", metadata={"help": "fp32, bf16 or fp16 (autocast, GPU only)"})
    threads: int = field(default=0, metadata={
        "help": "torch CPU threads (0: torch default, one per core). The same command on the same CPU with the same "
                "thread count gives the same weights byte for byte, under any load; another thread count or CPU "
                "(bf16 or not) changes the last bits"})

    # -- forgetting less, bigger batches (train/lora.py, regularizers.L2SP, train/gradcache.py) -----------
    lora: int = field(default=0, metadata={
        "help": "LoRA rank (peft): train low-rank adapters only; checkpoints are saved merged; 0 = full fine-tuning"})
    lora_alpha: float = field(default=0.0, metadata={"help": "LoRA scaling alpha (0: 2 x rank)"})
    lora_dropout: float = 0.0
    lora_targets: str = field(default="query,key,value,dense", metadata={"help": "comma-separated module names to adapt"})
    l2sp: float = field(default=0.0, metadata={
        "help": "L2-SP: lambda/2 * ||theta - theta_start||^2 pulls the weights toward the starting model; 0 = off"})
    grad_cache_mini_batch: int = field(default=0, metadata={
        "help": "gradient caching (as CachedSpladeLoss): encode N examples at a time, loss and gradients "
                "over the whole batch; 0 = off"})

    wise_alpha: float = field(default=0.0, metadata={
        "help": "after training, also write checkpoint-wise = (1-a)*start + a*best (last without validation): "
                "WiSE-FT; 0 = off"})

    # -- validation, checkpoints, logging ------------------------------------------------------------
    valid_corpus: str | None = field(default=None, metadata={"help": "validation corpus (default: the training corpus)"})
    valid_queries: str | None = None
    valid_qrels: str | None = None
    valid_holdout: int = field(default=0, metadata={
        "help": "hold out N training queries (with their qrels) for validation instead of valid_queries"})
    valid_negatives_per_query: int = field(default=0, metadata={
        "help": "restrict the validation corpus to positives + top-N of the negatives run per query (0: whole corpus)"})
    valid_negatives: str | None = field(default=None, metadata={
        "help": "TREC run for valid_negatives_per_query (default: negatives); fixes the validation corpus "
                "when settings train on different negatives"})
    valid_max_docs: int = field(default=0, metadata={"help": "cap the validation corpus (random fill, seeded); 0 = none"})
    valid_every: int = field(default=0, metadata={"help": "validate every N steps (0: at the end only)"})
    valid_at_start: bool = field(default=False, metadata={"help": "validate the starting model first"})
    valid_metric: str = field(default="nDCG@10", metadata={"help": "metric for the best checkpoint"})
    guard_corpus: str | None = field(default=None, metadata={
        "help": "out-of-domain guard: a corpus whose queries must not get worse (e.g. msmarco-dl19-subset)"})
    guard_queries: str | None = None
    guard_qrels: str | None = None
    guard_max_drop: float = field(default=0.01, metadata={
        "help": "a checkpoint can be best only while its guard metric stays within this of the starting model's"})
    valid_batch_size: int = 64
    early_stopping_patience: int = field(default=0, metadata={"help": "stop after N validations without gain; 0 = off"})
    save_every: int = field(default=0, metadata={"help": "save checkpoint-last every N steps (0: at validation/end)"})
    snapshot_every: int = field(default=0, metadata={
        "help": "also keep a model-only checkpoint-step-N every N steps (for studying a run); 0 = none"})
    log_every: int = 10
    resume: bool = field(default=False, metadata={"help": "continue from <output_dir>/checkpoint-last"})
    overwrite: bool = field(default=False, metadata={"help": "start over: remove the checkpoints and log an earlier run of "
                                                        "this tool left in output_dir"})
    progress: bool = True

    def validate(self) -> "TrainConfig":
        """Check values and combinations; returns self. The checks run in a fixed order, so that
        a config with several faults always reports the same one."""
        self._check_choices()
        self._check_data()
        self._check_ranges()
        self._check_validation()
        self._check_modes()
        return self

    def _check_choices(self) -> None:
        """The output folder and the options with a fixed set of values."""
        if not self.output_dir:
            raise ConfigError("output_dir is required")
        if self.pooling not in ("max", "sum"):
            raise ConfigError(f"pooling must be max or sum, got {self.pooling!r}")
        if self.distill not in ("none", "margin_mse", "kl"):
            raise ConfigError(f"distill must be none, margin_mse or kl, got {self.distill!r}")
        if self.regularizer not in ("flops", "l1"):
            raise ConfigError(f"regularizer must be flops or l1, got {self.regularizer!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")

    def _check_data(self) -> None:
        """The training data's form and what distillation needs of it."""
        beir = [self.corpus, self.queries, self.qrels]
        if self.triples and any(beir):
            raise ConfigError("give either triples or corpus/queries/qrels, not both")
        if not self.triples and not all(beir):
            raise ConfigError("training data: give triples, or corpus + queries + qrels (+ negatives)")
        if self.teacher and self.triples:
            raise ConfigError("teacher scores need ids: use corpus/queries/qrels data (or self_distill with triples)")
        if self.distill != "none" and not (self.teacher or self.self_distill):
            raise ConfigError(f"distill={self.distill} needs teacher scores or self_distill")
        if (self.teacher or self.self_distill) and self.distill == "none":
            raise ConfigError("a teacher is given but distill is none (choose margin_mse or kl)")
        if self.distill == "margin_mse" and self.n_negatives < 1:
            raise ConfigError("margin_mse needs n_negatives >= 1")
        if bool(self.lwf_triples) != bool(self.lwf_weight):
            raise ConfigError("lwf_triples and lwf_weight go together (learning without forgetting)")
        if self.triples and self.n_negatives != 1:
            raise ConfigError("text triples carry exactly one negative: n_negatives must be 1")

    def _check_ranges(self) -> None:
        """Numbers within their ranges."""
        for name in ("batch_size", "grad_accum", "max_length", "query_max_length", "log_every", "valid_batch_size",
                     "lwf_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_negatives", "negatives_depth", "max_steps", "warmup_steps", "lambda_warmup_steps",
                     "valid_every", "valid_holdout", "save_every", "snapshot_every", "early_stopping_patience", "threads",
                     "valid_negatives_per_query", "valid_max_docs", "lora", "grad_cache_mini_batch"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "epochs", "distill_temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("lambda_q", "lambda_d", "weight_decay", "max_grad_norm", "max_time_minutes",
                     "contrastive_weight", "distill_weight", "lora_alpha", "l2sp", "lwf_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.wise_alpha <= 1:
            raise ConfigError(f"wise_alpha must be in [0, 1], got {self.wise_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lora and not [t for t in self.lora_targets.split(",") if t.strip()]:
            raise ConfigError("lora_targets names no module")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    def _check_validation(self) -> None:
        """The validation set and the out-of-domain guard set: which files go together."""
        if self.valid_holdout and self.triples:
            raise ConfigError("valid_holdout needs corpus/queries/qrels data")
        if self.valid_holdout and (self.valid_queries or self.valid_qrels):
            raise ConfigError("give valid_holdout or valid_queries/valid_qrels, not both")
        if bool(self.valid_queries) != bool(self.valid_qrels):
            raise ConfigError("valid_queries and valid_qrels go together")
        if (self.valid_queries or self.valid_qrels) and not (self.valid_corpus or self.corpus):
            raise ConfigError("validation queries need valid_corpus (or the training corpus)")
        if self.valid_negatives_per_query and not (self.negatives or self.valid_negatives) and self.valid_holdout:
            raise ConfigError("valid_negatives_per_query needs a negatives run")
        guard = [self.guard_corpus, self.guard_queries, self.guard_qrels]
        if any(guard) and not all(guard):
            raise ConfigError("guard_corpus, guard_queries and guard_qrels go together")
        if all(guard) and not (self.valid_holdout or self.valid_queries):
            raise ConfigError("the out-of-domain guard needs a validation set (valid_holdout or valid_queries)")
        if self.guard_max_drop < 0:
            raise ConfigError(f"guard_max_drop must be >= 0, got {self.guard_max_drop}")

    def _check_modes(self) -> None:
        """Combinations of modes: resume or overwrite, SPLADE-doc and its query weights."""
        if self.resume and self.overwrite:
            raise ConfigError("resume and overwrite exclude each other")
        if self.splade_doc and self.lambda_q:
            raise ConfigError("SPLADE-doc has no query encoder: lambda_q must be 0")
        if self.query_weights not in ("ones", "idf"):
            raise ConfigError(f"query_weights must be ones or idf, got {self.query_weights!r}")
        if self.query_weights != "ones" and not self.splade_doc:
            raise ConfigError("query_weights weighs SPLADE-doc queries: set splade_doc")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_TYPES = get_type_hints(TrainConfig)


def _coerce(name: str, value: Any) -> Any:
    """Check a value read from a file against the field's type (ints accepted for floats)."""
    kind = _TYPES[name]
    optional = kind == (str | None)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {name!r} must not be null")
    base = str if optional else kind
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {name!r} must be true or false, got {value!r}")
        return value
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base is str and isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise ConfigError(f"config key {name!r} must be {base.__name__}, got {value!r}")


#: Training recipes shipped with the package: ``--config scifact`` names ``configs/scifact.yaml`` here.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: A config value starting with this is a path under the data root (:func:`splade_anserini.data.data_root`).
DATA_PREFIX = "{data}/"


def find_config(name: str | os.PathLike) -> Path:
    """A config file: an existing path, else a recipe shipped with the package (``scifact``, ``accept``, ...)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / path.name, CONFIG_DIR / f"{path.name}.yaml"):
        if path.parent == Path(".") and candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config {name}: no such file, and not a shipped recipe ({shipped})")


def expand_data(value: Any) -> Any:
    """``{data}/scifact/corpus.jsonl`` -> that file under the data root; other values unchanged."""
    if isinstance(value, str) and value.startswith(DATA_PREFIX):
        from splade_anserini.data import data_root

        return str(data_root() / value[len(DATA_PREFIX):])
    return value


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config into a checked ``{key: value}`` dict; ``path`` may
    name a shipped recipe (:func:`find_config`), and ``{data}/`` values are found under the data root."""
    path = find_config(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError: one line either way
        raise ConfigError(f"config {path}: cannot parse ({' '.join(str(exc).split())})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a mapping of keys to values")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"config {path}: unknown key(s) {', '.join(repr(k) for k in unknown)}")
    return {k: _coerce(k, expand_data(v)) for k, v in data.items()}


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build and validate a config from a dict (unknown keys rejected)."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(repr(k) for k in unknown)}")
    return TrainConfig(**{k: _coerce(k, v) for k, v in values.items()}).validate()


def _str2bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m splade_anserini.train",
        description="Train a SPLADE model (contrastive + FLOPS/L1 regularization, optional distillation).")
    parser.add_argument("--config", help="YAML or JSON file of options (flags override it), or the name of a "
                                         "shipped recipe: " + ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))))
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = _TYPES[f.name]
        helptext = f.metadata.get("help", "")
        default = f.default
        helptext = f"{helptext} (default: {default})" if helptext else f"default: {default}"
        if kind is bool:
            parser.add_argument(flag, type=_str2bool, nargs="?", const=True, default=argparse.SUPPRESS,
                                metavar="BOOL", help=helptext)
        else:
            base = str if kind == (str | None) else kind
            parser.add_argument(flag, type=base, default=argparse.SUPPRESS, help=helptext)
    return parser


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Config from ``--config FILE`` then flags; raises :class:`ConfigError`."""
    args = vars(build_parser().parse_args(argv))
    path = args.pop("config", None)
    values = load_config_file(path) if path else {}
    values.update({k: expand_data(v) for k, v in args.items()})  # {data}/ in a flag too (scripts/frontier.py)
    return config_from_dict(values)
