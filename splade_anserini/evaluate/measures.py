"""Evaluate TREC runs with ir-measures.

    python -m splade_anserini.evaluate --qrels QRELS RUN [RUN ...] [--measures nDCG@10 RR@10 R@100 R@1000]
                                       [--json out.json] [--vectors DIR --query-vectors TOPICS.tsv]

Prints one row per run and one column per measure (any ir-measures measure name, e.g. ``AP``,
``P@5``, ``nDCG@10``, ``Judged@10``). Runs are read and validated by
:func:`conversion.trec.read_run` (bad column count, non-numeric score, a docid twice in one topic
-> a one-line ``file:line: problem`` error, exit status 2). A warning goes to stderr when the
run's topics and the qrels' topics differ: qrels topics missing from the run count as 0 in the
averages (ir-measures averages over the qrels topics), run topics without qrels are ignored. One
more warning line says how many qrels topics judge no document relevant and, with ``--index`` (a
Numba index, a Lucene index this tool built, vectors or a corpus), how many judged documents it lacks.

With ``--vectors`` (a JsonVectorCollection) and ``--query-vectors`` (TsvInt topics) the sparsity
and FLOPS statistics of :mod:`splade_anserini.evaluate.stats` are printed as well.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Sequence

from splade_anserini.conversion.atomic import atomic_open
from splade_anserini.conversion.trec import read_run

from splade_anserini.cli import ArgumentParser, command

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")


@dataclass
class RunEvaluation:
    run: str
    scores: dict[str, float]
    run_topics: int
    qrels_topics: int
    missing_topics: list[str] = field(default_factory=list)   # in qrels, not in the run (count as 0)
    extra_topics: list[str] = field(default_factory=list)     # in the run, not in qrels (ignored)

    def warning(self) -> str | None:
        if not self.missing_topics and not self.extra_topics:
            return None
        parts = []
        if self.missing_topics:
            parts.append(f"{len(self.missing_topics)} of {self.qrels_topics} qrels topics have no results in the run "
                         f"and count as 0 (e.g. {', '.join(self.missing_topics[:5])})")
        if self.extra_topics:
            parts.append(f"{len(self.extra_topics)} run topics have no qrels and are ignored "
                         f"(e.g. {', '.join(self.extra_topics[:5])})")
        return f"warning: {self.run}: run and qrels topics differ: " + "; ".join(parts)


def parse_measures(names: Sequence[str]):
    import ir_measures

    measures = []
    for name in names:
        try:
            measures.append(ir_measures.parse_measure(name))
        except (ValueError, NameError, TypeError, SyntaxError) as exc:
            raise ValueError(f"unknown ir-measures measure {name!r} ({exc})") from None
    return measures


def _topic_key(qid: str):
    return (0, int(qid), qid) if qid.isdigit() else (1, 0, qid)


def evaluate_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], measures,
                 name: str = "run") -> RunEvaluation:
    """Aggregate ``measures`` (ir-measures objects or names) of one run over the qrels topics."""
    import ir_measures

    if measures and isinstance(measures[0], str):
        measures = parse_measures(measures)
    agg = ir_measures.calc_aggregate(measures, qrels, run) if run else {m: 0.0 for m in measures}
    missing = sorted(set(qrels) - set(run), key=_topic_key)
    extra = sorted(set(run) - set(qrels), key=_topic_key)
    return RunEvaluation(run=name, scores={str(m): float(agg.get(m, 0.0)) for m in measures},
                         run_topics=len(run), qrels_topics=len(qrels), missing_topics=missing, extra_topics=extra)


def evaluate_files(qrels_path: str | os.PathLike, run_paths: Sequence[str | os.PathLike],
                   measures: Sequence[str] = DEFAULT_MEASURES) -> list[RunEvaluation]:
    from splade_anserini.data import read_qrels

    parsed = parse_measures(measures)
    qrels = read_qrels(qrels_path)
    return [evaluate_run(qrels, read_run(path), parsed, name=os.fspath(path)) for path in run_paths]


def format_table(results: Sequence[RunEvaluation]) -> str:
    if not results:
        return ""
    measures = list(results[0].scores)
    width = max(len("run"), *(len(r.run) for r in results))
    cols = [max(len(m), 6) for m in measures]
    lines = ["  ".join(["run".ljust(width)] + [m.rjust(c) for m, c in zip(measures, cols)])]
    for r in results:
        lines.append("  ".join([r.run.ljust(width)] + [f"{r.scores[m]:.4f}".rjust(c) for m, c in zip(measures, cols)]))
    return "\n".join(lines)


def _warn_coverage(qrels_path: str, docs: str | None) -> None:
    """One warning line: judged documents absent from ``docs`` (when given), topics judging none relevant."""
    from splade_anserini.data import read_qrels
    from splade_anserini.evaluate.judged import coverage_warning, known_docids

    warning = coverage_warning(qrels_path, read_qrels(qrels_path), known_docids(docs) if docs else None, docs)
    if warning:
        print(warning, file=sys.stderr)


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description="Evaluate TREC runs with ir-measures.")
    parser.add_argument("--qrels", required=True)
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--measures", nargs="+", default=list(DEFAULT_MEASURES),
                        help="ir-measures names (default: %(default)s)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the scores as JSON (an existing file is replaced only if this tool wrote it)")
    parser.add_argument("--vectors", help="JsonVectorCollection of the index: print sparsity and FLOPS")
    parser.add_argument("--query-vectors", help="TsvInt topics (encoded queries) for the FLOPS figure")
    parser.add_argument("--index", help="the index (Numba, or Lucene built by this tool), vectors or corpus the runs "
                        "searched: warn about judged documents absent from it")
    args = parser.parse_args(argv)
    if bool(args.vectors) != bool(args.query_vectors):
        parser.error("--vectors and --query-vectors go together")
    if args.json:
        from splade_anserini.outputs import check_file

        check_file(args.json, "evaluation")  # refused before the work, not after
    results = evaluate_files(args.qrels, args.runs, args.measures)
    _warn_coverage(args.qrels, args.index)
    from splade_anserini.provenance import run_provenance

    for r in results:
        if (w := r.warning()):
            print(w, file=sys.stderr)
        if (note := run_provenance(r.run)) and note.get("other_query_encoder_allowed"):
            print(f"warning: {r.run}: searched with a query model other than the index's "
                  f"({note['query_model']['name']}; see {note['file']})", file=sys.stderr)
    print(format_table(results))
    payload = {"qrels": os.fspath(args.qrels), "measures": list(args.measures),
               "runs": {r.run: {"scores": r.scores, "run_topics": r.run_topics, "qrels_topics": r.qrels_topics,
                                "missing_topics": r.missing_topics, "extra_topics": r.extra_topics,
                                "provenance": run_provenance(r.run)}
                        for r in results}}
    if args.vectors:
        from splade_anserini.evaluate.stats import collection_stats

        stats = collection_stats(args.vectors, args.query_vectors)
        print(stats.summary())
        payload["stats"] = stats.as_dict()
    if args.json:
        from splade_anserini.outputs import output_file

        with output_file(args.json, "evaluation", inputs=(args.qrels, *args.runs)), atomic_open(args.json) as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
