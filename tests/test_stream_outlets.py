"""LSL outlets rtbold-bold and rtbold-feedback, read back with pylsl and mne-lsl on loopback."""

from __future__ import annotations

import math
import time
import uuid

import numpy as np
import pylsl
import pytest

from rtbold.atlas import load_atlas
from rtbold.stream.outlets import BoldOutlet, FeedbackOutlet, FeedbackTarget, RunningBaseline

pytestmark = pytest.mark.timeout(60)
TR = 2.1


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _inlet(source_id: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_bypred(f"source_id='{source_id}'", 1, 10.0)
    assert found, f"LSL stream with source_id {source_id!r} not found"
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=10)
    return inlet


def _wait_consumer(outlet) -> None:
    deadline = time.monotonic() + 10
    while not outlet.have_consumers():
        assert time.monotonic() < deadline, "consumer never connected"
        time.sleep(0.01)


def _channels(info) -> list[dict[str, str]]:
    out, ch = [], info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append({k: ch.child_value(k) for k in ("label", "unit", "type")})
        ch = ch.next_sibling()
    return out


def test_bold_outlet_pylsl_labels_rate_values(rng):
    atlas = load_atlas(64)
    sid = _uid("bold")
    outlet = BoldOutlet(atlas.roi_names, tr=TR, source_id=sid, model="unebolt-tiny")
    inlet = _inlet(sid)
    info = inlet.info()
    assert info.name() == "rtbold-bold" and info.type() == "fMRI"
    assert info.channel_count() == 64 and info.channel_format() == pylsl.cf_float32
    assert info.nominal_srate() == pytest.approx(1 / TR)
    chans = _channels(info)
    # Exact names, typographic apostrophe (Heschl’s gyrus) included.
    assert [c["label"] for c in chans] == list(atlas.roi_names)
    assert {c["unit"] for c in chans} == {"normalised"}
    assert info.desc().child_value("atlas") == "DiFuMo64"
    assert float(info.desc().child_value("tr")) == TR
    assert info.desc().child_value("model") == "unebolt-tiny"
    _wait_consumer(outlet)
    frames = rng.normal(size=(3, 64)).astype(np.float32)
    t0 = pylsl.local_clock()
    for i, f in enumerate(frames):
        outlet.push(f, t0 + i * TR)
    data, ts = [], []
    while len(ts) < 3:
        d, t = inlet.pull_sample(timeout=5)
        assert d is not None, "frame not received"
        data.append(d)
        ts.append(t)
    np.testing.assert_array_equal(np.array(data, dtype=np.float32), frames)
    np.testing.assert_allclose(ts, t0 + np.arange(3) * TR, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="64 channels"):
        outlet.push(np.zeros(10), t0)
    inlet.close_stream()
    outlet.close()


def test_bold_outlet_mne_lsl(rng):
    from mne_lsl.stream import StreamLSL

    atlas = load_atlas(64)
    sid = _uid("bold-mnelsl")
    outlet = BoldOutlet(atlas.roi_names, tr=0.1, source_id=sid, name=sid)
    stream = StreamLSL(bufsize=2.0, name=sid, source_id=sid)
    stream.connect(acquisition_delay=0.01, timeout=10)
    try:
        assert stream.ch_names == list(atlas.roi_names)
        assert stream.info["sfreq"] == pytest.approx(10.0)
        _wait_consumer(outlet)
        frames = rng.normal(size=(5, 64)).astype(np.float32)
        t0 = pylsl.local_clock()
        for i, f in enumerate(frames):
            outlet.push(f, t0 + 0.1 * i)
        deadline = time.monotonic() + 5
        while stream.n_new_samples < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        data, ts = stream.get_data(winsize=0.5)
    finally:
        stream.disconnect()
        outlet.close()
    np.testing.assert_array_equal(data[:, -5:].T.astype(np.float32), frames)
    np.testing.assert_allclose(ts[-5:], t0 + 0.1 * np.arange(5), atol=1e-6)


