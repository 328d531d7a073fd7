"""Adapt a SPLADE model to a corpus without labels, in one resumable command.

    splade-anserini adapt --corpus corpus.jsonl --output-dir work/adapt-mine [--model splade-tiny] [--source title]

runs the label-free sequence of docs/training.md, each step through its own command's ``main``:

1. ``pseudo-queries``: queries cut out of the corpus's documents (``O/pq.queries.tsv``, ``O/pq.qrels.txt``,
   ``O/pq.corpus.jsonl``, the documents with the query text removed);
2. ``mine-negatives``: BM25 run of the pseudo-queries (``O/pq.bm25.trec``, the validation negatives);
3. ``mine-negatives --model``: the starting model's run (``O/pq.splade.trec``, the training negatives);
4. ``hybrid-teacher``: both runs fused, the distillation teacher (``O/pq.teacher.trec``);
5. ``train --config adapt``: checkpoints under ``O/train``.

Each stage records a stamp of its inputs and parameters (``O/stamps/``, as ``pipeline`` does): a rerun
reuses what is up to date and redoes the rest, an interrupted training continues from its
``checkpoint-last``; ``--force`` redoes everything. The out-of-domain guard (msmarco-dl19-subset in the
recipe) is checked before any work.
"""
from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from splade_anserini.cli import ArgumentParser, command, positive_int
from splade_anserini.conversion.errors import UsageError

#: The marker kind of an adapt output folder (:mod:`splade_anserini.outputs`).
KIND = "adapt-work"
CONFIG = "adapt"
GUARD_KEYS = ("guard_corpus", "guard_queries", "guard_qrels")
#: The stages, in order, and the module whose ``main(argv)`` runs each.
STAGES = (("pseudo-queries", "splade_anserini.train.pseudo_queries"),
          ("mine-bm25", "splade_anserini.train.mine_negatives"),
          ("mine-splade", "splade_anserini.train.mine_negatives"),
          ("hybrid-teacher", "splade_anserini.train.hybrid_teacher"),
          ("train", "splade_anserini.train.__main__"))


class StageFailed(Exception):
    """A stage's command ended with a non-zero status (its one ``error:`` line is already printed)."""

    def __init__(self, stage: str, status: int):
        super().__init__(f"{stage} ended with status {status}")
        self.stage, self.status = stage, status


def recipe_guard(config: str = CONFIG) -> dict[str, str]:
    """The guard files a recipe names, ``{data}/`` expanded (``{}`` when it names none)."""
    from splade_anserini.train.config import expand_data, load_config_file

    raw = load_config_file(config) if config else {}
    return {key: expand_data(raw[key]) for key in GUARD_KEYS if raw.get(key)}


def build_parser() -> ArgumentParser:
    """The ``adapt`` command line."""
    from splade_anserini.train.pseudo_queries import SOURCES

    p = ArgumentParser(description="Adapt a SPLADE model to a corpus without labels: pseudo-queries, BM25 and "
                                   "SPLADE negatives, the hybrid teacher, then train --config adapt; each stage "
                                   "cached, a rerun resumes. The out-of-domain guard needs a corpus, queries and "
                                   "qrels of another domain: the recipe's are msmarco-dl19-subset under the data "
                                   "folder ({data}/msmarco-dl19-subset/collection.tsv, queries.dl19.tsv, "
                                   "qrels.dl19.txt; {data} is $SPLADE_ANSERINI_DATA, ./data or ../shared/data).")
    p.add_argument("--corpus", required=True, help="the corpus to adapt to (BEIR corpus.jsonl or collection.tsv)")
    p.add_argument("--output-dir", required=True, help="where every stage's files and the checkpoints (train/) go")
    p.add_argument("--model", default="splade-tiny", help="the starting checkpoint: directory, hub id or splade-tiny")
    p.add_argument("--source", choices=SOURCES, help="pseudo-queries --source (default: its own)")
    p.add_argument("--per-document", type=positive_int, help="pseudo-queries --per-document (default: its own)")
    p.add_argument("--min-remaining", type=positive_int, help="pseudo-queries --min-remaining (default: its own)")
    p.add_argument("--seed", type=int, default=42, help="seed of the pseudo-queries and of training")
    p.add_argument("--hits", type=positive_int, default=100, help="depth of the mined runs")
    p.add_argument("--threads", type=positive_int, help="mining and torch threads (default: 1, the recipe's; "
                                                        "1 makes training bit for bit reproducible)")
    p.add_argument("--config", default=CONFIG, help="the training recipe (a shipped name or a YAML file)")
    for flag, what in (("--max-steps", "optimizer steps"), ("--batch-size", "queries per batch"),
                       ("--valid-every", "validate every N steps"), ("--valid-holdout", "held-out pseudo-queries")):
        p.add_argument(flag, type=positive_int, help=f"train {flag}: {what} (default: the recipe's)")
    guard = recipe_guard()
    for key in GUARD_KEYS:
        p.add_argument("--" + key.replace("_", "-"), help=f"out-of-domain guard data (default: {guard.get(key)})")
    p.add_argument("--no-guard", action="store_true", help="train without the out-of-domain guard")
    p.add_argument("--force", action="store_true", help="redo every stage")
    return p


