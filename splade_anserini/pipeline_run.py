"""The pipeline's stages (:mod:`splade_anserini.pipeline`): its options, one run of it, its figures.

:class:`PipelineConfig` holds the options as given; :class:`PipelineRun` resolves them (dataset, paths,
quantization factor, threads) and runs :data:`STAGES` in order, one method per stage, each skipped when
its stamp (:class:`splade_anserini.stamps.Stamps`) records the same parameters and its outputs exist;
:class:`PipelineResult` holds the figures :func:`splade_anserini.pipeline.report` prints.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from splade_anserini.cli import check_positive
from splade_anserini.search.bm25 import B as BM25_B, K1 as BM25_K1
from splade_anserini.stamps import Stage, Stamps, file_fingerprint, model_fingerprint

MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")
#: The marker kind of a work folder (:mod:`splade_anserini.outputs`).
WORK_KIND = "pipeline-work"
#: The stages, run in this order by :meth:`PipelineRun.execute` (each a method of :class:`PipelineRun`,
#: which does nothing when its option is off: passages, bm25, hybrid).
STAGES = ("check", "passages", "encode", "index", "search", "evaluate", "bm25", "hybrid")


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
class PipelineConfig:
    """Every option of :func:`run_pipeline`, as given (the command line's flags); nothing resolved yet.

    The dataset is a named one of the shared data (``dataset``), any BEIR or MS MARCO folder
    (``data_dir`` and ``split``), or files named one by one (``corpus``/``topics``/``qrels``), see
    :func:`splade_anserini.data.resolve_dataset`. ``passage_length`` (and ``passage_stride``) encodes
    the documents as overlapping passages and ranks documents by their best passage (MaxP);
    ``fusion`` (``interpolation`` or ``rrf``, weighted by ``alpha``) also fuses the SPLADE and BM25 runs.
    """

    dataset: str | None = None
    model: str = "splade-tiny"
    data_dir: str | os.PathLike | None = None
    split: str | None = None
    corpus: str | os.PathLike | None = None
    topics: str | os.PathLike | None = None
    qrels: str | os.PathLike | None = None
    work_dir: str | os.PathLike | None = None
    runs_dir: str | os.PathLike = "runs"
    factor: float | str = 100
    max_length: int = 256
    batch_size: int = 32
    threads: int | None = None
    hits: int = 1000
    device: str = "cpu"
    force: bool = False
    bm25: bool = True
    passage_length: int | None = None
    passage_stride: int | None = None
    fusion: str | None = None
    alpha: float | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PipelineConfig:
        """The options of :func:`main`'s parsed command line (``--no-bm25`` turned into ``bm25``)."""
        options = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name != "bm25"}
        return cls(**options, bm25=not args.no_bm25)

    def check(self) -> None:
        """Refuse option values that cannot work together, before any input is read."""
        from splade_anserini.encode.passages import check_passage_args
        from splade_anserini.models import check_max_length

        check_positive(max_length=self.max_length, batch_size=self.batch_size, threads=self.threads, hits=self.hits)
        check_max_length(self.model, self.max_length)
        check_max_length(self.model, self.passage_length or self.max_length, "--passage-length")
        check_passage_args(self.passage_length, self.passage_stride, self.max_length)
        if self.fusion is not None and not self.bm25:
            raise ValueError("--fusion fuses the SPLADE and BM25 runs: it cannot go with --no-bm25")


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


