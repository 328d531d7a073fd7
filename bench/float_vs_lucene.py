"""Acceptance check: the quantized Lucene run vs the same model scored exactly in float.

    python -m bench.float_vs_lucene [--dataset scifact --dataset cacm] [--model splade-tiny] [--results results]
    python -m bench.float_vs_lucene --dataset scifact --run runs/scifact-splade-tiny.trec --work-dir W

Encodes the corpus and the topics with the model in float32 (no quantization; cached as CSR
arrays in ``work/float/<dataset>-<model>/``, beside the pipeline's work folder: never inside it, which holds
only what the pipeline wrote), ranks every document for every query by the exact
sparse dot product (scipy, brute force, ties by docid), and evaluates both runs with ir-measures.
Passes (exit 0) when the Lucene run's nDCG@10 is within ``--tolerance`` (0.002) of the float run's, for
every ``--dataset`` (default SciFact and CACM). The table, one row a dataset, goes to
``results/quantization.json`` (``--results`` chooses the folder; ``--results ''`` writes none).

It also checks that every Lucene score equals the integer dot product of the quantized vectors
in ``work/<dataset>-<model>/vectors`` (the index stores what it was given, nothing more).
Run ``splade-anserini pipeline --dataset D`` first for the Lucene run and the vectors.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from splade_anserini.data import NAMED_DATASETS, resolve_dataset
from splade_anserini.pipeline import slug

ROOT = Path(__file__).resolve().parent.parent


def encode_float(encoder, texts, batch_size, cache: Path | None, kind: str, queries: bool = False):
    """CSR (indptr, indices, data) of float SPLADE vectors, cached in ``cache``."""
    import scipy.sparse as sp

    if cache is not None and cache.is_file():
        z = np.load(cache)
        return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    t = time.perf_counter()
    vecs = encoder.encode_queries(texts, batch_size=batch_size) if queries else \
        encoder.encode_documents(texts, batch_size=batch_size)
    indptr = np.zeros(len(vecs) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(v.ids) for v in vecs])
    indices = np.concatenate([v.ids for v in vecs]).astype(np.int32)
    data = np.concatenate([v.weights for v in vecs]).astype(np.float32)
    shape = (len(vecs), encoder.vocab_size)
    print(f"encoded {len(vecs)} {kind} in float in {time.perf_counter() - t:.1f} s", flush=True)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp.npz")
        np.savez(tmp, indptr=indptr, indices=indices, data=data, shape=np.array(shape))
        tmp.replace(cache)
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def brute_force_run(docs, doc_ids, queries, qids, k: int):
    """Exact top-k by float dot product; ties broken by docid ascending, as Anserini does."""
    scores = (queries @ docs.T).toarray().astype(np.float64)  # [n_queries, n_docs]
    order_ids = np.array(doc_ids)
    run = {}
    for i, qid in enumerate(qids):
        row = scores[i]
        nz = np.flatnonzero(row > 0)
        ranked = sorted(zip(order_ids[nz].tolist(), row[nz].tolist()), key=lambda h: (-h[1], h[0]))[:k]
        run[qid] = ranked
    return run


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", choices=sorted(NAMED_DATASETS),
                        help="repeatable (default: scifact and cacm)")
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--run", help="Lucene run (one --dataset only; default runs/<dataset>-<model>.trec)")
    parser.add_argument("--work-dir", help="one --dataset only; default work/<dataset>-<model>")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--tolerance", type=float, default=0.002)
    parser.add_argument("--json", help="write the figures here (one --dataset only)")
    parser.add_argument("--results", default="results", help="folder of quantization.json ('' = none)")
    return parser


def write_float_run(args, name: str, work: Path, docs: list, topics: dict[str, str]) -> Path:
    """Encode in float (cached), rank exactly, write ``runs/<name>-float.trec``; its path."""
    from splade_anserini.conversion.trec import write_run
    from splade_anserini.encode.splade import SpladeEncoder

    encoder = SpladeEncoder(args.model, max_length=args.max_length, query_max_length=args.max_length)
    tag, cache = f"len{args.max_length}", work.parent / "float" / work.name
    doc_m = encode_float(encoder, [d.text for d in docs], args.batch_size, cache / f"docs-{tag}.npz", "documents")
    q_m = encode_float(encoder, list(topics.values()), args.batch_size, cache / f"queries-{tag}.npz",
                       "queries", queries=True)
    t = time.perf_counter()
    float_run = brute_force_run(doc_m, [d.docid for d in docs], q_m, list(topics), args.hits)
    print(f"brute-force float scoring of {len(topics)} x {len(docs)} in {time.perf_counter() - t:.1f} s")
    float_path = ROOT / "runs" / f"{name}-float.trec"
    write_run(float_path, float_run, tag=f"{name}-float", k=args.hits)
    return float_path


def check_integer_scores(work: Path, lucene_run: dict) -> tuple[int, int]:
    """(hits checked, mismatches): Lucene's top-100 scores against the quantized vectors' dot products."""
    # Lucene scores are exactly the integer dot products of the quantized vectors it indexed.
    checked = mismatches = 0
    vectors_dir, tsvint = work / "vectors", work / "topics.tsvint"
    if vectors_dir.is_dir() and tsvint.is_file():
        from splade_anserini.conversion.jsonvector import read_jsonvector
        from splade_anserini.conversion.topics import read_tsvint

        dvec = {d.docid: d.vector for d in read_jsonvector(vectors_dir)}
        qvec = read_tsvint(tsvint)
        for qid, hits in lucene_run.items():
            q = qvec[qid]
            for docid, score in list(hits.items())[:100]:
                checked += 1
                mismatches += score != sum(w * dvec[docid].get(tok, 0) for tok, w in q.items())
    return checked, mismatches


def print_comparison(lucene: dict, exact: dict, diff: float, ok: bool, tolerance: float, checked: int,
                     mismatches: int) -> None:
    """The two runs' measures, the verdict and the score check."""
    print(f"{'run':<34}{'nDCG@10':>9}{'RR@10':>9}{'R@1000':>9}")
    for label, sc in ((f"Lucene impact (x100 ints)", lucene), ("exact float dot product", exact)):
        print(f"{label:<34}{sc['nDCG@10']:>9.4f}{sc['RR@10']:>9.4f}{sc['R@1000']:>9.4f}")
    print(f"nDCG@10 difference {diff:+.4f} (tolerance {tolerance}): {'PASS' if ok else 'FAIL'}")
    if checked:
        print(f"integer dot products re-computed for {checked} Lucene hits: {mismatches} mismatches")


