"""Trainer configuration and data: flags and files, negatives from a run, and one-line errors on bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from splade_anserini.conversion.errors import InputError
from splade_anserini.train.config import ConfigError, config_from_dict, load_config_file, parse_args
from splade_anserini.train.data import QrelsData, Stream, TriplesData, build_data, read_scored_pairs

DOCS = {f"d{i}": f"document number {i} about topic {i % 3}" for i in range(8)}


@pytest.fixture
def beir(tmp_path):
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                                                   for d, t in DOCS.items()))
    (tmp_path / "queries.tsv").write_text("q1\ttopic one\nq2\ttopic two\nq3\tunjudged\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\nq1 0 d4 1\nq2 0 d2 1\nq2 0 d5 0\n")
    run = [("q1", ["d1", "d0", "d3", "d4", "d6"]), ("q2", ["d5", "d2", "d7"])]
    (tmp_path / "run.trec").write_text("".join(f"{q} Q0 {d} {r} {10 - r}.0 bm25\n"
                                               for q, docs in run for r, d in enumerate(docs, 1)))
    return tmp_path


def cfg_for(path, **kw):
    base = dict(corpus=str(path / "corpus.jsonl"), queries=str(path / "queries.tsv"), qrels=str(path / "qrels.txt"),
                negatives=str(path / "run.trec"), output_dir=str(path / "out"))
    base.update(kw)
    return config_from_dict(base)


def test_negatives_come_from_the_run_without_positives(beir):
    data, valid = build_data(cfg_for(beir, n_negatives=2))
    assert valid is None and isinstance(data, QrelsData)
    assert data.qids == ["q1", "q2"]  # q3 has no positive
    assert data.candidates == {"q1": ["d0", "d3", "d6"], "q2": ["d5", "d7"]}  # rel 0 (d5) is a negative
    for i in range(len(data)):
        for seed in range(5):
            ex = data.example(i, np.random.default_rng(seed))
            assert ex.pos_id in data.positives[ex.qid]
            assert len(ex.negatives) == 2 and not set(ex.neg_ids) & set(data.positives[ex.qid])
            assert ex.positive == DOCS[ex.pos_id] and ex.negatives == [DOCS[d] for d in ex.neg_ids]


def test_depth_and_random_top_up(beir):
    data, _ = build_data(cfg_for(beir, n_negatives=3, negatives_depth=2))
    assert data.candidates == {"q1": ["d0"], "q2": ["d5"]}
    ex = data.example(0, np.random.default_rng(0))
    assert len(set(ex.neg_ids)) == 3 and "d0" in ex.neg_ids and not set(ex.neg_ids) & {"d1", "d4"}
    assert data.topped_up == 2


def test_stream_is_a_deterministic_function_of_position(beir):
    data, _ = build_data(cfg_for(beir))
    a, b = Stream(data, 7), Stream(data, 7)
    seq_a = [(e.qid, e.pos_id, tuple(e.neg_ids)) for e in a.batch(0, 10)]
    seq_b = [(e.qid, e.pos_id, tuple(e.neg_ids)) for e in reversed([b.get(p) for p in reversed(range(10))])]
    assert seq_a == seq_b
    assert sorted(q for q, _, _ in seq_a[:2]) == ["q1", "q2"]  # each epoch is a permutation


def test_holdout_validation_split(beir):
    data, valid = build_data(cfg_for(beir, valid_holdout=1, valid_negatives_per_query=1))
    assert len(data) == 1 and set(valid.queries) | set(data.qids) == {"q1", "q2"}
    q = next(iter(valid.queries))
    assert set(valid.qrels) == {q}
    assert set(valid.qrels[q]) <= set(valid.corpus)


def test_teacher_scores_two_formats(beir, tmp_path):
    (tmp_path / "t.tsv").write_text("q1\td1\t3.5\nq1\td0\t1.0\n")
    (tmp_path / "t.trec").write_text("q1 Q0 d1 1 3.5 x\nq1 Q0 d0 2 1.0 x\n")
    assert read_scored_pairs(tmp_path / "t.tsv") == read_scored_pairs(tmp_path / "t.trec") == \
        {"q1": {"d1": 3.5, "d0": 1.0}}
    (tmp_path / "t.tsv").write_text("q1\td1\t3.5\nq1\td4\t2.0\nq1\td0\t1.0\nq1\td3\t0.5\nq2\td2\t2\nq2\td7\t1\n")
    data, _ = build_data(cfg_for(beir, teacher=str(tmp_path / "t.tsv"), distill="margin_mse"))
    ex = data.example(0, np.random.default_rng(1))
    scores = read_scored_pairs(tmp_path / "t.tsv")[ex.qid]
    assert ex.teacher == [scores[ex.pos_id]] + [scores[d] for d in ex.neg_ids]


# -- bad input: one line, naming the problem ---------------------------------------------------------
def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_malformed_triples_line(tmp_path):
    path = tmp_path / "triples.tsv"
    path.write_text("q\tpos\tneg\nquery only\tone positive\n")
    with pytest.raises(InputError) as err:
        TriplesData(path)
    assert one_line(err).startswith(f"{path}:2: expected 'query<TAB>positive<TAB>negative'")


def test_qrels_naming_missing_document(beir):
    (beir / "qrels.txt").write_text("q1 0 d1 1\nq2 0 d99 1\n")
    with pytest.raises(InputError) as err:
        build_data(cfg_for(beir))
    msg = one_line(err)
    assert msg.startswith(f"{beir / 'qrels.txt'}:2:") and "'d99'" in msg and "not in the corpus" in msg


def test_run_with_unknown_topic(beir):
    with open(beir / "run.trec", "a") as fh:
        fh.write("q42 Q0 d1 1 3.0 bm25\n")
    with pytest.raises(InputError) as err:
        build_data(cfg_for(beir))
    msg = one_line(err)
    assert msg.startswith(f"{beir / 'run.trec'}:9:") and "unknown topic 'q42'" in msg


def test_run_with_unknown_document(beir):
    with open(beir / "run.trec", "a") as fh:
        fh.write("q1 Q0 nope 6 1.0 bm25\n")
    with pytest.raises(InputError) as err:
        build_data(cfg_for(beir))
    assert "'nope'" in one_line(err)


def test_config_with_unknown_keys(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("triples: t.tsv\noutput_dir: out\nlearning_rate: 1e-5\nlamda_d: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert one_line(err) == f"config {path}: unknown key(s) 'lamda_d', 'learning_rate'"
    with pytest.raises(ConfigError, match="unknown config key"):
        config_from_dict({"triples": "t", "output_dir": "o", "nope": 1})


def test_config_file_types_and_flag_override(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"triples": "t.tsv", "output_dir": "out", "lr": 1, "lambda_d": 0.001,
                                "splade_doc": True}))
    cfg = parse_args(["--config", str(path), "--lr", "3e-5", "--batch-size", "8"])
    assert (cfg.lr, cfg.batch_size, cfg.lambda_d, cfg.splade_doc) == (3e-5, 8, 0.001, True)
    path.write_text(json.dumps({"triples": "t.tsv", "output_dir": "out", "batch_size": "8"}))
    with pytest.raises(ConfigError, match="'batch_size' must be int"):
        parse_args(["--config", str(path)])
    with pytest.raises(ConfigError, match="distill=kl needs teacher"):
        config_from_dict({"triples": "t", "output_dir": "o", "distill": "kl"})
    with pytest.raises(ConfigError, match="either triples or corpus"):
        config_from_dict({"triples": "t", "corpus": "c", "output_dir": "o"})


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    triples = tmp_path / "triples.tsv"
    triples.write_text("q\tp\tn\nbroken line\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"triples: {triples}\noutput_dir: {tmp_path / 'out'}\nbogus: 1\n")
    for args, expected in ((["--config", str(cfg)], "unknown key(s) 'bogus'"),
                           (["--triples", str(triples), "--output-dir", str(tmp_path / "out")], f"{triples}:2:")):
        proc = subprocess.run([sys.executable, "-m", "splade_anserini.train", *args], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and expected in lines[-1]
        assert not any("Traceback" in line for line in lines)


def test_native_beir_queries_and_qrels(beir):
    """queries.jsonl and a BEIR qrels TSV with header give the same training data as the TSV / TREC files."""
    import gzip

    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "topic one"}\n{"_id": "q2", "text": "topic two"}\n'
                                        '{"_id": "q3", "text": "unjudged"}\n')
    (beir / "test.tsv.gz").write_bytes(gzip.compress(
        b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td4\t1\nq2\td2\t1\nq2\td5\t0\n"))
    a, _ = build_data(cfg_for(beir, n_negatives=2))
    b, _ = build_data(cfg_for(beir, n_negatives=2, queries=str(beir / "queries.jsonl"), qrels=str(beir / "test.tsv.gz")))
    assert (a.qids, a.positives, a.candidates) == (b.qids, b.positives, b.candidates)
    (beir / "bad.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td99\t1\n")
    with pytest.raises(InputError) as err:
        build_data(cfg_for(beir, queries=str(beir / "queries.jsonl"), qrels=str(beir / "bad.tsv")))
    assert one_line(err).startswith(f"{beir / 'bad.tsv'}:3: document 'd99' (query 'q2') is not in the corpus")


def test_quick_eval_dataset_layouts(data_dir):
    from splade_anserini.train.quick_eval import dataset_files

    corpus, queries, qrels = dataset_files(data_dir / "msmarco-dl19-subset")  # the out-of-domain validation set
    assert (corpus.name, queries.name, qrels.name) == ("collection.tsv", "queries.dl19.tsv", "qrels.dl19.txt")
    assert corpus.is_file() and queries.is_file() and qrels.is_file()
    assert [p.name for p in dataset_files(data_dir / "scifact")] == ["corpus.jsonl", "queries.test.tsv", "qrels.test.txt"]


def test_holdout_command_writes_the_trainers_validation_queries(data_dir, tmp_path):
    """`train.holdout` writes the queries (and qrels) the trainer validates on, for a real SciFact config."""
    from splade_anserini.conversion.trec import read_qrels
    from splade_anserini.data import read_topics

    sci = data_dir / "scifact"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"corpus: {sci / 'corpus.jsonl'}\nqueries: {sci / 'queries.train.tsv'}\n"
                   f"qrels: {sci / 'qrels.train.txt'}\noutput_dir: {tmp_path / 'out'}\nvalid_holdout: 50\nseed: 7\n")
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.train.holdout", "--config", str(cfg),
                           "--output", str(tmp_path / "held")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data, valid = build_data(parse_args(["--config", str(cfg)]))
    written = read_topics(tmp_path / "held.queries.tsv")
    assert written == valid.queries and len(written) == 50
    assert read_qrels(tmp_path / "held.qrels.txt") == valid.qrels
    assert not set(written) & set(data.qids)  # held out: never trained on
    cfg.write_text(f"queries: {sci / 'queries.train.tsv'}\noutput_dir: {tmp_path / 'out'}\n")
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.train.holdout", "--config", str(cfg),
                           "--output", str(tmp_path / "none")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: ") and "valid_holdout" in proc.stderr
    assert not list(tmp_path.glob("none*"))
