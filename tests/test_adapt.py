"""``splade-anserini adapt``: the label-free sequence in one resumable command, equal to the five commands."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from splade_anserini.train.adapt import main

#: Tiny settings, so that a whole adaptation takes seconds of CPU (passed the same way to both forms).
TINY = ["--max-steps", "4", "--valid-every", "2", "--valid-holdout", "10", "--batch-size", "4"]
MINING = ["--hits", "20", "--threads", "1"]
NO_GUARD = ["--guard-corpus", "", "--guard-queries", "", "--guard-qrels", ""]


def _slice(data_dir: Path, folder: Path, n_docs: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as fh:
        lines = [next(fh) for _ in range(n_docs)]
    (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return folder / "corpus.jsonl"


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splade_anserini", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_missing_guard_data_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    """Without the guard's data: one line naming --guard-* and --no-guard and what the guard protects; nothing
    written."""
    monkeypatch.setenv("SPLADE_ANSERINI_DATA", str(tmp_path / "no-data"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "title": "A title", "text": "Some text of the document."}\n')
    assert main(["--corpus", str(corpus), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: the out-of-domain guard's data is missing")
    assert all(word in err for word in ("--guard-corpus", "--guard-queries", "--guard-qrels", "--no-guard",
                                        "nDCG@10 outside the adapted corpus", str(tmp_path / "no-data")))
    assert not (tmp_path / "out").exists()


def test_help_names_the_guard_data(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "msmarco-dl19-subset" in out and "--no-guard" in out and "(default: splade-tiny)" in out


def _interrupted(argv: list[str], cwd: Path, after: str) -> tuple[int, str]:
    """Run ``adapt`` and send it Ctrl-C once the stage line ``after`` is printed; its status and output."""
    proc = subprocess.Popen([sys.executable, "-m", "splade_anserini", "adapt", *argv], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(f"[adapt] {after}:"):
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=300)
    return proc.returncode, "".join(lines) + rest


@pytest.mark.slow
@pytest.mark.one_leg
def test_adapt_resumes_and_equals_the_five_commands(data_dir, tmp_path):
    """Interrupted after its BM25 run and resumed, ``adapt`` reuses the finished stages and ends with the
    checkpoint that the five documented commands write (same seed, one thread: byte for byte)."""
    corpus = _slice(data_dir, tmp_path / "data")
    out = tmp_path / "adapt"
    argv = ["--corpus", str(corpus), "--output-dir", str(out), "--no-guard", *TINY, *MINING]
    status, log = _interrupted(argv, tmp_path, "mine-bm25")
    assert status != 0 and "[adapt] pseudo-queries: done" in log and "[adapt] train" not in log, log
    assert not (out / "train" / "checkpoint-best").exists()

    resumed = _cli("adapt", *argv, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for stage in ("pseudo-queries", "mine-bm25"):
        assert f"[adapt] {stage}: reused" in resumed.stdout
    for stage in ("mine-splade", "hybrid-teacher", "train"):
        assert f"[adapt] {stage}: done in" in resumed.stdout
    best = out / "train" / "checkpoint-best"
    assert f"checkpoint: {best}" in resumed.stdout and "[adapt] use it: splade-anserini " in resumed.stdout

    p = str(tmp_path / "five" / "pq")
    steps = [
        ["pseudo-queries", "--corpus", str(corpus), "--output", p],
        ["mine-negatives", "--corpus", f"{p}.corpus.jsonl", "--queries", f"{p}.queries.tsv", "--qrels",
         f"{p}.qrels.txt", "--output", f"{p}.bm25.trec", *MINING],
        ["mine-negatives", "--model", "splade-tiny", "--corpus", f"{p}.corpus.jsonl", "--queries", f"{p}.queries.tsv",
         "--qrels", f"{p}.qrels.txt", "--output", f"{p}.splade.trec", *MINING],
        ["hybrid-teacher", "--model-run", f"{p}.splade.trec", "--bm25-run", f"{p}.bm25.trec", "--qrels",
         f"{p}.qrels.txt", "--output", f"{p}.teacher.trec"],
        ["train", "--config", "adapt", "--corpus", f"{p}.corpus.jsonl", "--queries", f"{p}.queries.tsv", "--qrels",
         f"{p}.qrels.txt", "--negatives", f"{p}.splade.trec", "--teacher", f"{p}.teacher.trec", "--valid-negatives",
         f"{p}.bm25.trec", "--output-dir", str(tmp_path / "five" / "train"), "--threads", "1", *TINY, *NO_GUARD],
    ]
    for step in steps:
        done = _cli(*step, cwd=tmp_path)
        assert done.returncode == 0, f"{step[0]}: {done.stderr}"
    for name in ("pq.bm25.trec", "pq.splade.trec", "pq.teacher.trec"):
        assert (out / name).read_bytes() == (tmp_path / "five" / name).read_bytes(), name
    five = tmp_path / "five" / "train" / "checkpoint-best"
    assert (best / "model.safetensors").read_bytes() == (five / "model.safetensors").read_bytes()

    made = os.stat(best / "model.safetensors").st_mtime_ns
    again = _cli("adapt", *argv, cwd=tmp_path)  # everything up to date: nothing redone
    assert again.returncode == 0 and again.stdout.count(": reused (made in") == 5, again.stdout
    assert os.stat(best / "model.safetensors").st_mtime_ns == made


def test_train_adapt_without_guard_data_names_the_options(tmp_path, capsys, monkeypatch):
    """``train --config adapt`` without the guard's files: one line naming the guard options and how to turn
    the guard off (not a bare ``no such file``)."""
    from splade_anserini.train.__main__ import main as train

    monkeypatch.setenv("SPLADE_ANSERINI_DATA", str(tmp_path / "no-data"))
    assert train(["--config", "adapt", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: --guard-corpus {tmp_path / 'no-data'}")
    assert '--guard-corpus "" --guard-queries "" --guard-qrels ""' in err and "out-of-domain guard" in err
    assert not (tmp_path / "out").exists()
