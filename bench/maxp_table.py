"""Long documents: truncation at 256 and 512 tokens against passages (MaxP), on SciFact and CACM.

    python -m bench.maxp_table [--datasets scifact cacm] [--model splade-tiny] [--parallel] [--results results]

Each configuration is a full pipeline run (encode, index, search, evaluate; no BM25). Truncation at 256
uses the pipeline's default work folder (``work/<dataset>-<model>``, reused when up to date); the others
get their own under ``work/maxp/``. The table gives nDCG@10, R@100, the sequences indexed, the index
size, the WordPiece tokens encoded (the encoding cost, independent of the machine's load) and the
encode wall time (passages: splitting included). Runs go one after the other under
``flock /tmp/bench.lock`` so timed runs never overlap; ``--parallel`` runs the configurations at once
without the lock (for a loaded machine) and leaves the wall time out. The table without the wall time goes
to ``results/maxp-full.json`` (``--results`` chooses the folder, ``--results ''`` writes none);
``--work-dir``/``--runs-dir`` move the work and run folders (default ``work/``, ``runs/``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {  # label -> (work folder tag, pipeline flags)
    "truncate 256": ("", ["--max-length", "256"]),
    "truncate 512": ("truncate512", ["--max-length", "512"]),
    "passages 256, stride 128 (MaxP)": ("p256s128", ["--max-length", "256", "--passage-length", "256",
                                                     "--passage-stride", "128"]),
}


DISPLAY = {"scifact": "SciFact", "cacm": "CACM", "msmarco-dl19-subset": "MS MARCO DL19 subset"}
COLUMNS = ["collection", "documents as", "nDCG@10", "R@100", "sequences indexed", "index MiB", "tokens encoded"]


def command(dataset: str, tag: str, flags: list[str], model: str, lock: bool, work_root: Path = ROOT / "work",
            runs_root: Path = ROOT / "runs") -> tuple[list[str], Path, Path]:
    from splade_anserini.pipeline import slug

    work = work_root / (f"maxp/{dataset}-{tag}" if tag else f"{dataset}-{slug(model)}")
    runs = runs_root / "maxp" / (tag or "truncate256")
    cmd = ([ "flock", "/tmp/bench.lock"] if lock else []) + [
        sys.executable, "-m", "splade_anserini.pipeline", "--dataset", dataset, "--model", model, "--no-bm25",
        "--work-dir", str(work), "--runs-dir", str(runs), *flags]
    return cmd, work, runs


def tokens_encoded(corpus: Path, model: str, max_length: int) -> int:
    from transformers import AutoTokenizer

    from splade_anserini.data import read_corpus
    from splade_anserini.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(model))
    texts = [d.text for d in read_corpus(corpus)]
    total = 0
    for i in range(0, len(texts), 1000):
        ids = tok(texts[i:i + 1000], truncation=True, max_length=max_length, return_attention_mask=False)["input_ids"]
        total += sum(len(x) for x in ids)
    return total


def row(dataset: str, label: str, work: Path, runs: Path, model: str, max_length: int) -> dict:
    stamps = {p.stem: json.loads(p.read_text()) for p in (work / "stamps").glob("*.json")}
    payload = json.loads(next(runs.glob(f"{dataset}-*.json")).read_text())
    report = stamps["index"]["report"]
    corpus = work / "passages.jsonl" if (work / "passages.jsonl").is_file() else Path(payload["corpus"])
    return {"dataset": dataset, "config": label, "nDCG@10": payload["scores"]["nDCG@10"],
            "R@100": payload["scores"]["R@100"], "indexed": report["indexed"],
            "index_mib": report["size_bytes"] / 2**20, "tokens": tokens_encoded(corpus, model, max_length),
            "encode_s": stamps["encode"]["seconds"] + stamps.get("passages", {}).get("seconds", 0.0),
            "topics": payload["stats"]["queries"], "run": payload["run"]}


def write_table(rows: list[dict], datasets: list[str], model: str, folder: str) -> None:
    """``results/maxp-full.json``: the table without the wall time (the collection named on its first row)."""
    from bench.results import write_result

    table, described = [], []
    for dataset in datasets:
        mine = [r for r in rows if r["dataset"] == dataset]
        name = DISPLAY.get(dataset, dataset)
        described.append(f"{name}, all {mine[0]['indexed']:,} documents, {mine[0]['topics']} test topics")
        for i, r in enumerate(mine):
            table.append([f"{name}, full, {r['topics']} topics" if i == 0 else "", r["config"], f"{r['nDCG@10']:.4f}",
                          f"{r['R@100']:.4f}", f"{r['indexed']:,}", f"{r['index_mib']:.1f}", f"{r['tokens'] / 1e6:.2f} M"])
    title = "Truncation against passages (MaxP) on full " + " and ".join(DISPLAY.get(d, d) for d in datasets)
    path = write_result("maxp-full", title, COLUMNS, table, folder=folder, data=f"{'; '.join(described)}; {model}")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["scifact", "cacm"])
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--parallel", action="store_true", help="run the configurations at once, without the bench lock")
    p.add_argument("--json", default=None, help="every figure (default RUNS_DIR/maxp/table.json)")
    p.add_argument("--results", default="results", help="folder of maxp-full.json ('' = none)")
    p.add_argument("--work-dir", type=Path, default=ROOT / "work", help="root of the work folders (default work/)")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs", help="root of the run folders (default runs/)")
    args = p.parse_args(argv)
    args.json = args.json or str(args.runs_dir / "maxp" / "table.json")
    rows = []
    for dataset in args.datasets:
        jobs = []
        for label, (tag, flags) in CONFIGS.items():
            cmd, work, runs = command(dataset, tag, flags, args.model, not args.parallel, args.work_dir.resolve(),
                                      args.runs_dir.resolve())
            print("$", " ".join(cmd), file=sys.stderr, flush=True)
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sys.stderr)
            if not args.parallel:
                proc.wait()
            jobs.append((label, proc, work, runs, int(flags[flags.index("--max-length") + 1])))
        for label, proc, work, runs, max_length in jobs:
            if proc.wait() != 0:
                raise SystemExit(f"error: {dataset} / {label}: pipeline failed")
            rows.append(row(dataset, label, work, runs, args.model, max_length))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    timed = not args.parallel
    print("| dataset | documents as | nDCG@10 | R@100 | sequences indexed | index MiB | tokens encoded |"
          + (" encode s |" if timed else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if timed else ""))
    for r in rows:
        print(f"| {r['dataset']} | {r['config']} | {r['nDCG@10']:.4f} | {r['R@100']:.4f} | {r['indexed']:,} | "
              f"{r['index_mib']:.1f} | {r['tokens'] / 1e6:.2f} M |" + (f" {r['encode_s']:.0f} |" if timed else ""))
    if args.results:
        write_table(rows, args.datasets, args.model, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
