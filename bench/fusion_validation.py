"""Choose the fusion default on validation queries: nDCG@10 of min-max interpolation for alpha in
0, 0.1, ..., 1 and of RRF, for two runs of the same (validation) topics.

    python bench/fusion_validation.py --runs runs/scifact-train-splade-tiny.trec runs/scifact-train-bm25.trec \\
        --qrels ../shared/data/scifact/qrels.train.txt

alpha weighs the first run. Never run this on a test split to pick a setting.
"""
from __future__ import annotations

import argparse
import sys


from splade_anserini.conversion.trec import read_qrels, read_ranked  # noqa: E402
from splade_anserini.evaluate.measures import evaluate_run  # noqa: E402
from splade_anserini.search.fusion import fuse  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs=2, required=True)
    p.add_argument("--qrels", required=True)
    p.add_argument("--measure", default="nDCG@10")
    args = p.parse_args()
    qrels = read_qrels(args.qrels)
    runs = [read_ranked(r) for r in args.runs]

    def score(run) -> float:
        as_dict = {q: dict(h) for q, h in run.items()}
        return evaluate_run(qrels, as_dict, [args.measure]).scores[args.measure]

    print(f"| fusion | {args.measure} |\n|---|---|")
    for name, run in zip(("first run alone", "second run alone"), runs):
        print(f"| {name} | {score(run):.4f} |")
    for i in range(11):
        alpha = i / 10
        print(f"| interpolation alpha={alpha:.1f} | {score(fuse(runs, 'interpolation', alpha=alpha)):.4f} |")
    print(f"| rrf k=60 | {score(fuse(runs, 'rrf')):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
