"""Teacher scores from the hybrid of a SPLADE model and BM25, for distillation without a cross-encoder.

    python -m splade_anserini.train.hybrid_teacher --model-run runs/train/splade-tiny-scifact-train.trec \\
        --bm25-run runs/train/bm25-scifact-train.trec --qrels qrels.train.txt \\
        --output runs/train/hybrid-teacher-scifact-train.trec [--alpha 0.5] [--factor 100]

On collections where BM25 and SPLADE are complementary, their fusion ranks better than either, and a
student distilled from the fusion learns what BM25 adds. For every query of the model's run (both runs
as ``mine-negatives`` writes them), each document of the model's run and each judged positive gets the
fused score of :func:`splade_anserini.search.fusion.fuse` (min-max interpolation, ``alpha`` on the model
run; a document missing from a run gets 0 from it; a query without BM25 hits keeps the model's order),
mapped back onto the range of the model's own scores for that query and into float units (the run's
integer impact products divided by ``factor^2``). Teacher and student scores are then on one scale, so KL
distillation (``train --teacher FILE --distill kl``) needs no temperature of its own. The output is a TREC
run that the trainer reads as teacher scores.
"""
from __future__ import annotations

import sys

from splade_anserini.conversion.quantize import DEFAULT_FACTOR
from splade_anserini.conversion.trec import Run, rank_hits

from splade_anserini.cli import ArgumentParser, command
from splade_anserini.search.fusion import DEFAULT_ALPHA


def hybrid_teacher(model_run: Run, bm25_run: Run, positives: dict[str, set[str]] | None = None, *,
                   alpha: float = DEFAULT_ALPHA, factor: float = DEFAULT_FACTOR) -> Run:
    """Teacher scores ``{qid: [(docid, score), ...]}`` (ranked) for the queries of ``model_run``."""
    from splade_anserini.search.fusion import fuse, fusion_weights

    fusion_weights(2, alpha)  # checked before any work
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    if not set(model_run) & set(bm25_run):
        raise ValueError("the model run and the BM25 run have no query in common: mine both runs with the same queries")
    missing = sorted(set(model_run) - set(bm25_run))
    if missing:  # BM25 finds nothing for a query whose terms are in no document: its teacher is the model alone
        print(f"warning: {len(missing)} of the model run's queries have no BM25 hit (e.g. {missing[0]!r}): their "
              "teacher keeps the model's order", file=sys.stderr)
    fused = fuse([model_run, bm25_run], alpha=alpha, depth=None, k=None)
    scale = 1.0 / (factor * factor)
    teacher: Run = {}
    for qid, hits in model_run.items():
        if not hits:
            continue
        lo, hi = min(s for _, s in hits), max(s for _, s in hits)
        f = dict(fused.get(qid, []))
        docs = dict.fromkeys([d for d, _ in hits] + sorted((positives or {}).get(qid, ())))
        teacher[qid] = rank_hits([(d, (lo + (hi - lo) * f.get(d, 0.0)) * scale) for d in docs], None)
    return teacher


@command
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description="Teacher scores from the min-max fusion of a SPLADE model's run and a BM25 run, "
                                   "on the model's score scale (for train --teacher FILE --distill kl).")
    p.add_argument("--model-run", required=True, help="the model's run (mine-negatives --model: integer impacts)")
    p.add_argument("--bm25-run", required=True, help="the BM25 run of the same queries (mine-negatives)")
    p.add_argument("--qrels", help="judged positives get teacher scores too (those missing from both runs: the "
                                   "model run's lowest score)")
    p.add_argument("--output", required=True, help="the teacher scores, as a TREC run")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="weight of the model run in the fusion "
                                                                      f"(default {DEFAULT_ALPHA})")
    p.add_argument("--factor", type=float, default=DEFAULT_FACTOR, help="the impact factor of the model run "
                                                                        f"(default {DEFAULT_FACTOR:g}, as mine-negatives writes it)")
    args = p.parse_args(argv)
    from splade_anserini.conversion.trec import read_ranked, write_run

    from splade_anserini.data import read_qrels
    from splade_anserini.outputs import check_file, output_file
    from splade_anserini.progress import Progress

    check_file(args.output, "run")
    positives = None
    if args.qrels:
        positives = {q: {d for d, r in docs.items() if r > 0} for q, docs in read_qrels(args.qrels).items()}
    model_run = read_ranked(args.model_run)
    with Progress("hybrid-teacher", total=len(model_run), unit="query") as bar:
        teacher = hybrid_teacher(model_run, read_ranked(args.bm25_run), positives, alpha=args.alpha,
                                 factor=args.factor)
        bar.update(len(model_run))
    with output_file(args.output, "run", inputs=(args.model_run, args.bm25_run, args.qrels)):
        n = write_run(args.output, teacher, tag="hybrid-teacher")
    print(f"{n} teacher scores for {len(teacher)} queries: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
