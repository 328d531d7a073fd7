"""Fidelity of ONNX query encoding (fp32, int8, and Anserini's Java-side encoder) to the PyTorch encoder.

    python -m bench.onnx_fidelity [--datasets scifact,cacm] [--export work/exports/splade-tiny]
        [--export-int8 work/exports/splade-tiny-int8-dynamic] [--json runs/onnx-fidelity.json] [--results results]

For each dataset (its Lucene index from the pipeline, ``work/<dataset>-splade-tiny/index``, x100)
the topics are encoded by: our PyTorch encoder (the reference), ONNX Runtime on the fp32 and int8
exports, and Anserini's Java ONNX encoder running the fp32 export inside the JVM. The int8 export is the
former ``export-onnx --int8`` graph (ONNX Runtime's dynamic quantization of every MatMul of the fp32
export's ``model.onnx``, no screened query graph), derived from ``--export`` into ``--export-int8`` when
that folder does not exist (``export-onnx --int8`` now writes the exact fp32 export). Reported:
the share of (query, term) integer impacts identical to PyTorch's (over terms non-zero on either
side) and within one, the largest difference, nDCG@10 of the top-1000 Lucene run, and the share of
queries with the same top 10 as the PyTorch run. Not a timing benchmark. The table goes to
``results/onnx-fidelity.json`` (``--results`` chooses the folder, ``--results ''`` writes none); every
figure to ``--json``. ``--queries N`` takes the first N topics of each dataset (a quick check).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DATASETS = {"scifact": ("queries.test.tsv", "qrels.test.txt"), "cacm": ("queries.tsv", "qrels.txt")}
DISPLAY = {"scifact": "SciFact test", "cacm": "CACM"}
ENCODERS = {"pytorch": "PyTorch (reference)", "onnx-fp32": "ONNX fp32", "onnx-int8": "ONNX int8",
            "java-onnx-fp32": "Java-side ONNX fp32 (Anserini)"}
TITLE = "ONNX export fidelity against the PyTorch encoder"
COLUMNS = ["topics", "encoder", "impacts identical to PyTorch", "differences", "nDCG@10", "same top 10 as PyTorch"]


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
    p.add_argument("--export-int8", default="work/exports/splade-tiny-int8-dynamic",
                   help="int8 export (derived from --export as the former --int8 graph when missing)")
    p.add_argument("--hits", type=int, default=1000)
    p.add_argument("--queries", type=int, default=0, help="first N topics of each dataset only (0: all)")
    p.add_argument("--json", default="runs/onnx-fidelity.json")
    p.add_argument("--results", default="results", help="folder of onnx-fidelity.json ('' = none)")
    return p


def former_int8_export(fp32: Path, out: Path) -> Path:
    """``out``: the export ``export-onnx --int8`` used to write (``model.onnx`` of ``fp32`` quantized
    dynamically, MatMuls only; no screened query graph), made once under a temporary name."""
    import shutil
    import tempfile

    from splade_anserini.serve.onnx_graph import quantize_int8

    if out.is_dir():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            shutil.copy2(fp32 / name, tmp / name)
        meta = json.loads((fp32 / "splade_onnx.json").read_text(encoding="utf-8"))
        meta.update(quantization="int8", query_graph=False)
        (tmp / "splade_onnx.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        quantize_int8(fp32 / "model.onnx", tmp / "model.onnx")
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out} (the former --int8 graph of {fp32})", file=sys.stderr)
    return out


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


def _pct(share: float, spec: str) -> str:
    return "100%" if share == 1 else format(share, spec)


def table_rows(dataset: str, n_topics: int, rows: dict[str, dict]) -> list[list[str]]:
    """The dataset's rows of ``results/onnx-fidelity.json`` (the topics named on its first row)."""
    out = []
    reference = rows["pytorch"]["nDCG@10"]
    for name, r in rows.items():
        if name == "java-vs-onnx-fp32":
            continue
        ident, diffs, top10 = "-", "-", "-"
        if name != "pytorch":
            exact = r["within_one"] < 1  # differences beyond one: the share within one says more
            ident = _pct(r["identical"], ".2%" if exact else ".4%")
            if name != "java-onnx-fp32":
                ident += f" of {r['pairs']:,}" + (f" ({_pct(r['within_one'], '.1%')} within 1)" if exact else "")
            diffs = {0: "none", 1: "off by one only"}.get(r["max_diff"], f"up to {r['max_diff']}")
            top10 = _pct(r["same_top10"], ".1%")
        ndcg = f"{r['nDCG@10']:.4f}"
        if name == "onnx-int8":
            delta = r["nDCG@10"] - reference
            ndcg += f" ({'0.0000' if round(delta, 4) == 0 else format(delta, '+.4f')})"
        out.append(["" if out else f"{DISPLAY.get(dataset, dataset)} ({n_topics})", ENCODERS[name], ident, diffs,
                    ndcg, top10])
    return out


def write_table(args, table: list[list[str]], sizes: dict[str, int]) -> None:
    """``results/onnx-fidelity.json``."""
    from bench.results import write_result

    topics = ", ".join(f"{DISPLAY.get(d, d)} ({n} queries)" for d, n in sizes.items())
    path = write_result("onnx-fidelity", TITLE, COLUMNS, table, folder=args.results,
                        data=f"{topics}; splade-tiny, x100 Lucene indexes of the pipeline, top {args.hits}")
    print(f"wrote {path}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    from splade_anserini.data import read_qrels, read_topics
    from splade_anserini.serve.java_encoder import java_searcher
    from splade_anserini.search.query_encoder import QueryVectorizer

    encoders = {"pytorch": QueryVectorizer("splade-tiny"), "onnx-fp32": QueryVectorizer(args.export),
                "onnx-int8": QueryVectorizer(str(former_int8_export(Path(args.export), Path(args.export_int8))))}
    report, table, sizes = {}, [], {}
    java = None
    for dataset in args.datasets.split(","):
        topics_file, qrels_file = DATASETS[dataset]
        topics = read_topics(Path(args.data_dir) / dataset / topics_file)
        topics = dict(list(topics.items())[:args.queries]) if args.queries else topics
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
        table += table_rows(dataset, len(topics), rows)
        sizes[dataset] = len(topics)
    java.close()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.results:
        write_table(args, table, sizes)
    return 0

if __name__ == "__main__":
    sys.exit(main())
