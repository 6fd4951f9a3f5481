"""rtbold.models bundles: safetensors + JSON metadata round trip, validation, pickle refusal."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rtbold.models import (
    BundleMeta, create_model, describe_bundle, load_bundle, read_bundle_meta, save_bundle,
)

VU = ["FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7",
      "P8", "FPZ", "FZ", "CZ", "PZ", "POZ", "OZ", "FT9", "FT10", "TP9", "TP10"]
ROIS = ["Cuneus", "Heschl’s gyrus", "Putamen", "Thalamus"]


def _metadata():
    return {
        "rtbold_version": "0.1.0",
        "tr": 2.1,
        "roi_names": ROIS,
        "atlas": "DiFuMo64",
        "target_normalisation": {"lowpass_hz": 0.15, "scale": "p95", "mean": np.zeros(4)},
        "training": {"dataset": "sim", "n_scans": 3, "n_windows": np.int64(1701)},
        "metrics": {"val_tcorr": 0.41, "test_tcorr": float("nan")},
        "notes": "unit test",
        "lab": "extra key kept",
    }


@pytest.fixture
def bundle(tmp_path):
    torch.manual_seed(0)
    model = create_model("unebolt", size="tiny", n_rois=4, ch_names=VU, no_rre=True,
                         labram={"drop_path_rate": 0.0}).eval()
    path = tmp_path / "model.safetensors"
    save_bundle(path, model, _metadata())
    return path, model


def test_round_trip_reproduces_outputs(bundle):
    path, model = bundle
    loaded, meta = load_bundle(path)
    assert not loaded.training
    x = torch.randn(2, 26, 3200)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert isinstance(meta, BundleMeta)
    assert meta.model_name == "unebolt" and meta.model_size == "tiny"
    assert meta.ch_names == VU and meta.roi_names == ROIS and meta.n_rois == 4
    assert meta.sfreq == 200.0 and meta.window_s == 16.0 and meta.tr == 2.1 and meta.n_samples == 3200
    assert meta.model_config["no_rre"] is True
    assert meta.model_config["labram"]["drop_path_rate"] == 0.0
    assert meta.target_normalisation["mean"] == [0.0] * 4
    assert meta.training["n_windows"] == 1701
    assert np.isnan(meta.metrics["test_tcorr"])
    assert meta.extra == {"lab": "extra key kept"}
    assert meta.format_version == 1 and meta.created
    assert read_bundle_meta(path) == meta
    text = describe_bundle(path)
    assert "unebolt (tiny)" in text and "26 channels at 200 Hz" in text and "DiFuMo64" in text
    assert "TP10" in text and "val_tcorr=0.41" in text


def test_check_compatible(bundle):
    meta = read_bundle_meta(bundle[0])
    meta.check_compatible(ch_names=[c.lower() for c in VU] + ["ECG"], sfreq=200.0, roi_names=ROIS)
    with pytest.raises(ValueError, match=r"2 of the model's 26 channels are missing: \['FT9', 'TP10'\]"):
        meta.check_compatible(ch_names=[c for c in VU if c not in ("FT9", "TP10")])
    with pytest.raises(ValueError, match="sampling rate is 250 Hz but the model expects 200 Hz"):
        meta.check_compatible(sfreq=250)
    with pytest.raises(ValueError, match=r"given regions not in the model: \['Insula'\]"):
        meta.check_compatible(roi_names=ROIS[:3] + ["Insula"])
    with pytest.raises(ValueError, match="different order"):
        meta.check_compatible(roi_names=ROIS[::-1])
    # every problem is reported at once
    with pytest.raises(ValueError, match="missing.*sampling rate"):
        meta.check_compatible(ch_names=VU[:3], sfreq=100)


def _rewrite(path, out, edit):
    """Copy a bundle with edited metadata (same weights)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["rtbold"])
    text = edit(header)
    save_file(load_file(str(path)), str(out), metadata={"rtbold": text})
    return out


def test_tampered_metadata_is_refused(bundle, tmp_path):
    path, _ = bundle

    def fewer_channels(h):
        h["ch_names"] = h["ch_names"][:19]
        return json.dumps(h)

    bad = _rewrite(path, tmp_path / "a.safetensors", fewer_channels)
    with pytest.raises(ValueError, match="a.safetensors.*do not match"):
        load_bundle(bad)

    def more_rois(h):
        h["n_rois"] = 5
        h["roi_names"] = h["roi_names"] + ["Insula"]
        return json.dumps(h)

    with pytest.raises(ValueError, match="shape mismatches"):
        load_bundle(_rewrite(path, tmp_path / "b.safetensors", more_rois))

    def roi_count(h):
        h["roi_names"] = h["roi_names"][:2]
        return json.dumps(h)

    with pytest.raises(ValueError, match="c.safetensors.*roi_names.*2 names.*4 regions"):
        load_bundle(_rewrite(path, tmp_path / "c.safetensors", roi_count))

    with pytest.raises(ValueError, match="d.safetensors.*not valid JSON"):
        load_bundle(_rewrite(path, tmp_path / "d.safetensors", lambda h: json.dumps(h)[:-5]))

    def no_name(h):
        del h["model_name"]
        return json.dumps(h)

    with pytest.raises(ValueError, match="lacks required key.*model_name"):
        load_bundle(_rewrite(path, tmp_path / "e.safetensors", no_name))

    def future(h):
        h["format_version"] = 99
        return json.dumps(h)

    with pytest.raises(ValueError, match="upgrade rtbold"):
        describe_bundle(_rewrite(path, tmp_path / "f.safetensors", future))

    def bad_option(h):
        h["model_config"]["labram"]["depthh"] = 3
        return json.dumps(h)

    with pytest.raises(ValueError, match="cannot rebuild.*depthh"):
        load_bundle(_rewrite(path, tmp_path / "g.safetensors", bad_option))


