"""Nothing the tool did not write is ever replaced or removed (:mod:`splade_anserini.outputs`).

Every command is given decoys as its output (a user's folder with nested files, a user's file, a
link to a user's folder, the home folder, the current folder), with and without --overwrite /
--force: each is refused in one line with exit status 2 and stays byte for byte as it was; the same
command on its own earlier output still replaces it. Decoys live under ``tmp_path`` only, and HOME
is always a decoy.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from splade_anserini.encode import corpus as ec
from splade_anserini.evaluate import measures as evaluate_cli
from splade_anserini.serve import export_onnx as export_cli
from splade_anserini.search import fusion as fusion_cli
from splade_anserini.index import build as index_cli
from splade_anserini import outputs
from splade_anserini import pipeline as pipeline_cli
from splade_anserini.search import run as search_cli
from splade_anserini.train import __main__ as train_cli
from splade_anserini.train import mine_negatives as mine_cli

REFUSALS = ("was not written by splade-anserini", "never replaces or removes", "the output is also an input")


# -- the data -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(data_dir, encoder, tmp_path_factory) -> dict[str, Path]:
    """40 SciFact documents, their splade-tiny vectors, 10 topics, the qrels, a Numba index, two runs."""
    from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
    from splade_anserini.conversion.quantize import guard_empty
    from splade_anserini.data import read_corpus

    root = tmp_path_factory.mktemp("inputs")
    corpus = root / "corpus.jsonl"
    with open(data_dir / "scifact" / "corpus.jsonl", "rb") as src:
        corpus.write_bytes(b"".join(line for _, line in zip(range(40), src)))
    topics = root / "topics.tsv"
    with open(data_dir / "scifact" / "queries.test.tsv", "rb") as src:
        topics.write_bytes(b"".join(line for _, line in zip(range(10), src)))
    docs = list(read_corpus(corpus))
    vecs = encoder.encode_documents([d.text for d in docs], batch_size=16)
    vectors = root / "vectors"
    vectors.mkdir()
    write_jsonvector(vectors / "part-00000.jsonl",
                     (VectorDoc(d.docid, guard_empty(encoder.to_impacts(v))[0]) for d, v in zip(docs, vecs)))
    index = root / "numba"
    assert index_cli.main(["--input", str(vectors), "--index", str(index), "--backend", "numba"]) == 0
    runs = root / "runs"
    for name in ("a", "b"):
        assert search_cli.main(["--index", str(index), "--backend", "numba", "--topics", str(topics), "--output",
                                str(runs / f"{name}.trec"), "--max-length", "32", "--threads", "1",
                                "--hits", "20" if name == "a" else "10"]) == 0
    return {"corpus": corpus, "topics": topics, "vectors": vectors, "index": index, "qrels":
            data_dir / "scifact" / "qrels.test.txt", "run_a": runs / "a.trec", "run_b": runs / "b.trec",
            "triples": data_dir / "msmarco-toy" / "triples.train.tsv"}


def commands(i: dict[str, Path], scratch: Path) -> dict:
    """Every command that writes an output: ``name -> (main, argv without the output, output flag,
    replace flag or None)``."""
    train = ["--triples", i["triples"], "--max-steps", "1", "--batch-size", "2", "--max-length", "32",
             "--query-max-length", "16", "--progress", "false", "--threads", "1"]
    return {
        "index-lucene": (index_cli.main, ["--input", i["vectors"], "--threads", "1"], "--index", "--overwrite"),
        "index-numba": (index_cli.main, ["--input", i["vectors"], "--backend", "numba"], "--index", "--overwrite"),
        "encode_corpus": (ec.main, ["--corpus", i["corpus"], "--max-length", "32", "--no-progress", "--threads", "1"],
                          "--output", "--overwrite"),
        "export_onnx": (export_cli.main, ["--max-length", "32"], "--output", "--overwrite"),
        "train": (train_cli.main, train, "--output-dir", "--overwrite"),
        "mine_negatives-index": (mine_cli.main, ["--corpus", i["corpus"], "--queries", i["topics"], "--output",
                                                 scratch / "negatives.trec"], "--index", None),
        "mine_negatives-output": (mine_cli.main, ["--corpus", i["corpus"], "--queries", i["topics"]], "--output",
                                  None),
        "pipeline": (pipeline_cli.main, ["--corpus", i["corpus"], "--topics", i["topics"], "--qrels", i["qrels"],
                                         "--runs-dir", scratch / "runs", "--max-length", "32", "--no-bm25"],
                     "--work-dir", "--force"),
        "search": (search_cli.main, ["--index", i["index"], "--backend", "numba", "--topics", i["topics"],
                                     "--max-length", "32", "--threads", "1"], "--output", None),
        "fusion": (fusion_cli.main, ["--runs", i["run_a"], i["run_b"]], "--output", None),
        "evaluate": (evaluate_cli.main, ["--qrels", i["qrels"], i["run_a"]], "--json", None),
    }


# -- decoys -------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file (its bytes) and link (its target) under ``root``, links never followed."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink():
                found[str(path)] = "->" + os.readlink(path)
            elif path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def lost(before: dict, after: dict) -> list[str]:
    return [p for p, v in before.items() if after.get(p) != v]


def make_decoy(kind: str, root: Path, monkeypatch) -> str:
    """A decoy of ``kind`` under ``root``; returns the output argument naming it. HOME is a decoy always."""
    home = root / "home"
    (home / "projects").mkdir(parents=True, exist_ok=True)
    (home / "projects" / "thesis.tex").write_text("years of work\n")
    monkeypatch.setenv("HOME", str(home))
    user = root / "mine"
    (user / "sub").mkdir(parents=True, exist_ok=True)
    (user / "keep.txt").write_text("keep\n")
    (user / "sub" / "deep.txt").write_text("deep\n")
    if kind == "folder":
        return str(user)
    if kind == "file":
        (root / "notes.txt").write_text("my notes\n")
        return str(root / "notes.txt")
    if kind == "symlink":
        (root / "link").symlink_to(user)
        return str(root / "link")
    if kind == "home":
        return str(home)
    if kind == "cwd":
        monkeypatch.chdir(user)
        return "."
    raise ValueError(kind)


DECOYS = ("folder", "file", "symlink", "home", "cwd")
COMMANDS = ("index-lucene", "index-numba", "encode_corpus", "export_onnx", "train", "mine_negatives-index",
            "mine_negatives-output", "pipeline", "search", "fusion", "evaluate")


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("flag", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("decoy", DECOYS)
@pytest.mark.parametrize("name", COMMANDS)
def test_decoys_are_refused_and_left_intact(name, decoy, flag, inputs, tmp_path, monkeypatch, capsys):
    main, argv, out_flag, replace = commands(inputs, tmp_path / "scratch")[name]
    if flag and replace is None:
        pytest.skip(f"{name} has no replace flag")
    target = make_decoy(decoy, tmp_path / "decoys", monkeypatch)
    before = snapshot(tmp_path / "decoys")
    argv = [str(a) for a in argv] + [out_flag, target] + ([replace] if flag else [])
    capsys.readouterr()
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == 2, err
    line = one_error_line(err)
    assert any(r in line for r in REFUSALS), line
    assert lost(before, snapshot(tmp_path / "decoys")) == []
    assert not [p for p in (tmp_path / "decoys").rglob("*") if p.name.endswith(".lock")]


# -- the normal workflow still replaces the tool's own outputs -------------------------------------
def files_of(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; a marker's without the folder identity it records (a new folder: a new inode)."""
    def content(p: Path) -> bytes:
        if p.name != outputs.MARKER:
            return p.read_bytes()
        marker = outputs.read_meta(p)
        marker.pop("folder")
        return json.dumps(marker, sort_keys=True).encode()

    return {str(p.relative_to(folder)): content(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_index_and_search_replace_their_own_outputs(inputs, tmp_path, capsys):
    index = tmp_path / "idx"
    argv = ["--input", str(inputs["vectors"]), "--index", str(index), "--backend", "numba"]
    assert index_cli.main(argv) == 0
    first = files_of(index)
    assert index_cli.main(argv) == 2  # without --overwrite: refused, kept
    assert index_cli.main(argv + ["--overwrite"]) == 0
    assert files_of(index) == first and outputs.is_ours(index, "numba-index")
    assert index_cli.main(argv[:3] + [str(index), "--backend", "lucene", "--overwrite"]) == 2  # another kind
    run = tmp_path / "runs" / "x.trec"
    argv = ["--index", str(index), "--backend", "numba", "--topics", str(inputs["topics"]), "--output", str(run),
            "--max-length", "32", "--threads", "1"]
    assert search_cli.main(argv) == 0
    text = run.read_bytes()
    assert search_cli.main(argv) == 0 and run.read_bytes() == text
    run.write_text(run.read_text() + "\n")  # the user edits it: no longer the tool's to replace
    assert search_cli.main(argv) == 2
    capsys.readouterr()


def test_search_output_equal_to_topics_is_refused(inputs, tmp_path, capsys):
    topics = tmp_path / "topics.tsv"
    topics.write_bytes(inputs["topics"].read_bytes())
    rc = search_cli.main(["--index", str(inputs["index"]), "--backend", "numba", "--topics", str(topics),
                          "--output", str(topics)])
    assert rc == 2 and "also an input" in one_error_line(capsys.readouterr()[1])
    assert topics.read_bytes() == inputs["topics"].read_bytes()


def test_fusion_evaluate_and_encode_replace_their_own_outputs(inputs, tmp_path, capsys):
    fused = tmp_path / "f.trec"
    argv = ["--runs", str(inputs["run_a"]), str(inputs["run_b"]), "--output", str(fused)]
    assert fusion_cli.main(argv) == 0 and fusion_cli.main(argv) == 0
    scores = tmp_path / "s.json"
    argv = ["--qrels", str(inputs["qrels"]), str(inputs["run_a"]), "--json", str(scores)]
    assert evaluate_cli.main(argv) == 0
    first = scores.read_bytes()
    assert evaluate_cli.main(argv) == 0 and scores.read_bytes() == first
    out = tmp_path / "enc" / "vectors"
    argv = ["--corpus", str(inputs["corpus"]), "--output", str(out), "--max-length", "32", "--no-progress",
            "--threads", "1", "--block-size", "16"]
    assert ec.main(argv) == 0
    first = files_of(out)
    assert ec.read_summary(out)["documents"] == 40  # the summary lives inside the folder it describes
    assert [p.name for p in out.parent.iterdir()] == ["vectors"]  # nothing beside it: no summary, work folder, lock
    assert ec.main(argv + ["--overwrite"]) == 0
    again = files_of(out)
    assert {k: v for k, v in again.items() if not k.startswith(".")} == \
           {k: v for k, v in first.items() if not k.startswith(".")}
    assert [p.name for p in out.parent.iterdir()] == ["vectors"]
    capsys.readouterr()


def test_export_replaces_its_own_export_with_normal_permissions(tmp_path, capsys):
    out = tmp_path / "onnx"
    assert export_cli.main(["--output", str(out), "--max-length", "32"]) == 0
    assert export_cli.main(["--output", str(out), "--max-length", "32", "--overwrite"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert outputs.is_ours(out, "onnx-export") and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    capsys.readouterr()


# -- paths of every shape: nothing outside the tool's own outputs disappears ----------------------
_BASES = ["", ".", "..", "../..", "../../..", "link", "link/inner", "ABS", "ABS/mine", "ABS/mine/sub", "notes.txt",
          "ABS/home"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(_BASES), name=st.sampled_from(["", "idx", "..", "sub", "keep.txt", "new/idx"]),
       overwrite=st.booleans())
def test_no_file_outside_the_tools_outputs_disappears(base, name, overwrite, inputs, tmp_path_factory,
                                                        monkeypatch):
    root = tmp_path_factory.mktemp("paths")
    make_decoy("folder", root, monkeypatch)
    (root / "notes.txt").write_text("notes\n")
    (root / "link").symlink_to(root / "mine")
    (root / "mine" / "inner").mkdir()
    monkeypatch.chdir(root / "mine" / "sub")
    before = snapshot(root)
    target = os.path.join(base.replace("ABS", str(root)), name) if name else base.replace("ABS", str(root))
    argv = ["--input", str(inputs["vectors"]), "--index", target or ".", "--backend", "numba"]
    rc = index_cli.main(argv + (["--overwrite"] if overwrite else []))
    assert rc in (0, 2)
    assert lost(before, snapshot(root)) == []
    if rc == 0:
        assert outputs.is_ours(target, "numba-index")
        rc = index_cli.main(argv + ["--overwrite"])  # and it replaces its own output
        assert rc == 0 and lost(before, snapshot(root)) == []


# -- concurrency ----------------------------------------------------------------------------------
def _python(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=kwargs.get("cwd", ROOT))


@pytest.mark.one_leg
def test_two_searches_to_one_output_both_succeed_with_one_complete_run(inputs, tmp_path):
    out = tmp_path / "same.trec"
    base = ["-m", "splade_anserini.search", "--index", str(inputs["index"]), "--backend", "numba", "--topics",
            str(inputs["topics"]), "--output", str(out), "--max-length", "32", "--threads", "1", "--hits", "40"]
    procs = [_python(*base, "--tag", tag) for tag in ("first", "second")]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    lines = out.read_text().splitlines()
    tags = {line.split()[-1] for line in lines}
    assert len(tags) == 1, tags  # one run, not two interleaved
    alone = tmp_path / "alone.trec"
    assert search_cli.main(base[2:-2] + ["--output", str(alone), "--tag", tags.pop()]) == 0
    assert out.read_bytes() == alone.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [outputs.MARKER, "alone.trec", "same.trec"]


@pytest.mark.one_leg
def test_second_train_is_refused_and_ctrl_c_saves_checkpoint_last(inputs, tmp_path, capsys):
    out = tmp_path / "train"
    argv = ["-m", "splade_anserini.train", "--triples", str(inputs["triples"]), "--output-dir", str(out),
            "--max-steps", "400", "--batch-size", "2", "--max-length", "32", "--query-max-length", "16",
            "--progress", "false", "--threads", "1", "--log-every", "1"]
    first = _python(*argv)
    lock = outputs.lock_path(out, inside=True)
    deadline = time.time() + 300
    while not ((out / "log.jsonl").is_file() and len((out / "log.jsonl").read_text().splitlines()) >= 3):
        assert first.poll() is None, first.communicate()
        assert time.time() < deadline
        time.sleep(0.5)
    assert lock.is_file()
    rc = train_cli.main([str(a) for a in argv[2:]])
    line = one_error_line(capsys.readouterr()[1])
    assert rc == 2 and "another splade-anserini process" in line, line
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 130, err
    assert "checkpoint-last saved: rerun with --resume" in err.strip().splitlines()[-1], err
    assert (out / "checkpoint-last" / "trainer_state.pt").is_file() and not lock.exists()


# -- no code from data files ----------------------------------------------------------------------
class _Hostile:
    def __init__(self, flag: Path):
        self.flag = str(flag)

    def __reduce__(self):
        return (open, (self.flag, "w"))


def test_a_hostile_trainer_state_is_refused_without_running_it(inputs, tmp_path, capsys):
    import torch

    out = tmp_path / "train"
    argv = ["--triples", str(inputs["triples"]), "--output-dir", str(out), "--max-steps", "1", "--batch-size", "2",
            "--max-length", "32", "--query-max-length", "16", "--progress", "false", "--threads", "1"]
    assert train_cli.main(argv) == 0
    state = out / "checkpoint-last" / "trainer_state.pt"
    flag = tmp_path / "pwned"
    torch.save({"step": 1, "optimizer": _Hostile(flag)}, state)
    torch.load(state, weights_only=False)  # the file does run code when unpickled without restrictions
    assert flag.exists()
    flag.unlink()
    capsys.readouterr()
    rc = train_cli.main(argv + ["--resume"])
    line = one_error_line(capsys.readouterr()[1])
    assert rc == 2 and "it was not loaded" in line and "--overwrite" in line, line
    assert not flag.exists()


def pipeline_slice(scifact: Path, folder: Path) -> tuple[Path, Path, Path]:
    """8 SciFact test topics, their judged documents and 30 others: files the pipeline accepts."""
    from splade_anserini.data import read_corpus, read_qrels, read_topics

    folder.mkdir()
    queries, qrels = read_topics(scifact / "queries.test.tsv"), read_qrels(scifact / "qrels.test.txt")
    qids = [q for q in queries if q in qrels][:8]
    judged = {d for q in qids for d in qrels[q]}
    docs = [d for i, d in enumerate(read_corpus(scifact / "corpus.jsonl")) if d.docid in judged or i < 30]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.docid, "title": "", "text": d.text}) + "\n"
                                                 for d in docs))
    (folder / "topics.tsv").write_text("".join(f"{q}\t{queries[q]}\n" for q in qids))
    (folder / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q in qids for d, r in qrels[q].items()))
    return folder / "corpus.jsonl", folder / "topics.tsv", folder / "qrels.txt"


