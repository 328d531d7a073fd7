"""Write ``results/adaptation.json``: ``splade-anserini adapt`` on SciFact's and on CACM's corpus (no labels),
each checkpoint through the Lucene pipeline (and its BM25 hybrid) on SciFact test and CACM, with its
pseudo-queries' leakage.

    python -m bench.adapt_results --eval "untuned splade-tiny=runs/splade-tiny" \\
        --eval "adapted on SciFact's corpus=runs/adapt-eval/scifact/train-checkpoint-best@runs/adapt/scifact" \\
        --eval "adapted on CACM's corpus=runs/adapt-eval/cacm/train-checkpoint-best@runs/adapt/cacm"

Each ``LABEL=RUNS_DIR/NAME[@ADAPT_DIR]``: the pipeline's figures ``RUNS_DIR/scifact-NAME.json`` and
``RUNS_DIR/cacm-NAME.json`` (``pipeline --fusion --runs-dir RUNS_DIR``), and the ``adapt --output-dir`` whose
``pq.*`` files the leakage is counted on (queries whose text is still in their positive).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.results import write_result

COLUMNS = ["model", "SciFact test", "CACM", "hybrid SciFact", "hybrid CACM", "SciFact doc non-zeros", "SciFact FLOPS",
           "pseudo-queries", "documents without one", "leaked queries"]


def leakage(adapt_dir: str | Path) -> tuple[int, int, int]:
    """``(pseudo-queries, documents that gave none, queries whose text is still in their positive)``."""
    from splade_anserini.data import read_qrels, read_topics
    from splade_anserini.train.pseudo_queries import leaks

    pq = Path(adapt_dir) / "pq"
    topics, qrels = read_topics(f"{pq}.queries.tsv"), read_qrels(f"{pq}.qrels.txt")
    with open(f"{pq}.corpus.jsonl", encoding="utf-8") as fh:
        texts = {d["_id"]: d["text"] for d in map(json.loads, fh)}
    positives = {q: next(iter(qrels[q])) for q in topics}
    leaked = sum(leaks(text, texts[positives[q]]) for q, text in topics.items())
    return len(topics), len(texts) - len(set(positives.values())), leaked


def row(label: str, spec: str) -> list[str]:
    stem, _, adapt_dir = spec.partition("@")
    stem = Path(stem)
    sci, cacm = (json.loads((stem.parent / f"{d}-{stem.name}.json").read_text(encoding="utf-8"))
                 for d in ("scifact", "cacm"))
    counts = [f"{n:,}" for n in leakage(adapt_dir)] if adapt_dir else ["-", "-", "-"]
    return [label, *(f"{r['scores']['nDCG@10']:.4f}" for r in (sci, cacm)),
            *(f"{r['hybrid']['scores']['nDCG@10']:.4f}" for r in (sci, cacm)),
            f"{sci['stats']['avg_doc_nonzeros']:.0f}", f"{sci['stats']['flops']:.2f}", *counts]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", action="append", required=True, metavar="LABEL=RUNS_DIR/NAME[@ADAPT_DIR]")
    p.add_argument("--note", action="append", default=[], help="a note for the table (repeatable)")
    args = p.parse_args(argv)
    rows = [row(*item.split("=", 1)) for item in args.eval]
    path = write_result("adaptation", "Adapting splade-tiny to a corpus without labels (nDCG@10 through Lucene)",
                        COLUMNS, rows,
                        data="SciFact test (300 queries), CACM (52 judged queries), the Lucene pipeline and its BM25 "
                             "hybrid (interpolation, alpha 0.5); pseudo-queries cut out of each "
                             "corpus's documents (pseudo-queries --source auto), every copy of a query's text removed "
                             "from its positive; selection on held-out pseudo-queries with the msmarco-dl19-subset "
                             "guard, no labelled query used",
                        notes=["the commands are those of bench.reproduce's adaptation entry "
                               "(python -m bench.reproduce --list)", *args.note])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
