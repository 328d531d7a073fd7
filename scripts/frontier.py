#!/usr/bin/env python
"""The fine-tuning frontier: train one model per setting (one at a time), measure it, write results/frontier.json.

    python scripts/frontier.py --spec frontier [--only NAME ...] [--results results]

The spec names a base config and a list of settings (``name``, ``flags``: config overrides). Each
setting is ``python -m splade_anserini.train --config BASE --flag value ... --output-dir OUT/NAME``;
its ``checkpoint-best`` (the best held-out nDCG@10) is then scored exactly
(:mod:`splade_anserini.train.quick_eval`, Numba over the x100 impacts: the Lucene figures) on the
spec's datasets. Finished runs and evaluations are reused, so an interrupted frontier continues.

Selection uses validation data only: the held-out training queries (``valid`` column, from the run's
log) and the out-of-domain validation set (the spec's ``ood`` dataset, msmarco-dl19-subset by
default). The test sets (SciFact test, CACM) are measured for the table and the plot, never ranked on.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _finished(target: Path) -> bool:
    log = target / "log.jsonl"
    return log.is_file() and any(json.loads(line).get("type") == "end" for line in open(log) if line.strip())


def train_one(base: str, name: str, flags: dict, out: Path) -> Path:
    target = out / name
    if _finished(target):
        print(f"[frontier] {name}: reusing {target}", file=sys.stderr)
        return target
    cmd = [sys.executable, "-m", "splade_anserini.train", "--config", base, "--output-dir", str(target)]
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        cmd += [flag, str(value).lower() if isinstance(value, bool) else str(value)]
    cmd += ["--resume"] if (target / "checkpoint-last").is_dir() else ["--overwrite"]
    print("[frontier] " + " ".join(cmd), file=sys.stderr, flush=True)
    start = time.time()
    subprocess.run(cmd, check=True)
    (target / "wall_seconds.txt").write_text(f"{time.time() - start:.1f}\n")
    return target


def _evaluated(cache: Path, datasets: list[str]) -> bool:
    return cache.is_file() and set(datasets) <= set(json.loads(cache.read_text()))


def run_summary(target: Path) -> dict:
    records = [json.loads(line) for line in open(target / "log.jsonl") if line.strip()]
    end = next(r for r in reversed(records) if r["type"] == "end")
    valid = [r for r in records if r["type"] == "valid"]
    best = max(valid, key=lambda r: r["nDCG@10"]) if valid else None
    wall = target / "wall_seconds.txt"
    return {"steps": end["steps"], "best_step": end.get("best_step"), "elapsed": end.get("elapsed_seconds"),
            "wall": float(wall.read_text()) if wall.is_file() else None,
            "valid_ndcg": best["nDCG@10"] if best else None, "valid_start": valid[0]["nDCG@10"] if valid else None}


def untuned_summary(target: Path) -> dict | None:
    """The held-out validation before the first step of ``target`` (the untuned model), if run."""
    if not _finished(target):
        return None
    records = [json.loads(line) for line in open(target / "log.jsonl") if line.strip()]
    start = next((r for r in records if r["type"] == "valid" and r["step"] == 0), None)
    return None if start is None else {"best_step": 0, "wall": None, "valid_ndcg": start["nDCG@10"]}


def evaluate(model: str, datasets: list[str], cache: Path) -> dict:
    """Exact scores of ``model`` per dataset, cached in ``cache`` one dataset at a time."""
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    for name in datasets:
        if Path(name).name in done:
            continue
        from splade_anserini.train.quick_eval import evaluate_checkpoint

        done.update(evaluate_checkpoint(model, [name], progress=True))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(done, indent=2) + "\n")
    return done


COLUMNS = ("setting", "flags", "train min", "best step", "held-out nDCG@10 (valid)", "{ood} nDCG@10 (valid)",
           "SciFact test nDCG@10", "CACM nDCG@10", "SciFact doc nnz", "SciFact FLOPS")


def _figures(r: dict, ood: str) -> list[float | None]:
    """The numeric columns of one setting: train min, best step, valid, ood, SciFact, CACM, nnz, FLOPS."""
    e, run = r["eval"], r.get("run") or {}
    return [run["wall"] / 60 if run.get("wall") else None, run.get("best_step"), run.get("valid_ndcg"),
            e[ood]["nDCG@10"], e["scifact"]["nDCG@10"], e["cacm"]["nDCG@10"], e["scifact"]["doc_nonzeros"],
            e["scifact"]["flops"]]


_FORMATS = ("{:.1f}", "{}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.0f}", "{:.2f}")


def _cells(values: list[float | None], spreads: list[float] | None = None) -> list[str]:
    cells = []
    for i, (fmt, v) in enumerate(zip(_FORMATS, values)):
        cell = "-" if v is None else fmt.format(v)
        if spreads is not None and v is not None and fmt == "{:.4f}":
            cell += f" ({spreads[i]:.4f})"
        cells.append(cell)
    return cells


def _flags_text(flags: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in flags.items()) or "-"


def seed_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """Settings whose flags differ in the seed only, under the first one's name (two or more seeds)."""
    groups: dict[str, list[dict]] = {}
    by_flags: dict[str, str] = {}
    for r in rows:
        key = _flags_text({k: v for k, v in r["flags"].items() if k != "seed"})
        if "seed" in r["flags"]:
            groups.setdefault(by_flags.setdefault(key, r["name"]), []).append(r)
    return {name: group for name, group in groups.items() if len(group) > 1}


