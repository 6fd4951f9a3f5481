"""rtbold.models training pieces: losses, parameter groups, lr schedule, LaBraM import, baselines,
device choice."""

import argparse

import numpy as np
import pytest
import torch

from rtbold.models import (
    MeanPredictor, RidgeBandPower, band_power_features, create_model, load_labram_weights, lr_at,
    mse_loss, param_groups, select_device, set_lr, unebolt_loss,
)
from rtbold.models.optim import layer_id

VU = ["FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7",
      "P8", "FPZ", "FZ", "CZ", "PZ", "POZ", "OZ", "FT9", "FT10", "TP9", "TP10"]


# ---------------------------------------------------------------- losses
def _np_corr(a, b, axis):
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    num = (a * b).sum(axis=axis)
    den = np.sqrt((a ** 2).sum(axis=axis)) * np.sqrt((b ** 2).sum(axis=axis)) + 1e-8
    return num / den


def _np_unebolt(pred, target, alpha, beta):
    mse = ((pred - target) ** 2).mean()
    temporal = (1 - _np_corr(pred, target, 0)).mean()
    spatial = (1 - _np_corr(pred, target, 1)).mean()
    return alpha * mse + beta * temporal + (1 - alpha - beta) * spatial


@pytest.mark.parametrize("alpha, beta", [(0.8, 0.1), (0.5, 0.3), (1.0, 0.0)])
def test_unebolt_loss_matches_numpy(rng, alpha, beta):
    pred = rng.standard_normal((32, 64))
    target = 0.5 * pred + rng.standard_normal((32, 64))
    got = unebolt_loss(torch.tensor(pred), torch.tensor(target), alpha=alpha, beta=beta)
    assert got.item() == pytest.approx(_np_unebolt(pred, target, alpha, beta), rel=1e-10)
    assert mse_loss(torch.tensor(pred), torch.tensor(target)).item() == pytest.approx(
        ((pred - target) ** 2).mean(), rel=1e-12)


def test_unebolt_loss_perfect_and_constant(rng):
    y = torch.tensor(rng.standard_normal((16, 8)))
    assert unebolt_loss(y, y).item() == pytest.approx(0.0, abs=1e-7)
    # a constant prediction has no correlation: eps keeps it finite, both terms count fully
    const = torch.zeros_like(y)
    expected = 0.8 * (y ** 2).mean().item() + 0.1 + 0.1
    assert unebolt_loss(const, y).item() == pytest.approx(expected, rel=1e-6)
    pred = torch.zeros(16, 8, requires_grad=True)
    unebolt_loss(pred + 0.01 * y, y).backward()
    assert torch.isfinite(pred.grad).all()
    with pytest.raises(ValueError, match="batch, regions"):
        unebolt_loss(y[:, 0], y[:, 0])


# ---------------------------------------------------------------- optimiser groups and schedule
SPEC_SCALES = [0.0037, 0.0057, 0.0088, 0.0135, 0.0207, 0.0319, 0.0490, 0.0754, 0.116, 0.179, 0.275,
               0.4225, 0.65, 1.0]