def test_pipeline_writes_only_under_its_folders(inputs, tmp_path, monkeypatch, capsys):
    from splade_anserini.models import cache_dir

    monkeypatch.setenv("SPLADE_ANSERINI_CACHE", str(cache_dir()))  # the model cache already holding splade-tiny
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    work, runs = tmp_path / "W", tmp_path / "R"
    corpus, topics, qrels = pipeline_slice(inputs["qrels"].parent, tmp_path / "data")
    before = snapshot(tmp_path)
    argv = ["--corpus", str(corpus), "--topics", str(topics), "--qrels", str(qrels),
            "--work-dir", str(work), "--runs-dir", str(runs), "--max-length", "32", "--threads", "1", "--hits", "50"]
    assert pipeline_cli.main(argv) == 0
    after = snapshot(tmp_path)
    changed = [p for p in after if before.get(p) != after[p]]
    assert changed and all(Path(p).is_relative_to(work) or Path(p).is_relative_to(runs) for p in changed), changed
    assert lost(before, after) == []
    assert any(Path(p).parent.name == "bm25-index" for p in changed)  # the BM25 index inside the work folder
    assert pipeline_cli.main(argv + ["--force"]) == 0
    capsys.readouterr()
    assert not [p for p in tmp_path.rglob(".*.lock")]  # Lucene's own write.lock inside an index is not ours
    assert outputs.foreign(work) == []  # everything the stages wrote is in the work folder's record
    (work / "index" / "notes.txt").write_text("mine\n")
    assert pipeline_cli.main(argv + ["--force"]) == 2  # a file of the user's inside: refused, kept
    assert str(work / "index" / "notes.txt") in capsys.readouterr().err
    assert (work / "index" / "notes.txt").read_text() == "mine\n"


