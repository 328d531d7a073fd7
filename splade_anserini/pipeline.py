"""README command 1: the whole pipeline on one dataset with one model.

    python -m splade_anserini.pipeline [--dataset scifact|cacm|msmarco-dl19-subset] [--model splade-tiny]
        [--data-dir DIR [--split test]] [--corpus F --topics F --qrels F]
        [--passage-length N [--passage-stride S]] [--fusion [interpolation|rrf] [--alpha 0.5]]
        [--force] [--no-bm25]

The dataset: a named one of the shared data, any BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
``qrels/<split>.tsv``) or MS MARCO / converted folder (``--data-dir``, ``--split``), or the three files
named one by one (each may also replace one file of a folder); see :func:`splade_anserini.data.resolve_dataset`.
The topics judged in the qrels are searched; qrels naming unknown topics or documents stop the run.

check (qrels against topics and corpus) -> [passages] -> encode (corpus -> JsonVectorCollection) ->
index (Anserini IndexCollection -impact -pretokenized) -> search (Pyserini LuceneImpactSearcher + our
SpladeQueryEncoder; MaxP over passages) -> evaluate (ir-measures), then prints nDCG@10, RR@10, R@1000,
the FLOPS / sparsity figures and the time of every stage. A BM25 baseline (Pyserini LuceneSearcher,
k1=0.9 b=0.4, BEIR "flat") runs beside it unless ``--no-bm25``; ``--fusion`` fuses the two runs
(:mod:`splade_anserini.search.fusion`) and prints ``hybrid (<method>): nDCG@10 ...``.

Artifacts go under ``--work-dir`` (default ``work/<dataset>-<model>/``: vectors, index, BM25 index,
encoded topics, stage stamps) and the run files under ``--runs-dir`` (default ``runs/``); nothing is
written anywhere else. Re-running reuses every stage whose inputs and parameters are unchanged
(:meth:`splade_anserini.stamps.Stamps.run`: a stamp file per stage records them); ``--force`` redoes everything. The work
folder is marked as this tool's when created: a folder of the user's (non-empty, unmarked) is refused,
as is a run file this tool did not write, and a second pipeline on the same work folder while one
runs (:mod:`splade_anserini.outputs`).

The stages are the methods of :class:`splade_anserini.pipeline_run.PipelineRun`, run in the order of
:data:`~splade_anserini.pipeline_run.STAGES`, with the options of a
:class:`~splade_anserini.pipeline_run.PipelineConfig`; this module is the command and :func:`run_pipeline`.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Callable

from splade_anserini.cli import ArgumentParser, command, positive_int
from splade_anserini.pipeline_run import (MEASURES, STAGES, WORK_KIND, PipelineConfig, PipelineResult, PipelineRun,
                                          encode_corpus_stage, slug)
from splade_anserini.search.bm25 import B as BM25_B, K1 as BM25_K1
from splade_anserini.stamps import Stage, Stamps, file_fingerprint, model_fingerprint

__all__ = ["MEASURES", "WORK_KIND", "STAGES", "PipelineConfig", "PipelineResult", "PipelineRun", "Stage", "Stamps",
           "encode_corpus_stage", "file_fingerprint", "main", "model_fingerprint", "report", "run_pipeline",
           "slug", "smoke"]


def smoke() -> None:
    """JVM up, Anserini classes load, splade-tiny encodes a sentence with expansion terms."""
    from splade_anserini import java
    from splade_anserini.encode.splade import SpladeEncoder

    java.start_jvm()
    version = java.autoclass("java.lang.System").getProperty("java.version")
    java.autoclass("io.anserini.index.IndexCollection")
    java.pyserini_lucene()
    print(f"JVM {version} started; Anserini classes and pyserini.search.lucene loaded")
    enc = SpladeEncoder("splade-tiny")
    text = "aspirin reduces the risk of heart attacks"
    impacts = enc.to_impacts(enc.encode_queries([text])[0])
    top = sorted(impacts.items(), key=lambda kv: -kv[1])[:10]
    print(f"splade-tiny: {text!r} -> {len(impacts)} terms; top: {top}")


def run_pipeline(dataset: PipelineConfig | str | None = None, *, log: Callable[[str], None] = print,
                 **options) -> PipelineResult:
    """Encode, index, search and evaluate one dataset (see the module docstring); returns the figures.

    Called with a :class:`PipelineConfig` (``options`` then override its fields) or, as before it
    existed, with the dataset name and :class:`PipelineConfig`'s fields as keywords
    (``run_pipeline("scifact", model="splade-tiny", work_dir=...)``).
    """
    if isinstance(dataset, PipelineConfig):
        config = dataclasses.replace(dataset, **options)
    else:
        config = PipelineConfig(dataset, **options)
    return PipelineRun(config, log).execute()


def _scores_line(label: str, sc: dict[str, float], run: str | None) -> str:
    return (f"{label}: nDCG@10 {sc['nDCG@10']:.4f}  RR@10 {sc['RR@10']:.4f}  R@100 {sc['R@100']:.4f}  "
            f"R@1000 {sc['R@1000']:.4f}   ({run})")


def report(result: PipelineResult) -> str:
    """The figures printed by :func:`main`: every stage's time, the scores, FLOPS and sparsity."""
    lines = [f"== {result.dataset} / {result.model} =="]
    lines.append(f"{'stage':<9} {'time':>10}")
    total = 0.0
    for s in result.stages:
        if s.reused:
            took = f"(took {s.seconds:.1f} s when built) " if s.seconds else ""
            lines.append(f"{s.name:<9} {'reused':>10}  {took}{s.note}")
        else:
            total += s.seconds
            lines.append(f"{s.name:<9} {s.seconds:8.1f} s  {s.note}")
    lines.append(f"{'total':<9} {total:8.1f} s  (this run)")
    lines.append(_scores_line(result.model, result.scores, result.run))
    st = result.stats
    lines.append(f"FLOPS {st['flops']:.3f}; {st['avg_doc_nonzeros']:.1f} non-zeros per document, "
                 f"{st['avg_query_nonzeros']:.1f} per query")
    if result.bm25_scores:
        lines.append(_scores_line(f"BM25 (k1={BM25_K1:g} b={BM25_B:g})", result.bm25_scores, result.bm25_run))
    if result.hybrid_scores:
        lines.append(_scores_line(f"hybrid ({result.hybrid_method})", result.hybrid_scores, result.hybrid_run))
    lines.extend(result.warnings)
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    """The command line of :func:`main`."""
    from splade_anserini.data import NAMED_DATASETS
    from splade_anserini.search.fusion import METHODS

    parser = ArgumentParser(description="Encode, index, search and evaluate a dataset end to end.")
    parser.add_argument("--dataset", default=None, choices=sorted(NAMED_DATASETS),
                        help="a dataset of the shared data (default scifact unless --data-dir or the files are given)")
    parser.add_argument("--data-dir", help="a BEIR (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or MS MARCO "
                                           "dataset folder (default: the shared data's --dataset)")
    parser.add_argument("--split", help="the qrels split to evaluate (default: test, or the folder's unsplit qrels)")
    parser.add_argument("--corpus", help="corpus file (BEIR corpus.jsonl or MS MARCO collection.tsv, .gz or not)")
    parser.add_argument("--topics", help="topics file (BEIR queries.jsonl or qid<TAB>text, .gz or not)")
    parser.add_argument("--qrels", help="qrels file (TREC or BEIR TSV with or without header, .gz or not)")
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--factor", default="100", help="quantization factor: a number, naver or pyserini")
    parser.add_argument("--max-length", type=positive_int, default=256)
    parser.add_argument("--passage-length", type=int, default=None,
                        help="encode documents as passages of this many WordPiece tokens; rank by best passage (MaxP)")
    parser.add_argument("--passage-stride", type=int, default=None, help="tokens between passage starts (default: the length)")
    parser.add_argument("--fusion", nargs="?", const="interpolation", choices=METHODS, default=None,
                        help="also fuse the SPLADE and BM25 runs (default method: interpolation, alpha 0.5)")
    parser.add_argument("--alpha", type=float, default=None, help="interpolation weight of the SPLADE run (default 0.5)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--hits", type=positive_int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", help="artifacts folder: vectors, index, BM25 index, stamps (default "
                                           "work/<dataset>-<model>; new, empty, or made by this tool)")
    parser.add_argument("--runs-dir", default="runs", help="run files and scores (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="redo every stage (replaces only what this tool wrote in --work-dir and --runs-dir)")
    parser.add_argument("--no-bm25", action="store_true", help="skip the BM25 baseline")
    parser.add_argument("--smoke", action="store_true", help="only check that the JVM and the model load")
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    """``python -m splade_anserini.pipeline``: run the pipeline and print :func:`report`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:
        smoke()
        return 0
    if args.alpha is not None and args.fusion != "interpolation":
        parser.error("--alpha goes with --fusion interpolation")
    print(report(run_pipeline(PipelineConfig.from_args(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