def test_param_groups_scale_table():
    model = create_model("unebolt", size="base", n_rois=64, ch_names=VU)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.65)
    scale = {}
    decay = {}
    for g in groups:
        for name in g["param_names"]:
            scale[name] = g["lr_scale"]
            decay[name] = g["weight_decay"]
        assert g["lr_scale"] == pytest.approx(0.65 ** (13 - g["layer_id"]))
    for lid, expected in enumerate(SPEC_SCALES):
        got = [s for n, s in scale.items() if layer_id(n, 12) == lid]
        assert got and got[0] == pytest.approx(expected, rel=1e-2), lid  # table is rounded
    assert scale["labram.cls_token"] == scale["labram.pos_embed"] == scale[
        "labram.patch_embed.conv1.weight"] == pytest.approx(0.65 ** 13)
    assert scale["labram.blocks.0.attn.qkv.weight"] == pytest.approx(0.65 ** 12)
    assert scale["labram.blocks.11.mlp.fc2.weight"] == pytest.approx(0.65)
    for name in ("labram.time_embed", "labram.fc_norm.weight", "mss_module.layers.0.ff.fc1.weight",
                 "mss_module.channel_tokens.weight", "fusion.fc1.weight", "roi_table", "rre.alpha",
                 "rre.down.weight", "roi_weight", "roi_bias"):
        assert scale[name] == 1.0, name
    # no decay: 1-D, scalars, biases, cls/pos/time tables; decay: 2-D weights incl. tables
    for name in ("labram.cls_token", "labram.pos_embed", "labram.time_embed",
                 "labram.blocks.3.gamma_1", "labram.blocks.3.norm1.weight",
                 "labram.patch_embed.norm1.weight", "labram.patch_embed.conv1.bias", "rre.alpha",
                 "roi_bias", "labram.blocks.0.attn.q_norm.weight"):
        assert decay[name] == 0.0, name
    for name in ("labram.blocks.0.attn.qkv.weight", "labram.patch_embed.conv1.weight",
                 "mss_module.channel_tokens.weight", "roi_table", "roi_weight"):
        assert decay[name] == 0.05, name
    n_params = sum(p.numel() for g in groups for p in g["params"])
    assert n_params == sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(groups, lr=3e-4)
    set_lr(opt, 1e-3)
    assert {g["lr"] for g in opt.param_groups} == {1e-3 * g["lr_scale"] for g in groups}


def test_lr_schedule_formula():
    W, T = 140, 560
    warm = np.linspace(0, 3e-4, W)
    iters = np.arange(T - W)
    cos = 1e-6 + 0.5 * (3e-4 - 1e-6) * (1 + np.cos(np.pi * iters / len(iters)))
    ref = np.concatenate([warm, cos])
    got = np.array([lr_at(i, warmup_steps=W, total_steps=T) for i in range(T)])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
    assert got[0] == 0.0 and got[W - 1] == pytest.approx(3e-4) and got[W] == pytest.approx(3e-4)
    assert lr_at(T, warmup_steps=W, total_steps=T) == pytest.approx(1e-6)
    with pytest.raises(ValueError):
        lr_at(0, warmup_steps=10, total_steps=5)


# ---------------------------------------------------------------- LaBraM checkpoint import
def _official_checkpoint(tmp_path, with_args=True):
    """A file with the official labram-base.pth layout, built from our own base encoder."""
    enc = create_model("neurobolt", size="base", n_rois=1, ch_names=VU).labram
    torch.manual_seed(1)
    student = {f"student.{k}": torch.randn_like(v) for k, v in enc.state_dict().items()
               if not k.startswith("fc_norm.")}
    student["student.mask_token"] = torch.zeros(1, 1, 200)
    student["student.norm.weight"] = torch.ones(200)
    student["student.norm.bias"] = torch.zeros(200)
    student["student.lm_head.weight"] = torch.zeros(8192, 200)
    student["student.lm_head.bias"] = torch.zeros(8192)
    other = {"lm_head.weight": torch.zeros(8192, 200), "projection_head.0.weight": torch.zeros(4, 4),
             "logit_scale": torch.tensor(1.0)}
    ckpt = {"model": {**student, **other}, "epoch": 49}
    if with_args:
        ckpt["args"] = argparse.Namespace(model="labram_base_patch200_1600", lr=5e-4)
    path = tmp_path / "labram-base.pth"
    torch.save(ckpt, path)
    return path, student


def test_load_labram_weights(tmp_path):
    path, student = _official_checkpoint(tmp_path)
    model = create_model("unebolt", size="base", n_rois=64, ch_names=VU)
    head_before = model.roi_weight.detach().clone()
    missing, unexpected = load_labram_weights(model, path)
    assert all(k.startswith(("labram.fc_norm.", "mss_module.", "fusion.", "roi_", "rre."))
               for k in missing)
    assert "labram.fc_norm.weight" in missing and "roi_weight" in missing
    assert not any(k.startswith("labram.blocks") for k in missing)
    assert sorted(unexpected) == ["lm_head.bias", "lm_head.weight", "mask_token", "norm.bias",
                                  "norm.weight"]
    sd = model.state_dict()
    for key in ("pos_embed", "blocks.11.gamma_2", "patch_embed.conv3.weight", "blocks.5.attn.qkv.weight"):
        torch.testing.assert_close(sd[f"labram.{key}"], student[f"student.{key}"], rtol=0, atol=0)
    torch.testing.assert_close(model.roi_weight, head_before)