def test_corrupt_missing_and_foreign_files(bundle, tmp_path):
    path, _ = bundle
    data = path.read_bytes()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="broken.safetensors.*corrupt"):
        load_bundle(broken)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="garbage.safetensors"):
        describe_bundle(garbage)
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_bundle(tmp_path / "nope.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ValueError, match="not an rtbold model bundle"):
        load_bundle(plain)


def test_pickle_refused_unless_trusted(bundle, tmp_path):
    path, model = bundle
    meta = read_bundle_meta(path)
    ckpt = tmp_path / "model.pth"
    torch.save({"state_dict": model.state_dict(), "rtbold": meta.to_dict()}, ckpt)
    with pytest.raises(ValueError, match="model.pth is a pickled torch checkpoint.*trust_pickle=True"):
        load_bundle(ckpt)
    with pytest.raises(ValueError, match="pickled"):
        describe_bundle(ckpt)
    loaded, meta2 = load_bundle(ckpt, trust_pickle=True)
    x = torch.randn(1, 26, 3200)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert meta2.roi_names == ROIS
    # the conversion the refusal message spells out gives a bundle that loads without pickle
    save_bundle(tmp_path / "model.safetensors", loaded, meta2.to_dict())
    again, meta3 = load_bundle(tmp_path / "model.safetensors")
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    assert meta3.roi_names == ROIS and "--trust-pickle" not in _refusal(ckpt)


def _refusal(path) -> str:
    try:
        load_bundle(path)
    except ValueError as err:
        return str(err)
    raise AssertionError("pickle not refused")


def test_save_validation(tmp_path):
    model = create_model("neurobolt", size="tiny", n_rois=2, ch_names=VU)
    with pytest.raises(ValueError, match="roi_names"):
        save_bundle(tmp_path / "m.safetensors", model, {"tr": 2.1})
    with pytest.raises(ValueError, match="2 names|roi_names"):
        save_bundle(tmp_path / "m.safetensors", model, {"roi_names": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="ch_names"):
        save_bundle(tmp_path / "m.safetensors", model, {"roi_names": ["a", "b"], "ch_names": VU[:3]})
    with pytest.raises(ValueError, match="safetensors suffix"):
        save_bundle(tmp_path / "m.pt", model, {"roi_names": ["a", "b"]})
    with pytest.raises(ValueError, match="4000 samples, but the model takes 3200"):
        save_bundle(tmp_path / "m.safetensors", model, {"roi_names": ["a", "b"], "sfreq": 250})
    with pytest.raises(TypeError, match="not JSON"):
        save_bundle(tmp_path / "m.safetensors", model, {"roi_names": ["a", "b"], "notes": object()})
    assert not list(tmp_path.iterdir())   # nothing half-written


def test_half_precision_storage_halves_the_file_and_loads_as_float32(tmp_path):
    import torch

    from rtbold.models import create_model, load_bundle, save_bundle

    ch = ["FP1", "FP2", "CZ", "PZ", "O1", "O2"]
    model = create_model("unebolt", size="tiny", n_rois=8, ch_names=ch).eval()
    meta = {"roi_names": [f"r{i}" for i in range(8)], "tr": 2.1}
    save_bundle(tmp_path / "full.safetensors", model, meta)
    save_bundle(tmp_path / "half.safetensors", model, meta, storage_dtype="float16")
    full, half = (tmp_path / "full.safetensors").stat().st_size, (tmp_path / "half.safetensors").stat().st_size
    assert half < 0.55 * full
    loaded, _ = load_bundle(tmp_path / "half.safetensors")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(2, len(ch), 3200) * 0.2
    with torch.inference_mode():
        np_full, np_half = model(x).numpy(), loaded(x).numpy()
    assert abs(np_full - np_half).max() < 1e-2 * (abs(np_full).max() + 1e-3)
    with pytest.raises(ValueError, match="storage_dtype"):
        save_bundle(tmp_path / "x.safetensors", model, meta, storage_dtype="int8")