def result_rows(rows: list[dict], ood: str) -> list[list[str]]:
    """One row of the results file per setting (the columns of :data:`COLUMNS`), then one per group of
    seeds: the mean of each figure, nDCG@10 with its spread (max - min) in brackets."""
    out = [[r["name"], _flags_text(r["flags"]), *_cells(_figures(r, ood))] for r in rows]
    for name, group in seed_groups(rows).items():
        figures = [_figures(r, ood) for r in group]
        columns = list(zip(*figures))
        means = [None if None in col else sum(col) / len(col) for col in columns]
        means[1] = None  # a mean best step says nothing
        spreads = [0.0 if None in col else max(col) - min(col) for col in columns]
        seeds = ", ".join(str(r["flags"]["seed"]) for r in group)
        out.append([f"{name} ({len(group)} seeds)", f"seeds {seeds}: mean (spread)", *_cells(means, spreads)])
    return out


def write_results(rows: list[dict], ood: str, folder: Path, name: str = "frontier",
                  title: str = "The fine-tuning frontier") -> Path:
    """``folder/NAME.json``: a table (and the plot) of docs/training.md (``python -m bench.report``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.results import write_result

    short = ood.removeprefix("msmarco-").removesuffix("-subset")
    return write_result(name, title, [c.format(ood=short) for c in COLUMNS],
                        result_rows(rows, ood), folder=folder,
                        data=f"SciFact train (held-out queries for validation); validation: held-out queries and {ood}; "
                             "test: SciFact test, CACM")


def main(argv: list[str] | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--only", nargs="*", help="train/evaluate only these settings (the table has all finished ones)")
    parser.add_argument("--results", default="results",
                        help="folder of the results file (frontier.json, or the spec's results: name)")
    parser.add_argument("--no-train", action="store_true", help="evaluate and tabulate what is finished")
    parser.add_argument("--no-eval", action="store_true", help="train only (evaluate in another call)")
    args = parser.parse_args(argv)
    from splade_anserini.train.config import find_config

    spec = yaml.safe_load(find_config(args.spec).read_text())
    out = Path(spec.get("output_dir", "runs/train/frontier"))
    ood = spec.get("ood", "msmarco-dl19-subset")
    datasets = [ood, "scifact", "cacm"]
    untuned = spec.get("untuned", True)  # a spec may leave the starting model's row to the frontier's table
    if untuned and not args.no_train and not args.only:
        # the starting model on the held-out queries: one step with a validation before it
        train_one(spec["base"], "untuned-valid", {"max_steps": 1, "valid_at_start": True}, out)
    rows = [] if args.no_eval or not untuned else [
        {"name": "untuned", "flags": {}, "run": untuned_summary(out / "untuned-valid"),
         "eval": evaluate(spec.get("model", "splade-tiny"), datasets, out / "untuned" / "eval.json")}]
    names = [s["name"] for s in spec["settings"]]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f"--only: no setting named {', '.join(unknown)} in {args.spec}")
    first = {n: i for i, n in enumerate(args.only or ())}  # --only's order first (two calls can share the work)
    for setting in sorted(spec["settings"], key=lambda s: first.get(s["name"], len(first))):
        name, flags = setting["name"], setting.get("flags", {}) or {}
        target = out / name
        mine = not args.only or name in args.only
        if mine and not args.no_train:
            train_one(spec["base"], name, flags, out)
        if not _finished(target) or args.no_eval:
            continue
        if not mine and not _evaluated(target / "eval.json", datasets):
            continue  # another call's setting: tabulated once that call has scored it
        rows.append({"name": name, "flags": flags, "run": run_summary(target),
                     "eval": evaluate(str(target / "checkpoint-best"), datasets, target / "eval.json")})
    rows.sort(key=lambda r: names.index(r["name"]) if r["name"] in names else -1)
    if args.no_eval:
        return 0
    for row in result_rows(rows, ood):
        print(" | ".join(row))
    written = write_results(rows, ood, Path(args.results), spec.get("results", "frontier"),
                            spec.get("title", "The fine-tuning frontier"))
    print(f"[frontier] wrote {written}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
