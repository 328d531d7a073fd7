#!/usr/bin/env python
"""lambda_d sweep: train one model per value (same budget each), measure effectiveness, sparsity and
FLOPS, and write them to ``results/lambda-sweep.json`` (``python -m bench.report`` draws effectiveness vs
FLOPS, the SPLADE paper's Figure 1, into docs/training.md).

    python scripts/lambda_sweep.py --config sweep --lambda-d 1e-3 1e-2 1e-1 \\
        --out runs/train/sweep --dataset scifact

Each run is ``python -m splade_anserini.train --config CONFIG --lambda-d X --output-dir OUT/ld-X``
(one at a time; with ``--seed N``, given once per seed, ``--seed N --output-dir OUT/ld-X-sN``, and the
table has a row per seed and each value's mean, nDCG@10 with its spread (max - min) in brackets); its ``checkpoint-last`` is then evaluated exactly (Numba index over the x100
impacts, :mod:`splade_anserini.train.quick_eval`) on ``--dataset`` (the first one is plotted).
Finished runs and evaluations are reused, so an interrupted sweep picks up where it stopped.
The starting model is measured too, as a reference row.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run_one(config: str, lam: float, out: Path, extra: list[str], seed: int | None = None) -> Path:
    target = out / (f"ld-{lam:g}" if seed is None else f"ld-{lam:g}-s{seed}")
    extra = extra if seed is None else [*extra, "--seed", str(seed)]
    if (target / "checkpoint-last").is_dir() and any(
            json.loads(line).get("type") == "end" for line in open(target / "log.jsonl")):
        print(f"[sweep] lambda_d={lam:g}: reusing {target}", file=sys.stderr)
        return target
    cmd = [sys.executable, "-m", "splade_anserini.train", "--config", config, "--lambda-d", f"{lam:g}",
           "--output-dir", str(target), "--progress", "false", *extra]
    cmd += ["--resume"] if (target / "checkpoint-last").is_dir() else ["--overwrite"]
    print("[sweep] " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return target


def evaluate(model: str, datasets: list[str], cache: Path) -> dict:
    if cache.is_file():
        return json.loads(cache.read_text())
    from splade_anserini.train.quick_eval import evaluate_checkpoint

    result = evaluate_checkpoint(model, datasets, progress=True)
    cache.write_text(json.dumps(result, indent=2) + "\n")
    return result


_SHOWN = {"scifact": "SciFact", "cacm": "CACM"}


def result_rows(points: list[dict], base: dict | None, datasets: list[str], metric: str) -> tuple[list, list]:
    """Columns and rows of ``results/lambda-sweep.json`` (the first dataset in detail, the others in brief);
    points with a ``seed`` get a row each (``1e-3 (seed 43)``) and one row of their mean per value."""
    first, *others = datasets
    name = lambda d: _SHOWN.get(d, d)  # noqa: E731
    columns = ["λd", "train time", f"{name(first)} {metric}", "doc nnz", "query nnz", "FLOPS"]
    columns += [c for d in others for c in (f"{name(d)} {metric}", f"{name(d)} FLOPS")]

    def cells(label: str, minutes: str, result: dict, spread: dict | None = None) -> list[str]:
        def score(d: str) -> str:
            return f"{result[d][metric]:.4f}" + (f" ({spread[d]:.4f})" if spread else "")

        r = result[first]
        row = [label, minutes, score(first), f"{r['doc_nonzeros']:.0f}", f"{r['query_nonzeros']:.0f}",
               f"{r['flops']:.2f}"]
        return row + [c for d in others for c in (score(d), f"{result[d]['flops']:.2f}")]

    rows = [cells("splade-tiny, untuned", "-", base)] if base else []
    for lam in dict.fromkeys(p["lambda_d"] for p in points):
        group = [p for p in points if p["lambda_d"] == lam]
        for p in group:
            label = f"{lam:g}" if p.get("seed") is None else f"{lam:g} (seed {p['seed']})"
            rows.append(cells(label, f"{p['train_seconds'] / 60:.1f} min", p))
        if len(group) > 1:
            mean = {d: {k: sum(p[d][k] for p in group) / len(group) for k in (metric, "doc_nonzeros",
                                                                             "query_nonzeros", "flops")}
                    for d in datasets}
            spread = {d: max(p[d][metric] for p in group) - min(p[d][metric] for p in group) for d in datasets}
            minutes = sum(p["train_seconds"] for p in group) / len(group) / 60
            rows.append(cells(f"{lam:g}", f"{minutes:.1f} min (mean)", mean, spread))
    return columns, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="training config shared by every run")
    parser.add_argument("--lambda-d", type=float, nargs="+", required=True)
    parser.add_argument("--out", default="runs/train/sweep")
    parser.add_argument("--dataset", action="append", help="evaluation datasets (default: scifact)")
    parser.add_argument("--metric", default="nDCG@10")
    parser.add_argument("--results", default="results", help="folder of lambda-sweep.json (render: python -m bench.report)")
    parser.add_argument("--no-base", action="store_true", help="do not measure the starting model")
    parser.add_argument("--conditions", help="what else ran while the trainings were timed (shown with the table)")
    parser.add_argument("--seed", type=int, action="append",
                        help="train each value with this seed (give it once per seed; default: the config's)")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: more training flags")
    args = parser.parse_args(argv)
    datasets = args.dataset or ["scifact"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = [a for a in args.train_args if a != "--"]
    points = []
    for lam in args.lambda_d:
        for seed in args.seed or [None]:
            target = run_one(args.config, lam, out, extra, seed)
            result = evaluate(str(target / "checkpoint-last"), datasets, target / "eval.json")
            end = [json.loads(line) for line in open(target / "log.jsonl") if '"type": "end"' in line][-1]
            points.append({"lambda_d": lam, "seed": seed, "train_seconds": end["elapsed_seconds"],
                           "steps": end["steps"], **result})
    base = None
    if not args.no_base:
        from splade_anserini.models import load_model  # noqa: F401  (fails early without the model)

        from splade_anserini.train.config import load_config_file

        config = load_config_file(args.config)
        base = evaluate(config.get("model", "splade-tiny"), datasets, out / "eval-base.json")
    summary = {"datasets": datasets, "metric": args.metric, "points": points, "base": base}
    (out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    for p in points:
        cells = " ".join(f"{d}: {p[d][args.metric]:.4f} ({p[d]['doc_nonzeros']:.0f} nnz/doc, "
                         f"{p[d]['query_nonzeros']:.0f}/query, FLOPS {p[d]['flops']:.2f})" for d in datasets)
        seed = "" if p["seed"] is None else f" seed {p['seed']}"
        print(f"lambda_d={p['lambda_d']:g}{seed} [{p['steps']} steps, {p['train_seconds'] / 60:.1f} min] {cells}")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.results import write_result

    columns, rows = result_rows(points, base, datasets, args.metric)
    path = write_result("lambda-sweep", "Document regularization weight: effectiveness against FLOPS", columns, rows,
                        folder=args.results, data=f"evaluated on {', '.join(datasets)}; checkpoint-last of each run",
                        **({"conditions": args.conditions} if args.conditions else {}))
    print(f"[sweep] wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
