"""Long documents: truncation at 256 and 512 tokens against passages (MaxP), on SciFact and CACM.

    python bench/maxp_table.py [--datasets scifact cacm] [--model splade-tiny]

Each configuration is a full pipeline run (encode, index, search, evaluate; no BM25) in its own work
folder under ``work/maxp/``, started under ``flock /tmp/bench.lock`` so timed runs never overlap; the
table (nDCG@10, R@100, documents or passages indexed, index size, encode time) is read back from the
runs' stamps and printed as Markdown. Encode time for passages includes splitting the corpus.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {  # label -> pipeline flags
    "truncate 256": ["--max-length", "256"],
    "truncate 512": ["--max-length", "512"],
    "passages 256, stride 128 (MaxP)": ["--max-length", "256", "--passage-length", "256", "--passage-stride", "128"],
}


def run(dataset: str, label: str, flags: list[str], model: str) -> dict:
    tag = label.split(" (")[0].replace(", ", "-").replace(" ", "")
    work = ROOT / "work" / "maxp" / f"{dataset}-{tag}"
    runs = ROOT / "runs" / "maxp" / tag
    cmd = ["flock", "/tmp/bench.lock", sys.executable, "-m", "splade_anserini.pipeline", "--dataset", dataset,
           "--model", model, "--no-bm25", "--work-dir", str(work), "--runs-dir", str(runs), *flags]
    print("$", " ".join(cmd[3:]), file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)
    stamps = {p.stem: json.loads(p.read_text()) for p in (work / "stamps").glob("*.json")}
    payload = json.loads(next(runs.glob(f"{dataset}-*.json")).read_text())
    report = stamps["index"]["report"]
    encode_s = stamps["encode"]["seconds"] + stamps.get("passages", {}).get("seconds", 0.0)
    return {"dataset": dataset, "config": label, "nDCG@10": payload["scores"]["nDCG@10"],
            "R@100": payload["scores"]["R@100"], "indexed": report["indexed"],
            "index_mib": report["size_bytes"] / 2**20, "encode_s": encode_s, "run": payload["run"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["scifact", "cacm"])
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--json", default=str(ROOT / "runs" / "maxp" / "table.json"))
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    rows = []
    for dataset in args.datasets:
        for label, flags in CONFIGS.items():
            rows.append(run(dataset, label, flags, args.model))
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    print("| dataset | documents as | nDCG@10 | R@100 | indexed | index MiB | encode s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['config']} | {r['nDCG@10']:.4f} | {r['R@100']:.4f} | {r['indexed']:,} | "
              f"{r['index_mib']:.1f} | {r['encode_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
