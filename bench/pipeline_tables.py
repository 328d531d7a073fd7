"""Write the tables made of ``splade-anserini pipeline`` runs: ``effectiveness``, ``fusion``, ``sparsity``,
``stage-times`` (splade-tiny) and ``recipe-lucene`` (the recipe's two seeds), from the ``runs/<dataset>-<model>.json``
files the pipeline writes (its figures, its stages' seconds) and its run files.

    splade-anserini pipeline --fusion --force [--dataset cacm]
    splade-anserini pipeline --model runs/train/seeds/hybrid-lwf/checkpoint-best --fusion [--dataset cacm]
    splade-anserini pipeline --model runs/train/seeds/hybrid-lwf-s43/checkpoint-best --fusion [--dataset cacm]
    python -m bench.pipeline_tables

Nothing is searched again here, except the reciprocal rank fusion of the splade-tiny and BM25 runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench.results import ROOT, write_result
from splade_anserini.pipeline_run import slug

DATASETS = {"scifact": "SciFact", "cacm": "CACM"}
MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")
UNTUNED = "splade-tiny"
#: the recipe (configs/scifact.yaml = recipe-seeds' hybrid-lwf) under its two seeds: the checkpoints of
#: `python scripts/frontier.py --spec recipe-seeds`
SEEDS = {"seed 42": "runs/train/seeds/hybrid-lwf/checkpoint-best", "seed 43": "runs/train/seeds/hybrid-lwf-s43/checkpoint-best"}
#: the pipeline runs these tables are read from (bench.reproduce runs them first; each skips what is up to date)
PIPELINES = tuple(
    f"splade-anserini pipeline {flags}{cacm}"
    for flags in ("--fusion --force", *(f"--model {checkpoint} --fusion" for checkpoint in SEEDS.values()))
    for cacm in ("", " --dataset cacm"))
COMMAND = "python -m bench.pipeline_tables"
DATA = ("SciFact test (5,183 documents, 300 queries), CACM (3,204 documents, 52 judged queries); max length 256, "
        "impacts x100, Anserini impact index, Pyserini LuceneImpactSearcher, 1000 hits")


class PipelineRuns:
    """The pipeline's figures of each (dataset, model slug), read from ``runs_dir``."""

    def __init__(self, runs_dir: str | Path) -> None:
        self.runs_dir = Path(runs_dir)

    def get(self, dataset: str, slug: str) -> dict:
        path = self.runs_dir / f"{dataset}-{slug}.json"
        if not path.is_file():
            raise SystemExit(f"error: {path}: missing; run `splade-anserini pipeline` for it first (see this module's help)")
        return json.loads(path.read_text(encoding="utf-8"))

    def scores(self, dataset: str, slug: str, part: str | None = None) -> dict[str, float]:
        record = self.get(dataset, slug)
        if part is None:
            return record["scores"]
        if part not in record:
            raise SystemExit(f"error: {self.runs_dir / f'{dataset}-{slug}.json'}: no {part} run (pipeline --fusion)")
        return record[part]["scores"]


def _four(scores: dict[str, float]) -> list[str]:
    return [f"{scores[m]:.4f}" for m in MEASURES]


def validated_alpha() -> float:
    """The interpolation weight validation chose for the recipe: the best alpha of the truncated row of
    ``results/heldout-fusion.json`` (the recipe's held-out training queries; never a test set)."""
    record = json.loads((ROOT / "results" / "heldout-fusion.json").read_text(encoding="utf-8"))
    row = next(r for r in record["rows"] if "truncated" in r[0])
    alphas = {float(c.split()[1]): float(v) for c, v in zip(record["columns"], row) if c.startswith("alpha ")}
    return max(alphas, key=lambda a: (alphas[a], -abs(a - 0.5)))


def fused_scores(runs: "PipelineRuns", dataset: str, name: str, method: str, alpha: float | None = None) -> dict:
    """The pipeline's SPLADE and BM25 runs of ``dataset`` fused here (``fuse``), scored on its qrels."""
    from splade_anserini.conversion.trec import read_ranked
    from splade_anserini.data import read_qrels
    from splade_anserini.evaluate.measures import evaluate_run
    from splade_anserini.search.fusion import fuse

    record = runs.get(dataset, name)
    pair = [read_ranked(ROOT / record["run"]), read_ranked(ROOT / record["bm25"]["run"])]
    fused = fuse(pair, method, alpha=alpha)
    return evaluate_run(read_qrels(record["qrels"]), {q: dict(h) for q, h in fused.items()}, list(MEASURES)).scores


def effectiveness(runs: PipelineRuns) -> list[list[str]]:
    recipe = slug(SEEDS["seed 42"])
    rows = [("splade-tiny, Lucene impact index, LuceneImpactSearcher + SpladeQueryEncoder", UNTUNED, None),
            ("BM25, Pyserini LuceneSearcher (k1=0.9 b=0.4, title+text flat)", UNTUNED, "bm25"),
            ("hybrid: splade-tiny + BM25, interpolation alpha 0.5", UNTUNED, "hybrid"),
            ("splade-tiny fine-tuned with scifact.yaml (the recipe), Lucene", recipe, None),
            ("hybrid: the recipe + BM25, interpolation alpha 0.5", recipe, "hybrid")]
    out = [[label] + [v for d in DATASETS for v in _four(runs.scores(d, name, part))] for label, name, part in rows]
    alpha = validated_alpha()
    out.append([f"hybrid chosen on validation: the recipe + BM25, alpha {alpha}"]
               + [v for d in DATASETS for v in _four(fused_scores(runs, d, recipe, "interpolation", alpha))])
    return out


