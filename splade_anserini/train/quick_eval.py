"""Quick effectiveness check of a checkpoint without the JVM: BEIR-style test sets, exact retrieval.

    python -m splade_anserini.train.quick_eval --model runs/train/x/checkpoint-best \\
        --dataset scifact --dataset cacm [--json out.json]

Each dataset (a named dataset of the shared data or any BEIR / MS MARCO folder, as the pipeline
resolves it: :func:`splade_anserini.data.resolve_dataset`) is encoded with :class:`~splade_anserini.encode.splade.SpladeEncoder`, quantized
(x100, as the Lucene index stores it) and searched exactly with the Numba index. The numbers match
the Lucene pipeline up to ties; the final figures still come from the Lucene pipeline
(``encode_corpus -> index -> search -> evaluate``).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from splade_anserini.cli import ArgumentParser, command


def dataset_files(name: str) -> tuple[Path, Path, Path]:
    """Corpus, topics and qrels of a named shared dataset or a dataset folder (its test split)."""
    from splade_anserini.data import NAMED_DATASETS, resolve_dataset

    ds = resolve_dataset(name) if name in NAMED_DATASETS and not Path(name).is_dir() else resolve_dataset(data_dir=name)
    return ds.corpus, ds.topics, ds.qrels


def evaluate_checkpoint(model: str, datasets: list[str], *, splade_doc: bool = False, pooling: str = "max",
                        max_length: int = 256, batch_size: int = 32, progress: bool = False) -> dict[str, dict]:
    from splade_anserini.data import read_qrels, read_topics
    from splade_anserini.models import load_model
    from splade_anserini.train.data import ValidationSet, load_corpus_texts
    from splade_anserini.train.validate import Validator

    tokenizer, hf = load_model(model)
    out = {}
    for name in datasets:
        corpus, queries, qrels = dataset_files(name)
        topics, judged = read_topics(queries), read_qrels(qrels)
        topics = {q: t for q, t in topics.items() if q in judged}
        valid = ValidationSet(load_corpus_texts(corpus), topics, judged)
        start = time.time()
        metrics = Validator(valid, pooling=pooling, splade_doc=splade_doc, max_length=max_length,
                            batch_size=batch_size)(hf, tokenizer)
        metrics["seconds"] = round(time.time() - start, 1)
        metrics.pop("valid_seconds", None)
        out[Path(name).name] = metrics
        if progress:
            print(f"{Path(name).name}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()), file=sys.stderr, flush=True)
    return out


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description="Exact (Numba) nDCG@10 of a checkpoint on BEIR-style test sets.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", action="append", required=True,
                        help="a shared-data folder name (scifact, cacm) or a directory; repeatable")
    parser.add_argument("--splade-doc", action="store_true")
    parser.add_argument("--pooling", default="max", choices=("max", "sum"))
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    if args.json:
        from splade_anserini.outputs import check_file

        check_file(args.json, "evaluation")  # refused before the work, not after
    results = evaluate_checkpoint(args.model, args.dataset, splade_doc=args.splade_doc, pooling=args.pooling,
                                  max_length=args.max_length, batch_size=args.batch_size, progress=True)
    text = json.dumps({"model": args.model, **results})
    print(text)
    if args.json:
        from splade_anserini.outputs import output_file, write_text

        with output_file(args.json, "evaluation"):
            write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
