"""``python -m bench.reproduce``: every result file it names is made by real commands, listed with their time."""
from __future__ import annotations

import importlib.util
import shlex

import pytest

from bench import reproduce
from bench.results import ROOT
from splade_anserini.__main__ import SUBCOMMANDS


def test_list_names_every_result_file_and_a_total(capsys):
    assert reproduce.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in reproduce.result_names():
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "total" in out.splitlines()[-1] and "min" in out.splitlines()[-1]


@pytest.mark.parametrize("name", sorted(reproduce.RECIPES))
def test_each_recipe_command_exists_and_parses(name):
    for command in reproduce.RECIPES[name].commands:
        argv = shlex.split(command.split("||")[-1])  # "test -d OUT || make it": the making command
        if argv[0] == "splade-anserini":
            assert argv[1] in {sub.name for sub in SUBCOMMANDS}, command
        elif argv[:2] == [reproduce.PY, "-m"]:
            assert (ROOT / (argv[2].replace(".", "/") + ".py")).is_file(), command
        else:
            assert argv[0] == reproduce.PY and (ROOT / argv[1]).is_file(), command


def test_an_unknown_name_is_refused(capsys):
    assert reproduce.main(["--only", "no-such-table"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no-such-table" in err and "\n" not in err


def test_a_file_without_a_command_is_refused_before_anything_runs(capsys, monkeypatch):
    ran = []
    monkeypatch.setattr(reproduce.subprocess, "run", lambda *a, **k: ran.append(a))
    names = reproduce.missing()
    if not names:
        pytest.skip("every result file has a command")
    assert reproduce.main(["--only", "frontier", names[0]]) == 2
    assert ran == [] and "no command makes" in capsys.readouterr().err


def _script(name: str):
    """``scripts/NAME.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_that_differ_in_the_seed_only_get_a_mean_and_spread_row():
    frontier = _script("frontier")

    def setting(name, seed, scifact, cacm, **flags):
        ev = {"nDCG@10": 0.8, "doc_nonzeros": 150.0, "flops": 3.0}
        return {"name": name, "flags": {"l2sp": 1.0, **flags, "seed": seed},
                "run": {"wall": 600.0, "best_step": 120, "valid_ndcg": 0.78},
                "eval": {"dl19": ev, "scifact": {**ev, "nDCG@10": scifact}, "cacm": {**ev, "nDCG@10": cacm}}}

    rows = [setting("a", 42, 0.68, 0.42), setting("a-s43", 43, 0.70, 0.43), setting("b", 42, 0.69, 0.44, lwf_weight=1.0)]
    table = frontier.result_rows(rows, "dl19")
    assert [r[0] for r in table] == ["a", "a-s43", "b", "a (2 seeds)"]
    summary = table[-1]
    assert summary[1] == "seeds 42, 43: mean (spread)"
    assert summary[6] == "0.6900 (0.0200)" and summary[7] == "0.4250 (0.0100)"
    assert summary[3] == "-" and summary[2] == "10.0"


def test_the_lambda_sweep_gives_each_seed_a_row_and_each_value_its_mean_and_spread():
    sweep = _script("lambda_sweep")

    def point(lam, seed, scifact, cacm, minutes):
        ev = {"doc_nonzeros": 150.0, "query_nonzeros": 40.0, "flops": 3.0}
        return {"lambda_d": lam, "seed": seed, "train_seconds": 60 * minutes,
                "scifact": {**ev, "nDCG@10": scifact}, "cacm": {**ev, "nDCG@10": cacm}}

    points = [point(1e-3, 42, 0.66, 0.43, 2.0), point(1e-3, 43, 0.68, 0.44, 4.0), point(1e-2, 42, 0.65, 0.42, 2.0)]
    columns, rows = sweep.result_rows(points, None, ["scifact", "cacm"], "nDCG@10")
    assert [r[0] for r in rows] == ["0.001 (seed 42)", "0.001 (seed 43)", "0.001", "0.01 (seed 42)"]
    mean = dict(zip(columns, rows[2]))
    assert mean["SciFact nDCG@10"] == "0.6700 (0.0200)" and mean["CACM nDCG@10"] == "0.4350 (0.0100)"
    assert mean["train time"] == "3.0 min (mean)"