def test_java_temporary_files_are_removed_at_exit(tmp_path):
    """ONNX Runtime's Java library unpacks into java.io.tmpdir; the JVM writes hsperfdata: neither stays."""
    import getpass
    import tempfile

    tmp = Path(tempfile.gettempdir())
    ours = ("onnxruntime-java", "splade-anserini-")
    before = {p.name for p in tmp.iterdir() if p.name.startswith(ours)}
    code = ("from splade_anserini import java; java.start_jvm(); "
            "from jnius import autoclass; autoclass('ai.onnxruntime.OrtEnvironment').getEnvironment(); "
            "import os; print(os.getpid(), autoclass('java.lang.System').getProperty('java.io.tmpdir'))")
    proc = _python("-c", code)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    pid, jvm_tmp = out.split()
    assert Path(jvm_tmp).parent == tmp and not Path(jvm_tmp).exists()
    assert {p.name for p in tmp.iterdir() if p.name.startswith(ours)} <= before
    assert not (tmp / f"hsperfdata_{getpass.getuser()}" / pid).exists()


def test_a_folder_whose_marker_is_being_written_counts_as_empty(tmp_path):
    """Two torchrun ranks claim one vectors folder: the second may look while the first writes the
    marker under its temporary name, and must not take the folder for a user's."""
    from splade_anserini.conversion.atomic import tmp_name

    folder = tmp_path / "vectors"
    folder.mkdir()
    tmp_name(folder / outputs.MARKER).write_text("{")
    assert outputs.check_dir(folder, "vectors") is False
    (folder / "notes.txt").write_text("a user's file")
    with pytest.raises(outputs.OutputRefused):
        outputs.check_dir(folder, "vectors")
