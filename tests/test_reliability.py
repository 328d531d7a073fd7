"""Reliability at the borders, one test (or more) per case: what ``index`` accepts is exactly what gets
scored, every refusal is one line with the right exit status, no two runs can mix, nothing is left
behind. Real SciFact slices; the Lucene cases share this process's JVM."""
from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from splade_anserini.conversion.atomic import atomic_open, tmp_name
from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.jsonvector import MAX_IMPACT, VectorDoc, read_jsonvector, write_jsonvector
from splade_anserini.conversion.quantize import guard_empty
from splade_anserini.encode import corpus as ec
from splade_anserini.index import build as index_cli
from splade_anserini.search import run as search_cli

FAST = ["--max-length", "48", "--no-progress", "--threads", "1"]
HAS_DEV_FULL = os.path.exists("/dev/full")


def call(main, argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    """The stderr of a refusal: exactly one line ``error: ...`` (returned without the prefix)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not lines[0].startswith(("error: '", 'error: "')), err  # no quotes around the whole message
    return lines[0][len("error: "):]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def corpus(data_dir, tmp_path_factory) -> Path:
    """The first 40 SciFact documents."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with open(data_dir / "scifact" / "corpus.jsonl", "rb") as src:
        path.write_bytes(b"".join(line for _, line in zip(range(40), src)))
    return path


@pytest.fixture(scope="module")
def vectors(corpus, encoder, tmp_path_factory) -> Path:
    """splade-tiny vectors of the 40 documents (max length 64), one JsonVectorCollection file."""
    from splade_anserini.data import read_corpus

    docs = list(read_corpus(corpus))
    vecs = encoder.encode_documents([d.text for d in docs], batch_size=16)
    folder = tmp_path_factory.mktemp("vectors") / "vectors"
    folder.mkdir()
    write_jsonvector(folder / "part-00000.jsonl",
                     (VectorDoc(d.docid, guard_empty(encoder.to_impacts(v))[0]) for d, v in zip(docs, vecs)))
    return folder


def mutated(vectors: Path, target: Path, line: int, change) -> Path:
    """A copy of ``vectors`` whose document on ``line`` (1-based) is changed by ``change(obj)``."""
    target.mkdir()
    lines = (vectors / "part-00000.jsonl").read_text().splitlines()
    obj = json.loads(lines[line - 1])
    change(obj)
    lines[line - 1] = json.dumps(obj)
    (target / "part-00000.jsonl").write_text("\n".join(lines) + "\n")
    return target / "part-00000.jsonl"


def _first_token(obj) -> str:
    return next(iter(obj["vector"]))


# case 2 (and 3, 4, 6: numba overflow, truncated last line): every way a vector could be indexed other than as written
BAD_VECTORS = {
    "float weight": (lambda o: o["vector"].update({_first_token(o): 3.7}), "is 3.7, not an integer"),
    "zero weight": (lambda o: o["vector"].update({_first_token(o): 0}), "is 0, outside 1..65535"),
    "negative weight": (lambda o: o["vector"].update({_first_token(o): -4}), "is -4, outside 1..65535"),
    "huge weight": (lambda o: o["vector"].update({_first_token(o): 2 ** 40}), "is 1099511627776, outside"),
    "token with a space": (lambda o: o["vector"].update({"two words": 5}), "'two words' is empty or contains whitespace"),
    "token too long": (lambda o: o["vector"].update({"a" * 256: 5}), "is longer than 255 characters"),
    "duplicate id": (lambda o: o.update(id="4983"), "duplicate document id '4983' (first at "),
    "empty vector": (lambda o: o.update(vector={}), "empty vector"),
    "all-zero vector": (lambda o: o.update(vector={k: 0 for k in o["vector"]}), "outside 1..65535"),
    "id with a space": (lambda o: o.update(id="a b"), "document id 'a b' contains whitespace"),
    "id with a tab": (lambda o: o.update(id="a\tb"), "contains whitespace"),
    "id too long": (lambda o: o.update(id="x" * 40000), "is longer than 32766 UTF-8 bytes"),
}


@pytest.mark.parametrize("backend", ["numba", pytest.param("lucene", marks=pytest.mark.jvm)])
@pytest.mark.parametrize("case", list(BAD_VECTORS))
def test_index_refuses_vectors_it_would_not_score_as_written(case, backend, vectors, tmp_path, capsys):
    change, expected = BAD_VECTORS[case]
    bad = mutated(vectors, tmp_path / "in", 4, change)
    rc, out, err = call(index_cli.main, ["--input", bad.parent, "--index", tmp_path / "idx", "--threads", "1",
                                         "--backend", backend], capsys)
    assert rc == 2 and out == ""
    message = one_error_line(err)
    assert message.startswith(f"{bad}:4: ") and expected in message, message
    assert not (tmp_path / "idx").exists() and hidden(tmp_path) == []


@pytest.mark.parametrize("backend", ["numba", pytest.param("lucene", marks=pytest.mark.jvm)])
def test_truncated_last_line_is_named(backend, vectors, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    text = (vectors / "part-00000.jsonl").read_text()
    (tmp_path / "in" / "part-00000.jsonl").write_text(text[:-40])  # killed writer: half a last line
    rc, _, err = call(index_cli.main, ["--input", tmp_path / "in", "--index", tmp_path / "idx", "--backend", backend,
                                       "--threads", "1"], capsys)
    assert rc == 2 and one_error_line(err).startswith(f"{tmp_path / 'in' / 'part-00000.jsonl'}:40: malformed JSON")
    assert not (tmp_path / "idx").exists()


def test_duplicate_ids_across_files_are_refused(vectors, tmp_path):
    shutil.copy(vectors / "part-00000.jsonl", tmp_path / "part-00000.jsonl")
    shutil.copy(vectors / "part-00000.jsonl", tmp_path / "part-00001.jsonl")
    with pytest.raises(InputError, match=r"part-00001.jsonl:1: duplicate document id .* \(first at .*part-00000.jsonl:1\)"):
        list(read_jsonvector(tmp_path))


@pytest.mark.parametrize("backend", ["numba", pytest.param("lucene", marks=pytest.mark.jvm)])
def test_index_quantize_takes_float_vectors_as_encode_corpus_does(backend, vectors, tmp_path, capsys):
    from splade_anserini.index.numba_index import NumbaIndex

    (tmp_path / "float").mkdir()
    with open(tmp_path / "float" / "part-00000.jsonl", "w") as fh:
        for doc in read_jsonvector(vectors):  # impacts / 100: rint(w * 100) gives them back exactly
            fh.write(json.dumps({"id": doc.docid, "contents": "", "vector": {t: w / 100 for t, w in doc.vector.items()}}) + "\n")
        fh.write(json.dumps({"id": "tiny", "contents": "", "vector": {"aspirin": 0.001, "heart": -0.5}}) + "\n")
    rc, _, err = call(index_cli.main, ["--input", tmp_path / "float", "--index", tmp_path / "plain", "--backend", backend],
                      capsys)
    assert rc == 2 and "not an integer (pass a quantization factor for float vectors)" in one_error_line(err)
    rc, out, _ = call(index_cli.main, ["--input", tmp_path / "float", "--index", tmp_path / "q", "--backend", backend,
                                       "--quantize", "100", "--threads", "1"], capsys)
    assert rc == 0 and "41 of 41 documents indexed" in out
    assert "float weights quantized as rint(w * 100), 1 emptied vectors got the guard" in out
    if backend == "numba":
        built = NumbaIndex.load(tmp_path / "q")
        assert built.factor == 100.0
        reference = NumbaIndex.from_vectors([(d.docid, d.vector) for d in read_jsonvector(vectors)]
                                            + [("tiny", {"[unused993]": 1})])
        for query in ({"aspirin": 3, "heart": 1}, {"[unused993]": 1}, {"cell": 2, "protein": 5}):
            assert built.search(query, k=50) == reference.search(query, k=50)


@pytest.mark.jvm
def test_maximum_impact_and_token_length_are_what_lucene_indexes_exactly(tmp_path):
    """The documented limits are real: an impact of MAX_IMPACT scores exactly, a 255-character token
    is one term."""
    from splade_anserini import java
    from splade_anserini.index.build import build_lucene_index

    (tmp_path / "in").mkdir()
    write_jsonvector(tmp_path / "in" / "p.jsonl", [VectorDoc("d1", {"big": MAX_IMPACT, "b" * 255: 3}),
                                                   VectorDoc("d2", {"big": 1})])
    build_lucene_index(tmp_path / "in", tmp_path / "idx")

    class Fixed:
        def __init__(self, vector):
            self.vector = vector

        def encode(self, text, **kwargs):
            return self.vector

    lucene = java.pyserini_lucene()
    for query, expected in (({"big": 1}, [("d1", MAX_IMPACT), ("d2", 1)]), ({"b" * 255: 2}, [("d1", 6)])):
        searcher = lucene.LuceneImpactSearcher(str(tmp_path / "idx"), Fixed(query), min_idf=float("-inf"))
        assert [(h.docid, round(h.score)) for h in searcher.search("x", k=5)] == expected
        searcher.close()


# case 4: ids that no run can hold are refused where they are first read
@pytest.mark.parametrize("line, expected", [
    ('{"_id": "a b", "text": "x"}', "document id 'a b' contains whitespace"),
    ('{"_id": "a\\tb", "text": "x"}', "contains whitespace"),
    ('{"_id": "a\\nb", "text": "x"}', "contains whitespace"),
    ('{"_id": "' + "x" * 40000 + '", "text": "x"}', "is longer than 32766 UTF-8 bytes"),
    ('{"_id": ["a"], "text": "x"}', "document id must be a string"),
])
def test_corpus_ids_that_no_index_can_hold(line, expected, tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "1", "text": "aspirin"}\n' + line + "\n")
    rc, out, err = call(ec.main, ["--corpus", corpus, "--output", tmp_path / "v", *FAST], capsys)
    assert rc == 2 and out == ""
    message = one_error_line(err)
    assert message.startswith(f"{corpus}:2: ") and expected in message
    assert not (tmp_path / "v").exists() and hidden(tmp_path) == []


def test_msmarco_pid_with_a_space_and_query_id_with_a_space(tmp_path):
    from splade_anserini.data import read_corpus, read_topics

    (tmp_path / "c.tsv").write_text("1\tok\n2 3\tpid with a space\n")
    with pytest.raises(InputError, match=r"c.tsv:2: document id '2 3' contains whitespace"):
        list(read_corpus(tmp_path / "c.tsv"))
    (tmp_path / "q.tsv").write_text("1\tok\nq 2\tquery id with a space\n")
    with pytest.raises(InputError, match=r"q.tsv:2: query id 'q 2' contains whitespace"):
        read_topics(tmp_path / "q.tsv")


# case 1: --overwrite while another process encodes the same output
@pytest.mark.one_leg
def test_overwrite_while_another_encode_runs_is_refused(data_dir, tmp_path, capsys):
    # 400 documents: the first run must still be encoding when the second has loaded its model
    corpus = tmp_path / "corpus.jsonl"
    with open(data_dir / "scifact" / "corpus.jsonl", "rb") as src:
        corpus.write_bytes(b"".join(line for _, line in zip(range(400), src)))
    out = tmp_path / "v"
    argv = ["--corpus", str(corpus), "--output", str(out), "--block-size", "2", *FAST]
    work = ec.work_dir(out, 0, 1)
    proc = subprocess.Popen([sys.executable, "-m", "splade_anserini.encode_corpus", *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not list(work.glob("block-*.json")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the first run ended before the second could start"
        rc, stdout, err = call(ec.main, argv + ["--overwrite", "--quantization-factor", "50"], capsys)
        assert rc == 2 and stdout == ""
        assert one_error_line(err) == f"{out}: another splade-anserini process is writing it; wait for it to finish " \
                                      "or choose another path"
        assert list(work.glob("block-*.json")) and (work / "manifest.json").is_file()  # nothing deleted
        first_out, first_err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, first_err
    summary = ec.read_summary(out)
    assert summary["arguments"]["quantization_factor"] == 100.0 and summary["documents"] == 400
    # once the first run is done, --overwrite holds the lock and redoes the output with its own arguments
    rc, _, _ = call(ec.main, argv + ["--overwrite", "--quantization-factor", "50"], capsys)
    assert rc == 0 and ec.read_summary(out)["arguments"]["quantization_factor"] == 50.0
    assert not work.exists()


# case 5: a max length beyond the model's positions
def test_max_length_beyond_the_model_is_refused_before_anything_is_written(corpus, tmp_path, capsys):
    out = tmp_path / "v"
    rc, _, err = call(ec.main, ["--corpus", corpus, "--output", out, "--max-length", "100000", "--no-progress"], capsys)
    assert rc == 2
    assert one_error_line(err) == "--max-length 100000: model splade-tiny has 512 positions (use --max-length 512 or less)"
    assert not out.exists() and not ec.work_dir(out, 0, 1).exists() and hidden(tmp_path) == []
    rc, _, _ = call(ec.main, ["--corpus", corpus, "--output", out, "--block-size", "20", *FAST], capsys)
    assert rc == 0


# case 6: one line each instead of a traceback
@pytest.mark.skipif(not HAS_DEV_FULL, reason="needs /dev/full to simulate a full disk")
def test_encode_on_a_full_disk(corpus, tmp_path, capsys, monkeypatch):
    import builtins

    import splade_anserini.conversion.atomic as atomic

    def full_for_blocks(path, mode="r", *args, **kwargs):
        if ".block-" in os.fspath(path):
            return builtins.open("/dev/full", mode, *args, **kwargs)
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", full_for_blocks, raising=False)
    out = tmp_path / "v"
    rc, _, err = call(ec.main, ["--corpus", corpus, "--output", out, "--block-size", "20", *FAST], capsys)
    work = ec.work_dir(out, 0, 1)
    assert rc == 1
    assert one_error_line(err) == f"{work / 'block-0000000.jsonl'}: No space left on device"
    assert sorted(p.name for p in work.iterdir()) == ["manifest.json"]  # no .tmp or lock left, resumable
    monkeypatch.undo()
    rc, _, _ = call(ec.main, ["--corpus", corpus, "--output", out, "--block-size", "20", *FAST], capsys)
    assert rc == 0 and not work.exists()


@pytest.mark.skipif(not HAS_DEV_FULL, reason="needs /dev/full to simulate a full disk")
def test_numba_index_on_a_full_disk(vectors, tmp_path, capsys, monkeypatch):
    import builtins

    from splade_anserini.index import numba_index

    def full_for_arrays(path, mode="r", *args, **kwargs):
        if os.fspath(path).endswith(".npy.tmp"):
            return builtins.open("/dev/full", mode, *args, **kwargs)
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(numba_index, "open", full_for_arrays, raising=False)
    rc, _, err = call(index_cli.main, ["--input", vectors, "--index", tmp_path / "idx", "--backend", "numba"], capsys)
    assert rc == 1 and one_error_line(err) == f"{tmp_path / 'idx'}: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_train_on_a_full_disk(data_dir, tmp_path, capsys, monkeypatch):
    from transformers import PreTrainedModel

    from splade_anserini.train.__main__ import main as train_main

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", full)
    argv = ["--triples", data_dir / "msmarco-toy" / "triples.train.tsv", "--output-dir", tmp_path / "out",
            "--batch-size", "2", "--max-length", "32", "--query-max-length", "16", "--max-steps", "1",
            "--progress", "false", "--threads", "1"]
    rc, _, err = call(train_main, argv, capsys)
    assert rc == 1 and "Traceback" not in err
    message = one_error_line(err.strip().splitlines()[-1])  # after the trainer's log lines
    assert message.endswith(": No space left on device") and ".checkpoint-" in message
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".checkpoint")]


@pytest.mark.parametrize("device, expected", [
    ("foo", "--device foo: not a torch device (cpu, cuda, cuda:N, mps)"),
    pytest.param("cuda", "--device cuda: ", marks=pytest.mark.skipif(
        __import__("torch").cuda.is_available(), reason="a CUDA device is present")),
])
def test_unusable_device(device, expected, corpus, tmp_path, capsys):
    rc, _, err = call(ec.main, ["--corpus", corpus, "--output", tmp_path / "v", "--device", device, *FAST], capsys)
    assert rc == 2 and one_error_line(err).startswith(expected)
    assert not (tmp_path / "v").exists() and hidden(tmp_path) == []


@pytest.mark.parametrize("kind", ["truncated", "not gzip"])
def test_broken_gzip_corpus(kind, corpus, tmp_path, capsys):
    data = gzip.compress(corpus.read_bytes())
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(data[: len(data) // 2] if kind == "truncated" else corpus.read_bytes())
    rc, _, err = call(ec.main, ["--corpus", path, "--output", tmp_path / "v", *FAST], capsys)
    assert rc == 2
    message = one_error_line(err)
    assert message.startswith(f"{path}:") and "truncated or corrupt gzip data" in message
    assert not (tmp_path / "v").exists() and hidden(tmp_path) == []


def test_search_with_zero_threads_is_an_argument_error(tmp_path, capsys):
    rc, _, err = call(search_cli.main, ["--index", tmp_path, "--encoded-topics", tmp_path / "t.tsv",
                                        "--output", tmp_path / "r.trec", "--threads", "0"], capsys)
    assert rc == 2 and one_error_line(err).startswith("argument --threads: must be >= 1, got 0")


# case 7: one rule for exit statuses
def test_bad_input_exits_2_from_every_command(vectors, tmp_path, capsys):
    from splade_anserini.evaluate import measures as evaluate
    from splade_anserini.evaluate import parity
    from splade_anserini.evaluate import stats

    bad_topics = tmp_path / "topics.tsv"
    bad_topics.write_text("1\taspirin\nno tab on this line\n")
    rc, _, _ = call(index_cli.main, ["--input", vectors, "--index", tmp_path / "numba", "--backend", "numba"], capsys)
    assert rc == 0
    bad_vectors = mutated(vectors, tmp_path / "bad", 2, lambda o: o["vector"].update(x=1.5))
    bad_tsvint = tmp_path / "t.tsvint"
    bad_tsvint.write_text("1\taspirin\n1\theart\n")
    good_tsvint = tmp_path / "good.tsvint"
    good_tsvint.write_text("1\taspirin\n")
    cases = [
        (search_cli.main, ["--index", tmp_path / "numba", "--backend", "numba", "--topics", bad_topics,
                           "--output", tmp_path / "r.trec"], f"{bad_topics}:2: expected 'qid<TAB>query text'"),
        (search_cli.main, ["--index", tmp_path / "numba", "--backend", "numba", "--encoded-topics", bad_tsvint,
                           "--output", tmp_path / "r.trec"], f"{bad_tsvint}:2: duplicate query id"),
        (index_cli.main, ["--input", bad_vectors.parent, "--index", tmp_path / "i2", "--backend", "numba"],
         f"{bad_vectors}:2: weight of 'x' is 1.5"),
        (stats.main, ["--vectors", bad_vectors.parent, "--queries", good_tsvint], f"{bad_vectors}:2:"),
        (evaluate.main, ["--qrels", bad_topics, bad_topics], f"{bad_topics}:1: expected 4 columns"),
        (parity.main, ["--index", tmp_path, "--numba-index", tmp_path / "numba", "--encoded-topics", bad_tsvint],
         f"{bad_tsvint}:2: duplicate query id"),
    ]
    for main, argv, expected in cases:
        rc, out, err = call(main, argv, capsys)
        assert rc == 2 and one_error_line(err).startswith(expected), (main.__module__, err)
    assert not (tmp_path / "r.trec").exists() and not (tmp_path / "i2").exists()


def test_an_existing_index_is_a_usage_error_and_a_failure_is_1(vectors, tmp_path, capsys, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep").write_text("x")  # a folder of the user's: refused, even with --overwrite
    rc, _, err = call(index_cli.main, ["--input", vectors, "--index", tmp_path / "mine", "--backend", "numba",
                                       "--overwrite"], capsys)
    assert rc == 2 and one_error_line(err).endswith("was not written by splade-anserini (no "
                                                    ".splade-anserini-output.json marker); choose another path or "
                                                    "remove it yourself")
    assert (tmp_path / "mine" / "keep").read_text() == "x"
    rc, _, err = call(index_cli.main, ["--input", vectors, "--index", tmp_path / "idx", "--backend", "numba"], capsys)
    assert rc == 0
    rc, _, err = call(index_cli.main, ["--input", vectors, "--index", tmp_path / "idx", "--backend", "numba"], capsys)
    assert rc == 2 and one_error_line(err).endswith("already exists; pass --overwrite (overwrite=True) to replace it")

    def crash(*args, **kwargs):
        raise RuntimeError("the numba kernel crashed")

    from splade_anserini.index.numba_index import NumbaIndex

    monkeypatch.setattr(NumbaIndex, "from_vectors", crash)
    rc, _, err = call(index_cli.main, ["--input", vectors, "--index", tmp_path / "new", "--backend", "numba"], capsys)
    assert rc == 1 and one_error_line(err) == "the numba kernel crashed"


# case 9: a relative model path that does not exist
def test_missing_relative_model_path_fails_within_seconds(corpus, tmp_path, capsys):
    assert not (ROOT / "models").exists()
    start = time.monotonic()
    rc, _, err = call(ec.main, ["--corpus", corpus, "--output", tmp_path / "v", "--model", "models/nonexistent",
                                *FAST], capsys)
    assert time.monotonic() - start < 20
    assert rc == 2 and one_error_line(err).startswith("model models/nonexistent: no local directory ")
    assert "Hugging Face cache" in err  # every place searched is named
    os.makedirs(tmp_path / "models")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:  # "models" is a folder here: the name can only have meant a path
        rc, _, err = call(ec.main, ["--corpus", corpus, "--output", tmp_path / "v", "--model", "models/nonexistent",
                                    *FAST], capsys)
    finally:
        os.chdir(cwd)
    assert rc == 2 and one_error_line(err).startswith("model models/nonexistent: no such directory (")


# case 10: nothing to encode, nothing to index
def test_empty_corpus_and_empty_index_input(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n\n")
    rc, _, err = call(ec.main, ["--corpus", corpus, "--output", tmp_path / "v", *FAST], capsys)
    assert rc == 2 and one_error_line(err) == f"{corpus}: no documents"
    assert not (tmp_path / "v").exists() and hidden(tmp_path) == []
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part-00000.jsonl").write_text("")
    for backend in ("numba", "lucene"):
        rc, _, err = call(index_cli.main, ["--input", tmp_path / "in", "--index", tmp_path / "idx", "--backend", backend],
                          capsys)
        assert rc == 2 and one_error_line(err) == f"{tmp_path / 'in'}: no documents"
        assert not (tmp_path / "idx").exists() and hidden(tmp_path) == []


# case 11: leftovers
@pytest.mark.skipif(not HAS_DEV_FULL, reason="needs /dev/full to simulate a full disk")
def test_atomic_open_on_a_full_disk_leaves_no_temporary(tmp_path, monkeypatch):
    import splade_anserini.conversion.atomic as atomic

    path = tmp_path / "out.jsonl"
    fixed = tmp_name(path)
    fixed.symlink_to("/dev/full")  # what the writer opens: every write fails with ENOSPC
    monkeypatch.setattr(atomic, "tmp_name", lambda p: fixed)
    with pytest.raises(OSError) as err:
        with atomic_open(path) as fh:
            fh.write("x" * 100_000)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert list(tmp_path.iterdir()) == []


def test_folders_of_killed_index_builds_are_removed(vectors, tmp_path, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        for kind in ("building", "input", "old"):
            (tmp_path / f".idx.{kind}-{dead.pid}").mkdir()
        (tmp_path / f".idx.building-{alive.pid}").mkdir()   # a build that is still running
        (tmp_path / f".other.building-{dead.pid}").mkdir()  # another index's
        rc, _, _ = call(index_cli.main, ["--input", vectors, "--index", tmp_path / "idx", "--backend", "numba"], capsys)
        assert rc == 0
        assert hidden(tmp_path) == sorted([f".idx.building-{alive.pid}", f".other.building-{dead.pid}"])
    finally:
        alive.kill()
        alive.wait()


# case 12: the pipeline resumes an interrupted encoding
@pytest.mark.one_leg
def test_pipeline_resumes_an_interrupted_encoding(corpus, encoder, tmp_path, monkeypatch):
    from splade_anserini import pipeline

    monkeypatch.setitem(ec.encode_corpus.__kwdefaults__, "block_size", 10)
    common = dict(factor=100.0, batch_size=8, threads=1)
    reference = pipeline.encode_corpus_stage(corpus, tmp_path / "ref", encoder, **common, log=lambda m: None)
    real = ec._encode_block
    calls = []

    def killed_on_third_block(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ec, "_encode_block", killed_on_third_block)
    with pytest.raises(KeyboardInterrupt):
        pipeline.encode_corpus_stage(corpus, tmp_path / "v", encoder, **common, key="k1", log=lambda m: None)
    monkeypatch.setattr(ec, "_encode_block", real)
    logs: list[str] = []
    assert pipeline.encode_corpus_stage(corpus, tmp_path / "v", encoder, **common, key="k1", log=logs.append) == reference
    assert any("resuming" in m and "2 of 4 blocks already encoded" in m for m in logs), logs
    assert (tmp_path / "v" / "part-00000.jsonl").read_bytes() == (tmp_path / "ref" / "part-00000.jsonl").read_bytes()
    # another stage key (e.g. retrained weights in the same folder) or --force: encoded again, from zero
    for kwargs in ({"key": "k2"}, {"key": "k2", "force": True}):
        logs.clear()
        pipeline.encode_corpus_stage(corpus, tmp_path / "v", encoder, **common, log=logs.append, **kwargs)
        assert not any("already encoded" in m or "resuming" in m for m in logs), logs


def test_a_ctrl_c_that_native_code_reports_as_an_error_still_reads_as_an_interruption():
    # torch's argument parsing checks for signals and turns a pending Ctrl-C into an error of its own
    code = """
import os, signal, sys
from splade_anserini.cli import command

@command
def main():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10 ** 7):
            pass
    except KeyboardInterrupt:
        raise TypeError("unknown parameter type") from None
    return 0

sys.exit(main())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "interrupted: rerun the same command to resume"