def test_feedback_target_parser():
    atlas = load_atlas(64)
    t = FeedbackTarget.parse("region:calcarine cortex posterior", atlas)
    assert t.spec == "region:Calcarine cortex posterior"
    assert t.weights[atlas.index("Calcarine cortex posterior")] == 1 and t.weights.sum() == 1
    # ASCII apostrophe finds the typographic one.
    assert FeedbackTarget.parse("region:Heschl's gyrus", atlas).label == "Heschl\u2019s gyrus"
    vis = FeedbackTarget.parse("network:visual", atlas)
    idx = atlas.regions_in("Visual")
    assert vis.spec == "network:Visual" and np.isclose(vis.weights[idx], 1 / len(idx)).all()
    values = np.arange(64, dtype=float)
    assert vis.value(values) == pytest.approx(np.mean(idx))
    diff = FeedbackTarget.parse("diff:network:Visual - region:Cerebellum I-V", atlas)
    assert diff.value(values) == pytest.approx(np.mean(idx) - atlas.index("Cerebellum I-V"))
    assert diff.spec == "diff:network:Visual - region:Cerebellum I-V"
    for bad, msg in [("Thalamus", "expected 'region"), ("region:Nowhere", "No region named"),
                     ("network:Auditory", "unknown network"), ("diff:network:Visual", "two terms"),
                     ("diff:network:Visual - foo:bar", "must be 'region")]:
        with pytest.raises(ValueError, match=msg):
            FeedbackTarget.parse(bad, atlas)


def test_running_baseline_window_and_initial():
    win = RunningBaseline(4, "window", min_count=3)
    init = RunningBaseline(4, "initial", min_count=3)
    xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0, 7.0]
    zs_w, zs_i = [], []
    for x in xs:
        zs_w.append(win.zscore(x))
        zs_i.append(init.zscore(x))
        win.update(x)
        init.update(x)
    assert zs_w[:3] == [None] * 3 and zs_i[:3] == [None] * 3
    # Window: the previous 4 values (not the current one).
    prev = np.array([2.0, 3.0, 4.0, 5.0])
    assert zs_w[5] == pytest.approx((6.0 - prev.mean()) / prev.std(ddof=1))
    # Initial: frozen after the first 4 values (Welford equals the two-pass result).
    base = np.array(xs[:4])
    assert zs_i[7] == pytest.approx((7.0 - base.mean()) / base.std(ddof=1))
    assert init.stats() == pytest.approx((base.mean(), base.std(ddof=1)))
    with pytest.raises(ValueError, match="'window' or 'initial'"):
        RunningBaseline(4, "ema")


def test_feedback_outlet_pylsl_values(rng):
    atlas = load_atlas(64)
    sid = _uid("feedback")
    outlet = FeedbackOutlet("network:Default", tr=TR, atlas=atlas, baseline_trs=5, source_id=sid)
    inlet = _inlet(sid)
    info = inlet.info()
    assert info.name() == "rtbold-feedback" and info.channel_count() == 1
    assert info.nominal_srate() == pytest.approx(1 / TR)
    assert _channels(info) == [{"label": "feedback", "unit": "z", "type": "Feedback"}]
    assert info.desc().child_value("target") == "network:Default"
    _wait_consumer(outlet)
    frames = rng.normal(size=(10, 64))
    idx = atlas.regions_in("Default")
    raw_vals = frames[:, idx].mean(axis=1)
    t0 = pylsl.local_clock()
    sent = [outlet.push(f, t0 + i * TR) for i, f in enumerate(frames)]
    got, ts = [], []
    for _ in range(10):
        d, t = inlet.pull_sample(timeout=5)
        assert d is not None
        got.append(d[0])
        ts.append(t)
    # Expected: z of each value against the up-to-5 previous ones (after 3 in the baseline).
    expected = []
    for i, x in enumerate(raw_vals):
        prev = raw_vals[max(0, i - 5):i]
        expected.append(0.0 if len(prev) < 3 else (x - prev.mean()) / prev.std(ddof=1))
    assert sent[:3] == [None] * 3
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ts, t0 + TR * np.arange(10), atol=1e-9, rtol=0)
    inlet.close_stream()
    outlet.close()


def test_feedback_compute_skips_flagged_and_nan():
    """Flagged frames can stay out of the baseline; NaN frames give NaN and never enter it."""
    fb = FeedbackOutlet("region:Fusiform gyrus", tr=TR, baseline_trs=10, min_baseline=3,
                        source_id=_uid("feedback-compute"))
    i = load_atlas(64).index("Fusiform gyrus")
    frame = np.zeros(64)
    for x in (1.0, 2.0, 3.0):
        frame[i] = x
        fb.compute(frame)
    frame[i] = 50.0
    z_flagged = fb.compute(frame, update_baseline=False)
    assert z_flagged == pytest.approx((50.0 - 2.0) / 1.0)
    frame[i] = np.nan
    assert math.isnan(fb.compute(frame))
    assert fb.baseline.count == 3 and fb.baseline.stats() == pytest.approx((2.0, 1.0))
    fb.close()