def guard_argv(args) -> list[str]:
    """The guard's train flags: empty values with ``--no-guard``; else the given or recipe files, which
    must exist (checked before any work)."""
    if args.no_guard:
        return [arg for key in GUARD_KEYS for arg in ("--" + key.replace("_", "-"), "")]
    recipe = recipe_guard(args.config)
    files = {key: getattr(args, key) or recipe.get(key) for key in GUARD_KEYS}
    missing = [path for path in files.values() if not path or not Path(path).is_file()]
    if missing:
        raise UsageError(f"the out-of-domain guard's data is missing ({missing[0]}): give --guard-corpus, "
                         "--guard-queries and --guard-qrels (a corpus, queries and qrels of another domain), or "
                         "--no-guard; the guard keeps checkpoint-best from losing more than 0.01 nDCG@10 "
                         "outside the adapted corpus")
    return [arg for key, path in files.items() for arg in ("--" + key.replace("_", "-"), str(path))]


def commands(args, out: Path) -> list[tuple[str, str, list[str]]]:
    """``(stage, module, argv)`` of the five commands, as docs/training.md chains them by hand."""
    pq = str(out / "pq")
    optional = [(flag, getattr(args, name)) for flag, name in (("--source", "source"), ("--per-document",
                "per_document"), ("--min-remaining", "min_remaining"))]
    threads = ["--threads", str(args.threads)] if args.threads else []
    mine = ["--corpus", f"{pq}.corpus.jsonl", "--queries", f"{pq}.queries.tsv", "--qrels", f"{pq}.qrels.txt",
            "--hits", str(args.hits), *threads]
    train = ["--config", args.config, "--model", args.model, "--corpus", f"{pq}.corpus.jsonl",
             "--queries", f"{pq}.queries.tsv", "--qrels", f"{pq}.qrels.txt", "--negatives", f"{pq}.splade.trec",
             "--teacher", f"{pq}.teacher.trec", "--valid-negatives", f"{pq}.bm25.trec",
             "--output-dir", str(out / "train"), "--seed", str(args.seed), *threads, *guard_argv(args)]
    for flag in ("max_steps", "batch_size", "valid_every", "valid_holdout"):
        if getattr(args, flag) is not None:
            train += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    argvs = [["--corpus", args.corpus, "--output", pq, "--seed", str(args.seed),
              *[str(x) for flag, value in optional if value is not None for x in (flag, value)]],
             [*mine, "--output", f"{pq}.bm25.trec"],
             ["--model", args.model, *mine, "--output", f"{pq}.splade.trec"],
             ["--model-run", f"{pq}.splade.trec", "--bm25-run", f"{pq}.bm25.trec", "--qrels", f"{pq}.qrels.txt",
              "--output", f"{pq}.teacher.trec"],
             train]
    return [(name, module, argv) for (name, module), argv in zip(STAGES, argvs)]


def _outputs(stage: str, out: Path) -> list[Path]:
    pq = out / "pq"
    return {"pseudo-queries": [Path(f"{pq}.{ext}") for ext in ("queries.tsv", "qrels.txt", "corpus.jsonl")],
            "mine-bm25": [Path(f"{pq}.bm25.trec")], "mine-splade": [Path(f"{pq}.splade.trec")],
            "hybrid-teacher": [Path(f"{pq}.teacher.trec")], "train": [out / "train" / "checkpoint-last"]}[stage]


