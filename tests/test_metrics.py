"""Unit tests of rtbold.metrics against small hand-computed cases."""

import numpy as np
import pytest

from rtbold import metrics
from rtbold.atlas import load_atlas
from rtbold.metrics import (aggregate, fc_matrix, format_mean_std, network_tcorr, scan_metrics,
                            tcorr, top_q_f1, upper_triangle)


def test_tcorr_hand_computed():
    true = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0]])
    pred = np.array([[2.0, 1.0], [4.0, 0.0], [6.0, 1.0], [8.0, 0.0]])
    r = tcorr(pred, true)
    assert r[0] == pytest.approx(1.0)      # scaled copy
    assert r[1] == pytest.approx(-1.0)     # flipped square wave
    # a hand-computed non-trivial value: x = [1,2,3], y = [1,3,2] -> r = 0.5
    assert tcorr(np.array([1.0, 3.0, 2.0]), np.array([1.0, 2.0, 3.0]))[0] == pytest.approx(0.5)


def test_perfect_prediction_gives_one(rng):
    y = rng.standard_normal((50, 8))
    m = scan_metrics(y.copy(), y)
    assert m.values["tcorr"] == pytest.approx(1.0)
    assert m.values["pixcorr"] == pytest.approx(1.0)
    assert m.values["connmse"] == pytest.approx(0.0, abs=1e-12)
    assert m.values["f1_25"] == 1.0 and m.values["f1_50"] == 1.0
    assert m.values["mse"] == 0.0


def test_constant_prediction_is_nan_safe(rng):
    y = rng.standard_normal((30, 5))
    pred = y.copy()
    pred[:, 2] = 0.7                       # one constant region
    with np.errstate(all="raise"):         # no hidden divide-by-zero
        m = scan_metrics(pred, y)
    assert np.isnan(m.region_r[2])
    assert np.isfinite(m.region_r[[0, 1, 3, 4]]).all()
    assert m.values["tcorr"] == pytest.approx(1.0)      # mean over the defined regions
    assert m.values["n_undefined"] == 1
    assert np.isfinite(m.values["pixcorr"])
    fully_constant = scan_metrics(np.zeros_like(y), y)
    assert np.isnan(fully_constant.values["tcorr"])
    assert np.isnan(fully_constant.values["pixcorr"])
    agg = aggregate([m, fully_constant])
    assert agg["tcorr"]["n"] == 1 and agg["tcorr"]["mean"] == pytest.approx(1.0)


def test_fc_upper_triangle_and_pixcorr(rng):
    y = rng.standard_normal((40, 4))
    fc = fc_matrix(y)
    np.testing.assert_allclose(fc, np.corrcoef(y.T), atol=1e-12)
    tri = upper_triangle(fc)
    assert tri.shape == (6,)
    np.testing.assert_allclose(tri, [fc[0, 1], fc[0, 2], fc[0, 3], fc[1, 2], fc[1, 3], fc[2, 3]])
    pred = y + 0.5 * rng.standard_normal(y.shape)
    m = scan_metrics(pred, y)
    f_hat, f = upper_triangle(fc_matrix(pred)), upper_triangle(fc)
    assert m.values["pixcorr"] == pytest.approx(np.corrcoef(f_hat, f)[0, 1])
    assert m.values["connmse"] == pytest.approx(np.mean((f_hat - f) ** 2))


def test_f1_known_vectors():
    # 8 edges; top 25% = 2 edges, top 50% = 4 edges (signed: -0.9 is weak, not strong)
    f_true = np.array([0.9, 0.8, 0.1, 0.2, -0.9, 0.5, 0.4, 0.0])
    f_pred = np.array([0.9, 0.1, 0.8, 0.2, 0.95, 0.5, 0.4, 0.0])
    # true top2 = {0, 1}; pred top2 = {4, 0} -> overlap 1 -> F1 = 2*1/4
    assert top_q_f1(f_pred, f_true, 0.25) == pytest.approx(0.5)
    # true top4 = {0,1,5,6}; pred top4 = {4,0,2,5} -> overlap {0,5} -> 2*2/8
    assert top_q_f1(f_pred, f_true, 0.5) == pytest.approx(0.5)
    assert top_q_f1(f_true, f_true, 0.25) == 1.0


