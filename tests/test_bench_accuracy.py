"""The accuracy benchmark's command line: ablations of one config through ``--set``/``--name``."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_accuracy",
                                                  ROOT / "benchmarks" / "bench_accuracy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_set_overrides_reach_the_training_config_and_bad_values_are_named(capsys):
    from rtbold.training import load_train_config
    from rtbold.training.config import deep_update

    bench = _bench()
    args = bench.parse_args(["--configs", str(ROOT / "configs" / "train_demo.toml"),
                             "--heldout", "x", "--name", "no_context",
                             "--set", "train.epochs=0", "--set", "train.bandpower_pretrain_epochs=4",
                             "--set", "model.overrides={bandpower_context = false}"])
    cfg = load_train_config(ROOT / "configs" / "train_demo.toml", args.overrides)
    assert cfg.train.epochs == 0 and cfg.train.bandpower_pretrain_epochs == 4
    assert cfg.model.overrides == {"bandpower_context": False}
    assert cfg.train.loss == "mse"  # the rest of the recipe is untouched
    assert deep_update(args.overrides, {"train": {"seed": 1}})["train"] == {
        "epochs": 0, "bandpower_pretrain_epochs": 4, "seed": 1}

    with pytest.raises(SystemExit):
        bench.parse_args(["--configs", "a.toml", "--heldout", "x", "--set", "train.loss=mse"])
    assert "train.loss='mse'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--configs", "a.toml", "b.toml", "--heldout", "x", "--name", "n"])
    assert "one --configs entry" in capsys.readouterr().err
