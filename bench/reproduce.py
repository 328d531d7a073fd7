"""One command reproduces every result file of ``results/``::

    python -m bench.reproduce --list            # each file, its command and its expected time here
    python -m bench.reproduce [--only NAME ...]  # run them (all by default), one after the other
    make reproduce

Each entry of :data:`RECIPES` is the sequence of shell commands, run from the repository root, that writes
``results/NAME.json`` (its prerequisites first: a command whose output is there already skips its work, as
``pipeline`` and ``train --resume`` do). ``minutes`` is the expected wall time on the 2-core machine the
committed figures came from, with nothing else running (timings are only worth reporting so). Result files
without an entry are refused by the tests: a table in ``docs/`` must come from a command that can make it
again.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import heldout_fusion, inference_free, pipeline_tables
from bench.results import RESULTS_DIR, ROOT

PY = "python"  # the interpreter running this module replaces it (the project's virtual environment)
DATA = "../shared/data"


@dataclass(frozen=True)
class Recipe:
    """How ``results/NAME.json`` is made: shell commands in order, and the expected minutes here."""

    commands: tuple[str, ...]
    minutes: float
    what: str


_NEGATIVES = (
    f"splade-anserini mine-negatives --corpus {DATA}/scifact/corpus.jsonl --queries {DATA}/scifact/queries.train.tsv "
    f"--qrels {DATA}/scifact/qrels.train.txt --output runs/train/bm25-scifact-train.trec "
    "--index runs/train/bm25-scifact-index",
    f"splade-anserini mine-negatives --model splade-tiny --corpus {DATA}/scifact/corpus.jsonl "
    f"--queries {DATA}/scifact/queries.train.tsv --qrels {DATA}/scifact/qrels.train.txt "
    "--output runs/train/splade-tiny-scifact-train.trec --threads 1",
    "splade-anserini hybrid-teacher --model-run runs/train/splade-tiny-scifact-train.trec "
    f"--bm25-run runs/train/bm25-scifact-train.trec --qrels {DATA}/scifact/qrels.train.txt "
    "--output runs/train/hybrid-teacher-scifact-train.trec",
)
# with their BM25 hybrids: the figures files bench.pipeline_tables and bench.adapt_results read hold them
_PIPELINES = ("splade-anserini pipeline --fusion", "splade-anserini pipeline --fusion --dataset cacm")
_VECTORS = "work/scifact-splade-tiny/vectors"  # the pipeline's SciFact vectors
_SERVING = _PIPELINES + (
    f"test -f work/scifact-splade-tiny/numba/header.json || splade-anserini index --input {_VECTORS} "
    "--index work/scifact-splade-tiny/numba --backend numba",
    "test -d work/exports/splade-tiny || splade-anserini export-onnx --model splade-tiny --output work/exports/splade-tiny",
    "test -d work/exports/splade-tiny-int8 || splade-anserini export-onnx --model splade-tiny --int8 "
    "--output work/exports/splade-tiny-int8",
)

_ADAPTED = {"scifact": "SciFact's corpus", "cacm": "CACM's corpus"}
# adapt on each corpus, then every checkpoint through the pipeline on both test sets (each its own work folder)
_ADAPT = tuple(
    f"splade-anserini adapt --corpus {DATA}/{name}/corpus.jsonl --output-dir runs/adapt/{name}" for name in _ADAPTED
) + _PIPELINES + tuple(
    f"splade-anserini pipeline --model runs/adapt/{name}/train/checkpoint-best --fusion --dataset {d} "
    f"--work-dir work/adapt/{name}-{d} --runs-dir runs/adapt-eval/{name}" for name in _ADAPTED for d in _ADAPTED
)

_HELDOUT_FIGURES = "runs/heldout/scifact-hybrid-lwf-checkpoint-best"
# the recipe's checkpoints (recipe-seeds), its hybrid settings on the held-out queries (the alpha validation
# chooses), then the pipeline runs the tables of bench.pipeline_tables are read from
_PIPELINE_TABLES = _NEGATIVES + (
    f"{PY} scripts/frontier.py --spec recipe-seeds", *heldout_fusion.COMMANDS,
    f"{PY} -m bench.heldout_fusion --row \"the recipe, truncated at 256={_HELDOUT_FIGURES}.json\" "
    f"--row \"the recipe as passages 256 / stride 128 (MaxP)={_HELDOUT_FIGURES}-p256s128.json\"",
    *pipeline_tables.PIPELINES, pipeline_tables.COMMAND.replace("python", PY, 1))
_PIPELINE_WHAT = {"effectiveness": "splade-tiny, BM25, the recipe and their hybrids through the full Lucene pipeline",
                  "fusion": "written with effectiveness by the same run: interpolation and RRF",
                  "heldout-fusion": "written with effectiveness by the same run: the recipe's hybrid settings on its "
                                    "held-out training queries (validation, not test)",
                  "recipe-lucene": "written with effectiveness by the same run: the recipe's two seeds through Lucene",
                  "sparsity": "written with effectiveness by the same run", "stage-times": "written with effectiveness "
                  "by the same run (the splade-tiny pipelines are forced, so every stage is timed)"}

RECIPES: dict[str, Recipe] = {
    "inference-free": Recipe(_PIPELINES + inference_free.COMMANDS + (f"{PY} -m bench.inference_free",), 3,
                             "splade-tiny's documents with neural, weight-1 and IDF (inference-free) queries"),
    **{name: Recipe(_PIPELINE_TABLES, 28, what) for name, what in _PIPELINE_WHAT.items()},
    "adaptation": Recipe(_ADAPT + (
        f"{PY} -m bench.adapt_results --eval \"untuned splade-tiny=runs/splade-tiny\" " + " ".join(
            f"--eval \"adapted on {what}=runs/adapt-eval/{name}/train-checkpoint-best@runs/adapt/{name}\""
            for name, what in _ADAPTED.items()),), 60,
        "splade-anserini adapt on SciFact's and CACM's corpora (no labels), each checkpoint through the pipeline on both, with the leakage"),
    "frontier": Recipe(_NEGATIVES + (f"{PY} scripts/frontier.py --spec frontier",), 150,
                       "every fine-tuning setting trained (one torch thread), scored exactly on dl19, SciFact, CACM"),
    "recipe-seeds": Recipe(_NEGATIVES + (f"{PY} scripts/frontier.py --spec recipe-seeds",), 70,
                           "the recipe with learning without forgetting, two seeds, scored exactly"),
    "lambda-sweep": Recipe((f"{PY} scripts/lambda_sweep.py --config sweep --lambda-d 1e-4 1e-3 --seed 42 --seed 43 "
                            "--dataset scifact --dataset cacm",), 40,
                           "two values of λd, 150-step trainings with two seeds each (one at a time), scored exactly"),
    "query-latency": Recipe(_SERVING + (f"{PY} -m bench.query_latency",), 25,
                            "single-query latency of every serving configuration (also writes query-latency-paired)"),
    "query-latency-paired": Recipe(_SERVING + (f"{PY} -m bench.query_latency",), 25,
                                   "written with query-latency by the same run"),
    "scale-ciff": Recipe(_PIPELINES + (f"{PY} -m bench.scale_ciff --vectors {_VECTORS} --work work/scale-ciff",), 5,
                         "SciFact through a CIFF export, read back by ciff-toolkit, BMP against exact"),
    "scale-milvus": Recipe(_PIPELINES + (f"{PY} -m bench.scale_milvus --vectors {_VECTORS} --work work/scale-milvus",), 5,
                           "SciFact test through Milvus Lite and the Lucene impact index"),
    "scale-precision": Recipe(_PIPELINES + (f"{PY} -m bench.scale_precision --work work/scale-precision --dataset "
                                            f"scifact={_VECTORS} --dataset cacm=work/cacm-splade-tiny/vectors",), 4,
                              "OpenSearch/Elasticsearch storage precision on the Numba index"),
    "serve-load": Recipe(_SERVING + (
        f"{PY} -m bench.serve_load --export work/exports/splade-tiny --numba-index work/scifact-splade-tiny/numba "
        f"--lucene-index work/scifact-splade-tiny/index --topics {DATA}/scifact/queries.test.tsv "
        "--pyserini-python .venv312/bin/python --json results/serve-load.json",), 12,
        "loopback load on splade-anserini serve: 1, 4, 16 clients, both backends, both query encoders"),
    "scale-synthetic": Recipe((
        f"{PY} -m bench.scale_synthetic --work work/scale --sizes 20000,200000,1000000,2000000,8841823 "
        "--milvus-max 20000 --bmp-max 200000 --queries 200",), 40,
        "synthetic collections up to 2M documents measured, MS MARCO's 8.8M projected; Milvus Lite and BMP beside"),
    "published": Recipe((f"{PY} -m bench.published",), 0.1,
                        "read from the data folder's README.md (published figures and splade-tiny's reference)"),
    "quantization": Recipe(_PIPELINES + (f"{PY} -m bench.float_vs_lucene --dataset scifact --dataset cacm",), 5,
                           "SciFact and CACM encoded in float, ranked exactly, against the pipeline's Lucene runs"),
    "onnx-fidelity": Recipe(_SERVING + (f"{PY} -m bench.onnx_fidelity",), 4,
                            "PyTorch, ONNX fp32, the former --int8 graph (derived from the fp32 export) and "
                            "Anserini's Java-side encoder on SciFact's and CACM's topics"),
    "fusion-validation": Recipe(_PIPELINES + (
        f"splade-anserini mine-negatives --corpus {DATA}/scifact/corpus.jsonl --queries {DATA}/scifact/queries.train.tsv "
        f"--qrels {DATA}/scifact/qrels.train.txt --output runs/scifact-train-bm25.trec --hits 1000 "
        "--index runs/train/bm25-scifact-index",
        f"splade-anserini mine-negatives --model splade-tiny --vectors {_VECTORS} --corpus {DATA}/scifact/corpus.jsonl "
        f"--queries {DATA}/scifact/queries.train.tsv --qrels {DATA}/scifact/qrels.train.txt "
        "--output runs/scifact-train-splade-tiny.trec --hits 1000 --threads 1",
        f"{PY} -m bench.fusion_validation --runs runs/scifact-train-splade-tiny.trec runs/scifact-train-bm25.trec "
        f"--qrels {DATA}/scifact/qrels.train.txt",), 4,
        "SciFact train (validation) runs of splade-tiny and BM25, 1000 deep, fused"),
    "maxp-full": Recipe(_PIPELINES + (f"{PY} -m bench.maxp_table --datasets scifact",), 12,
                        "SciFact through the pipeline truncated at 256 and 512 and as passages (MaxP), no BM25"),
    "maxp-subset": Recipe(_PIPELINES + tuple(
        command for name, first, scope in (("scifact", " --documents 1001", " --documents 1001"), ("cacm", "", " --all"))
        for command in (
            f"{PY} -m bench.maxp_subset --dataset {name}{first} --long-corpus work/maxp-delta/{name}-long.jsonl",
            f"splade-anserini encode --corpus work/maxp-delta/{name}-long.jsonl "
            f"--output work/maxp-delta/{name}-long-512 --max-length 512",
            f"splade-anserini encode --corpus work/maxp-delta/{name}-long.jsonl "
            f"--output work/maxp-delta/{name}-long-p256s128 --passage-length 256 --passage-stride 128",
            f"{PY} -m bench.maxp_subset --dataset {name}{scope} --base work/{name}-splade-tiny/vectors "
            f"--t512 work/maxp-delta/{name}-long-512 --passages work/maxp-delta/{name}-long-p256s128 "
            f"--json runs/maxp-subset/{name}.json")) + (
        f"{PY} -m bench.maxp_subset --table runs/maxp-subset/scifact.json runs/maxp-subset/cacm.json",), 4,
        "the long documents of SciFact's first 1,001 and of CACM re-encoded at 512 and as passages, scored exactly"),
    "encode-vs-pyserini": Recipe((
        f"{PY} -m bench.encode_vs_pyserini --limit 2048 --json runs/encode-vs-pyserini/first2048.json",
        f"{PY} -m bench.encode_vs_pyserini --limit 1024 --threads 1 --json runs/encode-vs-pyserini/threads1.json",
        f"{PY} -m bench.encode_vs_pyserini --limit 512 --no-screen --json runs/encode-vs-pyserini/no-screen.json",
        f"{PY} -m bench.encode_vs_pyserini --table runs/encode-vs-pyserini/first2048.json "
        "runs/encode-vs-pyserini/threads1.json runs/encode-vs-pyserini/no-screen.json"), 14,
        "our corpus encoder against Pyserini's SpladeDocumentEncoder (one process each): SciFact's first 2,048, "
        "1,024 documents on one thread, 512 without the bf16 screen"),
    "latency-small": Recipe((
        f"{PY} -m bench.latency --collections scifact,synthetic --sizes 10000,100000 --result latency-small",), 25,
        "single-thread exact top-1000 latency on SciFact and synthetic 10k and 100k: Numba, Lucene and the peers of "
        "the bench extra (pip install -e '.[bench]')"),
}


def result_names(folder: Path = RESULTS_DIR) -> list[str]:
    """The result files of ``folder``, by name."""
    return sorted(p.stem for p in folder.glob("*.json"))


def missing(folder: Path = RESULTS_DIR) -> list[str]:
    """Result files that no recipe makes."""
    return [name for name in result_names(folder) if name not in RECIPES]


def listing(names: list[str]) -> str:
    """``--list``: one line per result file, its expected minutes and commands; the total."""
    lines, total, done = [], 0.0, set()
    for name in names:
        recipe = RECIPES.get(name)
        if recipe is None:
            lines.append(f"{name:<24} {'-':>7}  no command makes it: its table cannot be reproduced")
            continue
        shared = recipe.commands in done  # written by an earlier entry's run
        done.add(recipe.commands)
        total += 0 if shared else recipe.minutes
        lines.append(f"{name:<24} {'(same)' if shared else f'{recipe.minutes:.0f} min':>7}  {recipe.what}")
        lines.extend(f"{'':<34}$ {c}" for c in recipe.commands)
    lines.append(f"{'total':<24} {total:>3.0f} min  (2 CPU cores, nothing else running)")
    return "\n".join(lines)


def run(names: list[str]) -> int:
    """Run the recipes of ``names`` in order (a command shared with an earlier one runs once)."""
    ran: set[str] = set()
    start = time.time()
    for name in names:
        for command in RECIPES[name].commands:
            if command in ran:
                continue
            ran.add(command)
            line = command.replace(f"{PY} ", f"{sys.executable} ", 1) if command.startswith(PY + " ") else command
            print(f"[reproduce {name}] $ {line}", file=sys.stderr, flush=True)
            if subprocess.run(line, shell=True, cwd=ROOT).returncode != 0:
                print(f"error: {name}: failed: {command}", file=sys.stderr)
                return 1
    print(f"[reproduce] {', '.join(names)} in {(time.time() - start) / 60:.1f} min", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reproduce the result files of results/ (docs render from them).")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these result files only (default: all)")
    parser.add_argument("--list", action="store_true", help="list each file, its commands and expected time")
    args = parser.parse_args(argv)
    names = args.only or result_names()
    unknown = [n for n in names if n not in result_names() and n not in RECIPES]
    if unknown:
        print(f"error: no result file named {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    if args.list:
        print(listing(names))
        return 0
    without = [n for n in names if n not in RECIPES]
    if without:
        print(f"error: no command makes {', '.join(without)} (see --list)", file=sys.stderr)
        return 2
    return run(names)


if __name__ == "__main__":
    sys.exit(main())
