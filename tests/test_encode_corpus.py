"""python -m splade_anserini.encode_corpus: output layout, summary, sharding, kill-and-resume, bad input."""
from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from splade_anserini.conversion.jsonvector import read_jsonvector
from splade_anserini.conversion.quantize import GUARD_TOKEN
from splade_anserini.encode import corpus as ec
from splade_anserini.provenance import VECTORS_FILE as PROVENANCE

FAST = ["--max-length", "48", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def corpus(data_dir, tmp_path_factory) -> Path:
    """The first 120 SciFact documents."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with open(data_dir / "scifact" / "corpus.jsonl", "rb") as src:
        path.write_bytes(b"".join(line for _, line in zip(range(120), src)))
    return path


def run(argv, capsys) -> tuple[int, str, str]:
    rc = ec.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def collection_bytes(folder: Path, pattern: str = "*part-*") -> bytes:
    """All collection files of ``folder`` in name order, decompressed and concatenated."""
    data = b""
    for f in sorted(folder.glob(pattern)):
        data += gzip.decompress(f.read_bytes()) if f.name.endswith(".gz") else f.read_bytes()
    return data


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """An uninterrupted, unsharded run (block size 25, two files)."""
    out = tmp_path_factory.mktemp("ref") / "vectors"
    assert ec.main(["--corpus", str(corpus), "--output", str(out), "--block-size", "25", "--num-files", "2", *FAST]) == 0
    return out


def test_output_layout_and_summary(corpus, reference):
    files = sorted(p.name for p in reference.iterdir() if not p.name.startswith("."))
    assert files == ["part-00000.jsonl", "part-00001.jsonl", PROVENANCE]  # no work folder
    # the summary and the marker inside, hidden, holding no document for Anserini (a first line "[]")
    assert hidden(reference) == [".splade-anserini-output.json", ".summary.json"]
    assert all((reference / h).read_text().startswith("[]\n") for h in hidden(reference))
    assert not ec.work_dir(reference, 0, 1).exists()
    docs = list(read_jsonvector(reference))
    ids = [json.loads(line)["_id"] for line in corpus.read_text().splitlines()]
    assert [d.docid for d in docs] == ids
    sizes = [sum(1 for _ in open(reference / f)) for f in files[:2]]
    assert sizes == [60, 60]
    assert all(d.vector and all(isinstance(w, int) and w > 0 for w in d.vector.values()) for d in docs)
    assert docs[0].contents.startswith(json.loads(corpus.read_text().splitlines()[0])["title"])
    summary = ec.read_summary(reference)
    assert summary["documents"] == 120 and summary["empty_documents"] == 0 and summary["guarded_documents"] == 0
    nnz = sum(len(d.vector) for d in docs) / 120
    assert summary["avg_nonzeros"] == pytest.approx(nnz)
    assert 0 < summary["flops"] < nnz and summary["avg_expansion_terms"] > 10
    assert summary["arguments"]["max_length"] == 48 and summary["arguments"]["quantization_factor"] == 100.0


def test_threads_and_batch_layout_do_not_change_the_bytes(corpus, reference, tmp_path, capsys):
    out = tmp_path / "v"
    rc, _, _ = run(["--corpus", corpus, "--output", out, "--block-size", "25", "--num-files", "3",
                    "--max-length", "48", "--no-progress", "--threads", "2", "--gzip"], capsys)
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [".splade-anserini-output.json", ".summary.json",
                                                     *(f"part-0000{k}.jsonl.gz" for k in range(3)), PROVENANCE]
    assert collection_bytes(out) == collection_bytes(reference)


def test_shards_concatenated_equal_unsharded(corpus, reference, tmp_path, capsys):
    out = tmp_path / "shards"
    for shard in range(3):  # shard boundaries 40 and 80 fall inside blocks of 25
        rc, stdout, _ = run(["--corpus", corpus, "--output", out, "--block-size", "25", "--shard-id", shard,
                             "--shard-num", "3", *FAST], capsys)
        assert rc == 0 and "encoded 40 documents" in stdout
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.name != PROVENANCE)
    assert names == [f"shard-0000{k}-of-00003.part-00000.jsonl" for k in range(3)]
    assert hidden(out) == [".shard-0000{k}-of-00003.summary.json".format(k=k) for k in range(3)] + \
        [".splade-anserini-output.json"]
    assert collection_bytes(out) == collection_bytes(reference)
    assert ec.shard_range(120, 2, 3) == (80, 120) and ec.shard_range(10, 1, 3) == (3, 6)
    assert ec.shard_range(10, 2, 3) == (6, 10)


@pytest.mark.one_leg
def test_kill_and_resume_is_byte_identical(corpus, tmp_path, capsys):
    whole = tmp_path / "whole"
    assert ec.main(["--corpus", str(corpus), "--output", str(whole), "--block-size", "5", "--num-files", "2", *FAST]) == 0
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "splade_anserini.encode_corpus", "--corpus", str(corpus), "--output", str(out),
           "--block-size", "5", "--num-files", "2", *FAST]
    work = ec.work_dir(out, 0, 1)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not list(work.glob("block-*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    committed = len(list(work.glob("block-*.json")))
    assert 1 <= committed < 24
    assert not out.exists(), "no final file may exist before every block is done"
    # the block size is part of the arguments: a different one is refused
    assert ec.main(cmd[3:-len(FAST) - 4] + ["--block-size", "10", "--num-files", "2", *FAST]) == 2
    assert "other arguments (block_size: 5 -> 10)" in capsys.readouterr().err
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming {out}: " in again.stderr
    assert sorted(p.name for p in out.iterdir()) == [".splade-anserini-output.json", ".summary.json",
                                                     "part-00000.jsonl", "part-00001.jsonl", PROVENANCE]
    for name in ("part-00000.jsonl", "part-00001.jsonl"):
        assert (out / name).read_bytes() == (whole / name).read_bytes()


def test_interrupted_in_process_resumes(corpus, reference, tmp_path, capsys, monkeypatch):
    out = tmp_path / "v"
    argv = ["--corpus", corpus, "--output", out, "--block-size", "25", "--num-files", "2", *FAST]
    real = ec._encode_block
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ec, "_encode_block", crash_on_third)
    rc, _, err = run(argv, capsys)
    assert rc == 130 and "rerun the same command" in err
    assert sorted(p.name for p in ec.work_dir(out, 0, 1).glob("block-*.json")) == [
        "block-0000000.json", "block-0000001.json"]
    monkeypatch.setattr(ec, "_encode_block", real)
    rc, _, err = run(argv, capsys)
    assert rc == 0 and "2 of 5 blocks already encoded" in err
    assert collection_bytes(out) == collection_bytes(reference)
    # finished: the same command is a no-op, other arguments are refused, --overwrite redoes it
    rc, _, err = run(argv, capsys)
    assert rc == 0 and "already encoded" in err
    rc, _, err = run(argv + ["--batch-size", "8"], capsys)
    assert rc == 2 and "finished encoding with other arguments" in err
    rc, _, _ = run(argv + ["--batch-size", "8", "--overwrite"], capsys)
    assert rc == 0 and ec.read_summary(out)["arguments"]["batch_size"] == 8
    assert [d.docid for d in read_jsonvector(out)] == [d.docid for d in read_jsonvector(reference)]


def test_interrupted_while_assembling_or_cleaning_up(corpus, reference, tmp_path, capsys, monkeypatch):
    out = tmp_path / "v"
    argv = ["--corpus", corpus, "--output", out, "--block-size", "25", "--num-files", "2", *FAST]
    real = ec.atomic_open
    opened = []

    def crash_on_second_part(path, *args, **kwargs):
        if Path(path).name.startswith("part-"):
            opened.append(path)
            if len(opened) == 2:
                raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ec, "atomic_open", crash_on_second_part)
    rc, _, _ = run(argv, capsys)
    assert rc == 130 and sorted(p.name for p in out.iterdir()) == [".splade-anserini-output.json", "part-00000.jsonl"]
    monkeypatch.setattr(ec, "atomic_open", real)
    rc, _, err = run(argv, capsys)
    assert rc == 0 and "5 of 5 blocks already encoded" in err
    assert collection_bytes(out) == collection_bytes(reference)
    # a clean-up cut short (work folder half removed) after the summary: finished, and tidied up
    work = ec.work_dir(out, 0, 1)
    work.mkdir()
    (work / "block-0000003.json").write_text("{}")
    rc, _, err = run(argv, capsys)
    assert rc == 0 and "already encoded" in err and not work.exists()


def test_empty_text_gets_a_counted_warning_and_the_guard(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "title": "Aspirin", "text": "reduces heart attacks"}\n'
                      '{"_id": "e", "title": "", "text": "   "}\n'
                      '{"_id": "b", "title": "", "text": "diffusion tensor imaging"}\n')
    out = tmp_path / "v"
    rc, stdout, err = run(["--corpus", corpus, "--output", out, *FAST], capsys)
    assert rc == 0
    assert f"warning: {corpus}:2: document 'e' has empty text" in err
    docs = {d.docid: d.vector for d in read_jsonvector(out)}
    assert docs["e"] == {GUARD_TOKEN: 1} and len(docs["a"]) > 10
    summary = ec.read_summary(out)
    assert summary["empty_documents"] == 1 and summary["guarded_documents"] == 1
    assert "1 empty, 1 guard vectors" in stdout


def test_vectors_quantized_to_nothing_get_the_guard(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "title": "Aspirin", "text": "reduces heart attacks"}\n')
    out = tmp_path / "v"
    rc, _, _ = run(["--corpus", corpus, "--output", out, "--quantization-factor", "0.01", *FAST], capsys)
    assert rc == 0
    assert [d.vector for d in read_jsonvector(out)] == [{GUARD_TOKEN: 1}]
    summary = ec.read_summary(out)
    assert summary["empty_documents"] == 0 and summary["guarded_documents"] == 1


def test_msmarco_collection_and_pyserini_factor(data_dir, tmp_path, capsys):
    out = tmp_path / "v"
    rc, _, _ = run(["--corpus", data_dir / "msmarco-toy" / "collection.tsv", "--output", out,
                    "--quantization-factor", "pyserini", *FAST], capsys)
    assert rc == 0
    pids = [line.split("\t", 1)[0] for line in (data_dir / "msmarco-toy" / "collection.tsv").read_text().splitlines()
            if line.strip()]
    docs = list(read_jsonvector(out))
    assert [d.docid for d in docs] == pids
    assert ec.read_summary(out)["arguments"]["quantization_factor"] == 51.2


GOOD = '{"_id": "1", "title": "t", "text": "aspirin"}\n'
BAD_INPUT = {
    "malformed JSON": (GOOD + '{"_id": "2", "text": "x"\n', ":2: malformed JSON"),
    "missing id": (GOOD + '{"title": "t", "text": "x"}\n', ":2: missing document id"),
    "missing text": (GOOD + '{"_id": "2", "title": "t"}\n', ":2: document 2: missing 'text' field"),
    "duplicate id": (GOOD + GOOD, ":2: duplicate document id '1'"),
    "non-UTF-8": (GOOD.encode() + b'{"_id": "2", "text": "caf\xe9"}\n', ":2: invalid UTF-8"),
    "msmarco without tab": ("1\tok\n2 no tab here\n", ":2: expected 'pid<TAB>text'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_one_line_error_and_no_output(case, tmp_path, capsys):
    content, expected = BAD_INPUT[case]
    corpus = tmp_path / ("c.tsv" if "msmarco" in case else "c.jsonl")
    corpus.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "v"
    rc, stdout, err = run(["--corpus", corpus, "--output", out, *FAST], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {corpus}{expected}"), err
    assert not out.exists() and not ec.summary_path(out, 0, 1).exists() and stdout == ""


def _checkpoint_copy(tmp_path: Path, name: str, **config) -> Path:
    from splade_anserini.models import resolve_model

    target = tmp_path / name
    shutil.copytree(resolve_model("splade-tiny"), target)
    cfg = json.loads((target / "config.json").read_text())
    cfg.update(config)
    (target / "config.json").write_text(json.dumps(cfg))
    return target


@pytest.mark.parametrize("case", ["base model", "no head weights", "not MLM type", "no config", "missing dir"])
def test_model_that_is_not_an_mlm_checkpoint(case, corpus, tmp_path, capsys):
    if case == "base model":
        model, expected = _checkpoint_copy(tmp_path, "m", architectures=["BertModel"]), "not a masked-LM checkpoint"
    elif case == "no head weights":  # config says MLM, but the head was never saved: no silent random head
        from safetensors.torch import load_file, save_file

        model = _checkpoint_copy(tmp_path, "m")
        weights = load_file(model / "model.safetensors")
        save_file({k: v for k, v in weights.items() if not k.startswith("cls.")}, model / "model.safetensors",
                  metadata={"format": "pt"})
        expected = "lacks 6 masked-LM weights (cls.predictions.bias"
    elif case == "not MLM type":
        model = tmp_path / "gpt"
        model.mkdir()
        (model / "config.json").write_text('{"model_type": "gpt2"}')
        expected = "not a masked-LM checkpoint"
    elif case == "no config":
        model = tmp_path / "empty"
        model.mkdir()
        expected = "no config.json"
    else:
        model, expected = tmp_path / "nowhere", "no such directory"
    out = tmp_path / "v"
    rc, _, err = run(["--corpus", corpus, "--output", out, "--model", model, *FAST], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ") and expected in err, err
    assert not out.exists()


def test_argument_errors(corpus, tmp_path, capsys):
    out = tmp_path / "v"
    for extra, expected in ((["--shard-id", "3", "--shard-num", "3"], "shard id"),
                            (["--quantization-factor", "lots"], "quantization factor"),
                            (["--num-files", "0"], "number of files")):
        rc, _, err = run(["--corpus", corpus, "--output", out, *extra, *FAST], capsys)
        assert rc == 2 and expected in err and not out.exists()
    rc, _, err = run(["--corpus", tmp_path / "missing.jsonl", "--output", out, *FAST], capsys)
    assert rc == 2 and "missing.jsonl: no such file" in err


def test_part_ranges():
    assert ec.part_ranges(0, 10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert ec.part_ranges(5, 7, 3) == [(5, 5), (5, 6), (6, 7)]
