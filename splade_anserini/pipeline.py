"""README command 1: the whole pipeline on a shared dataset (SciFact by default) with one model.

    python -m splade_anserini.pipeline [--dataset scifact] [--model splade-tiny] [--force] [--no-bm25]

encode (corpus -> JsonVectorCollection) -> index (Anserini IndexCollection -impact -pretokenized)
-> search (Pyserini LuceneImpactSearcher + our SpladeQueryEncoder) -> evaluate (ir-measures), then
prints nDCG@10, RR@10, R@1000, the FLOPS / sparsity figures and the time of every stage. A BM25
baseline (Pyserini LuceneSearcher, k1=0.9 b=0.4, BEIR "flat") runs beside it unless ``--no-bm25``.

Artifacts go under ``--work-dir`` (default ``work/<dataset>-<model>/``: vectors, index, encoded
topics, stage stamps) and the run files under ``--runs-dir`` (default ``runs/``). Re-running reuses
every stage whose inputs and parameters are unchanged (a stamp file per stage records them);
``--force`` redoes everything.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cli import ArgumentParser, command

#: Per dataset: corpus file, evaluation topics and qrels (file names inside the dataset folder).
DATASETS = {
    "scifact": ("corpus.jsonl", "queries.test.tsv", "qrels.test.txt"),
    "cacm": ("corpus.jsonl", "queries.tsv", "qrels.txt"),
    "msmarco-dl19-subset": ("collection.tsv", "queries.dl19.tsv", "qrels.dl19.txt"),
}
MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")


def smoke() -> None:
    """JVM up, Anserini classes load, splade-tiny encodes a sentence with expansion terms."""
    from . import java
    from .splade import SpladeEncoder

    java.start_jvm()
    version = java.autoclass("java.lang.System").getProperty("java.version")
    java.autoclass("io.anserini.index.IndexCollection")
    java.pyserini_lucene()
    print(f"JVM {version} started; Anserini classes and pyserini.search.lucene loaded")
    enc = SpladeEncoder("splade-tiny")
    text = "aspirin reduces the risk of heart attacks"
    impacts = enc.to_impacts(enc.encode_queries([text])[0])
    top = sorted(impacts.items(), key=lambda kv: -kv[1])[:10]
    print(f"splade-tiny: {text!r} -> {len(impacts)} terms; top: {top}")


# -- stage bookkeeping -------------------------------------------------------------------------------
def file_fingerprint(path: str | os.PathLike) -> dict:
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def model_fingerprint(model: str) -> dict:
    """A model name plus, for a local directory, its weights' size and mtime (retrained -> re-encode)."""
    from .models import resolve_model

    resolved = resolve_model(model)
    fp: dict = {"model": str(model)}
    path = Path(resolved)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin", "config.json"):
            if (path / name).is_file():
                fp[name] = file_fingerprint(path / name)
    return fp


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    reused: bool = False
    note: str = ""


@dataclass
class Stamps:
    """One JSON stamp per stage: the key of the parameters (and upstream stamps) that produced it."""

    folder: Path
    force: bool = False
    stages: list[Stage] = field(default_factory=list)

    def key(self, params: dict) -> str:
        return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def fresh(self, name: str, key: str, *outputs: Path) -> bool:
        stamp = self.folder / f"{name}.json"
        if self.force or not stamp.is_file() or not all(p.exists() for p in outputs):
            return False
        try:
            return json.loads(stamp.read_text()).get("key") == key
        except (OSError, ValueError):
            return False

    def record(self, name: str, key: str, params: dict, **extra) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.json.tmp"
        tmp.write_text(json.dumps({"key": key, "params": params, **extra}, indent=2, default=str) + "\n")
        os.replace(tmp, self.folder / f"{name}.json")

    def load(self, name: str) -> dict:
        return json.loads((self.folder / f"{name}.json").read_text())

    def reused(self, name: str) -> Stage:
        """The stage as its stamp recorded it, for a stage skipped because it is up to date."""
        prev = self.load(name)
        return Stage(name, prev.get("seconds", 0.0), reused=True, note=prev.get("note", ""))

    def done(self, name: str, key: str, params: dict, seconds: float, note: str, **extra) -> Stage:
        """Stamp a stage that just ran and return it."""
        self.record(name, key, params, seconds=seconds, note=note, **extra)
        return Stage(name, seconds, note=note)