class PipelineRun:
    """One run of the pipeline: the resolved dataset, options and paths, the stage stamps, the encoder
    (loaded when a stage first needs it) and the figures the stages leave for the ones after them.

    Building it checks the options and resolves the dataset; :meth:`execute` claims the work folder and
    runs :data:`STAGES` in order under its lock.
    """

    def __init__(self, config: PipelineConfig, log: Callable[[str], None] = print) -> None:
        from splade_anserini.conversion.quantize import resolve_factor
        from splade_anserini.data import resolve_dataset

        config.check()
        c = self.config = config
        self.log = log
        self.ds = resolve_dataset(c.dataset, data_dir=c.data_dir, split=c.split, corpus=c.corpus, topics=c.topics,
                                  qrels=c.qrels)
        self.factor = resolve_factor(c.factor)
        self.threads = c.threads or os.cpu_count() or 1
        passages = f"-p{c.passage_length}s{c.passage_stride or c.passage_length}" if c.passage_length else ""
        self.name = name = f"{self.ds.name}-{slug(c.model)}{passages}"
        self.work = work = Path(c.work_dir) if c.work_dir else Path("work") / name
        self.runs = runs = Path(c.runs_dir)
        self.vectors_dir, self.index_dir, self.tsvint = work / "vectors", work / "index", work / "topics.tsvint"
        self.run_file, self.eval_file = runs / f"{name}.trec", runs / f"{name}.json"
        self.bm25_index = work / "bm25-index"
        self.bm25_run = runs / f"{self.ds.name}-bm25.trec" if c.bm25 else None
        self.hybrid_run = runs / f"{name}-hybrid-{c.fusion}.trec" if c.fusion is not None else None
        # MaxP: 5 passages per document hit searched, each document scored by its best passage
        self.k_search = c.hits * 5 if c.passage_length else c.hits
        self.stamps = Stamps(work / "stamps", force=c.force)
        self._encoder = None
        # left by the stages for the ones after them
        self.all_topics: dict[str, str] = {}
        self.judged: dict = {}
        self.topic_list: dict[str, str] = {}
        self.enc_input: Path = self.ds.corpus
        self.enc_params: dict = {}
        self.enc_key = self.idx_key = ""
        self.evaluation = self.stats = None
        self.payload: dict = {}
        self.warnings: list[str] = []
        self.bm25_scores: dict[str, float] | None = None
        self.hybrid_scores: dict[str, float] | None = None
        self.hybrid_method: str | None = None

    @property
    def encoder(self):
        """The SPLADE encoder, loaded on first use (a run whose encode and search stages are reused loads none)."""
        if self._encoder is None:
            from splade_anserini.encode.splade import SpladeEncoder

            c = self.config
            self._encoder = SpladeEncoder(c.model, device=c.device, max_length=c.max_length,
                                          query_max_length=c.max_length)
        return self._encoder

    def claim(self) -> bool:
        """Refuse, before any work, to replace anything but our own outputs; then mark the work folder
        ours. Returns whether the folder was created (to remove again if the run fails before writing)."""
        from splade_anserini.outputs import check_dir, check_file, claim_dir, register

        check_dir(self.work, WORK_KIND)
        run_files = [(self.run_file, "run"), (self.eval_file, "evaluation")]
        if self.bm25_run is not None:
            run_files.append((self.bm25_run, "run"))
        if self.hybrid_run is not None:
            run_files.append((self.hybrid_run, "run"))
        for path, kind in run_files:
            check_file(path, kind)
        created = claim_dir(self.work, WORK_KIND)
        for path in (self.tsvint, self.work / "passages.jsonl"):  # written by stages: recorded before they are
            register(path, size=None)
        return created

    def execute(self) -> PipelineResult:
        """Claim the work folder and run every stage under its lock; write the evaluation file."""
        from splade_anserini.outputs import lock, lock_path, release_unused

        created = self.claim()
        try:
            with lock(lock_path(self.work, inside=True), f"pipeline work folder {self.work}"):
                for stage in STAGES:
                    getattr(self, stage)()
                return self.finish()
        except BaseException:
            if created:
                release_unused(self.work)  # refused or failed before any stage wrote: nothing left behind
            raise

    # -- the stages, in the order of STAGES -----------------------------------------------------------
    def check(self) -> None:
        """0. The topics judged in the qrels, every judged topic and document known (checked once per input)."""
        from splade_anserini.conversion.trec import read_qrels
        from splade_anserini.data import read_topics

        ds = self.ds
        self.all_topics = read_topics(ds.topics)
        self.judged = read_qrels(ds.qrels)
        self.topic_list = {q: t for q, t in self.all_topics.items() if q in self.judged}
        self.stamps.run("check", {"corpus": file_fingerprint(ds.corpus), "topics": file_fingerprint(ds.topics),
                                  "qrels": file_fingerprint(ds.qrels)}, [], self._check_qrels)
        if len(self.topic_list) < len(self.all_topics):
            self.log(f"[search] {len(self.topic_list)} of the {len(self.all_topics)} topics in {ds.topics} are "
                     f"judged in {ds.qrels}: searching those")

    def _check_qrels(self) -> str:
        from splade_anserini.conversion.trec import check_qrels
        from splade_anserini.data import read_corpus

        ds = self.ds
        doc_ids = {doc.docid for doc in read_corpus(ds.corpus)}
        check_qrels(ds.qrels, self.all_topics, doc_ids, topics_name=f"the topics {ds.topics}",
                    corpus_name=f"the corpus {ds.corpus}")
        return f"{len(self.judged)} judged topics, {len(doc_ids)} documents"

    def passages(self) -> None:
        """1. Passages (optional): the corpus split into overlapping windows, encoded like any corpus.

        Sets the encode stage's parameters too, which include this stage's key."""
        c = self.config
        self.enc_params = {"corpus": file_fingerprint(self.ds.corpus), "model": model_fingerprint(c.model),
                           "factor": self.factor, "max_length": c.max_length, "pooling": "max"}
        if not c.passage_length:
            return
        self.enc_input = self.work / "passages.jsonl"
        params = {"corpus": self.enc_params["corpus"], "model": self.enc_params["model"], "length": c.passage_length,
                  "stride": c.passage_stride or c.passage_length}
        self.enc_params["passages"] = self.stamps.run("passages", params, [self.enc_input], self._split_passages)

    def _split_passages(self) -> tuple[str, dict]:
        from splade_anserini.encode.passages import write_passage_corpus

        c = self.config
        self.log(f"[passages] {self.ds.corpus} -> {self.enc_input} ({c.passage_length} WordPiece tokens, stride "
                 f"{c.passage_stride or c.passage_length})")
        counts = write_passage_corpus(self.ds.corpus, self.enc_input, self.encoder.tokenizer, c.passage_length,
                                      c.passage_stride)
        return f"{counts['passages']} passages of {counts['documents']} docs", counts

    def encode(self) -> None:
        """2. Encode: the corpus (or its passages) -> JsonVectorCollection."""
        self.enc_key = self.stamps.run("encode", self.enc_params, [self.vectors_dir], self._encode)

    def _encode(self) -> tuple[str, dict]:
        from splade_anserini.provenance import passages_record

        c = self.config
        self.log(f"[encode] {self.enc_input} with {c.model} (max length {c.max_length}, x{self.factor:g}) -> "
                 f"{self.vectors_dir}")
        counts = encode_corpus_stage(self.enc_input, self.vectors_dir, self.encoder, factor=self.factor,
                                     batch_size=c.batch_size, threads=self.threads, log=self.log, force=c.force,
                                     key=self.stamps.key(self.enc_params),
                                     passages=passages_record(c.passage_length, c.passage_stride))
        return f"{counts['documents']} {'passages' if c.passage_length else 'docs'}", counts

    def index(self) -> None:
        """3. Index: Anserini IndexCollection -impact -pretokenized."""
        self.idx_key = self.stamps.run("index", {"encode": self.enc_key, "backend": "lucene"}, [self.index_dir],
                                       self._index, ready=lambda: any(self.index_dir.glob("segments_*")))

    def _index(self) -> tuple[str, dict]:
        from splade_anserini.index.build import build_lucene_index

        self.log(f"[index] {self.vectors_dir} -> {self.index_dir} (Anserini IndexCollection -impact -pretokenized)")
        report = build_lucene_index(self.vectors_dir, self.index_dir, threads=self.threads, overwrite=True)
        return f"{report.indexed} docs, {report.size_bytes / 2**20:.1f} MiB", {"report": report.__dict__}

    def search(self) -> None:
        """4. Search: LuceneImpactSearcher + SpladeQueryEncoder (MaxP over passages)."""
        c, ds = self.config, self.ds
        params = {"index": self.idx_key, "topics": file_fingerprint(ds.topics), "qrels": file_fingerprint(ds.qrels),
                  "hits": c.hits, "model": c.model, "factor": self.factor, "max_length": c.max_length,
                  "max_passage": self.k_search if c.passage_length else None}
        self.stamps.run("search", params, [self.run_file, self.tsvint], self._search)

    def _search(self) -> str:
        from splade_anserini.conversion.trec import max_passage, write_run
        from splade_anserini.outputs import record_file
        from splade_anserini.provenance import check_query_model, model_identity, plan_search
        from splade_anserini.search.query_encoder import SpladeQueryEncoder
        from splade_anserini.search.run import pyserini_search, write_tsvint_topics

        c, topic_list = self.config, self.topic_list
        plan = plan_search(self.index_dir, factor=self.factor, max_passage=bool(c.passage_length))  # a stale index is refused
        check_query_model(plan, self.index_dir, model_identity(self.encoder), allow_other=False)
        self.log(f"[search] {len(topic_list)} topics from {self.ds.topics} -> {self.run_file} "
                 "(LuceneImpactSearcher + SpladeQueryEncoder)")
        qenc = SpladeQueryEncoder(c.model, factor=self.factor, max_length=c.max_length, encoder=self.encoder,
                                  batch_size=c.batch_size)
        t_enc = time.perf_counter()
        vectors = qenc.encode_batch(list(topic_list.values()))
        enc_s = time.perf_counter() - t_enc
        write_tsvint_topics(self.tsvint, dict(zip(topic_list, vectors)))
        results = pyserini_search(self.index_dir, topic_list, qenc, k=self.k_search, threads=self.threads,
                                  batch_size=c.batch_size, vectors=vectors)
        if c.passage_length:
            results = max_passage(results, c.hits)
        write_run(self.run_file, results, tag=self.name, k=c.hits)
        record_file(self.run_file, "run")
        plan.tell()
        return f"{len(topic_list)} queries, encoding {enc_s:.1f} s" + (", MaxP" if c.passage_length else "")

    def evaluate(self) -> None:
        """5. Evaluate (+ sparsity / FLOPS), never reused: the figures start the evaluation file."""
        from splade_anserini.evaluate.measures import evaluate_files
        from splade_anserini.evaluate.stats import collection_stats

        c, ds = self.config, self.ds
        t = time.perf_counter()
        self.evaluation = evaluate_files(ds.qrels, [self.run_file], MEASURES)[0]
        if (w := self.evaluation.warning()):
            self.warnings.append(w)
        self.stats = collection_stats(self.vectors_dir, self.tsvint)
        self.stamps.stages.append(Stage("evaluate", time.perf_counter() - t))
        self.payload = {"dataset": ds.name, "corpus": str(ds.corpus), "topics": str(ds.topics), "split": ds.split,
                        "model": c.model, "factor": self.factor, "max_length": c.max_length,
                        "passage_length": c.passage_length, "passage_stride": c.passage_stride,
                        "qrels": str(ds.qrels), "run": str(self.run_file), "scores": self.evaluation.scores,
                        "stats": self.stats.as_dict()}

    def bm25(self) -> None:
        """6. BM25 baseline (optional), on whole documents."""
        from splade_anserini.evaluate.measures import evaluate_files

        if self.bm25_run is None:
            return
        c, ds = self.config, self.ds
        params = {"corpus": file_fingerprint(ds.corpus), "topics": file_fingerprint(ds.topics),
                  "qrels": file_fingerprint(ds.qrels), "hits": c.hits, "k1": BM25_K1, "b": BM25_B}
        self.stamps.run("bm25", params, [self.bm25_run, self.bm25_index], self._bm25)
        self.bm25_scores = evaluate_files(ds.qrels, [self.bm25_run], MEASURES)[0].scores
        self.payload["bm25"] = {"run": str(self.bm25_run), "scores": self.bm25_scores}

    def _bm25(self) -> str:
        from splade_anserini.conversion.trec import write_run
        from splade_anserini.outputs import record_file
        from splade_anserini.search.bm25 import bm25_search, build_bm25_index

        hits, ds = self.config.hits, self.ds
        self.log(f"[bm25] {ds.corpus} -> {self.bm25_index}; {len(self.topic_list)} topics -> {self.bm25_run}")
        build_bm25_index(ds.corpus, self.bm25_index, threads=self.threads, overwrite=True)
        write_run(self.bm25_run, bm25_search(self.bm25_index, self.topic_list, k=hits, threads=self.threads),
                  tag=f"{ds.name}-bm25", k=hits)
        record_file(self.bm25_run, "run")
        return "Lucene BM25 index + search"

    def hybrid(self) -> None:
        """7. Hybrid (optional): the SPLADE and BM25 runs fused; never reused, timed as stage ``fusion``."""
        c, hybrid_run = self.config, self.hybrid_run
        if hybrid_run is None:
            return
        from splade_anserini.conversion.trec import read_ranked, write_run
        from splade_anserini.evaluate.measures import evaluate_files
        from splade_anserini.outputs import record_file
        from splade_anserini.search.fusion import describe, fuse

        self.hybrid_method = describe(c.fusion, c.alpha)
        t = time.perf_counter()
        fused = fuse([read_ranked(self.run_file), read_ranked(self.bm25_run)], c.fusion, alpha=c.alpha, depth=c.hits,
                     k=c.hits)
        write_run(hybrid_run, fused, tag=f"{self.name}-hybrid-{c.fusion}", k=c.hits)
        record_file(hybrid_run, "run")
        self.hybrid_scores = evaluate_files(self.ds.qrels, [hybrid_run], MEASURES)[0].scores
        self.stamps.stages.append(Stage("fusion", time.perf_counter() - t, note=self.hybrid_method))
        self.payload["hybrid"] = {"run": str(hybrid_run), "method": self.hybrid_method, "scores": self.hybrid_scores}

    def finish(self) -> PipelineResult:
        """Write the evaluation file (scores, statistics, stages) and return the figures."""
        from splade_anserini.conversion.atomic import atomic_open
        from splade_anserini.outputs import record_file

        stages = self.stamps.stages
        self.payload["stages"] = [s.__dict__ for s in stages]
        self.runs.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.eval_file) as fh:
            json.dump(self.payload, fh, indent=2)
            fh.write("\n")
        record_file(self.eval_file, "evaluation")
        return PipelineResult(self.ds.name, self.config.model, str(self.run_file), self.evaluation.scores,
                              self.stats.as_dict(), stages,
                              str(self.bm25_run) if self.bm25_run else None, self.bm25_scores, self.warnings,
                              str(self.hybrid_run) if self.hybrid_run else None, self.hybrid_scores,
                              self.hybrid_method)