def _call(stage: str, module: str, argv: list[str]) -> str:
    """Run one stage's command; its note for the stage line, or :class:`StageFailed`."""
    from splade_anserini.cli import program

    with program(f"splade-anserini adapt [{stage}]"):
        status = importlib.import_module(module).main(argv)
    if status:
        raise StageFailed(stage, status)
    return ""


def _train_argv(argv: list[str], stamps, key: str, out: Path) -> list[str]:
    """Training continues an interrupted run of the same stage key, and starts over otherwise."""
    started = stamps.folder / "train-started.json"
    if (out / "train" / "checkpoint-last").is_dir() and started.is_file() and not stamps.force \
            and stamps.load("train-started").get("key") == key:
        return [*argv, "--resume", "true"]
    stamps.record("train-started", key, {})
    return [*argv, "--overwrite", "true"] if (out / "train").exists() else argv


def run_stages(args, out: Path, log=None):
    """Run (or reuse) every stage; returns the :class:`~splade_anserini.stamps.Stamps` with their times."""
    from splade_anserini.stamps import Stamps, file_fingerprint, model_fingerprint

    log = log or _log
    stamps = Stamps(out / "stamps", force=args.force)
    keys: dict[str, str] = {}
    inputs = {"corpus": file_fingerprint(args.corpus), "model": model_fingerprint(args.model)}
    for stage, module, argv in commands(args, out):
        params = {"argv": argv, "upstream": dict(keys),
                  "inputs": inputs}
        key = stamps.key(params)
        if stage == "train" and not stamps.fresh(stage, key, *_outputs(stage, out)):
            argv = _train_argv(argv, stamps, key, out)
        keys[stage] = stamps.run(stage, params, _outputs(stage, out), lambda: _call(stage, module, argv))
        done = stamps.stages[-1]
        log(f"[adapt] {stage}: reused (made in {done.seconds:.1f}s)" if done.reused else
            f"[adapt] {stage}: done in {done.seconds:.1f}s")
    return stamps


def _log(message: str) -> None:
    print(message, flush=True)


def next_command(checkpoint: Path, corpus: str) -> str:
    """The command that uses the adapted checkpoint: the pipeline when the corpus's folder is a dataset
    with judgements, else encoding the corpus."""
    from splade_anserini.data import find_dataset

    try:
        find_dataset(Path(corpus).parent)
        return f"splade-anserini pipeline --model {checkpoint} --data-dir {Path(corpus).parent}"
    except Exception:  # noqa: BLE001 - no judgements: the encode command is the way on
        return f"splade-anserini encode --model {checkpoint} --corpus {corpus} --output {checkpoint}-vectors"


def adapt(args, log=None) -> Path:
    """Run the stages of ``args`` (the parsed command line); the checkpoint to use."""
    from splade_anserini import outputs

    log = log or _log
    if not Path(args.corpus).is_file():
        raise FileNotFoundError(2, "no such file", args.corpus)
    out = Path(args.output_dir)
    commands(args, out)  # the guard and every path checked before anything is written
    created = outputs.claim_dir(out, KIND)
    try:
        with outputs.lock(outputs.lock_path(out, inside=True), f"adapt folder {out}"):
            stamps = run_stages(args, out, log)
    except BaseException:
        if created:
            outputs.release_unused(out)
        raise
    ran = [stage for stage in stamps.stages if not stage.reused]
    best, last = out / "train" / "checkpoint-best", out / "train" / "checkpoint-last"
    if not best.is_dir():
        log(f"[adapt] no checkpoint passed the out-of-domain guard: the starting model {args.model} stays the "
            f"choice (the last one is {last})")
        return Path(args.model)
    log(f"[adapt] {len(ran)} stages run in {sum(stage.seconds for stage in ran):.1f}s, "
        f"{len(stamps.stages) - len(ran)} reused; checkpoint: {best}")
    log(f"[adapt] use it: {next_command(best, args.corpus)}")
    return best


@command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        adapt(args)
    except StageFailed as failed:
        print(f"[adapt] stopped at {failed.stage}: rerun the same command to resume", file=sys.stderr, flush=True)
        return failed.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