# -- encoding -----------------------------------------------------------------------------------------
def encode_corpus_stage(corpus, out_dir, encoder, *, factor: float, batch_size: int, threads: int,
                        log=print, force: bool = False, key: str | None = None) -> dict:
    """Corpus -> JsonVectorCollection with :func:`splade_anserini.encode_corpus.encode_corpus` (one
    part file per indexing thread), reusing the pipeline's loaded encoder. An interrupted encoding
    with the same stage ``key`` is resumed, one with another key redone; ``force`` redoes it."""
    from .encode_corpus import encode_corpus

    summary = encode_corpus(corpus, out_dir, encoder=encoder, factor=factor, batch_size=batch_size,
                            num_files=max(1, threads), overwrite=force, discard_other=True, fingerprint=key,
                            progress=sys.stderr.isatty(), log=lambda msg: log(f"  {msg}"))
    return {"documents": summary["documents"], "empty_guarded": summary["guarded_documents"]}


# -- the pipeline -------------------------------------------------------------------------------------
def slug(text: str) -> str:
    """File-name-safe model name: the path's last part, with its parent for a trainer's ``checkpoint-*``
    folder (``runs/train/a/checkpoint-best`` -> ``a-checkpoint-best``), so two runs' checkpoints differ."""
    path = Path(str(text).rstrip("/"))
    name = f"{path.parent.name}-{path.name}" if path.name.startswith("checkpoint") and path.parent.name else path.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


@dataclass
class PipelineResult:
    dataset: str
    model: str
    run: str
    scores: dict[str, float]
    stats: dict
    stages: list[Stage]
    bm25_run: str | None = None
    bm25_scores: dict[str, float] | None = None
    warnings: list[str] = field(default_factory=list)


