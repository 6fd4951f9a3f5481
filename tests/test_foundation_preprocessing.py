"""The shared preprocessing path: resampling, windows, targets."""

import numpy as np
import pytest
from scipy import signal

from rtbold.preprocessing import (EEG_SCALE, SFREQ, WINDOW_SAMPLES, EEGPreprocessor,
                                  StreamingResampler, extract_window, preprocess_targets, resample)


def _run_chunked(proc, x, t, rng, max_chunk):
    outs, times, i = [], [], 0
    while i < x.shape[1]:
        c = int(rng.integers(1, max_chunk))
        o, tt = proc.process(x[:, i:i + c], t[i:i + c])
        outs.append(o)
        times.append(tt)
        i += c
    o, tt = proc.flush()
    return np.concatenate(outs + [o], axis=1), np.concatenate(times + [tt])


@pytest.mark.parametrize("sfreq", [160, 250, 500, 1000, 5000, 200])
def test_chunked_resampling_equals_one_shot(sfreq, rng):
    n = int(sfreq * 12)
    t = 1000.0 + np.arange(n) / sfreq
    x = rng.standard_normal((4, n)) * 20
    one, t_one = resample(x, sfreq, first_time=t[0])
    chunked, t_chunked = _run_chunked(StreamingResampler(sfreq, 4), x, t, rng, sfreq // 4 + 2)
    assert one.shape == chunked.shape
    assert one.shape[1] == int(np.floor((n - 1) * SFREQ / sfreq)) + 1
    np.testing.assert_allclose(chunked, one, atol=1e-5)
    np.testing.assert_allclose(t_chunked, t_one, atol=1e-9)
    np.testing.assert_allclose(np.diff(t_one), 1 / SFREQ, atol=1e-9)
    assert t_one[0] == pytest.approx(t[0])


@pytest.mark.parametrize("sfreq", [250, 5000, 160])
def test_resampling_keeps_eeg_band_and_timing(sfreq):
    """A 10 Hz sine keeps its amplitude and phase: the filter delay is compensated."""
    n = int(sfreq * 10)
    t = np.arange(n) / sfreq
    x = np.sin(2 * np.pi * 10 * t)[None] * 50
    y, ty = resample(x, sfreq)
    mid = slice(200, -200)
    np.testing.assert_allclose(y[0, mid], 50 * np.sin(2 * np.pi * 10 * ty[mid]), atol=1.0)
    # Matches scipy's polyphase resampler where both are defined the same way.
    if sfreq in (250, 5000):
        up, down = (4, 5) if sfreq == 250 else (1, 25)
        ref = signal.resample_poly(x[0], up, down)
        np.testing.assert_allclose(y[0, mid], ref[mid], atol=1e-6)


def test_resampler_rejects_wrong_shape_and_rate():
    with pytest.raises(ValueError, match="positive"):
        StreamingResampler(0, 2)
    rs = StreamingResampler(250, 3)
    with pytest.raises(ValueError, match=r"\(3, n\)"):
        rs.process(np.zeros((2, 10)))


def test_highpass_is_chunk_invariant_and_removes_drift(rng):
    sfreq = 500
    n = sfreq * 30
    t = np.arange(n) / sfreq
    x = rng.standard_normal((2, n)) + 200 + 100 * t[None] / 30  # offset and slow drift
    one = EEGPreprocessor(sfreq, n_channels=2, highpass_hz=0.5).run(x)[0]
    chunked = _run_chunked(EEGPreprocessor(sfreq, n_channels=2, highpass_hz=0.5), x, t, rng, 200)[0]
    np.testing.assert_allclose(chunked, one, atol=1e-5)
    assert abs(one[:, -2000:].mean()) < 1.0  # drift and offset gone after the transient


def test_extract_window_demeans_scales_and_aligns():
    n = 5000
    times = 10.0 + np.arange(n) / SFREQ
    data = np.tile(np.arange(n, dtype=float), (2, 1)) + np.array([[100.0], [-50.0]])
    t_event = times[4000]
    w = extract_window(data, times, t_event)
    assert w.shape == (2, WINDOW_SAMPLES) and w.dtype == np.float32
    # Window = samples 800..3999 (3200 before the volume sample), demeaned over 800..4000.
    seg = data[:, 800:4001]
    expected = (seg - seg.mean(axis=1, keepdims=True))[:, :-1] / EEG_SCALE
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    # An event between samples snaps to the nearest sample.
    np.testing.assert_array_equal(extract_window(data, times, t_event + 0.4 / SFREQ), w)


def test_extract_window_errors_when_not_covered_or_gapped():
    times = np.arange(4000) / SFREQ
    data = np.zeros((1, 4000))
    with pytest.raises(ValueError, match="not covered"):
        extract_window(data, times, times[3000])  # only 15 s before it
    with pytest.raises(ValueError, match="not covered"):
        extract_window(data, times, times[-1] + 1.0)
    gapped = times.copy()
    gapped[2000:] += 1.0
    with pytest.raises(ValueError, match="gap"):
        extract_window(data, gapped, gapped[3500])


def test_preprocess_targets_filters_and_scales(rng):
    tr = 2.1
    y = rng.standard_normal((575, 3)) + 5
    yn, stats = preprocess_targets(y, tr)
    assert yn.shape == (575, 3) and yn.dtype == np.float32
    np.testing.assert_allclose(yn.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(np.percentile(np.abs(yn), 95, axis=0), 1, atol=1e-3)
    # The 0.15 Hz low-pass removes energy near the fMRI Nyquist (0.238 Hz).
    f, p_in = signal.welch(y[:, 0], fs=1 / tr)
    _, p_out = signal.welch(yn[:, 0] * stats.scale[0], fs=1 / tr)
    assert p_out[f > 0.2].sum() < 0.01 * p_in[f > 0.2].sum()
    with pytest.raises(ValueError, match="NaN"):
        preprocess_targets(np.full((100, 2), np.nan), tr)
    with pytest.raises(ValueError, match="Nyquist"):
        preprocess_targets(y, 4.0)
