"""The examples of README.md and docs/*.md, for tests/test_docs_examples.py: fenced blocks, and each command
line of a ``bash`` block checked against its subcommand's own parser (flags exist, values parse) without
running it.

A block preceded by ``<!-- docs-test: skip (the reason) -->`` is not run; the test counts and reports it.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = re.compile(r"^<!--\s*docs-test:\s*skip\s*\((?P<reason>.+)\)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
#: Tokens that end a command (a pipe, a list, a redirection): what follows is not its arguments.
_END = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "&"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None  # the reason given by a skip marker

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.line}"


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every rendered page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, each with the skip reason written above it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = SKIP.match(before)
        indent = len(opening.group("indent"))
        body = "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines[i + 1:end])
        found.append(Block(path, i + 1, opening.group("lang").lower(), body + "\n",
                           marker.group("reason") if marker else None))
        i = end + 1
    return found


@dataclass
class CommandLine:
    block: Block
    line: int
    module: str  # the module whose main() runs it; "" for the top-level ``splade-anserini`` parser
    argv: list[str]
    optional: list[str]  # the flags written inside [...] (documented options, checked to exist)
    text: str


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with their ``\\`` continuations joined, each with its offset in the block."""
    out, pending, start = [], "", 0
    for n, raw in enumerate(text.splitlines()):
        if not pending:
            start = n
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        out.append((start, pending + raw))
        pending = ""
    return out


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def _target(tokens: list[str]) -> tuple[str, list[str]] | None:
    """``(module, argv)`` of a ``splade-anserini SUB ...`` or ``... -m splade_anserini.X ...`` command."""
    from splade_anserini.__main__ import SUBCOMMANDS

    by_name = {sub.name: sub.module for sub in SUBCOMMANDS}
    if tokens and tokens[0] == "splade-anserini":
        if len(tokens) > 1 and tokens[1] in by_name:
            return by_name[tokens[1]], tokens[2:]
        return "", tokens[1:]
    if "-m" in tokens:
        at = tokens.index("-m")
        if at + 1 < len(tokens) and tokens[at + 1].split(".")[0] == "splade_anserini":
            module = tokens[at + 1]
            if module == "splade_anserini":
                return _target(["splade-anserini", *tokens[at + 2:]])
            spec = importlib.util.find_spec(module)
            if spec is not None and spec.submodule_search_locations is not None:  # a package: its __main__
                module += ".__main__"
            return module, tokens[at + 2:]
    return None


def _split_optional(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` without its ``[...]`` groups (documented optional parts), and the flags inside them."""
    kept, optional, depth = [], [], 0
    for token in argv:
        opening = token.startswith("[")
        depth += token.count("[")
        inner = token.strip("[]")
        if depth:
            optional += [part for part in inner.split("|") if part.startswith("--")]
        else:
            kept.append(token)
        depth -= token.count("]")
        if opening and depth < 0:
            depth = 0
    return kept, optional


def command_lines(block: Block) -> list[CommandLine]:
    """Every command of a shell block that a parser of this package takes; ``VAR=value`` lines are expanded
    into the lines after them."""
    env: dict[str, str] = {}
    found = []
    for offset, line in _logical_lines(block.text):
        assignment = re.fullmatch(r"\s*(\w+)=(\S+)\s*", line)
        if assignment:
            env[assignment.group(1)] = _expand(assignment.group(2), env)
            continue
        try:
            tokens = shlex.split(_expand(line, env), comments=True)
        except ValueError:
            continue
        for i, token in enumerate(tokens):
            if token in _END:
                tokens = tokens[:i]
                break
        target = _target(tokens)
        if target is not None:
            argv, optional = _split_optional(target[1])
            found.append(CommandLine(block, block.line + 1 + offset, target[0], argv, optional, line.strip()))
    return found


def parse_only(cmd: CommandLine) -> str | None:
    """Parse ``cmd`` with its command's own parser, running nothing; ``None`` when it parses, else the error."""
    from splade_anserini import cli
    from splade_anserini.__main__ import build_parser

    err = io.StringIO()
    parser = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), cli.parse_only():
        try:
            if cmd.module:
                with cli.program(cmd.module):
                    status = importlib.import_module(cmd.module).main(cmd.argv)
            else:
                status = build_parser().parse_args(cmd.argv) and 0
        except cli.ParsedOnly as parsed:
            status, parser = 0, parsed.parser
        except SystemExit as exc:  # --version, --help of the top-level parser
            status = exc.code or 0
    if status:
        return err.getvalue().strip() or f"exit status {status}"
    unknown = [flag for flag in cmd.optional if parser is not None and flag not in parser._option_string_actions]
    return f"unknown option(s) in [...]: {', '.join(unknown)}" if unknown else None


# -- the folder the examples run in ----------------------------------------------------------------------
#: What the examples read, built from a SciFact slice: the files of Everyday commands and the Python API.
FIXTURE_SCRIPT = r"""
import sys
from splade_anserini.encode.corpus import main as encode
from splade_anserini.index.build import main as index
from splade_anserini.serve.export_onnx import main as export
from splade_anserini.search.run import main as search

steps = [
    (encode, ["--model", "splade-tiny", "--corpus", "corpus.jsonl", "--output", "work/vectors"]),
    (index, ["--input", "work/vectors", "--index", "indexes/scifact", "--threads", "1"]),
    (index, ["--backend", "numba", "--input", "work/vectors", "--index", "indexes/scifact-numba"]),
    (export, ["--model", "splade-tiny", "--output", "work/exports/splade-tiny"]),
    (search, ["--index", "indexes/scifact", "--topics", "queries.test.tsv", "--output", "runs/scifact.trec",
              "--hits", "100"]),
]
for main, argv in steps:
    if main(argv):
        sys.exit(f"fixture step failed: {argv}")
"""


def write_slice(folder: Path, data_dir: Path, n_docs: int = 200, n_queries: int = 20) -> None:
    """``corpus.jsonl`` (``n_docs`` SciFact documents holding the positives of ``n_queries`` test queries),
    ``queries.test.tsv`` and ``qrels.test.txt`` in ``folder``."""
    import json

    from splade_anserini.data import read_qrels, read_topics

    sci = data_dir / "scifact"
    qrels, topics = read_qrels(sci / "qrels.test.txt"), read_topics(sci / "queries.test.tsv")
    qids = [q for q in topics if q in qrels][:n_queries]
    wanted = {d for q in qids for d in qrels[q]}
    lines = []
    with open(sci / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if json.loads(line)["_id"] in wanted or len(lines) < n_docs - len(wanted):
                lines.append(line)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    (folder / "queries.test.tsv").write_text("".join(f"{q}\t{topics[q]}\n" for q in qids), encoding="utf-8")
    (folder / "qrels.test.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q in qids for d, r in qrels[q].items()))


def build_fixture(folder: Path, data_dir: Path, python: str | None = None) -> None:
    """The slice and everything the examples read, built by the package's own commands (one interpreter)."""
    import subprocess
    import sys

    write_slice(folder, data_dir)
    run = subprocess.run([python or sys.executable, "-c", FIXTURE_SCRIPT], cwd=folder, timeout=900,
                         capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"building the examples' folder failed:\n{run.stderr[-3000:]}")


if __name__ == "__main__":  # python tests/docs_examples.py DIR DATA_DIR: build the folder (for a fresh install)
    import sys

    build_fixture(Path(sys.argv[1]), Path(sys.argv[2]))