def test_load_labram_weights_neurobolt_missing_keys(tmp_path):
    path, _ = _official_checkpoint(tmp_path, with_args=False)
    model = create_model("neurobolt", size="small", n_rois=1, ch_names=VU)
    missing, unexpected = load_labram_weights(model, path)
    roots = {k.split(".")[0] if not k.startswith("labram.") else "labram.fc_norm" for k in missing}
    assert roots == {"labram.fc_norm", "head", "mss_module"}
    assert "blocks.4.norm1.weight" in unexpected     # small has 4 of the 12 blocks


def test_load_labram_weights_errors(tmp_path):
    path, _ = _official_checkpoint(tmp_path, with_args=False)
    tiny = create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU)
    with pytest.raises(ValueError, match="shape"):
        load_labram_weights(tiny, path)
    other = tmp_path / "other.pth"
    torch.save({"model": {"encoder.x": torch.zeros(2)}}, other)
    with pytest.raises(ValueError, match="student"):
        load_labram_weights(tiny, other)
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"student.cls_token": torch.zeros(1)}, "obj": _Unsafe()}, evil)
    with pytest.raises(ValueError, match="weights-only"):
        load_labram_weights(tiny, evil)
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_labram_weights(tiny, tmp_path / "nothere.pth")


class _Unsafe:
    """An arbitrary class: a weights-only load must refuse to rebuild it."""


# ---------------------------------------------------------------- baselines
def _synthetic_windows(rng, n=120, c=4):
    """Windows whose target is the alpha power of channel 1 in the 3rd 2-s segment."""
    t = np.arange(3200) / 200.0
    amp = rng.uniform(0.2, 2.0, size=(n, 8))
    X = 0.1 * rng.standard_normal((n, c, 3200))
    seg = np.repeat(amp, 400, axis=1)                              # (n, 3200)
    X[:, 1] += seg * np.sin(2 * np.pi * 10 * t)
    Y = np.stack([np.log10(amp[:, 2]), -np.log10(amp[:, 5])], axis=1)
    Y += 0.05 * rng.standard_normal(Y.shape)
    return X.astype(np.float32), Y


def test_band_power_features_layout(rng):
    X, _ = _synthetic_windows(rng, n=3)
    F = band_power_features(X)
    assert F.shape == (3, 8 * 4 * 5)
    F4 = F.reshape(3, 8, 4, 5)
    # alpha (band 2) of channel 1 dominates channel 0's alpha in every segment
    assert (F4[:, :, 1, 2] > F4[:, :, 0, 2] + 1).all()


def test_ridge_band_power_recovers_lagged_power(rng):
    X, Y = _synthetic_windows(rng, n=400, c=2)     # 80 features, 300 training windows
    model = RidgeBandPower(n_folds=4).fit(X[:300], Y[:300])
    assert model.alpha_ in model.alphas
    assert np.isfinite(model.cv_mse_).all()
    pred = model.predict(X[300:])
    assert pred.shape == (100, 2)
    for p in range(2):
        assert np.corrcoef(pred[:, p], Y[300:, p])[0, 1] > 0.9
    # a strong penalty shrinks towards the mean: CV must not pick the largest one here
    assert model.alpha_ < model.alphas.max()
    with pytest.raises(ValueError, match="features"):
        model.predict(X[300:, :1])
    with pytest.raises(RuntimeError, match="not fitted"):
        RidgeBandPower().predict(X)


def test_mean_predictor(rng):
    X, Y = _synthetic_windows(rng, n=10)
    pred = MeanPredictor().fit(X, Y).predict(X[:3])
    np.testing.assert_allclose(pred, np.tile(Y.mean(0), (3, 1)))
    with pytest.raises(ValueError):
        MeanPredictor().fit(X, Y[:5])


# ---------------------------------------------------------------- device
def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device(torch.device("cpu")).type == "cpu"
    with pytest.raises(ValueError, match="banana"):
        select_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            select_device("cuda")
