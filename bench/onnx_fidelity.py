"""Fidelity of ONNX query encoding (fp32, int8, and Anserini's Java-side encoder) to the PyTorch encoder.

    python bench/onnx_fidelity.py [--datasets scifact,cacm] [--export work/exports/splade-tiny]
        [--export-int8 work/exports/splade-tiny-int8] [--json runs/onnx-fidelity.json]

For each dataset (its Lucene index from the pipeline, ``work/<dataset>-splade-tiny/index``, x100)
the topics are encoded by: our PyTorch encoder (the reference), ONNX Runtime on the fp32 and int8
exports, and Anserini's Java ONNX encoder running the fp32 export inside the JVM. Reported:
the share of (query, term) integer impacts identical to PyTorch's (over terms non-zero on either
side) and within one, the largest difference, nDCG@10 of the top-1000 Lucene run, and the share of
queries with the same top 10 as the PyTorch run. Not a timing benchmark.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DATASETS = {"scifact": ("queries.test.tsv", "qrels.test.txt"), "cacm": ("queries.tsv", "qrels.txt")}


def compare(reference: dict, other: dict) -> dict:
    pairs = same = near = 0
    worst = 0
    for qid, ref in reference.items():
        got = other[qid]
        for token in set(ref) | set(got):
            d = abs(ref.get(token, 0) - got.get(token, 0))
            pairs += 1
            same += d == 0
            near += d <= 1
            worst = max(worst, d)
    return {"pairs": pairs, "identical": same / pairs, "within_one": near / pairs, "max_diff": worst,
            "identical_queries": sum(reference[q] == other[q] for q in reference) / len(reference)}


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="scifact,cacm")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--export", default="work/exports/splade-tiny")
    p.add_argument("--export-int8", default="work/exports/splade-tiny-int8")
    p.add_argument("--hits", type=int, default=1000)
    p.add_argument("--json", default="runs/onnx-fidelity.json")
    return p


def search_all(index: Path, vectors: dict[str, dict], java, topics: dict[str, str], hits: int) -> dict[str, dict]:
    """Per encoder, its ranked run: Python-side vectors through the impact searcher, Java's from the texts."""
    from splade_anserini.conversion.trec import rank_hits
    from splade_anserini.search.impact_searcher import impact_search

    runs = {name: {q: rank_hits(h, hits) for q, h in impact_search(index, vecs, k=hits).items()}
            for name, vecs in vectors.items() if name != "java-onnx-fp32"}
    runs["java-onnx-fp32"] = {q: rank_hits(h, hits)
                              for q, h in java.batch_search_texts(topics, hits).items()}
    return runs


def score_runs(dataset: str, runs: dict[str, dict], vectors: dict[str, dict], qrels: dict, topics: dict[str, str],
               depth: int) -> dict[str, dict]:
    """Write each run to ``runs/``; per encoder nDCG@10, top-10 agreement and impact agreement with PyTorch."""
    from splade_anserini.conversion.trec import write_run
    from splade_anserini.evaluate.measures import evaluate_run

    rows = {}
    for name, run in runs.items():
        write_run(ROOT / "runs" / f"{dataset}-{name}.trec", run, tag=name, k=depth)
        ev = evaluate_run(qrels, {q: {d: s for d, s in hits} for q, hits in run.items() if hits}, ["nDCG@10"])
        top10 = sum([d for d, _ in run[q][:10]] == [d for d, _ in runs["pytorch"][q][:10]] for q in topics)
        rows[name] = {"nDCG@10": ev.scores["nDCG@10"], "same_top10": top10 / len(topics),
                      **(compare(vectors["pytorch"], vectors[name]) if name != "pytorch" else {})}
    rows["java-vs-onnx-fp32"] = compare(vectors["onnx-fp32"], vectors["java-onnx-fp32"])
    return rows


def print_rows(dataset: str, n_topics: int, rows: dict[str, dict]) -> None:
    """The dataset's markdown table, then the Java-vs-Python line."""
    print(f"\n{dataset} ({n_topics} topics)")
    print("| encoder | identical impacts vs PyTorch | within 1 | max diff | identical query vectors | nDCG@10 | same top 10 as PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        if name == "java-vs-onnx-fp32":
            continue
        ident = f"{r['identical']:.4%} of {r['pairs']:,}" if "pairs" in r else "-"
        print(f"| {name} | {ident} | {r.get('within_one', 1):.4%} | {r.get('max_diff', 0)} | "
              f"{r.get('identical_queries', 1):.1%} | {r['nDCG@10']:.4f} | {r['same_top10']:.1%} |")
    jv = rows["java-vs-onnx-fp32"]
    print(f"Java-side vs Python ONNX fp32 impacts: {jv['identical']:.4%} identical, "
          f"{jv['identical_queries']:.1%} of query vectors identical")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    from splade_anserini.data import read_qrels, read_topics
    from splade_anserini.serve.java_encoder import java_searcher
    from splade_anserini.search.query_encoder import QueryVectorizer

    encoders = {"pytorch": QueryVectorizer("splade-tiny"), "onnx-fp32": QueryVectorizer(args.export),
                "onnx-int8": QueryVectorizer(args.export_int8)}
    report = {}
    java = None
    for dataset in args.datasets.split(","):
        topics_file, qrels_file = DATASETS[dataset]
        topics = read_topics(Path(args.data_dir) / dataset / topics_file)
        qrels = read_qrels(Path(args.data_dir) / dataset / qrels_file)
        index = ROOT / "work" / f"{dataset}-splade-tiny" / "index"
        vectors = {name: dict(zip(topics, enc.encode_batch(list(topics.values()))))
                   for name, enc in encoders.items()}
        if java is not None:
            java.close()  # one JVM-side searcher at a time
        java = java_searcher(index, args.export, 100.0)
        vectors["java-onnx-fp32"] = {q: {t: w for t, w in java.encode_text(text).items() if w > 0}
                                     for q, text in topics.items()}
        runs = search_all(index, vectors, java, topics, args.hits)
        report[dataset] = rows = score_runs(dataset, runs, vectors, qrels, topics, args.hits)
        print_rows(dataset, len(topics), rows)
    java.close()
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