def test_f1_on_a_known_matrix():
    true = np.array([[1, .9, .1, .2], [.9, 1, .3, .0], [.1, .3, 1, .8], [.2, .0, .8, 1]])
    pred = np.array([[1, .7, .6, .1], [.7, 1, .2, .0], [.6, .2, 1, .9], [.1, .0, .9, 1]])
    # edges (01,02,03,12,13,23): true (.9,.1,.2,.3,0,.8) pred (.7,.6,.1,.2,0,.9)
    # 50% -> 3 edges: true {01,23,12}, pred {23,01,02} -> overlap 2 -> F1 = 4/6
    assert top_q_f1(upper_triangle(pred), upper_triangle(true), 0.5) == pytest.approx(2 / 3)


def test_network_tcorr_averages_regions_first(rng):
    atlas = load_atlas(64)
    t = rng.standard_normal((60, 64))
    noise = rng.standard_normal((60, 64))
    pred = t + 2.0 * noise
    net = network_tcorr(pred, t, atlas.networks)
    vis = atlas.regions_in("Visual")
    expected = np.corrcoef(pred[:, vis].mean(1), t[:, vis].mean(1))[0, 1]
    assert net["Visual"] == pytest.approx(expected)
    m = scan_metrics(pred, t, networks=atlas.networks)
    assert list(m.network_r)[0] == "Visual"
    assert "Limbic" not in m.network_r     # no DiFuMo-64 region is Limbic


def test_aggregate_mean_std(rng):
    y = rng.standard_normal((20, 4))
    a = scan_metrics(y, y, name="a")
    b = scan_metrics(-y, y, name="b")
    agg = aggregate([a, b])
    assert agg["tcorr"]["mean"] == pytest.approx(0.0)
    assert agg["tcorr"]["std"] == pytest.approx(1.0)
    assert format_mean_std(agg, "tcorr") == "0.000 (1.000)"
    assert agg["n_scans"] == 2


def test_shape_mismatch_errors():
    with pytest.raises(ValueError, match="same shape"):
        tcorr(np.zeros((5, 2)), np.zeros((5, 3)))


def _global_plus_regional(rng, t=400, p=12, global_sd=2.0):
    """Truth = a strong shared time course + region-specific parts (smoothed noise)."""
    g = np.convolve(rng.standard_normal(t + 20), np.ones(10) / 10, "same")[10:-10] * global_sd
    local = np.stack([np.convolve(rng.standard_normal(t + 20), np.ones(8) / 8, "same")[10:-10]
                      for _ in range(p)], axis=1)
    return g[:, None] + local, g, local


def test_remove_global_kills_a_shared_time_course(rng):
    y, g, local = _global_plus_regional(rng)
    res = metrics.remove_global(y)
    assert np.allclose(res.mean(axis=0), 0)
    # every residual column is orthogonal to the global signal it was regressed on
    g_c = y.mean(axis=1) - y.mean()
    assert np.abs(g_c @ res).max() < 1e-8 * len(y)
    same = np.tile(g[:, None], (1, 5)) * np.array([1.0, 2.0, 0.5, 3.0, 1.5])
    assert np.abs(metrics.remove_global(same)).max() < 1e-9
    assert metrics.global_share(same) == pytest.approx(1.0)
    assert 0.3 < metrics.global_share(y) < 0.99


def test_global_only_prediction_fails_the_residual_metrics(rng):
    """Predicting the true global signal everywhere wins Tcorr but not res_tcorr/res_pixcorr."""
    y, _, _ = _global_plus_regional(rng)
    glob = np.tile(y.mean(axis=1, keepdims=True), (1, y.shape[1]))
    glob = glob + 1e-6 * rng.standard_normal(glob.shape)   # not exactly constant across regions
    m_glob = metrics.scan_metrics(glob, y).values
    noisy_truth = y + 0.5 * rng.standard_normal(y.shape)
    m_good = metrics.scan_metrics(noisy_truth, y).values
    assert m_glob["tcorr"] > 0.7                  # Tcorr alone is fooled
    assert abs(m_glob["res_tcorr"]) < 0.1         # ... the residual metric is not
    assert m_glob["global_share"] > 0.999
    assert m_good["res_tcorr"] > 0.5
    assert m_good["res_pixcorr"] > 0.5
    assert m_good["global_share"] < m_glob["global_share"]
    assert m_glob["mean_fc"] > 0.99 and m_glob["true_mean_fc"] < 0.99
    # model selection: the composite criterion prefers the regional prediction
    assert metrics.selection_score(m_good) > metrics.selection_score(m_glob)
    assert metrics.selection_score(m_glob, "tcorr") > metrics.selection_score(m_glob)
    with pytest.raises(ValueError, match="unknown selection criterion"):
        metrics.selection_score(m_good, "bogus")
