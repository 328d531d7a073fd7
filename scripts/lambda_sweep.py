#!/usr/bin/env python
"""lambda_d sweep: train one model per value (same budget each), measure effectiveness, sparsity and
FLOPS, and draw effectiveness vs FLOPS (the SPLADE paper's Figure 1) to a PNG.

    python scripts/lambda_sweep.py --config sweep --lambda-d 1e-3 1e-2 1e-1 \\
        --out runs/train/sweep --dataset scifact --png runs/flops_vs_ndcg.png

Each run is ``python -m splade_anserini.train --config CONFIG --lambda-d X --output-dir OUT/ld-X``
(one at a time); its ``checkpoint-last`` is then evaluated exactly (Numba index over the x100
impacts, :mod:`splade_anserini.train.quick_eval`) on ``--dataset`` (the first one is plotted).
Finished runs and evaluations are reused, so an interrupted sweep picks up where it stopped.
The starting model is measured too and drawn as a reference point. Needs the ``train`` extra
(matplotlib).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run_one(config: str, lam: float, out: Path, extra: list[str]) -> Path:
    target = out / f"ld-{lam:g}"
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


def plot(points: list[dict], base: dict | None, dataset: str, metric: str, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    xs = [p[dataset]["flops"] for p in points]
    ys = [p[dataset][metric] for p in points]
    ax.plot(xs, ys, "o-", color="tab:blue", label="fine-tuned, λd sweep")
    for p, x, y in zip(points, xs, ys):
        ax.annotate(f"λd={p['lambda_d']:g}\n{p[dataset]['doc_nonzeros']:.0f} nnz/doc", (x, y),
                    textcoords="offset points", xytext=(6, -4), fontsize=8)
    if base is not None:
        ax.plot([base[dataset]["flops"]], [base[dataset][metric]], "s", color="tab:gray", label="splade-tiny (start)")
        ax.annotate(f"{base[dataset]['doc_nonzeros']:.0f} nnz/doc", (base[dataset]["flops"], base[dataset][metric]),
                    textcoords="offset points", xytext=(6, -4), fontsize=8)
    ax.set_xlabel("FLOPS (expected multiplications per query-document pair)")
    ax.set_ylabel(f"{dataset} {metric}")
    ax.set_title("Effectiveness vs FLOPS (SPLADE v2, Fig. 1 style)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=130)
    print(f"[sweep] wrote {png}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="training config shared by every run")
    parser.add_argument("--lambda-d", type=float, nargs="+", required=True)
    parser.add_argument("--out", default="runs/train/sweep")
    parser.add_argument("--dataset", action="append", help="evaluation datasets (default: scifact)")
    parser.add_argument("--metric", default="nDCG@10")
    parser.add_argument("--png", default="runs/flops_vs_ndcg.png")
    parser.add_argument("--no-base", action="store_true", help="do not measure the starting model")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: more training flags")
    args = parser.parse_args(argv)
    datasets = args.dataset or ["scifact"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = [a for a in args.train_args if a != "--"]
    points = []
    for lam in args.lambda_d:
        target = run_one(args.config, lam, out, extra)
        result = evaluate(str(target / "checkpoint-last"), datasets, target / "eval.json")
        end = [json.loads(line) for line in open(target / "log.jsonl") if '"type": "end"' in line][-1]
        points.append({"lambda_d": lam, "train_seconds": end["elapsed_seconds"], "steps": end["steps"], **result})
    base = None
    if not args.no_base:
        from splade_anserini.models import load_model  # noqa: F401  (fails early without the model)

        config = json.loads(json.dumps(__import__("yaml").safe_load(open(args.config)))) \
            if args.config.endswith((".yaml", ".yml")) else json.load(open(args.config))
        base = evaluate(config.get("model", "splade-tiny"), datasets, out / "eval-base.json")
    summary = {"datasets": datasets, "metric": args.metric, "points": points, "base": base}
    (out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    for p in points:
        cells = " ".join(f"{d}: {p[d][args.metric]:.4f} ({p[d]['doc_nonzeros']:.0f} nnz/doc, "
                         f"{p[d]['query_nonzeros']:.0f}/query, FLOPS {p[d]['flops']:.2f})" for d in datasets)
        print(f"lambda_d={p['lambda_d']:g} [{p['steps']} steps, {p['train_seconds'] / 60:.1f} min] {cells}")
    plot(points, base, datasets[0], args.metric, Path(args.png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
