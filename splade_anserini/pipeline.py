"""README command 1: the whole pipeline on one dataset with one model.

    python -m splade_anserini.pipeline [--dataset scifact|cacm|msmarco-dl19-subset] [--model splade-tiny]
        [--data-dir DIR [--split test]] [--corpus F --topics F --qrels F]
        [--passage-length N [--passage-stride S]] [--fusion [interpolation|rrf] [--alpha 0.5]]
        [--force] [--no-bm25]

The dataset: a named one of the shared data, any BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
``qrels/<split>.tsv``) or MS MARCO / converted folder (``--data-dir``, ``--split``), or the three files
named one by one (each may also replace one file of a folder); see :func:`splade_anserini.data.resolve_dataset`.
The topics judged in the qrels are searched; qrels naming unknown topics or documents stop the run.

check (qrels against topics and corpus) -> [passages] -> encode (corpus -> JsonVectorCollection) ->
index (Anserini IndexCollection -impact -pretokenized) -> search (Pyserini LuceneImpactSearcher + our
SpladeQueryEncoder; MaxP over passages) -> evaluate (ir-measures), then prints nDCG@10, RR@10, R@1000,
the FLOPS / sparsity figures and the time of every stage. A BM25 baseline (Pyserini LuceneSearcher,
k1=0.9 b=0.4, BEIR "flat") runs beside it unless ``--no-bm25``; ``--fusion`` fuses the two runs
(:mod:`splade_anserini.search.fusion`) and prints ``hybrid (<method>): nDCG@10 ...``.

Artifacts go under ``--work-dir`` (default ``work/<dataset>-<model>/``: vectors, index, BM25 index,
encoded topics, stage stamps) and the run files under ``--runs-dir`` (default ``runs/``); nothing is
written anywhere else. Re-running reuses every stage whose inputs and parameters are unchanged
(:meth:`Stamps.run`: a stamp file per stage records them); ``--force`` redoes everything. The work
folder is marked as this tool's when created: a folder of the user's (non-empty, unmarked) is refused,
as is a run file this tool did not write, and a second pipeline on the same work folder while one
runs (:mod:`splade_anserini.outputs`).
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
from typing import Callable, Sequence

from splade_anserini.search.bm25 import B as BM25_B, K1 as BM25_K1
from splade_anserini.cli import ArgumentParser, check_positive, command, positive_int

MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")
#: The marker kind of a work folder (:mod:`splade_anserini.outputs`).
WORK_KIND = "pipeline-work"


def smoke() -> None:
    """JVM up, Anserini classes load, splade-tiny encodes a sentence with expansion terms."""
    from splade_anserini import java
    from splade_anserini.encode.splade import SpladeEncoder

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
    from splade_anserini.models import resolve_model

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
        from splade_anserini.outputs import write_text

        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(self.folder / f"{name}.json", json.dumps({"key": key, "params": params, **extra}, indent=2,
                                                            default=str) + "\n")

    def load(self, name: str) -> dict:
        return json.loads((self.folder / f"{name}.json").read_text())

    def run(self, name: str, params: dict, outputs: Sequence[Path], fn: Callable[[], str | tuple[str, dict]], *,
            ready: Callable[[], bool] = lambda: True) -> str:
        """Run stage ``name`` unless its stamp records the same ``params`` and its ``outputs`` exist (and
        ``ready()``); return the stage key, for the stages downstream to include in their parameters.

        ``fn()`` does the work and returns a note for the report, or ``(note, extra)`` with figures kept
        in the stamp; the stage (its time, or its recorded time when reused) goes to :attr:`stages`.
        """
        key = self.key(params)
        if self.fresh(name, key, *outputs) and ready():
            prev = self.load(name)
            self.stages.append(Stage(name, prev.get("seconds", 0.0), reused=True, note=prev.get("note", "")))
            return key
        start = time.perf_counter()
        done = fn()
        note, extra = done if isinstance(done, tuple) else (done, {})
        seconds = time.perf_counter() - start
        self.record(name, key, params, seconds=seconds, note=note, **extra)
        self.stages.append(Stage(name, seconds, note=note))
        return key


# -- encoding -----------------------------------------------------------------------------------------
def encode_corpus_stage(corpus, out_dir, encoder, *, factor: float, batch_size: int, threads: int,
                        log=print, force: bool = False, key: str | None = None, passages: dict | None = None) -> dict:
    """Corpus -> JsonVectorCollection with :func:`splade_anserini.encode.corpus.encode_corpus` (one
    part file per indexing thread), reusing the pipeline's loaded encoder. An interrupted encoding
    with the same stage ``key`` is resumed, one with another key redone; ``force`` redoes it."""
    from splade_anserini.encode.corpus import encode_corpus

    summary = encode_corpus(corpus, out_dir, encoder=encoder, factor=factor, batch_size=batch_size,
                            num_files=max(1, threads), overwrite=force, discard_other=True, fingerprint=key,
                            progress=sys.stderr.isatty(), log=lambda msg: log(f"  {msg}"), passages=passages)
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
    hybrid_run: str | None = None
    hybrid_scores: dict[str, float] | None = None
    hybrid_method: str | None = None


def run_pipeline(dataset: str | None = None, *, model: str = "splade-tiny",
                 data_dir: str | os.PathLike | None = None, split: str | None = None,
                 corpus: str | os.PathLike | None = None, topics: str | os.PathLike | None = None,
                 qrels: str | os.PathLike | None = None,
                 work_dir: str | os.PathLike | None = None, runs_dir: str | os.PathLike = "runs",
                 factor: float | str = 100, max_length: int = 256, batch_size: int = 32, threads: int | None = None,
                 hits: int = 1000, device: str = "cpu", force: bool = False, bm25: bool = True,
                 passage_length: int | None = None, passage_stride: int | None = None,
                 fusion: str | None = None, alpha: float | None = None, log=print) -> PipelineResult:
    """Encode, index, search and evaluate one dataset (see the module docstring); returns the figures.

    The dataset is a named one of the shared data (``dataset``), any BEIR or MS MARCO folder
    (``data_dir`` and ``split``), or files named one by one (``corpus``/``topics``/``qrels``), see
    :func:`splade_anserini.data.resolve_dataset`. ``passage_length`` (and ``passage_stride``) encodes
    the documents as overlapping passages and ranks documents by their best passage (MaxP);
    ``fusion`` (``interpolation`` or ``rrf``) also fuses the SPLADE and BM25 runs.
    """
    from splade_anserini.conversion.quantize import resolve_factor
    from splade_anserini.conversion.trec import check_qrels, max_passage, read_qrels, write_run

    from splade_anserini.data import read_corpus, read_topics, resolve_dataset
    from splade_anserini.models import check_max_length
    from splade_anserini.encode.passages import check_passage_args
    from splade_anserini.provenance import passages_record

    check_positive(max_length=max_length, batch_size=batch_size, threads=threads, hits=hits)
    check_max_length(model, max_length)
    check_max_length(model, passage_length or max_length, "--passage-length")
    check_passage_args(passage_length, passage_stride, max_length)
    if fusion is not None and not bm25:
        raise ValueError("--fusion fuses the SPLADE and BM25 runs: it cannot go with --no-bm25")
    ds = resolve_dataset(dataset, data_dir=data_dir, split=split, corpus=corpus, topics=topics, qrels=qrels)
    factor = resolve_factor(factor)
    threads = threads or os.cpu_count() or 1
    passages = f"-p{passage_length}s{passage_stride or passage_length}" if passage_length else ""
    name = f"{ds.name}-{slug(model)}{passages}"
    work = Path(work_dir) if work_dir else Path("work") / name
    runs = Path(runs_dir)
    vectors_dir, index_dir, tsvint = work / "vectors", work / "index", work / "topics.tsvint"
    run_file, eval_file = runs / f"{name}.trec", runs / f"{name}.json"
    from splade_anserini.outputs import check_dir, check_file, claim_dir, lock, lock_path, record_file, release_unused

    # nothing but our own outputs is replaced: refused here, before any work
    check_dir(work, WORK_KIND)
    run_files = [(run_file, "run"), (eval_file, "evaluation")]
    if bm25:
        run_files.append((runs / f"{ds.name}-bm25.trec", "run"))
    if fusion is not None:
        run_files.append((runs / f"{name}-hybrid-{fusion}.trec", "run"))
    for path, kind in run_files:
        check_file(path, kind)
    created = claim_dir(work, WORK_KIND)

    def stages_() -> PipelineResult:
        stamps = Stamps(work / "stamps", force=force)
        stages = stamps.stages
        result_warnings: list[str] = []

        # 0. the topics judged in the qrels, every judged topic and document known (checked once per input)
        all_topics = read_topics(ds.topics)
        judged = read_qrels(ds.qrels)
        topic_list = {q: t for q, t in all_topics.items() if q in judged}

        def check() -> str:
            doc_ids = {doc.docid for doc in read_corpus(ds.corpus)}
            check_qrels(ds.qrels, all_topics, doc_ids, topics_name=f"the topics {ds.topics}",
                        corpus_name=f"the corpus {ds.corpus}")
            return f"{len(judged)} judged topics, {len(doc_ids)} documents"

        stamps.run("check", {"corpus": file_fingerprint(ds.corpus), "topics": file_fingerprint(ds.topics),
                             "qrels": file_fingerprint(ds.qrels)}, [], check)
        if len(topic_list) < len(all_topics):
            log(f"[search] {len(topic_list)} of the {len(all_topics)} topics in {ds.topics} are judged in {ds.qrels}: "
                "searching those")

        encoder = None

        def get_encoder():
            nonlocal encoder
            if encoder is None:
                from splade_anserini.encode.splade import SpladeEncoder

                encoder = SpladeEncoder(model, device=device, max_length=max_length, query_max_length=max_length)
            return encoder

        # 1. passages (optional): the corpus split into overlapping windows, encoded like any corpus
        enc_input = ds.corpus
        enc_params = {"corpus": file_fingerprint(ds.corpus), "model": model_fingerprint(model), "factor": factor,
                      "max_length": max_length, "pooling": "max"}
        if passage_length:
            from splade_anserini.encode.passages import write_passage_corpus

            enc_input = work / "passages.jsonl"
            psg_params = {"corpus": enc_params["corpus"], "model": enc_params["model"], "length": passage_length,
                          "stride": passage_stride or passage_length}

            def split_passages():
                log(f"[passages] {ds.corpus} -> {enc_input} ({passage_length} WordPiece tokens, stride "
                    f"{passage_stride or passage_length})")
                counts = write_passage_corpus(ds.corpus, enc_input, get_encoder().tokenizer, passage_length, passage_stride)
                return f"{counts['passages']} passages of {counts['documents']} docs", counts

            enc_params["passages"] = stamps.run("passages", psg_params, [enc_input], split_passages)

        # 2. encode
        def encode():
            log(f"[encode] {enc_input} with {model} (max length {max_length}, x{factor:g}) -> {vectors_dir}")
            counts = encode_corpus_stage(enc_input, vectors_dir, get_encoder(), factor=factor, batch_size=batch_size,
                                         threads=threads, log=log, force=force, key=stamps.key(enc_params),
                                         passages=passages_record(passage_length, passage_stride))
            return f"{counts['documents']} {'passages' if passage_length else 'docs'}", counts

        enc_key = stamps.run("encode", enc_params, [vectors_dir], encode)

        # 3. index
        def index():
            from splade_anserini.index.build import build_lucene_index

            log(f"[index] {vectors_dir} -> {index_dir} (Anserini IndexCollection -impact -pretokenized)")
            report = build_lucene_index(vectors_dir, index_dir, threads=threads, overwrite=True)
            return f"{report.indexed} docs, {report.size_bytes / 2**20:.1f} MiB", {"report": report.__dict__}

        idx_key = stamps.run("index", {"encode": enc_key, "backend": "lucene"}, [index_dir], index,
                             ready=lambda: any(index_dir.glob("segments_*")))

        # 4. search (MaxP: 5 passages per document hit searched, each document scored by its best passage)
        k_search = hits * 5 if passage_length else hits
        srch_params = {"index": idx_key, "topics": file_fingerprint(ds.topics), "qrels": file_fingerprint(ds.qrels),
                       "hits": hits, "model": model, "factor": factor, "max_length": max_length,
                       "max_passage": k_search if passage_length else None}

        def search():
            from splade_anserini.provenance import check_query_model, model_identity, plan_search
            from splade_anserini.search.query_encoder import SpladeQueryEncoder
            from splade_anserini.search.run import pyserini_search, write_tsvint_topics

            plan = plan_search(index_dir, factor=factor, max_passage=bool(passage_length))  # a stale index is refused
            check_query_model(plan, index_dir, model_identity(get_encoder()), allow_other=False)

            log(f"[search] {len(topic_list)} topics from {ds.topics} -> {run_file} "
                "(LuceneImpactSearcher + SpladeQueryEncoder)")
            qenc = SpladeQueryEncoder(model, factor=factor, max_length=max_length, encoder=get_encoder(),
                                      batch_size=batch_size)
            t_enc = time.perf_counter()
            vectors = qenc.encode_batch(list(topic_list.values()))
            enc_s = time.perf_counter() - t_enc
            write_tsvint_topics(tsvint, dict(zip(topic_list, vectors)))
            results = pyserini_search(index_dir, topic_list, qenc, k=k_search, threads=threads, batch_size=batch_size,
                                      vectors=vectors)
            if passage_length:
                results = max_passage(results, hits)
            write_run(run_file, results, tag=name, k=hits)
            record_file(run_file, "run")
            plan.tell()
            return f"{len(topic_list)} queries, encoding {enc_s:.1f} s" + (", MaxP" if passage_length else "")

        stamps.run("search", srch_params, [run_file, tsvint], search)

        # 5. evaluate (+ sparsity / FLOPS)
        from splade_anserini.evaluate.measures import evaluate_files
        from splade_anserini.evaluate.stats import collection_stats

        t = time.perf_counter()
        evaluation = evaluate_files(ds.qrels, [run_file], MEASURES)[0]
        if (w := evaluation.warning()):
            result_warnings.append(w)
        stats = collection_stats(vectors_dir, tsvint)
        stages.append(Stage("evaluate", time.perf_counter() - t))
        payload = {"dataset": ds.name, "corpus": str(ds.corpus), "topics": str(ds.topics), "split": ds.split,
                   "model": model, "factor": factor, "max_length": max_length,
                   "passage_length": passage_length, "passage_stride": passage_stride,
                   "qrels": str(ds.qrels), "run": str(run_file), "scores": evaluation.scores, "stats": stats.as_dict()}

        # 6. BM25 baseline (optional), on whole documents
        bm25_run = bm25_scores = None
        if bm25:
            bm25_index = work / "bm25-index"
            bm25_run = runs / f"{ds.name}-bm25.trec"
            bm_stamps = Stamps(work / "stamps", force=force, stages=stages)
            bm_params = {"corpus": file_fingerprint(ds.corpus), "topics": file_fingerprint(ds.topics),
                         "qrels": file_fingerprint(ds.qrels), "hits": hits, "k1": BM25_K1,
                         "b": BM25_B}

            def bm25_stage():
                from splade_anserini.search.bm25 import bm25_search, build_bm25_index

                log(f"[bm25] {ds.corpus} -> {bm25_index}; {len(topic_list)} topics -> {bm25_run}")
                build_bm25_index(ds.corpus, bm25_index, threads=threads, overwrite=True)
                write_run(bm25_run, bm25_search(bm25_index, topic_list, k=hits, threads=threads),
                          tag=f"{ds.name}-bm25", k=hits)
                record_file(bm25_run, "run")
                return "Lucene BM25 index + search"

            bm_stamps.run("bm25", bm_params, [bm25_run, bm25_index], bm25_stage)
            bm25_scores = evaluate_files(ds.qrels, [bm25_run], MEASURES)[0].scores
            payload["bm25"] = {"run": str(bm25_run), "scores": bm25_scores}

        # 7. hybrid (optional): SPLADE and BM25 fused
        hybrid_run = hybrid_scores = hybrid_method = None
        if fusion is not None:
            from splade_anserini.conversion.trec import read_ranked

            from splade_anserini.search.fusion import describe, fuse

            hybrid_method = describe(fusion, alpha)
            hybrid_run = runs / f"{name}-hybrid-{fusion}.trec"
            t = time.perf_counter()
            fused = fuse([read_ranked(run_file), read_ranked(bm25_run)], fusion, alpha=alpha, depth=hits, k=hits)
            write_run(hybrid_run, fused, tag=f"{name}-hybrid-{fusion}", k=hits)
            record_file(hybrid_run, "run")
            hybrid_scores = evaluate_files(ds.qrels, [hybrid_run], MEASURES)[0].scores
            stages.append(Stage("fusion", time.perf_counter() - t, note=hybrid_method))
            payload["hybrid"] = {"run": str(hybrid_run), "method": hybrid_method, "scores": hybrid_scores}
        payload["stages"] = [s.__dict__ for s in stages]
        runs.mkdir(parents=True, exist_ok=True)
        from splade_anserini.conversion.atomic import atomic_open

        with atomic_open(eval_file) as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
        record_file(eval_file, "evaluation")
        return PipelineResult(ds.name, model, str(run_file), evaluation.scores, stats.as_dict(), stages,
                              str(bm25_run) if bm25_run else None, bm25_scores, result_warnings,
                              str(hybrid_run) if hybrid_run else None, hybrid_scores, hybrid_method)

    try:
        with lock(lock_path(work, inside=True), f"pipeline work folder {work}"):
            return stages_()
    except BaseException:
        if created:
            release_unused(work)  # refused or failed before any stage wrote: nothing left behind
        raise


def _scores_line(label: str, sc: dict[str, float], run: str | None) -> str:
    return (f"{label}: nDCG@10 {sc['nDCG@10']:.4f}  RR@10 {sc['RR@10']:.4f}  R@100 {sc['R@100']:.4f}  "
            f"R@1000 {sc['R@1000']:.4f}   ({run})")


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
    lines.append(_scores_line(result.model, result.scores, result.run))
    st = result.stats
    lines.append(f"FLOPS {st['flops']:.3f}; {st['avg_doc_nonzeros']:.1f} non-zeros per document, "
                 f"{st['avg_query_nonzeros']:.1f} per query")
    if result.bm25_scores:
        lines.append(_scores_line(f"BM25 (k1={BM25_K1:g} b={BM25_B:g})", result.bm25_scores, result.bm25_run))
    if result.hybrid_scores:
        lines.append(_scores_line(f"hybrid ({result.hybrid_method})", result.hybrid_scores, result.hybrid_run))
    lines.extend(result.warnings)
    return "\n".join(lines)


@command
def main(argv: list[str] | None = None) -> int:
    from splade_anserini.data import NAMED_DATASETS
    from splade_anserini.search.fusion import METHODS

    parser = ArgumentParser(description="Encode, index, search and evaluate a dataset end to end.")
    parser.add_argument("--dataset", default=None, choices=sorted(NAMED_DATASETS),
                        help="a dataset of the shared data (default scifact unless --data-dir or the files are given)")
    parser.add_argument("--data-dir", help="a BEIR (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or MS MARCO "
                                           "dataset folder (default: the shared data's --dataset)")
    parser.add_argument("--split", help="the qrels split to evaluate (default: test, or the folder's unsplit qrels)")
    parser.add_argument("--corpus", help="corpus file (BEIR corpus.jsonl or MS MARCO collection.tsv, .gz or not)")
    parser.add_argument("--topics", help="topics file (BEIR queries.jsonl or qid<TAB>text, .gz or not)")
    parser.add_argument("--qrels", help="qrels file (TREC or BEIR TSV with or without header, .gz or not)")
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--factor", default="100", help="quantization factor: a number, naver or pyserini")
    parser.add_argument("--max-length", type=positive_int, default=256)
    parser.add_argument("--passage-length", type=int, default=None,
                        help="encode documents as passages of this many WordPiece tokens; rank by best passage (MaxP)")
    parser.add_argument("--passage-stride", type=int, default=None, help="tokens between passage starts (default: the length)")
    parser.add_argument("--fusion", nargs="?", const="interpolation", choices=METHODS, default=None,
                        help="also fuse the SPLADE and BM25 runs (default method: interpolation, alpha 0.5)")
    parser.add_argument("--alpha", type=float, default=None, help="interpolation weight of the SPLADE run (default 0.5)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--hits", type=positive_int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", help="artifacts folder: vectors, index, BM25 index, stamps (default "
                                           "work/<dataset>-<model>; new, empty, or made by this tool)")
    parser.add_argument("--runs-dir", default="runs", help="run files and scores (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="redo every stage (replaces only what this tool wrote in --work-dir and --runs-dir)")
    parser.add_argument("--no-bm25", action="store_true", help="skip the BM25 baseline")
    parser.add_argument("--smoke", action="store_true", help="only check that the JVM and the model load")
    args = parser.parse_args(argv)
    if args.smoke:
        smoke()
        return 0
    if args.alpha is not None and args.fusion != "interpolation":
        parser.error("--alpha goes with --fusion interpolation")
    result = run_pipeline(args.dataset, model=args.model, data_dir=args.data_dir, split=args.split,
                          corpus=args.corpus, topics=args.topics, qrels=args.qrels, work_dir=args.work_dir,
                          runs_dir=args.runs_dir, factor=args.factor, max_length=args.max_length,
                          batch_size=args.batch_size, threads=args.threads, hits=args.hits, device=args.device,
                          force=args.force, bm25=not args.no_bm25, passage_length=args.passage_length,
                          passage_stride=args.passage_stride, fusion=args.fusion, alpha=args.alpha)
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
