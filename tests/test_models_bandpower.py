"""Channel-resolved band-power models: the torch twin of the ridge features, the ridge bundle,
and UnEBOLT's band-power branch."""

import numpy as np
import pytest
import torch

from rtbold.models import (RidgeBandPower, band_power_features, create_model, list_models,
                           load_bundle, save_bundle)
from rtbold.montage import load_montage

CH = list(load_montage().ch_names)


def _windows(rng, n=48, n_rois=6):
    """Windows whose alpha power at O1/O2 in the last segments drives region 0 (a band-power
    relation ridge can learn), with per-window amplitude so the features vary."""
    t = np.arange(3200) / 200.0
    X = rng.standard_normal((n, len(CH), 3200)) * 0.2
    drive = rng.standard_normal(n)
    for i in range(n):
        amp = np.exp(0.5 * drive[i])
        for c in (CH.index("O1"), CH.index("O2")):
            X[i, c] += amp * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6))
    Y = rng.standard_normal((n, n_rois)) * 0.3
    Y[:, 0] += drive
    return X.astype(np.float32), Y


def test_torch_features_equal_the_numpy_ridge_features(rng):
    X, _ = _windows(rng, n=8)
    model = create_model("ridge", n_rois=3, ch_names=CH)
    f_torch = model.features.log_power(torch.from_numpy(X)).flatten(1).numpy()
    np.testing.assert_allclose(f_torch, band_power_features(X), atol=2e-5)


