"""Choose the fusion default on validation queries: nDCG@10 of min-max interpolation for alpha in
0, 0.1, ..., 1 and of RRF, for two runs of the same (validation) topics.

    python -m bench.fusion_validation --runs runs/scifact-train-splade-tiny.trec runs/scifact-train-bm25.trec \\
        --qrels ../shared/data/scifact/qrels.train.txt [--results results]

alpha weighs the first run. Never run this on a test split to pick a setting. The row of the table (each
run alone, alpha 0.3 to 0.6, RRF) goes to ``results/fusion-validation.json`` (``--results`` chooses the
folder, ``--results ''`` writes none).
"""
from __future__ import annotations

import argparse
import sys

from splade_anserini.conversion.trec import read_qrels, read_ranked  # noqa: E402
from splade_anserini.evaluate.measures import evaluate_run  # noqa: E402
from splade_anserini.search.fusion import fuse  # noqa: E402

TITLE = "Interpolation weight checked on validation queries (SciFact train, nDCG@10)"
COLUMNS = ["SPLADE alone", "BM25", "alpha 0.3", "alpha 0.4", "alpha 0.5", "alpha 0.6", "RRF"]
TABLE_ALPHAS = (3, 4, 5, 6)  # tenths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs=2, required=True, help="the SPLADE run, then the BM25 run")
    p.add_argument("--qrels", required=True)
    p.add_argument("--measure", default="nDCG@10")
    p.add_argument("--results", default="results", help="folder of fusion-validation.json ('' = none)")
    args = p.parse_args(argv)
    qrels = read_qrels(args.qrels)
    runs = [read_ranked(r) for r in args.runs]

    def score(run) -> float:
        as_dict = {q: dict(h) for q, h in run.items()}
        return evaluate_run(qrels, as_dict, [args.measure]).scores[args.measure]

    alone = [score(run) for run in runs]
    fused = {i: score(fuse(runs, "interpolation", alpha=i / 10)) for i in range(11)}
    rrf = score(fuse(runs, "rrf"))
    print(f"| fusion | {args.measure} |\n|---|---|")
    for name, value in zip(("first run alone", "second run alone"), alone):
        print(f"| {name} | {value:.4f} |")
    for i, value in fused.items():
        print(f"| interpolation alpha={i / 10:.1f} | {value:.4f} |")
    print(f"| rrf k=60 | {rrf:.4f} |")
    if args.results:
        from bench.results import write_result

        row = [f"{v:.4f}" for v in (*alone, *(fused[i] for i in TABLE_ALPHAS), rrf)]
        path = write_result("fusion-validation", TITLE, COLUMNS, [row], folder=args.results,
                            data=f"SciFact train, {len(runs[0])} queries; untuned splade-tiny and BM25 "
                                 f"({args.measure}, qrels {args.qrels})")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