def run_pipeline(dataset: str = "scifact", *, model: str = "splade-tiny", data_dir: str | os.PathLike | None = None,
                 work_dir: str | os.PathLike | None = None, runs_dir: str | os.PathLike = "runs",
                 factor: float | str = 100, max_length: int = 256, batch_size: int = 32, threads: int | None = None,
                 hits: int = 1000, device: str = "cpu", force: bool = False, bm25: bool = True,
                 log=print) -> PipelineResult:
    from conversion.quantize import resolve_factor

    from .data import data_root, read_topics

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    factor = resolve_factor(factor)
    threads = threads or os.cpu_count() or 1
    folder = Path(data_dir) if data_dir else data_root() / dataset
    corpus, topics_file, qrels_file = (folder / name for name in DATASETS[dataset])
    for needed in (corpus, topics_file, qrels_file):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed}: missing (set SPLADE_ANSERINI_DATA or --data-dir)")
    name = f"{dataset}-{slug(model)}"
    work = Path(work_dir) if work_dir else Path("work") / name
    runs = Path(runs_dir)
    vectors_dir, index_dir, tsvint = work / "vectors", work / "index", work / "topics.tsvint"
    run_file, eval_file = runs / f"{name}.trec", runs / f"{name}.json"
    stamps = Stamps(work / "stamps", force=force)
    stages = stamps.stages
    result_warnings: list[str] = []

    encoder = None

    def get_encoder():
        nonlocal encoder
        if encoder is None:
            from .splade import SpladeEncoder

            encoder = SpladeEncoder(model, device=device, max_length=max_length, query_max_length=max_length)
        return encoder

    # 1. encode
    enc_params = {"corpus": file_fingerprint(corpus), "model": model_fingerprint(model), "factor": factor,
                  "max_length": max_length, "pooling": "max"}
    enc_key = stamps.key(enc_params)
    t = time.perf_counter()
    if stamps.fresh("encode", enc_key, vectors_dir):
        stages.append(stamps.reused("encode"))
    else:
        log(f"[encode] {corpus} with {model} (max length {max_length}, x{factor:g}) -> {vectors_dir}")
        counts = encode_corpus_stage(corpus, vectors_dir, get_encoder(), factor=factor, batch_size=batch_size,
                                     threads=threads, log=log, force=force, key=enc_key)
        stages.append(stamps.done("encode", enc_key, enc_params, time.perf_counter() - t,
                                  f"{counts['documents']} docs", **counts))

    # 2. index
    idx_key = stamps.key({"encode": enc_key, "backend": "lucene"})
    t = time.perf_counter()
    if stamps.fresh("index", idx_key, index_dir) and any(index_dir.glob("segments_*")):
        stages.append(stamps.reused("index"))
    else:
        from .index import build_lucene_index

        log(f"[index] {vectors_dir} -> {index_dir} (Anserini IndexCollection -impact -pretokenized)")
        report = build_lucene_index(vectors_dir, index_dir, threads=threads, overwrite=True)
        stages.append(stamps.done("index", idx_key, {"encode": enc_key}, time.perf_counter() - t,
                                  f"{report.indexed} docs, {report.size_bytes / 2**20:.1f} MiB", report=report.__dict__))

    # 3. search
    topics = read_topics(topics_file)
    srch_params = {"index": idx_key, "topics": file_fingerprint(topics_file), "hits": hits, "model": model,
                   "factor": factor, "max_length": max_length}
    srch_key = stamps.key(srch_params)
    t = time.perf_counter()
    if stamps.fresh("search", srch_key, run_file, tsvint):
        stages.append(stamps.reused("search"))
    else:
        from .query_encoder import SpladeQueryEncoder
        from .search import pyserini_search, write_tsvint_topics
        from conversion.trec import write_run

        log(f"[search] {len(topics)} topics from {topics_file} -> {run_file} (LuceneImpactSearcher + SpladeQueryEncoder)")
        qenc = SpladeQueryEncoder(model, factor=factor, max_length=max_length, encoder=get_encoder(),
                                  batch_size=batch_size)
        t_enc = time.perf_counter()
        vectors = qenc.encode_batch(list(topics.values()))
        enc_s = time.perf_counter() - t_enc
        write_tsvint_topics(tsvint, dict(zip(topics, vectors)))
        results = pyserini_search(index_dir, topics, qenc, k=hits, threads=threads, batch_size=batch_size,
                                  vectors=vectors)
        write_run(run_file, results, tag=name, k=hits)
        stages.append(stamps.done("search", srch_key, srch_params, time.perf_counter() - t,
                                  f"{len(topics)} queries, encoding {enc_s:.1f} s"))

    # 4. evaluate (+ sparsity / FLOPS)
    from .evaluate import evaluate_files
    from .stats import collection_stats

    t = time.perf_counter()
    evaluation = evaluate_files(qrels_file, [run_file], MEASURES)[0]
    if (w := evaluation.warning()):
        result_warnings.append(w)
    stats = collection_stats(vectors_dir, tsvint)
    stages.append(Stage("evaluate", time.perf_counter() - t))
    payload = {"dataset": dataset, "model": model, "factor": factor, "max_length": max_length,
               "qrels": str(qrels_file), "run": str(run_file), "scores": evaluation.scores,
               "stats": stats.as_dict()}

    # 5. BM25 baseline (optional)
    bm25_run = bm25_scores = None
    if bm25:
        from conversion.trec import write_run

        bm25_work = work.parent / f"{dataset}-bm25"
        bm25_index = bm25_work / "index"
        bm25_run = runs / f"{dataset}-bm25.trec"
        bm_stamps = Stamps(bm25_work / "stamps", force=force)
        bm_params = {"corpus": file_fingerprint(corpus), "topics": file_fingerprint(topics_file), "hits": hits,
                     "k1": 0.9, "b": 0.4}
        bm_key = bm_stamps.key(bm_params)
        t = time.perf_counter()
        if bm_stamps.fresh("bm25", bm_key, bm25_run, bm25_index):
            stages.append(bm_stamps.reused("bm25"))
        else:
            from .bm25 import bm25_search, build_bm25_index

            log(f"[bm25] {corpus} -> {bm25_index}; {len(topics)} topics -> {bm25_run}")
            build_bm25_index(corpus, bm25_index, threads=threads, overwrite=True)
            write_run(bm25_run, bm25_search(bm25_index, topics, k=hits, threads=threads), tag=f"{dataset}-bm25", k=hits)
            stages.append(bm_stamps.done("bm25", bm_key, bm_params, time.perf_counter() - t, "Lucene BM25 index + search"))
        bm25_scores = evaluate_files(qrels_file, [bm25_run], MEASURES)[0].scores
        payload["bm25"] = {"run": str(bm25_run), "scores": bm25_scores}
    payload["stages"] = [s.__dict__ for s in stages]
    runs.mkdir(parents=True, exist_ok=True)
    from conversion.atomic import atomic_open

    with atomic_open(eval_file) as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")
    return PipelineResult(dataset, model, str(run_file), evaluation.scores, stats.as_dict(), stages,
                          str(bm25_run) if bm25_run else None, bm25_scores, result_warnings)


