"""The same command gives the same weights, with the default threads; learning without forgetting
(``--lwf-triples``) on MS MARCO triples starts from agreement with the starting model and is logged."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from splade_anserini.train import config_from_dict, train
from splade_anserini.train.config import ConfigError


@pytest.fixture
def triples(data_dir):
    return str(data_dir / "msmarco-toy" / "triples.train.tsv")


def _sha(checkpoint):
    return hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()


@pytest.mark.slow
def test_two_runs_with_the_default_threads_give_the_same_bytes(triples, tmp_path):
    # with torch's default threads (all cores): the fused head's backward once summed gradients in a
    # thread-dependent order (index_put_ with accumulate), so two runs of one command differed
    assert torch.get_num_threads() >= 1
    shas = []
    for name in ("a", "b"):
        cfg = config_from_dict(dict(triples=triples, output_dir=str(tmp_path / name), batch_size=8, max_length=128,
                                    query_max_length=32, lr=1e-4, lambda_q=1e-4, lambda_d=1e-4, max_steps=3,
                                    progress=False, seed=5))
        assert cfg.threads == 0
        train(cfg)
        shas.append(_sha(tmp_path / name / "checkpoint-last"))
    assert shas[0] == shas[1]


def test_lwf_starts_from_agreement_and_is_logged(triples, tmp_path):
    # the student starts as the starting model: the KL term is near 0 at step 1 (dropout only) and logged
    cfg = config_from_dict(dict(triples=triples, output_dir=str(tmp_path), batch_size=2, max_length=48,
                                query_max_length=16, lr=2e-4, max_steps=4, log_every=1, progress=False, seed=3,
                                threads=1, lwf_triples=triples, lwf_weight=1.0, lwf_batch_size=4))
    assert train(cfg)["steps"] == 4
    records = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    lwf = [r["lwf"] for r in records if r["type"] == "train"]
    assert len(lwf) == 4 and all(np.isfinite(lwf)) and all(v >= 0 for v in lwf)
    assert lwf[0] < 0.1, lwf
    assert records[0]["config"]["lwf_weight"] == 1.0


@pytest.mark.parametrize("extra", [dict(lwf_weight=1.0), dict(lwf_triples="x.tsv")])
def test_lwf_triples_and_weight_go_together(triples, tmp_path, extra):
    with pytest.raises(ConfigError, match="lwf_triples and lwf_weight go together"):
        config_from_dict(dict(triples=triples, output_dir=str(tmp_path), **extra)).validate()


@pytest.mark.parametrize("spec_name", ["frontier", "recipe-seeds"])
def test_every_frontier_setting_is_a_valid_config(tmp_path, spec_name):
    # scripts/frontier.py passes each setting's flags on the command line over its base recipe
    import yaml

    from splade_anserini.train.config import find_config, parse_args

    spec = yaml.safe_load(find_config(spec_name).read_text())
    for setting in spec["settings"]:
        argv = ["--config", spec["base"], "--output-dir", str(tmp_path / setting["name"])]
        for key, value in (setting.get("flags") or {}).items():
            argv += ["--" + key.replace("_", "-"), str(value).lower() if isinstance(value, bool) else str(value)]
        cfg = parse_args(argv)
        assert "{data}" not in (cfg.lwf_triples or "")
        if cfg.lwf_triples:
            assert cfg.lwf_weight > 0 and cfg.lwf_triples.endswith("msmarco-toy/triples.train.tsv")


def test_the_recipe_is_the_recipe_seeds_first_setting(tmp_path):
    # `train --config scifact` must train what results/recipe-seeds.json reports (hybrid-lwf, seed 42)
    import dataclasses

    import yaml

    from splade_anserini.train.config import find_config, parse_args

    spec = yaml.safe_load(find_config("recipe-seeds").read_text())
    setting = spec["settings"][0]
    argv = ["--config", spec["base"], "--output-dir", str(tmp_path)]
    for key, value in setting["flags"].items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    seeds, recipe = parse_args(argv), parse_args(["--config", "scifact", "--output-dir", str(tmp_path)])
    differ = {f.name for f in dataclasses.fields(recipe) if getattr(recipe, f.name) != getattr(seeds, f.name)}
    assert differ == set(), {name: (getattr(recipe, name), getattr(seeds, name)) for name in differ}
    assert recipe.lwf_weight == 1.0 and recipe.seed == 42
