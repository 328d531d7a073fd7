"""The `splade-anserini` command, the shipped recipes and where data is found."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from splade_anserini import __main__ as command
from splade_anserini.data import DATA_ENV, data_root
from splade_anserini.train.config import CONFIG_DIR, ConfigError, config_from_dict, find_config, load_config_file

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "splade_anserini", *args], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=120)


def test_version_names_the_package_python_pyserini_and_anserini():
    proc = run("--version")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert out.startswith("splade-anserini 0.1.0 (Python 3.")
    if sys.version_info >= (3, 12):  # the Pyserini generation follows the Python
        assert "pyserini 2." in out and "Anserini 2." in out
    else:
        assert "pyserini 1.6.0" in out and "Anserini 1.7.1" in out
    assert command.version_text() == out
    probe = ("import sys; from splade_anserini.__main__ import version_text; version_text(); "
             "print(sorted(m for m in ('jnius', 'torch', 'pyserini') if m in sys.modules))")
    quiet = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert quiet.stdout.strip() == "[]", quiet.stderr  # no JVM, no model, not even pyserini imported


def test_subcommands_run_the_module_mains_under_their_name(tmp_path):
    proc = run("fuse", "--runs", "a.trec")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: the following arguments are required: --output "
                                   "(see splade-anserini fuse --help)")
    help_text = run("encode", "--help")
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: splade-anserini encode ")
    assert "--batch-size" in help_text.stdout
    missing = tmp_path / "nope.trec"
    proc = run("evaluate", "--qrels", str(missing), str(missing))
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1


def test_unknown_or_missing_subcommand_is_one_line_and_exit_2():
    for args in (("nope",), ()):
        proc = run(*args)
        assert proc.returncode == 2
        assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: ")


def test_every_subcommand_names_a_module_with_main():
    import importlib.util

    for sub in command.SUBCOMMANDS:
        spec = importlib.util.find_spec(sub.module)
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), sub.module


def test_cli_imports_no_other_module_of_the_package():
    tree = ast.parse((ROOT / "splade_anserini" / "cli.py").read_text(encoding="utf-8"))
    relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
    absolute = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and (n.module or "").startswith("splade") and not n.module.startswith("splade_anserini.conversion")]
    assert relative == [] and absolute == []


def package_modules() -> dict[str, Path]:
    """Every module of the installed package by dotted name, ``conversion/`` as ``splade_anserini.conversion``."""
    found = {}
    for top, prefix in ((ROOT / "splade_anserini", ()), (ROOT / "conversion", ("splade_anserini",))):
        for path in top.rglob("*.py"):
            parts = prefix + path.relative_to(top.parent).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``path`` imports, at the top or inside a function (lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {name for name in out if name in modules}


def test_import_graph_has_no_cycle():
    import graphlib

    modules = package_modules()
    assert "splade_anserini.conversion.trec" in modules and "splade_anserini.encode.corpus" in modules
    graph = {name: imported_modules(path, modules) - {name} for name, path in modules.items()}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_model_not_found_is_bad_input():
    proc = run("model", str(ROOT / "no-such-model"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr


def test_shipped_recipes_load_by_name_with_data_under_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"scifact", "accept", "frontier-base"} <= set(names)
    specs = {n for n in names if "settings" in yaml.safe_load((CONFIG_DIR / f"{n}.yaml").read_text())}
    assert specs == {"frontier", "recipe-seeds"}  # the specs of scripts/frontier.py, not recipes
    for name in set(names) - specs:
        values = load_config_file(name)
        if name == "adapt":  # trains on the pseudo-queries' corpus; its guard is shared data
            assert values["corpus"] == "runs/adapt/scifact-pq.corpus.jsonl"
            assert values["guard_corpus"] == str(tmp_path / "data" / "msmarco-dl19-subset" / "collection.tsv")
        else:
            assert values["corpus"] == str(tmp_path / "data" / "scifact" / "corpus.jsonl")
        config_from_dict({**values, "output_dir": str(tmp_path / "out")})
    assert find_config("scifact.yaml") == CONFIG_DIR / "scifact.yaml"
    with pytest.raises(ConfigError, match="not a shipped recipe"):
        find_config("no-such-recipe")


def test_a_config_file_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scifact").write_text("{\"lr\": 0.5}", encoding="utf-8")
    assert load_config_file("scifact") == {"lr": 0.5}


def test_data_root_follows_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    work = tmp_path / "a" / "checkout"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert data_root() == tmp_path / "a" / "shared" / "data"
    (tmp_path / "a" / "shared" / "data").mkdir(parents=True)
    assert data_root() == tmp_path / "a" / "shared" / "data"
    (work / "data").mkdir()
    assert data_root() == work / "data"
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere"


MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_stay_small():
    """Every module of the package, the formats, the bench and the scripts reads at once: at most
    450 lines a module and 60 a function (docstring included)."""
    long_modules, long_functions = [], []
    for folder in ("splade_anserini", "conversion", "bench", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            name = path.relative_to(ROOT)
            if text.count("\n") > MAX_MODULE_LINES:
                long_modules.append(f"{name} ({text.count(chr(10))} lines)")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long_functions.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    assert long_modules == [] and long_functions == []