def recipe_lucene(runs: PipelineRuns) -> list[list[str]]:
    def row(label: str, figures: dict[str, list[float]]) -> list[str]:
        cells = [label]
        for key in ("scifact", "cacm", "scifact-hybrid", "cacm-hybrid"):
            values = figures[key]
            mean = statistics.fmean(values)
            cells.append(f"{mean:.4f}" + (f" ({max(values) - min(values):.4f})" if len(values) > 1 else ""))
        nnz, flops = (statistics.fmean(v) for v in (figures["nnz"], figures["flops"]))
        cells.append(f"{nnz:.0f} / {flops:.2f}")
        return cells

    def figures(slugs: list[str]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for name in slugs:
            for d in DATASETS:
                out.setdefault(d, []).append(runs.scores(d, name)["nDCG@10"])
                out.setdefault(f"{d}-hybrid", []).append(runs.scores(d, name, "hybrid")["nDCG@10"])
            stats = runs.get("scifact", name)["stats"]
            out.setdefault("nnz", []).append(stats["avg_doc_nonzeros"])
            out.setdefault("flops", []).append(stats["flops"])
        return out

    rows = [row("untuned splade-tiny", figures([UNTUNED]))]
    rows += [row(f"the recipe, {seed}", figures([slug(checkpoint)])) for seed, checkpoint in SEEDS.items()]
    rows.append(row("the recipe, mean of 2 seeds (spread)", figures([slug(c) for c in SEEDS.values()])))
    return rows


def fusion(runs: PipelineRuns) -> list[list[str]]:
    rows = []
    for d, name in DATASETS.items():
        record = runs.get(d, UNTUNED)
        hybrid, rrf = record["hybrid"]["scores"], fused_scores(runs, d, UNTUNED, "rrf")
        rows.append([f"{name} test" if d == "scifact" else name, f"{record['scores']['nDCG@10']:.4f}",
                     f"{record['bm25']['scores']['nDCG@10']:.4f}",
                     f"{hybrid['nDCG@10']:.4f} (R@1000 {hybrid['R@1000']:.4f})", f"{rrf['nDCG@10']:.4f}"])
    return rows


def sparsity(runs: PipelineRuns) -> list[list[str]]:
    stats = {d: runs.get(d, UNTUNED)["stats"] for d in DATASETS}
    return [["non-zeros per document"] + [f"{s['avg_doc_nonzeros']:.1f} ({s['doc_vocabulary']:,} distinct terms)"
                                          for s in stats.values()],
            ["non-zeros per query"] + [f"{s['avg_query_nonzeros']:.1f}" for s in stats.values()],
            ["FLOPS = sum_j p_j(q) p_j(d)"] + [f"{s['flops']:.2f}" for s in stats.values()]]


def stage_times(runs: PipelineRuns) -> list[list[str]]:
    stages = {d: {s["name"]: s for s in runs.get(d, UNTUNED)["stages"]} for d in DATASETS}
    rows = []
    for name in ("encode", "index", "search", "evaluate", "bm25", "fusion"):
        cells = [name]
        for d in DATASETS:
            stage = stages[d].get(name)
            if stage is None:
                cells.append("")
                continue
            if stage.get("reused"):
                raise SystemExit(f"error: {runs.runs_dir / f'{d}-{UNTUNED}.json'}: stage {name} was reused, "
                                 "not timed: run the pipeline with --force")
            note = f" ({stage['note']})" if stage.get("note") else ""
            cells.append(f"{stage['seconds']:.1f} s{note}")
        rows.append(cells)
    rows.append(["total"] + [f"{sum(s['seconds'] for s in stages[d].values()):.1f} s" for d in DATASETS])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"), help="the pipeline's --runs-dir (default runs)")
    args = parser.parse_args(argv)
    runs = PipelineRuns(args.runs_dir)
    per_dataset = [f"{DATASETS[d]} {m}" for d in DATASETS for m in MEASURES]
    tables = [  # name, title, columns, rows, extra fields
        ("effectiveness", "Effectiveness of the full Lucene pipeline", ["system", *per_dataset],
         effectiveness(runs), {}),
        ("recipe-lucene", "The recipe through the full Lucene pipeline, two seeds",
         ["model", "SciFact test nDCG@10", "CACM nDCG@10", "SciFact + BM25 (alpha 0.5)", "CACM + BM25 (alpha 0.5)",
          "SciFact doc non-zeros / FLOPS"], recipe_lucene(runs),
         {"notes": ["the recipe: splade_anserini/configs/scifact.yaml (seed 42) and its seed 43 twin, the checkpoints "
                    "of `python scripts/frontier.py --spec recipe-seeds`",
                    "mean row: the mean of the two seeds, the spread (max - min) in brackets"]}),
        ("fusion", "Hybrid BM25 + SPLADE runs (nDCG@10)",
         ["dataset", "splade-tiny", "BM25", "hybrid, interpolation alpha 0.5 (default)", "hybrid, RRF k=60"],
         fusion(runs), {}),
        ("sparsity", "Sparsity and FLOPS of splade-tiny", ["", *DATASETS.values()], sparsity(runs), {}),
        ("stage-times", "Pipeline stage times", ["stage", *DATASETS.values()], stage_times(runs),
         {"conditions": "splade-tiny, `pipeline --fusion --force`; times include JVM start-up and model loading"}),
    ]
    for name, title, columns, rows, extra in tables:
        path = write_result(name, title, columns, rows, data=DATA, command=[*PIPELINES, COMMAND], **extra)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
