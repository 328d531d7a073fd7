"""The ``splade-anserini`` command: one entry point, a subcommand per job.

    splade-anserini encode --corpus corpus.jsonl --output vectors/   # = python -m splade_anserini.encode_corpus
    splade-anserini pipeline --data-dir ~/beir/nfcorpus
    splade-anserini --version

Each subcommand hands its arguments to the ``main(argv)`` of the module that ``python -m`` runs, so both
spellings take the same flags and end the same way (one ``error: ...`` line, exit 2 for bad input, 1 for a
failure). The modules are imported only when their subcommand runs: ``--help`` and ``--version`` start no
JVM and load no model.
"""
from __future__ import annotations

import importlib
import sys
from typing import NamedTuple, Sequence

from splade_anserini import __version__, cli

PROG = "splade-anserini"


class Subcommand(NamedTuple):
    name: str
    module: str
    summary: str


#: Every subcommand, in the order of the data flow; ``module`` is what ``python -m`` also runs.
SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("encode", "splade_anserini.encode.corpus", "encode a corpus into JsonVectorCollection files"),
    Subcommand("index", "splade_anserini.index.build", "build a Lucene impact index (or a Numba index)"),
    Subcommand("search", "splade_anserini.search.run", "search topics, write a TREC run"),
    Subcommand("evaluate", "splade_anserini.evaluate.measures", "score TREC runs with ir-measures"),
    Subcommand("stats", "splade_anserini.evaluate.stats", "sparsity and FLOPS of vectors and queries"),
    Subcommand("pipeline", "splade_anserini.pipeline", "encode, index, search and evaluate a dataset"),
    Subcommand("fuse", "splade_anserini.search.fusion", "fuse runs (interpolation or RRF)"),
    Subcommand("parity", "splade_anserini.evaluate.parity", "check that Lucene and Numba rank identically"),
    Subcommand("export-onnx", "splade_anserini.serve.export_onnx", "export a checkpoint to ONNX for serving"),
    Subcommand("export", "splade_anserini.export.__main__", "vectors into Milvus, OpenSearch/Elasticsearch files or CIFF"),
    Subcommand("serve", "splade_anserini.serve.server", "an HTTP search service (Pyserini's REST routes, a page)"),
    Subcommand("model", "splade_anserini.models", "resolve (and fetch) a model, print its folder"),
    Subcommand("train", "splade_anserini.train.__main__", "fine-tune a SPLADE model"),
    Subcommand("pseudo-queries", "splade_anserini.train.pseudo_queries",
               "pseudo-queries cut out of a corpus without labels (for adaptation)"),
    Subcommand("mine-negatives", "splade_anserini.train.mine_negatives", "mine hard negatives as a TREC run"),
    Subcommand("hybrid-teacher", "splade_anserini.train.hybrid_teacher",
               "teacher scores from a model's run fused with BM25 (for distillation)"),
    Subcommand("adapt", "splade_anserini.train.adapt",
               "adapt a model to a corpus without labels: those steps in one resumable command"),
    Subcommand("holdout", "splade_anserini.train.holdout", "write a training config's held-out queries"),
    Subcommand("quick-eval", "splade_anserini.train.quick_eval", "exact nDCG@10 of a checkpoint"),
    Subcommand("interpolate", "splade_anserini.train.interpolate", "WiSE-FT: interpolate two checkpoints"),
)
_BY_NAME = {sub.name: sub for sub in SUBCOMMANDS}


def anserini_version() -> str:
    """The version of the Anserini fatjar the searches use, read from its file name (no JVM)."""
    from splade_anserini import anserini_version as versions

    try:
        return versions.anserini_version()
    except Exception as exc:  # noqa: BLE001 - a version report names what is missing, it never fails
        return f"not found ({cli.describe(exc)[1]})"


def version_text() -> str:
    """``splade-anserini X`` and the versions that decide its results: Python, Pyserini, Anserini."""
    from splade_anserini.anserini_version import package_version

    python = ".".join(map(str, sys.version_info[:3]))
    return (f"{PROG} {__version__} (Python {python}, pyserini {package_version('pyserini')}, "
            f"Anserini {anserini_version()})")


def build_parser() -> cli.ArgumentParser:
    """The top-level parser: ``--version`` and the subcommand; the subcommand's own flags pass through."""
    import argparse

    lines = "\n".join(f"  {sub.name:<15} {sub.summary}" for sub in SUBCOMMANDS)
    parser = cli.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="SPLADE learned-sparse retrieval, from training to a Lucene impact index.",
        epilog=f"subcommands:\n{lines}\n\n`{PROG} SUBCOMMAND --help` lists a subcommand's options; "
               f"`python -m MODULE` runs the same code.")
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("subcommand", metavar="SUBCOMMAND", choices=sorted(_BY_NAME),
                        help="one of: " + ", ".join(sub.name for sub in SUBCOMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


@cli.command
def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv:
        parser.error("a SUBCOMMAND is required")
    args = parser.parse_args(argv)
    sub = _BY_NAME[args.subcommand]
    with cli.program(f"{PROG} {sub.name}"):
        return importlib.import_module(sub.module).main(args.args)


if __name__ == "__main__":
    sys.exit(main())
