"""Live engine on real LSL (loopback), real threads and a real (tiny, random-weight) torch model."""

from __future__ import annotations

import gc
import time
from types import SimpleNamespace

import numpy as np
import pylsl
import pytest
import torch

from rtbold.channels import ChannelMapping
from rtbold.preprocessing import extract_window, resample
from rtbold.stream.engine import LiveEngine
from rtbold.stream.inlet import StreamNotFoundError
from rtbold.stream.recorder import read_tsv

from live_helpers import (SourceProcess, SyntheticSource, live_config, make_runner,
                          montage_channels, unique_id)
from live_helpers import run_engine as _run

SFREQ = 250.0  # not 200 Hz, so the streaming resampler is exercised


@pytest.fixture(autouse=True)
def _free_lsl_ports():
    """Destroy every outlet/inlet of a test before the next: liblsl's discovery on this machine
    only reaches 32 ports, shared by every process using LSL."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def runner():
    return make_runner(montage_channels(), size="tiny")


def _offline(source, runner, targets):
    """What the offline path gives for the same data: mapping -> resample -> extract_window."""
    types = [t.lower() for t in (source.ch_types or ["eeg"] * len(source.ch_names))]
    mapping = ChannelMapping.build(source.ch_names, runner.ch_names, source_types=types)
    data = mapping.apply(source.data.astype(np.float64))
    out, times = resample(data, source.sfreq, first_time=source.t0)
    out = out.astype(np.float32)  # the ring buffer and PreparedScan hold float32 µV
    wins = {t: extract_window(out, times, t) for t in targets}
    with torch.inference_mode():
        preds = {t: runner.model(torch.from_numpy(w)[None])[0].numpy() for t, w in wins.items()}
    return wins, preds


@pytest.mark.parametrize("speed", [10.0, pytest.param(1.0, marks=pytest.mark.slow)])
def test_frames_at_markers_match_offline(runner, tmp_path, speed):
    """Frames come at each marker with its stream time; windows and predictions equal offline."""
    ch = montage_channels()
    order = list(np.random.default_rng(3).permutation(len(ch)))
    names = [ch[i] for i in order] + ["ECG"]  # shuffled, plus a non-EEG channel to drop
    types = ["EEG"] * len(ch) + ["ECG"]
    duration = 19.2 if speed == 1.0 else 21.2
    src = SyntheticSource(names, SFREQ, duration, speed=speed, ch_types=types, measured_rois=64)
    windows = {}
    cfg = live_config(src, tmp_path, output__bold_outlet=True, output__feedback_outlet=True)
    engine, frames, statuses, errors = _run(src, runner, cfg, windows=windows)
    assert not errors
    covered = src.marker_times[src.onsets >= 16.0 - 1e-9]
    assert len(frames) == len(covered) >= 3
    np.testing.assert_allclose([f.t for f in frames], covered, atol=1e-3)
    assert all(f.flags == () for f in frames)
    assert engine.inlet.lost_samples == 0
    # Ticks before 16 s of EEG are skipped as not covered, nothing else.
    assert {s.reason for s in engine.skips} <= {"not_covered"}
    wins, preds = _offline(src, runner, [f.t for f in frames])
    for f in frames:
        np.testing.assert_allclose(windows[f.t], wins[f.t], atol=1e-4, rtol=0)
        np.testing.assert_allclose(f.values, preds[f.t], atol=1e-4, rtol=0)
        assert set(f.latency) == {"window_ready", "inference_start", "inference_end",
                                  "published", "recorded"}
        assert 0 <= f.latency["window_ready"] <= f.latency["published"] <= f.latency["recorded"]
        # Measured BOLD of the same volume rides along.
        i = int(np.argmin(np.abs(src.marker_times - f.t)))
        np.testing.assert_array_equal(f.measured, src.measured_values[i])
    assert frames[-1].feedback is not None  # z-scored once the baseline has 3 values
    # Recorded before displayed: the session folder has every frame and the raw EEG.
    header, rows = read_tsv(engine.session_dir / "predictions.tsv")
    assert len(rows) == len(frames)
    _, events = read_tsv(engine.session_dir / "events.tsv")
    assert sum(e[2] == "marker" for e in events) == len(src.onsets)  # every marker kept
    assert header[4:] == runner.roi_names
    assert statuses and statuses[-1].n_frames == len(frames)
    assert statuses[-1].connected is not None and abs(statuses[-1].effective_sfreq - SFREQ) < 1


def test_lost_samples_counted_and_flagged(runner):
    """Two chunks not pushed -> 10 lost samples; frames whose window overlaps them say "gap"."""
    src = SyntheticSource(montage_channels(), SFREQ, 20.2, speed=10.0, skip_chunks={100, 101})
    engine, frames, _, errors = _run(src, runner, live_config(src))  # gap at 2.0-2.04 s
    assert not errors
    assert engine.inlet.lost_samples == 10
    assert engine.inlet.n_gaps == 1
    by_onset = {round(f.t - src.t0, 3): f for f in frames}
    # The 40 ms hole is bridged (last value held), so the first full window gives a frame too.
    assert set(by_onset) == {16.0, 17.0, 18.0, 19.0, 20.0}
    assert all("gap" in by_onset[t].flags for t in (16.0, 17.0, 18.0))
    assert by_onset[20.0].flags == ()  # window 4-20 s: clean
    assert engine.status().lost_samples == 10


def test_outlet_restart_reconnects_and_flags_gap(runner, tmp_path):
    """The EEG outlet disappears for 1.5 s (2 s of stream lost) and comes back."""
    src = SyntheticSource(montage_channels(), SFREQ, 27.2, speed=10.0, restart=(5.0, 2.0, 1.6))
    engine, frames, statuses, errors = _run(src, runner, live_config(src, tmp_path))
    assert not errors
    assert engine.inlet.n_reconnects >= 1
    # 2 s skipped by the source, plus what was in flight when its outlet was destroyed (liblsl
    # drops a lost inlet's unread samples: a few pulls' worth at 10x).
    assert 2.0 * SFREQ - 1 <= engine.inlet.lost_samples <= 2.1 * SFREQ
    assert any(not s.connected for s in statuses)
    assert {s.reason for s in engine.skips} == {"not_covered"}  # only before the first window
    # The hole (5-7 s) is bridged: every marker from the first full window on gives a frame,
    # flagged "gap" while its window touches the hole, clean after.
    by_onset = {round(f.t - src.t0, 3): f for f in frames}
    assert set(by_onset) == {float(t) for t in range(16, 28)}
    assert all("gap" in by_onset[float(t)].flags for t in range(16, 24))
    assert all(by_onset[float(t)].flags == () for t in range(25, 28))
    _, events = read_tsv(engine.session_dir / "events.tsv")
    kinds = [e[2] for e in events]
    assert "disconnected" in kinds and "reconnect" in kinds and "gap" in kinds


def test_nan_chunk_replaced_counted_flagged(runner):
    src = SyntheticSource(montage_channels(), SFREQ, 19.2, speed=10.0, nan_chunks={140})
    engine, frames, _, errors = _run(src, runner, live_config(src))
    assert not errors
    assert engine.inlet.n_nan == 5
    assert frames and all(np.isfinite(f.values).all() for f in frames)
    by_onset = {round(f.t - src.t0, 3): f for f in frames}
    assert "nan" in by_onset[17.0].flags and "nan" in by_onset[18.0].flags  # NaN at 2.8 s
    assert by_onset[19.0].flags == ()


def test_wrong_rate_refused(runner):
    with SyntheticSource(montage_channels(), 100.0, 5.0, markers=False) as src:
        with pytest.raises(ValueError, match="100 Hz"):
            LiveEngine(live_config(src), runner=runner).start()


def test_missing_channels_refused(runner):
    ch = montage_channels()
    with SyntheticSource(ch[2:], SFREQ, 5.0, markers=False) as src:
        with pytest.raises(ValueError, match=ch[0]):
            LiveEngine(live_config(src), runner=runner).start()


def test_stream_not_found_lists_streams(runner):
    with SyntheticSource(montage_channels(), SFREQ, 5.0, markers=False) as decoy:
        cfg = live_config(decoy)
        cfg.stream.name, cfg.stream.source_id = unique_id("absent"), None
        cfg.stream.resolve_timeout_s = 0.5
        with pytest.raises(StreamNotFoundError, match=decoy.name):
            LiveEngine(cfg, runner=runner).start()


def test_absent_marker_stream_falls_back_to_internal_clock(runner, tmp_path):
    src = SyntheticSource(montage_channels(), SFREQ, 19.6, speed=10.0, markers=False)
    engine, frames, statuses, errors = _run(src, runner, live_config(src, tmp_path))
    assert not errors
    assert engine.clock.mode == "internal"
    assert any("internal TR clock" in s.message for s in statuses)
    assert len(frames) >= 3
    first = src.t0 + 16.0
    np.testing.assert_allclose([f.t for f in frames], first + np.arange(len(frames)) * src.tr,
                               atol=1e-3)
    assert all("internal_clock" in f.flags for f in frames)
    _, events = read_tsv(engine.session_dir / "events.tsv")
    assert "trigger_fallback" in [e[2] for e in events]


def test_stale_ticks_skipped_when_behind(tmp_path):
    """Real-time TRs every 50 ms: the worker cannot keep up, skips stale ticks, records why."""
    name, sid = unique_id("stale"), unique_id("sid")
    src = SimpleNamespace(name=name, source_id=sid, tr=0.05, measured=None)
    cfg = live_config(src, tmp_path, worker__skip_stale=True, worker__queue_size=4)
    slow = make_runner(montage_channels(), size="small")
    frames = []
    engine = LiveEngine(cfg, runner=slow, on_frame=frames.append)
    with SourceProcess(name, sid, t0=pylsl.local_clock() - 17.0, tr=0.05, preroll_s=17.0,
                       first_marker_s=16.5) as proc:
        proc.start()
        engine.start()
        time.sleep(3.0)
        proc.kill()
        engine.stop()
    reasons = [s.reason for s in engine.skips]
    assert any(r in ("stale", "queue_full") for r in reasons)
    assert frames, "the newest ticks must still produce frames"
    # Every tick is accounted for: a frame or a recorded skip (those left at stop included).
    _, events = read_tsv(engine.session_dir / "events.tsv")
    n_markers = sum(e[2] == "marker" for e in events)
    assert len(frames) + len(reasons) == n_markers
    assert sum(e[2] == "skipped_tick" for e in events) == len(reasons)


def test_stream_without_source_id_is_resolved_again(runner):
    """liblsl cannot recover a stream without a source id: the engine re-resolves it by name."""
    src = SyntheticSource(montage_channels(), SFREQ, 32.2, speed=10.0, source_id="",
                          restart=(10.0, 2.0, 1.6))
    cfg = live_config(src)
    cfg.stream.source_id = None
    engine, frames, _, errors = _run(src, runner, cfg)
    assert not errors
    assert engine.inlet.n_reconnects >= 1
    # The 2 s hole plus whatever liblsl still held when the connection broke.
    assert engine.inlet.lost_samples >= 2.0 * SFREQ
    # Frames go on across the bridged hole (10-12 s), flagged "gap" while their window
    # touches it, clean once the window lies after it.
    by_onset = {round(f.t - src.t0, 3): f for f in frames}
    assert set(by_onset) == {float(t) for t in range(16, 33)}
    assert all("gap" in by_onset[float(t)].flags for t in range(16, 28))
    assert all(by_onset[float(t)].flags == () for t in range(29, 33))


def test_ridge_bundle_runs_live_with_session_statistics(tmp_path):
    """A session-normalised ridge bundle (a fast CPU option) runs in the engine: every frame is
    the bundle applied to the offline window with the offline causal statistics of all windows
    up to it (rtbold.models.causal_feature_stats), so the live normaliser sees each window once,
    in order."""
    from rtbold.atlas import load_atlas
    from rtbold.models import (RidgeBandPower, causal_feature_stats, create_model, save_bundle,
                               session_features)
    from rtbold.stream.worker import ModelRunner

    ch = montage_channels()
    rois = list(load_atlas(64).roi_names)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, len(ch), 3200)).astype(np.float32) * (1 + rng.random((40, 1, 1)))
    est = RidgeBandPower(alphas=[10.0]).fit(X, rng.standard_normal((40, 64)))
    model = create_model("ridge_sn", n_rois=64, ch_names=ch).load_estimator(est)
    feats = session_features(model)
    feats.set_standardisation(np.full(feats.n_features, 0.5), np.full(feats.n_features, 2.0),
                              prior=True)
    path = tmp_path / "ridge.safetensors"
    save_bundle(path, model, {"roi_names": rois, "tr": 2.1, "atlas": "DiFuMo64"})
    runner = ModelRunner.from_bundle(path, "cpu")
    assert runner.session_windows == 0
    src = SyntheticSource(ch, SFREQ, 23.3, speed=10.0)
    engine, frames, _, errors = _run(src, runner, live_config(src, tmp_path))
    assert not errors and len(frames) >= 3
    assert runner.session_windows == len(frames)
    wins, _ = _offline(src, runner, [f.t for f in frames])
    x = torch.from_numpy(np.stack([wins[f.t] for f in frames]))
    with torch.no_grad():
        raw = feats.log_power(x).flatten(1).numpy()
        mean, scale = causal_feature_stats(raw, feats.prior_mean.numpy(),
                                           feats.prior_scale.numpy(),
                                           feats.cfg.session_prior_windows)
        expected = runner.model(x, feature_stats=(torch.from_numpy(mean).float(),
                                                  torch.from_numpy(scale).float())).numpy()
        without = runner.model(x).numpy()   # prior only: what a runner without the session gives
    live = np.array([f.values for f in frames])
    np.testing.assert_allclose(live, expected, atol=1e-4, rtol=0)
    assert np.abs(live - without)[1:].max() > 1e-2
