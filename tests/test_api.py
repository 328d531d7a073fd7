"""The public Python API: ``from splade_anserini import ...``, lazy (importing the package loads nothing heavy)."""
from __future__ import annotations

import importlib
import json

import pytest

import splade_anserini
from conftest import run_python

HEAVY = ("torch", "transformers", "jnius", "pyserini", "numba", "onnxruntime", "onnx", "tokenizers")


def test_import_loads_nothing_heavy():
    """A fresh interpreter that imports the package (and lists it) has none of the heavy modules."""
    code = ("import json, sys, splade_anserini; dir(splade_anserini); splade_anserini.__all__; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout))
    assert not loaded & set(HEAVY), f"importing splade_anserini loaded {sorted(loaded & set(HEAVY))}"


def test_all_and_dir_list_the_public_names():
    assert {"SpladeQueryEncoder", "OnnxSpladeEncoder", "NumbaIndex", "SpladeEncoder", "encode_corpus",
            "build_index", "evaluate_files", "run_pipeline"} <= set(splade_anserini.__all__)
    assert set(splade_anserini.__all__) <= set(dir(splade_anserini))
    with pytest.raises(AttributeError, match="no_such_name"):
        splade_anserini.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", [n for n in splade_anserini.__all__ if n != "SpladeQueryEncoder"])
def test_each_name_is_its_module_object(name):
    """Each name (but the JVM-starting query encoder, below) is the very object of the module it comes from,
    whose path stays importable."""
    module = importlib.import_module(splade_anserini._API[name])
    assert getattr(splade_anserini, name) is getattr(module, name)


@pytest.mark.slow
def test_query_encoder_starts_the_jvm_on_first_use_only():
    """``SpladeQueryEncoder`` is Pyserini's encoder class, built (and the JVM started) when first used."""
    code = ("import sys, splade_anserini; assert 'jnius' not in sys.modules; "
            "from splade_anserini import SpladeQueryEncoder; from pyserini.encode import QueryEncoder; "
            "from splade_anserini.search import query_encoder; "
            "assert issubclass(SpladeQueryEncoder, QueryEncoder); "
            "assert SpladeQueryEncoder is query_encoder.SpladeQueryEncoder; print('ok')")
    run = run_python(code)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_train_without_the_train_extra_names_it(tmp_path):
    """Without accelerate (the ``train`` extra), ``train`` ends in one line naming the extra to install."""
    code = ("import sys; sys.modules['accelerate'] = None; from splade_anserini.train.__main__ import main; "
            f"sys.exit(main(['--config', 'scifact', '--output-dir', {str(tmp_path / 'out')!r}]))")
    run = run_python(code)
    assert run.returncode == 2
    assert run.stderr.strip() == 'error: training needs the train extra: pip install "splade-anserini[train]"'
    assert not (tmp_path / "out").exists()


def test_a_missing_named_dataset_lists_every_place_searched(tmp_path, monkeypatch):
    from splade_anserini.conversion.errors import InputError
    from splade_anserini.data import resolve_dataset

    monkeypatch.delenv("SPLADE_ANSERINI_DATA", raising=False)
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "data").mkdir()  # a data folder without the dataset: the next place is still searched
    monkeypatch.chdir(work)
    with pytest.raises(InputError) as caught:
        resolve_dataset("cacm")
    message = str(caught.value)
    assert str(work / "data" / "cacm") in message and str(tmp_path / "a" / "shared" / "data" / "cacm") in message
    shared = tmp_path / "a" / "shared" / "data" / "cacm"
    shared.mkdir(parents=True)
    with pytest.raises(InputError, match="no corpus file"):  # found in the second place
        resolve_dataset("cacm")


@pytest.mark.parametrize("module, shown, hidden", [
    ("splade_anserini.train.mine_negatives", ["default: 100", "default: 1", "(default: 256)"], ["(default: None)"]),
    ("splade_anserini.train.__main__", ["(default: splade-tiny)"], ["(default: )", "(default: None)"]),
])
def test_help_shows_every_default_but_empty_ones(module, shown, hidden, capsys):
    assert importlib.import_module(module).main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert all(text in out for text in shown), out
    assert not any(text in out for text in hidden), out
