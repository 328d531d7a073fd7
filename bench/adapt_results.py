"""Write ``results/adaptation.json`` from ``splade-anserini quick-eval --json`` files (one per model).

    python -m bench.adapt_results --eval "untuned=runs/adapt/untuned-eval.json" \\
        --eval "adapted on SciFact (no labels)=runs/adapt/scifact-eval.json" \\
        --eval "adapted on CACM (no labels)=runs/adapt/cacm-eval.json"
"""
from __future__ import annotations

import argparse
import json
import sys

from bench.results import write_result

COMMANDS = [
    "splade-anserini pseudo-queries --corpus CORPUS --output runs/adapt/NAME-pq",
    "splade-anserini mine-negatives --corpus runs/adapt/NAME-pq.corpus.jsonl --queries runs/adapt/NAME-pq.queries.tsv "
    "--qrels runs/adapt/NAME-pq.qrels.txt --output runs/adapt/NAME-pq.bm25.trec",
    "splade-anserini mine-negatives --model splade-tiny (same files) --output runs/adapt/NAME-pq.splade.trec",
    "splade-anserini train --config adapt (--corpus/--queries/--qrels/--negatives/--valid-negatives/--output-dir for NAME)",
    "splade-anserini quick-eval --model runs/adapt/NAME/checkpoint-best --dataset scifact --dataset cacm --json ...",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", action="append", required=True, metavar="LABEL=FILE")
    args = p.parse_args(argv)
    rows = []
    for item in args.eval:
        label, _, path = item.partition("=")
        with open(path, encoding="utf-8") as fh:
            ev = json.load(fh)
        sci, cacm = ev["scifact"], ev["cacm"]
        rows.append([label, f"{sci['nDCG@10']:.4f}", f"{cacm['nDCG@10']:.4f}", f"{sci['doc_nonzeros']:.0f}",
                     f"{sci['flops']:.2f}"])
    path = write_result("adaptation", "Adapting splade-tiny to a corpus without labels (exact nDCG@10 = Lucene's)",
                        ["model", "SciFact test", "CACM", "SciFact doc non-zeros", "SciFact FLOPS"], rows,
                        data="SciFact test (300 queries), CACM (52 judged queries); pseudo-queries = titles "
                             "cut out of their documents; selection on held-out pseudo-queries with the "
                             "msmarco-dl19-subset guard, no labelled query used",
                        command=COMMANDS)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