def report(result: PipelineResult) -> str:
    lines = [f"== {result.dataset} / {result.model} =="]
    lines.append(f"{'stage':<9} {'time':>10}")
    total = 0.0
    for s in result.stages:
        if s.reused:
            took = f"(took {s.seconds:.1f} s when built) " if s.seconds else ""
            lines.append(f"{s.name:<9} {'reused':>10}  {took}{s.note}")
        else:
            total += s.seconds
            lines.append(f"{s.name:<9} {s.seconds:8.1f} s  {s.note}")
    lines.append(f"{'total':<9} {total:8.1f} s  (this run)")
    sc = result.scores
    lines.append(f"{result.model}: nDCG@10 {sc['nDCG@10']:.4f}  RR@10 {sc['RR@10']:.4f}  R@100 {sc['R@100']:.4f}  "
                 f"R@1000 {sc['R@1000']:.4f}   ({result.run})")
    st = result.stats
    lines.append(f"FLOPS {st['flops']:.3f}; {st['avg_doc_nonzeros']:.1f} non-zeros per document, "
                 f"{st['avg_query_nonzeros']:.1f} per query")
    if result.bm25_scores:
        b = result.bm25_scores
        lines.append(f"BM25 (k1=0.9 b=0.4): nDCG@10 {b['nDCG@10']:.4f}  RR@10 {b['RR@10']:.4f}  "
                     f"R@100 {b['R@100']:.4f}  R@1000 {b['R@1000']:.4f}   ({result.bm25_run})")
    lines.extend(result.warnings)
    return "\n".join(lines)


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description="Encode, index, search and evaluate a dataset end to end.")
    parser.add_argument("--dataset", default="scifact", choices=sorted(DATASETS))
    parser.add_argument("--data-dir", help="dataset folder (default: ../shared/data/<dataset>)")
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--factor", default="100", help="quantization factor: a number, naver or pyserini")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", help="artifacts folder (default work/<dataset>-<model>)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--force", action="store_true", help="redo every stage")
    parser.add_argument("--no-bm25", action="store_true", help="skip the BM25 baseline")
    parser.add_argument("--smoke", action="store_true", help="only check that the JVM and the model load")
    args = parser.parse_args(argv)
    if args.smoke:
        smoke()
        return 0
    result = run_pipeline(args.dataset, model=args.model, data_dir=args.data_dir, work_dir=args.work_dir,
                          runs_dir=args.runs_dir, factor=args.factor, max_length=args.max_length,
                          batch_size=args.batch_size, threads=args.threads, hits=args.hits, device=args.device,
                          force=args.force, bm25=not args.no_bm25)
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
