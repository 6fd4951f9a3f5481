"""Live validation: the running r against numpy's corrcoef, and the measured-BOLD pairing
with frames (on time, late, too late, unpaired)."""

from __future__ import annotations

import numpy as np
import pytest

from rtbold.stream.pairing import MeasuredPairing
from rtbold.stream.validation import RunningCorrelation


def _nan_corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


@pytest.mark.parametrize("lag", [0, 2])
def test_running_r_matches_corrcoef_with_nans_a_lag_and_any_order(lag):
    rng = np.random.default_rng(lag)
    n, p, window = 120, 6, 25
    pred = rng.normal(size=(n, p))
    meas = np.full((n, p), np.nan)
    meas[lag:] = 0.6 * pred[:n - lag] + rng.normal(size=(n - lag, p))
    meas[rng.random((n, p)) < 0.1] = np.nan  # regions missing now and then
    missing = set(rng.choice(n, 10, replace=False).tolist())  # volumes that never came
    w = np.zeros(p)
    w[:3] = 1 / 3
    rc = RunningCorrelation(p, window_trs=window, lag_trs=lag, target_weights=w)
    for i in range(n):
        rc.add_predicted(i, pred[i])
        j = i - 2  # measured vectors come two TRs after their frame
        if j >= 0 and j not in missing:
            rc.add_measured(j, meas[j])
    for j in range(n - 2, n):
        if j not in missing:
            rc.add_measured(j, meas[j])
    # the expected window: the last `window` frames i whose measured i + lag came
    paired = [i for i in range(n - lag) if i + lag not in missing]
    keys = paired[-window:]
    x, y = pred[keys], meas[np.array(keys) + lag]
    want = [_nan_corr(x[:, k], y[:, k]) for k in range(p)]
    np.testing.assert_allclose(rc.r, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(rc.pairs()[0], keys)
    tx, ty = x[:, :3] @ w[:3], y[:, :3] @ w[:3]  # NaN where a region it weighs is NaN
    np.testing.assert_allclose(rc.target_r, _nan_corr(tx, ty), rtol=1e-9)
    assert rc.median_r == pytest.approx(np.median(want))
    assert len(rc) == window and rc.n_pairs == len(paired)


def test_running_r_is_nan_without_enough_pairs_or_variance():
    rc = RunningCorrelation(2, window_trs=5)
    assert np.isnan(rc.r).all() and np.isnan(rc.median_r) and np.isnan(rc.target_r)
    for i in range(4):
        rc.add_predicted(i, [i, 1.0])  # region 1 constant
        rc.add_measured(i, [2.0 * i + 1, float(i)])
    assert rc.r[0] == pytest.approx(1.0) and np.isnan(rc.r[1])
    with pytest.raises(ValueError, match="3 values for 2 regions"):
        rc.add_predicted(9, [1, 2, 3])


def test_a_long_session_does_not_drift_or_grow():
    rng = np.random.default_rng(3)
    rc = RunningCorrelation(4, window_trs=10)
    x = rng.normal(size=(3000, 4)) * 100 + 1000  # large offset: rounding would show
    y = x + rng.normal(size=x.shape) * 50
    for i in range(len(x)):
        rc.add_predicted(i, x[i])
        rc.add_measured(i, y[i])
    want = [np.corrcoef(x[-10:, k], y[-10:, k])[0, 1] for k in range(4)]
    np.testing.assert_allclose(rc.r, want, rtol=1e-9)
    assert len(rc._pred) < 100 and len(rc._meas) < 100


def _pairing(tr=2.0, max_delay_s=6.0):
    late, dropped = [], []
    pairing = MeasuredPairing(tr, max_delay_s=max_delay_s,
                              on_late=lambda i, t, v: late.append((i, t, float(v[0]))),
                              on_dropped=lambda s, reason, d: dropped.append((s, reason, d)))
    return pairing, late, dropped


def test_pairing_on_time_late_too_late_and_unpaired():
    pairing, late, dropped = _pairing()
    add = lambda t: pairing.add(np.array([t]), np.array([[t]]))  # noqa: E731
    add(10.0)  # before its frame
    assert pairing.claim(0, 10.0)[0] == 10.0  # on time
    assert pairing.claim(1, 12.0) is None  # its volume not in yet
    add(12.0)  # one TR late: paired with frame 1
    assert late == [(1, 12.0, 12.0)]
    add(12.0)  # a second vector for frame 1: reported, frame 1 keeps the first
    assert dropped[-1][1] == "unpaired" and "frame 1 already has" in dropped[-1][2]
    # frame 2 (t = 14) was skipped; frame 3 made; then volume 14 comes: no frame for it
    assert pairing.claim(3, 16.0) is None
    add(14.0)
    assert dropped[-1][:2] == (14.0, "unpaired")
    for i, t in ((4, 18.0), (5, 20.0), (6, 22.0), (7, 24.0)):
        pairing.claim(i, t)
    add(16.0)  # frame 3's volume, 8 s after frame 7 (max 6 s): too late, not paired
    assert dropped[-1][:2] == (16.0, "late") and "max_delay_s = 6" in dropped[-1][2]
    add(22.0 + 0.01)  # jitter within 1 % of a TR after the tick: frame 6's
    assert late[-1] == (6, 22.0, pytest.approx(22.01))
    assert pairing.counts == {"on_time": 1, "late": 2, "too_late": 1, "unpaired": 2}


def test_vectors_waiting_for_a_skipped_frame_are_reported_when_a_later_frame_comes():
    pairing, late, dropped = _pairing()
    pairing.add(np.array([2.0, 4.0, 6.0]), np.array([[2.0], [4.0], [6.0]]))  # before any frame
    assert pairing.claim(2, 6.0)[0] == 6.0
    assert [d[:2] for d in dropped] == [(2.0, "unpaired"), (4.0, "unpaired")]
    pairing.add(np.array([9.0]), np.array([[9.0]]))  # out of order: before its frame at 10
    pairing.add(np.array([8.0]), np.array([[8.0]]))
    assert pairing.claim(4, 10.0)[0] == 9.0 and dropped[-1][:2] == (8.0, "unpaired")
    assert pairing.at(8.5)[0] == 8.0 and pairing.at(7.9)[0] == 6.0 and pairing.at(1.0) is None


def test_the_previous_volume_stamped_a_hair_late_is_not_taken_for_this_frame():
    """Marker and measured streams' clock corrections differ by microseconds: the previous
    volume stamped just after t - TR stays the previous frame's while this one's is late."""
    pairing, late, dropped = _pairing()
    pairing.add(np.array([10.00003]), np.array([[10.0]]))
    assert pairing.claim(5, 10.0)[0] == 10.0
    pairing.add(np.array([12.00003]), np.array([[12.0]]))
    assert pairing.claim(6, 12.0)[0] == 12.0
    pairing.add(np.array([14.00003]), np.array([[14.0]]))  # volume 14 in before frame 7
    pairing.add(np.array([12.00004]), np.array([[-1.0]]))  # (a doubled volume 12: reported)
    assert dropped[-1][1] == "unpaired"
    assert pairing.claim(8, 16.0 - 0.00002) is None  # frame 7 skipped; 14.00003 is not 8's
    assert dropped[-1][:2] == (14.00003, "unpaired")
    pairing.add(np.array([16.00001]), np.array([[16.0]]))
    assert late == [(8, 16.0 - 0.00002, 16.0)]


# -- the engine on real LSL streams (loopback) ---------------------------------------------------
def test_volumes_that_come_after_their_frame_are_recorded_with_it(tmp_path):
    """A measured-BOLD stream whose vectors come 1-3 TRs after their volume marker: every frame
    still gets its own volume in measured.tsv (by index, read back sorted), the late ones reach
    ``on_measured`` too; one vector 12 TRs late (max_delay_s = 4 s) is flagged in events.tsv
    and counted, and nothing recorded is lost."""
    from live_helpers import SyntheticSource, live_config, make_runner, montage_channels, run_engine
    from rtbold.stream.recorder import read_measured, read_predictions, read_tsv

    runner = make_runner(montage_channels(), size="tiny", n_rois=64)
    n_vol = 30
    delays = np.random.default_rng(0).integers(1, 4, n_vol)
    too_late = 21  # volume 21 (22 s) comes with volume 33's marker: 12 s after its own
    delays[too_late] = 12
    src = SyntheticSource(montage_channels(), 250.0, n_vol + 1.0, tr=1.0, speed=10.0,
                          measured_rois=64, measured_delay_trs=delays)
    cfg = live_config(src, tmp_path)
    cfg.measured.max_delay_s = 4.0
    late_calls = []
    engine, frames, statuses, errors = run_engine(src, runner, cfg, settle=1.5,
                                                  measured=late_calls)
    assert not errors and len(frames) >= 10
    pred = read_predictions(engine.session_dir)
    meas = read_measured(engine.session_dir)
    vol_of = {int(i): int(np.argmin(np.abs(src.marker_times - t)))
              for i, t in zip(pred["index"], pred["t"])}
    expected = [i for i in pred["index"] if vol_of[int(i)] != too_late]
    assert meas["index"].tolist() == sorted(expected)  # each frame once, in index order
    np.testing.assert_allclose(meas["t"], [pred["t"][pred["index"] == i][0]
                                           for i in meas["index"]])
    for i, row in zip(meas["index"], meas["values"]):
        which = [k for k in range(n_vol) if np.allclose(row, src.measured_values[k])]
        assert which == [vol_of[int(i)]], (i, which, vol_of, meas["index"], pred["t"] - src.t0)
    counts = engine.status().measured_counts
    assert counts["late"] >= len(expected) // 2  # most came after their frame
    assert counts["on_time"] + counts["late"] == len(expected)
    assert counts["too_late"] == 1
    _, events = read_tsv(engine.session_dir / "events.tsv")
    flagged = [e for e in events if e[2] == "measured_late"]
    assert len(flagged) == 1
    assert float(flagged[0][0]) == pytest.approx(src.marker_times[too_late], abs=1e-3)
    assert "max_delay_s = 4" in flagged[0][3]
    # every frame is in predictions.tsv, and the frames the worker made are all there
    assert sorted(pred["index"].tolist()) == [f.index for f in frames]
    # the late ones were handed on (GUI, headless line) exactly as recorded
    assert len(late_calls) == counts["late"]
    on_time = {f.index for f in frames if f.measured is not None}
    assert on_time.isdisjoint(i for i, _, _ in late_calls)
    for i, t, values in late_calls:
        np.testing.assert_allclose(values, src.measured_values[vol_of[i]], rtol=1e-6)

    # The headless line's running r, fed as `rtbold run` feeds it, is numpy's over the last 30
    # paired TRs of the recorded files, for the feedback target and the median over regions.
    from rtbold.stream.run import LineValidation, status_line

    line_val = LineValidation(engine)
    for f in frames:
        line_val.on_frame(f)
    for i, t, values in late_calls:
        line_val.on_measured(i, t, values)
    line = status_line(frames[-1], engine, line_val)
    keys = meas["index"][-30:]
    x = np.array([pred["values"][pred["index"] == i][0] for i in keys])
    y = meas["values"][-30:]
    w = engine.feedback_target.weights
    r_fb = np.corrcoef(x @ w, y @ w)[0, 1]
    r_med = np.median([np.corrcoef(x[:, k], y[:, k])[0, 1] for k in range(64)])
    assert f"r(fb)={r_fb:+.2f} r(median)={r_med:+.2f} over {len(keys)} TRs" in line, line
