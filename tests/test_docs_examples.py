"""Every example of README.md and docs/*.md is executed or parsed: a ``python`` block runs in a fresh interpreter
in a folder built from a SciFact slice; each command line of a ``bash`` block is parsed by its subcommand's own
parser (flags exist, values parse), and the cheap ones also run there. A block that cannot run says so above
it: ``<!-- docs-test: skip (the reason) -->``; the counts and the reasons are printed (``pytest -s``) and
recorded as properties of the tests.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from docs_examples import ROOT, Block, blocks, build_fixture, command_lines, doc_files, parse_only

SHELL = ("bash", "sh", "shell", "console")
#: Subcommands fast enough to run on the slice (no model, no JVM), when every input they name is there.
CHEAP = {"splade_anserini.evaluate.measures", "splade_anserini.search.fusion", "splade_anserini.train.pseudo_queries",
         "splade_anserini.train.hybrid_teacher", ""}
#: Options whose value is written, not read: it need not exist for a line to run.
OUTPUTS = {"--output", "--output-dir", "--json", "--index", "--work-dir", "--runs-dir"}


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in blocks(path)]


def _report(record_property, **counts) -> None:
    line = "docs examples: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counts.items())
    record_property("docs_examples", line)
    print(f"\n{line}")


def test_every_command_line_parses(record_property):
    """Each ``splade-anserini SUB``/``python -m splade_anserini...`` line takes its subcommand's flags and values
    (in skipped blocks too: parsing runs nothing)."""
    lines = [cmd for block in all_blocks() if block.lang in SHELL for cmd in command_lines(block)]
    failures = [f"{cmd.block.path.name}:{cmd.line}: {cmd.text}\n    {error}"
                for cmd in lines if (error := parse_only(cmd)) is not None]
    assert lines, "no command line found in the docs"
    assert not failures, "documented command lines that do not parse:\n" + "\n".join(failures)
    _report(record_property, command_lines_parsed=len(lines),
            files=len({cmd.block.path for cmd in lines}))


def test_skipped_blocks_give_reasons(record_property):
    """A skipped block names why; the skips are counted and listed."""
    skipped = [block for block in all_blocks() if block.skip is not None]
    assert all(block.skip.strip() for block in skipped)
    kinds = Counter(block.lang or "text" for block in all_blocks())
    _report(record_property, blocks=sum(kinds.values()), by_language=dict(kinds), skipped=len(skipped))
    for block in skipped:
        print(f"  skipped {block.where}: {block.skip}")


def test_a_broken_flag_or_import_fails(tmp_path):
    """The checks fail on a deliberately broken copy: an unknown flag, a bad value, a missing import."""
    doc = tmp_path / "broken.md"
    doc.write_text("```bash\nsplade-anserini index --input v --index i --no-such-flag\n"
                   "splade-anserini search --index i --topics t --output r --hits many\n"
                   "splade-anserini fuse --runs a b --output f [--no-such-option]\n"
                   "splade-anserini index --input v --index i --threads 2\n```\n\n"
                   "```python\nfrom splade_anserini import NoSuchThing\n```\n")
    shell, python = blocks(doc)
    errors = [parse_only(cmd) for cmd in command_lines(shell)]
    assert "unrecognized arguments: --no-such-flag" in errors[0]
    assert "--hits" in errors[1] and "many" in errors[1]
    assert "--no-such-option" in errors[2]
    assert errors[3] is None
    run = subprocess.run([sys.executable, "-c", python.text], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "NoSuchThing" in run.stderr


def test_skip_marker_is_read(tmp_path):
    doc = tmp_path / "skip.md"
    doc.write_text("<!-- docs-test: skip (needs a GPU) -->\n\n```python\nimport cuda\n```\n")
    (block,) = blocks(doc)
    assert block.skip == "needs a GPU" and block.lang == "python"


# -- running the examples on a slice (one folder, built once) ---------------------------------------
@pytest.fixture(scope="session")
def examples_dir(tmp_path_factory, data_dir) -> Path:
    """A SciFact slice and what the examples read: a Lucene and a Numba index, an ONNX export, a run."""
    folder = tmp_path_factory.mktemp("docs-examples")
    build_fixture(folder, data_dir)
    return folder


def _env(folder: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SPLADE_ANSERINI_DATA"] = str(ROOT.parent / "shared" / "data")
    return env


@pytest.mark.slow
def test_python_blocks_run(examples_dir, record_property):
    """Each ``python`` block runs as written, in a fresh interpreter (a JVM starts once per process)."""
    runnable = [b for b in all_blocks() if b.lang == "python" and b.skip is None]
    failures = []
    for block in runnable:
        run = subprocess.run([sys.executable, "-c", block.text], cwd=examples_dir, env=_env(examples_dir),
                             capture_output=True, text=True, timeout=600)
        if run.returncode:
            failures.append(f"{block.where}:\n{run.stderr[-2000:]}")
    assert runnable
    assert not failures, "documented Python blocks that fail:\n" + "\n".join(failures)
    _report(record_property, python_blocks_run=len(runnable))


def _inputs_there(argv: list[str], folder: Path) -> bool:
    """Whether every file a command line reads is in ``folder`` (values of output options aside)."""
    for before, token in zip(["", *argv], argv):
        if token.startswith("-") or before in OUTPUTS:
            continue
        if ("/" in token or Path(token).suffix) and not (folder / token).exists():
            return False
    return True


@pytest.mark.slow
def test_cheap_command_lines_run(examples_dir, record_property):
    """The command lines of cheap subcommands whose inputs the slice has are also run, and succeed."""
    lines = [cmd for block in all_blocks() if block.lang in SHELL and block.skip is None for cmd in command_lines(block)]
    cheap = [cmd for cmd in lines if cmd.module in CHEAP and _inputs_there(cmd.argv, examples_dir)]
    failures = []
    for cmd in cheap:
        argv = ["-m", cmd.module, *cmd.argv] if cmd.module else ["-m", "splade_anserini", *cmd.argv]
        run = subprocess.run([sys.executable, *argv], cwd=examples_dir, env=_env(examples_dir), capture_output=True,
                             text=True, timeout=300)
        if run.returncode:
            failures.append(f"{cmd.block.path.name}:{cmd.line}: {cmd.text}\n    {run.stderr.strip()[-500:]}")
    assert cheap, "no cheap command line to run"
    assert not failures, "documented command lines that fail on the slice:\n" + "\n".join(failures)
    _report(record_property, command_lines_run=len(cheap), parsed_only=len(lines) - len(cheap))