DISPLAY = {"scifact": "SciFact", "cacm": "CACM", "msmarco-dl19-subset": "MS MARCO DL19 subset"}
TITLE = "Quantized Lucene scores against exact float scores"
COLUMNS = ["dataset", "Lucene x100 nDCG@10", "float nDCG@10", "difference", "Lucene hits re-scored (top 100)",
           "score mismatches"]


def compare_dataset(args, dataset: str) -> dict | None:
    """The two runs' measures and the integer score check of one dataset; None (after one error line) when
    its Lucene run is missing."""
    import ir_measures

    from splade_anserini.conversion.trec import read_run
    from splade_anserini.data import read_corpus, read_qrels, read_topics
    from splade_anserini.evaluate.measures import evaluate_run

    name = f"{dataset}-{slug(args.model)}"
    work = Path(args.work_dir) if args.work_dir else ROOT / "work" / name
    lucene_run_path = Path(args.run) if args.run else ROOT / "runs" / f"{name}.trec"
    if not lucene_run_path.is_file():
        print(f"error: {lucene_run_path} not found: run `splade-anserini pipeline --dataset {dataset}` first",
              file=sys.stderr)
        return None
    ds = resolve_dataset(dataset)
    docs = list(read_corpus(ds.corpus))
    qrels = read_qrels(ds.qrels)
    topics = {q: t for q, t in read_topics(ds.topics).items() if q in qrels}  # as the pipeline searches
    float_path = write_float_run(args, name, work, docs, topics)

    measures = [ir_measures.parse_measure(m) for m in ("nDCG@10", "RR@10", "R@1000")]
    lucene_run = read_run(lucene_run_path)
    lucene = evaluate_run(qrels, lucene_run, measures, str(lucene_run_path)).scores
    exact = evaluate_run(qrels, read_run(float_path), measures, str(float_path)).scores
    checked, mismatches = check_integer_scores(work, lucene_run)
    diff = lucene["nDCG@10"] - exact["nDCG@10"]
    ok = abs(diff) <= args.tolerance
    print(f"\n{dataset}")
    print_comparison(lucene, exact, diff, ok, args.tolerance, checked, mismatches)
    return {"dataset": dataset, "lucene": lucene, "float": exact, "ndcg10_diff": diff, "pass": ok,
            "score_checks": checked, "score_mismatches": mismatches}


def result_row(figures: dict) -> list[str]:
    """One row of ``results/quantization.json``."""
    return [DISPLAY.get(figures["dataset"], figures["dataset"]), f"{figures['lucene']['nDCG@10']:.4f}",
            f"{figures['float']['nDCG@10']:.4f}", f"{figures['ndcg10_diff']:+.5f}", f"{figures['score_checks']:,}",
            f"{figures['score_mismatches']:,}"]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    datasets = args.dataset or ["scifact", "cacm"]
    if len(datasets) > 1 and (args.run or args.work_dir or args.json):
        parser.error("--run, --work-dir and --json go with one --dataset")
    report = []
    for dataset in datasets:
        figures = compare_dataset(args, dataset)
        if figures is None:
            return 2
        report.append(figures)
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in report[0].items() if k != "dataset"}, indent=2) + "\n")
    if args.results:
        from bench.results import write_result

        names = ", ".join(DISPLAY.get(d, d) + (" test" if d == "scifact" else "") for d in datasets)
        path = write_result("quantization", TITLE, COLUMNS, [result_row(f) for f in report], folder=args.results,
                            data=f"{args.model}, max length {args.max_length}; {names}; tolerance {args.tolerance}")
        print(f"wrote {path}")
    return 0 if all(f["pass"] and not f["score_mismatches"] for f in report) else 1


if __name__ == "__main__":
    sys.exit(main())
