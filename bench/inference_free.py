"""Write ``results/inference-free.json``: splade-tiny's documents searched with neural queries, with bags of
WordPiece tokens (weight 1) and with inference-free IDF queries (the index's own table), on SciFact and CACM.

    splade-anserini pipeline [--dataset cacm]
    splade-anserini search --index work/<d>-splade-tiny/index --topics T --output runs/inference-free/<d>-ones.trec \\
        --splade-doc --query-weights ones          # and idf
    python -m bench.inference_free

The searches are this module's :data:`COMMANDS` (``bench.reproduce`` runs them); the neural row is the
pipeline's own run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.results import ROOT, write_result

DATASETS = {"scifact": ("SciFact test", "../shared/data/scifact/queries.test.tsv", "../shared/data/scifact/qrels.test.txt"),
            "cacm": ("CACM", "../shared/data/cacm/queries.tsv", "../shared/data/cacm/qrels.txt")}
WEIGHTS = {"ones": "splade-tiny documents, bag-of-WordPiece queries (weight 1)",
           "idf": "splade-tiny documents, inference-free IDF queries"}
OUT = "runs/inference-free"
COMMANDS = tuple(
    f"splade-anserini search --index work/{d}-splade-tiny/index --topics {topics} --output {OUT}/{d}-{w}.trec "
    f"--splade-doc --query-weights {w}"
    for d, (_, topics, _) in DATASETS.items() for w in WEIGHTS)


def ndcg(run: str | Path, qrels: str | Path) -> float:
    from splade_anserini.conversion.trec import read_qrels, read_run
    from splade_anserini.evaluate.measures import evaluate_run

    return evaluate_run(read_qrels(qrels), read_run(run), ["nDCG@10"]).scores["nDCG@10"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    rows = [["splade-tiny, neural queries"] + [
        f"{json.loads((ROOT / 'runs' / f'{d}-splade-tiny.json').read_text())['scores']['nDCG@10']:.4f}" for d in DATASETS]]
    for w, label in WEIGHTS.items():
        rows.append([label] + [f"{ndcg(ROOT / OUT / f'{d}-{w}.trec', ROOT / qrels):.4f}"
                               for d, (_, _, qrels) in DATASETS.items()])
    path = write_result("inference-free", "Inference-free SPLADE-doc queries against neural queries (nDCG@10)",
                        ["model and queries", *(name for name, _, _ in DATASETS.values())], rows,
                        data="SciFact test (300 queries), CACM (52 judged queries); the pipeline's Lucene indexes "
                             "of splade-tiny's x100 impacts, 1000 hits; IDF: the index's own table",
                        command=[*COMMANDS, "python -m bench.inference_free"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