def test_ridge_bundle_round_trip_predicts_like_the_estimator(rng, tmp_path):
    X, Y = _windows(rng)
    est = RidgeBandPower().fit(X, Y, groups=np.repeat(np.arange(4), len(X) // 4))
    model = create_model("ridge", n_rois=Y.shape[1], ch_names=CH).load_estimator(est)
    path = tmp_path / "ridge.safetensors"
    save_bundle(path, model, {"roi_names": [f"r{i}" for i in range(Y.shape[1])]})
    loaded, meta = load_bundle(path)
    assert meta.model_name == "ridge"
    assert meta.model_config["alpha"] == pytest.approx(est.alpha_)
    with torch.no_grad():
        pred = loaded(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(pred, est.predict(X), atol=1e-4)
    # it learned the planted relation, and an untrained ridge module predicts nothing
    assert np.corrcoef(pred[:, 0], Y[:, 0])[0, 1] > 0.8
    with torch.no_grad():
        blank = create_model("ridge", n_rois=Y.shape[1], ch_names=CH)(torch.from_numpy(X))
    assert float(blank.abs().max()) == 0.0


def test_grouped_cv_holds_out_whole_groups(rng):
    est = RidgeBandPower(n_folds=3)
    folds = est._folds(12, np.repeat(["a", "b", "c", "d", "e", "f"], 2))
    assert len(folds) == 3
    for f in folds:  # both windows of a group are always in the same fold
        assert len(f) % 2 == 0 and all(f[i] + 1 == f[i + 1] for i in range(0, len(f), 2))
    assert sorted(np.concatenate(folds).tolist()) == list(range(12))
    with pytest.raises(ValueError, match="groups has 3 labels"):
        est._folds(12, np.arange(3))


def test_unebolt_bp_starts_as_the_ridge_and_trains_its_branch(rng):
    X, Y = _windows(rng)
    assert "unebolt_bp" in list_models() and "ridge" in list_models()
    est = RidgeBandPower().fit(X, Y)
    model = create_model("unebolt_bp", size="tiny", n_rois=Y.shape[1], ch_names=CH)
    assert model.cfg.bandpower_branch and model.model_name == "unebolt"
    from rtbold.models.bandpower import copy_ridge

    copy_ridge(est, model.bandpower.features, model.bandpower.linear)
    model.eval()
    with torch.no_grad():
        branch = model.bandpower(torch.from_numpy(X)).numpy()
        full = model(torch.from_numpy(X)).numpy()
    # the MLP readout starts at zero: the branch is the ridge; the heads add ~0 (init scale 1e-3)
    np.testing.assert_allclose(branch, est.predict(X), atol=1e-4)
    assert np.abs(full - branch).max() < 0.05
    model.train()
    loss = ((model(torch.from_numpy(X)) - torch.from_numpy(Y).float()) ** 2).mean()
    loss.backward()
    assert model.bandpower.mlp_readout.weight.grad.abs().sum() > 0
    assert model.bandpower.mlp[0].weight.grad is not None   # zero readout, but gradient reaches it
    assert model.roi_weight.grad.abs().sum() > 0


def test_branch_refuses_channel_subsets_and_wrong_windows():
    model = create_model("unebolt_bp", size="tiny", n_rois=4, ch_names=CH)
    with pytest.raises(ValueError, match="every model channel"):
        model(torch.zeros(1, 3, 3200), ch_index=model.channel_index(CH[:3]))
    ridge = create_model("ridge", n_rois=4, ch_names=CH)
    with pytest.raises(ValueError, match=r"expected input \(batch, 26, 3200\)"):
        ridge(torch.zeros(1, 26, 1600))


def test_session_normaliser_is_the_causal_statistics_live(rng):
    """The live normaliser, fed one window at a time, gives the offline causal statistics; the
    prior dominates the first windows and fades."""
    from rtbold.models import SessionNormaliser, causal_feature_stats

    F = rng.standard_normal((60, 12)) * 2 + 5
    prior_mean, prior_scale = np.zeros(12), np.ones(12)
    mean, scale = causal_feature_stats(F, prior_mean, prior_scale, 10)
    live = SessionNormaliser(prior_mean, prior_scale, 10)
    for k in range(len(F)):
        m, s = live.update(F[k])
        np.testing.assert_allclose(m, mean[k])
        np.testing.assert_allclose(s, scale[k])
    assert np.abs(mean[0]).max() < np.abs(F[0]).max() / 5        # first window: mostly prior
    np.testing.assert_allclose(mean[-1], (F.sum(0)) / 70)         # 60 windows + 10 prior
    live.reset()
    assert np.allclose(live.update(F[0])[0], mean[0])
    with pytest.raises(ValueError, match="12"):
        live.update(np.zeros(5))


def test_session_normalised_model_uses_its_statistics(rng):
    """unebolt_bp normalises log band power with the given session statistics; without them it
    uses its training prior (the first window of a session)."""
    from rtbold.models import session_features

    X, _ = _windows(rng, n=4)
    model = create_model("unebolt_bp", size="tiny", n_rois=3, ch_names=CH).eval()
    feats = session_features(model)
    assert feats is not None and feats.cfg.session_norm
    assert session_features(create_model("unebolt", size="tiny", n_rois=3, ch_names=CH)) is None
    x = torch.from_numpy(X)
    raw = feats.log_power(x).flatten(1)
    stats = (raw.mean(0, keepdim=True).expand_as(raw), torch.ones_like(raw))
    with torch.no_grad():
        np.testing.assert_allclose(feats(x, stats).flatten(1).numpy(),
                                   (raw - raw.mean(0)).numpy(), atol=1e-5)
        assert torch.allclose(feats(x).flatten(1), raw)   # prior 0 / 1 until set from data


def test_context_mlp_sees_the_other_channels_and_the_cache_path_matches_forward(rng):
    """bandpower_context: each channel's MLP input is its own (segment x band) features and their
    across-channel mean. Changing one channel's EEG then changes the MLP's output for *another*
    channel, which the plain channel-shared MLP never does; and ``standardise`` of the cached raw
    log power gives the features of the forward pass."""
    from rtbold.models.bandpower import BandPowerBranch, BandPowerConfig

    X, _ = _windows(rng, n=4)
    cfg = BandPowerConfig()
    outs = {}
    for context in (False, True):
        torch.manual_seed(0)
        branch = BandPowerBranch(cfg, len(CH), 3, hidden=8, dropout=0.0, context=context).eval()
        assert branch.mlp[0].in_features == cfg.n_segments * cfg.n_bands * (2 if context else 1)
        x = torch.from_numpy(X)
        x2 = x.clone()
        x2[:, CH.index("O1")] *= 3.0  # more power at O1 only
        with torch.no_grad():
            f, f2 = branch.features(x), branch.features(x2)
            np.testing.assert_allclose(
                branch.features.standardise(branch.features.log_power(x).flatten(1)).numpy(),
                f.numpy(), atol=1e-6)

            def per_channel_mlp(feat):
                per = feat.permute(0, 2, 1, 3).flatten(2)
                if context:
                    per = torch.cat([per, per.mean(1, keepdim=True).expand_as(per)], -1)
                return branch.mlp(per)
            z, z2 = per_channel_mlp(f), per_channel_mlp(f2)
        cz = CH.index("CZ")
        outs[context] = float((z2[:, cz] - z[:, cz]).abs().max())
    assert outs[False] == 0.0
    assert outs[True] > 1e-4
