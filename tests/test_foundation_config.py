"""Typed TOML config: unknown keys, wrong types and out-of-range values name the key."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from xdf_writer import write_xdf

from rtbold.config import ConfigError, from_dict, load_config
from rtbold.io.eeg import read_eeg


@dataclass
class _Data:
    root: Path = Path(".")
    marker: str | None = "R149"
    policy: str = field(default="refuse", metadata={"choices": ("refuse", "interpolate", "zero")})


@dataclass
class _Train:
    epochs: int = field(default=20, metadata={"range": (1, 1000)})
    lr: float = field(default=3e-4, metadata={"range": (0.0, 1.0)})
    bf16: bool = False
    data: _Data = field(default_factory=_Data)
    seeds: list[int] = field(default_factory=list)


def test_valid_config_is_typed(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\nepochs = 3\nlr = 1\nseeds = [1, 2]\n[train.data]\nroot = "~/d"\n')
    cfg = load_config(f, _Train, section="train")
    assert cfg.epochs == 3 and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.data.root == Path("~/d").expanduser() and cfg.seeds == [1, 2]


@pytest.mark.parametrize("data, message", [
    ({"epoch": 3}, r"c.toml:train: unknown key\(s\) 'epoch'; valid keys are .*epochs"),
    ({"epochs": "3"}, r"train.epochs: expected an integer, got '3'"),
    ({"epochs": 0}, r"train.epochs: 0 is out of range; expected a value in \[1, 1000\]"),
    ({"bf16": 1}, r"train.bf16: expected true or false, got 1"),
    ({"data": {"policy": "guess"}}, r"train.data.policy: 'guess' is not one of"),
    ({"data": {"marker": 149}}, r"train.data.marker: 149 is not any of str"),
    ({"seeds": [1, "x"]}, r"train.seeds\[1\]: expected an integer"),
])
def test_bad_values_name_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(_Train, data, "c.toml:train")


def test_malformed_toml_names_the_file(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[train\nepochs = 3\n")
    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        load_config(f, _Train)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml", _Train)


def test_xdf_recording_with_markers(tmp_path, rng):
    sfreq, n = 500.0, 5000
    ts = 1234.5 + np.arange(n) / sfreq
    data = rng.standard_normal((n, 3)).astype(np.float32) * 20
    path = write_xdf(tmp_path / "rec.xdf", [
        {"name": "BrainAmp", "type": "EEG", "sfreq": sfreq, "labels": ["Fp1", "Cz", "ECG"],
         "data": data, "timestamps": ts},
        {"name": "Scanner", "type": "Markers", "sfreq": 0, "labels": ["trigger"],
         "data": ["R149", "R149"], "timestamps": [ts[1000], ts[2050]]},
    ])
    rec = read_eeg(path)
    assert rec.ch_names == ["Fp1", "Cz", "ECG"] and rec.sfreq == sfreq
    assert rec.first_time == pytest.approx(ts[0])
    np.testing.assert_allclose(rec.data, data.T.astype(float), rtol=1e-6)
    assert [a.description for a in rec.annotations] == ["R149", "R149"]
    np.testing.assert_allclose([a.onset for a in rec.annotations], [2.0, 4.1], atol=1e-6)
    with pytest.raises(ValueError, match=r"exactly one stream named 'Amp'.*'BrainAmp'"):
        read_eeg(path, stream_name="Amp")
