"""Write the training queries a config holds out for validation (``valid_holdout``), as topics and qrels.

    python -m splade_anserini.train.holdout --config scifact \\
        --output runs/train/scifact-heldout        # -> scifact-heldout.queries.tsv, scifact-heldout.qrels.txt

The trainer picks ``checkpoint-best`` on these queries; with them written out, choices made after
training (a fusion weight, passages or truncation) are validated on the same queries, through the
full pipeline over the whole corpus (``pipeline --topics ... --qrels ...``), instead of on a test set.
"""
from __future__ import annotations

import sys

from splade_anserini.conversion.atomic import atomic_open

from splade_anserini.cli import ArgumentParser, command


@command
def main(argv: list[str] | None = None) -> int:
    from splade_anserini.data import read_qrels, read_topics
    from splade_anserini.train.config import ConfigError, TrainConfig, load_config_file
    from splade_anserini.train.data import held_out_qids, queries_with_positives

    parser = ArgumentParser(description="Write a training config's held-out validation queries and their qrels.")
    parser.add_argument("--config", required=True, help="the training config (YAML or JSON)")
    parser.add_argument("--output", required=True, help="prefix: writes PREFIX.queries.tsv and PREFIX.qrels.txt")
    args = parser.parse_args(argv)
    cfg = load_config_file(args.config)
    missing = [k for k in ("queries", "qrels", "valid_holdout") if not cfg.get(k)]
    if missing:
        raise ConfigError(f"config {args.config}: no held-out queries (needs {', '.join(missing)})")
    queries, qrels = read_topics(cfg["queries"]), read_qrels(cfg["qrels"])
    qids = held_out_qids(queries_with_positives(queries, qrels), cfg["valid_holdout"], cfg.get("seed", TrainConfig.seed),
                         cfg["qrels"])
    from splade_anserini.outputs import check_file, output_file

    sources = (args.config, cfg["queries"], cfg["qrels"])
    for suffix in ("queries.tsv", "qrels.txt"):  # both refused before either is written
        check_file(f"{args.output}.{suffix}", "holdout")
    with output_file(f"{args.output}.queries.tsv", "holdout", inputs=sources), \
            atomic_open(f"{args.output}.queries.tsv") as fh:
        fh.writelines(f"{q}\t{queries[q]}\n" for q in qids)
    with output_file(f"{args.output}.qrels.txt", "holdout", inputs=sources), atomic_open(f"{args.output}.qrels.txt") as fh:
        fh.writelines(f"{q} 0 {d} {r}\n" for q in qids for d, r in qrels[q].items())
    print(f"{len(qids)} held-out queries: {args.output}.queries.tsv, {args.output}.qrels.txt", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
