"""Write ``results/heldout-fusion.json``: the hybrid settings of the recipe, chosen on its held-out training
queries (never on a test set): nDCG@10 of SPLADE alone, BM25 alone, min-max interpolation for alpha 0.3-0.8
and RRF, for the recipe's checkpoint truncated at 256 and as passages (MaxP).

    splade-anserini holdout --config scifact --output runs/heldout/scifact
    splade-anserini pipeline --model CKPT --corpus ../shared/data/scifact/corpus.jsonl \\
        --topics runs/heldout/scifact.queries.tsv --qrels runs/heldout/scifact.qrels.txt --runs-dir runs/heldout \\
        --fusion [--passage-length 256 --passage-stride 128]
    python -m bench.heldout_fusion --row "LABEL=runs/heldout/<pipeline json>" [--row ...]

Each ``--row`` names a pipeline figures file (``<runs-dir>/<data>-<model>.json``): its SPLADE and BM25 runs
and its qrels are read from it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.results import ROOT, write_result

ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MEASURE = "nDCG@10"
#: the recipe's checkpoint (configs/scifact.yaml, seed 42) and the commands that make the runs read here
CHECKPOINT = "runs/train/seeds/hybrid-lwf/checkpoint-best"
HELDOUT = "runs/heldout/scifact"
_PIPELINE = (f"splade-anserini pipeline --model {CHECKPOINT} --corpus ../shared/data/scifact/corpus.jsonl "
             f"--topics {HELDOUT}.queries.tsv --qrels {HELDOUT}.qrels.txt --runs-dir runs/heldout --fusion")
COMMANDS = (f"splade-anserini holdout --config scifact --output {HELDOUT}", _PIPELINE,
            f"{_PIPELINE} --passage-length 256 --passage-stride 128")


def row(label: str, figures_file: str | Path) -> list[str]:
    """One table row: the runs of one pipeline figures file, alone and fused at each alpha and by RRF."""
    from splade_anserini.conversion.trec import read_qrels, read_ranked
    from splade_anserini.evaluate.measures import evaluate_run
    from splade_anserini.search.fusion import fuse

    record = json.loads(Path(figures_file).read_text(encoding="utf-8"))
    qrels = read_qrels(record["qrels"])
    runs = [read_ranked(ROOT / record["run"]), read_ranked(ROOT / record["bm25"]["run"])]

    def score(run) -> str:
        return f"{evaluate_run(qrels, {q: dict(h) for q, h in run.items()}, [MEASURE]).scores[MEASURE]:.4f}"

    return [label, *map(score, runs), *(score(fuse(runs, "interpolation", alpha=a)) for a in ALPHAS),
            score(fuse(runs, "rrf"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", action="append", required=True, metavar="LABEL=FIGURES_JSON")
    args = parser.parse_args(argv)
    rows = [row(*item.split("=", 1)) for item in args.row]
    path = write_result(
        "heldout-fusion", "Hybrid settings chosen on the recipe's held-out queries",
        ["held-out queries (100), nDCG@10", "SPLADE alone", "BM25", *(f"alpha {a}" for a in ALPHAS), "RRF"], rows,
        data="the 100 SciFact training queries the recipe holds out for validation (`holdout --config scifact`), "
             "over the full SciFact corpus; the recipe's checkpoint (seed 42) through the Lucene pipeline, 1000 hits",
        notes=["alpha weighs the SPLADE run (min-max interpolation, as `fuse` does); RRF k=60"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
