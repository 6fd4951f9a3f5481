"""Bad input and bad output are flagged, on real LSL streams: NaN predictions, too many filled
channels, flat and clipped channels, volts read as microvolts, log floods, silent triggers."""

from __future__ import annotations

import logging
import time

import numpy as np
import pylsl
import pytest
import torch

from rtbold.stream.engine import LiveEngine
from rtbold.stream.recorder import read_tsv

from live_helpers import (SourceProcess, SyntheticSource, live_config, make_runner,
                          montage_channels, synthetic_eeg, unique_id)

SFREQ = 250.0


@pytest.fixture(scope="module")
def runner():
    return make_runner(montage_channels(), size="tiny")


def _run(src, runner, cfg, settle=1.0):
    frames, statuses = [], []
    engine = LiveEngine(cfg, runner=runner, on_frame=frames.append, on_status=statuses.append)
    engine.start()
    try:
        src.start()
        src.join(60)
        time.sleep(settle)
    finally:
        engine.stop()
        src.stop()
    return engine, frames, statuses


def _events(engine):
    _, rows = read_tsv(engine.session_dir / "events.tsv")
    return rows


def test_nonfinite_predictions_flagged_not_published(tmp_path):
    """A bundle with corrupted (NaN) weights: frames flagged, nothing NaN on the outlets."""
    bad = make_runner(montage_channels(), size="tiny", seed=1)
    with torch.no_grad():
        next(bad.model.parameters()).fill_(float("nan"))
    src = SyntheticSource(montage_channels(), SFREQ, 19.2, speed=10.0)
    cfg = live_config(src, tmp_path, output__bold_outlet=True, output__feedback_outlet=True)
    engine = LiveEngine(cfg, runner=bad)
    frames = []
    engine.on_frame = None
    engine.start()
    engine.worker._on_frame = frames.append
    inlets = [pylsl.StreamInlet(pylsl.resolve_bypred(f"name='{cfg.output.name}-{k}'", 1, 5)[0])
              for k in ("bold", "feedback")]
    for inlet in inlets:
        inlet.open_stream(5)
    try:
        src.start()
        src.join(60)
        time.sleep(1.0)
        pushed = [inlet.pull_chunk(timeout=0.5)[1] for inlet in inlets]
    finally:
        engine.stop()
        src.stop()
    assert len(frames) >= 3
    assert all("nonfinite" in f.flags and f.feedback is None for f in frames)
    assert pushed == [[], []]  # held: no NaN reaches a feedback display
    header, rows = read_tsv(engine.session_dir / "predictions.tsv")
    assert len(rows) == len(frames) and all("nonfinite" in r[2] for r in rows)


def test_zero_policy_refuses_a_mostly_filled_mapping(runner):
    others = [f"X{i}" for i in range(26)]  # 0 of the model's 26 channels
    with SyntheticSource(others, SFREQ, 5.0, markers=False) as src:
        cfg = live_config(src, stream__channel_policy="zero")
        with pytest.raises(ValueError, match="max_filled"):
            LiveEngine(cfg, runner=runner).start()
    ch = montage_channels()
    with SyntheticSource(ch[1:], SFREQ, 5.0, markers=False) as src:  # 1 of 26 filled: fine
        cfg = live_config(src, stream__channel_policy="zero")
        engine = LiveEngine(cfg, runner=runner)
        engine.start()
        engine.stop()
    with SyntheticSource(ch[2:], SFREQ, 5.0, markers=False) as src:
        with pytest.raises(ValueError, match="live.stream.channel_policy"):
            LiveEngine(live_config(src), runner=runner).start()


def test_flat_and_clipped_channels_flagged_once_per_episode(runner, tmp_path, caplog):
    ch = montage_channels()
    n = int(20.2 * SFREQ)
    data = synthetic_eeg(len(ch), n, SFREQ)
    data[3] = 1.0  # flat all along (a disconnected electrode)
    data[5] = np.clip(data[5], -8.0, 8.0)  # at the rail
    data[7, int(17.5 * SFREQ):int(18.5 * SFREQ)] = 0.0  # flat for a second only
    src = SyntheticSource(ch, SFREQ, 20.2, speed=10.0, data=data)
    caplog.set_level(logging.WARNING)
    engine, frames, statuses = _run(src, runner, live_config(src, tmp_path))
    assert frames and all({"flat", "clipped"} <= set(f.flags) for f in frames)
    events = _events(engine)
    flat = [e for e in events if e[2] == "flat"]
    # Episodes: {ch3} -> {ch3, ch7} -> {ch3}: three records, not one per second.
    assert 1 <= len(flat) <= 4 and ch[3] in flat[0][3]
    clipped = [e for e in events if e[2] == "clipped"]
    assert len(clipped) == 1 and ch[5] in clipped[0][3]
    assert any(ch[3] in s.bad_channels.get("flat", []) for s in statuses)
    assert caplog.text.count("clipped channel") == 1


def test_nan_flood_logged_once(runner, caplog):
    src = SyntheticSource(montage_channels(), SFREQ, 19.2, speed=10.0,
                          nan_chunks=set(range(100, 400)))  # 6 s of NaN on one channel
    caplog.set_level(logging.WARNING)
    engine, frames, _ = _run(src, runner, live_config(src))
    assert engine.inlet.n_nan == 300 * src.chunk
    assert caplog.text.count("NaN samples from") == 1
    assert all("nan" in f.flags for f in frames)


def test_volts_stream_read_as_microvolts_is_flagged(runner, tmp_path):
    """Values in volts on a stream that says microvolts: the RMS check says so, frames flagged."""
    ch = montage_channels()
    data = synthetic_eeg(len(ch), int(19.2 * SFREQ), SFREQ) * 1e-6
    src = SyntheticSource(ch, SFREQ, 19.2, speed=10.0, data=data)
    engine, frames, statuses = _run(src, runner, live_config(src, tmp_path))
    assert frames and all("amplitude" in f.flags for f in frames)
    warn = [e for e in _events(engine) if "amplitude implausible" in e[3]]
    assert len(warn) == 1 and "units = 'V'" in warn[0][3] and "µV" in warn[0][3]
    assert any("amplitude" in s.message for s in statuses)


def test_mne_lsl_player_in_volts_is_read_as_volts(runner):
    """mne-lsl's PlayerLSL writes unit '0' (10^0 V); units='auto' must scale by 1e6."""
    import mne
    from mne_lsl.player import PlayerLSL

    ch = montage_channels()
    data = synthetic_eeg(len(ch), int(10 * SFREQ), SFREQ).astype(np.float64) * 1e-6  # volts
    raw = mne.io.RawArray(data, mne.create_info(ch, SFREQ, "eeg"), verbose=False)
    name, sid = unique_id("mnelsl"), unique_id("sid")
    player = PlayerLSL(raw, chunk_size=25, name=name, source_id=sid, annotations=False)
    player.start()
    src = type("S", (), {"name": name, "source_id": sid, "tr": 1.0, "measured": None})
    cfg = live_config(src, trigger__source="internal")
    engine = LiveEngine(cfg, runner=runner)
    try:
        engine.start()
        assert engine.inlet.scale == 1e6
        deadline = time.monotonic() + 10
        while engine.acquisition.amplitude.rms_uv is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        engine.stop()
        player.stop()
    assert 1.0 < engine.acquisition.amplitude.rms_uv < 100.0
    assert engine.acquisition.amplitude.problem is None


def test_no_matching_marker_says_why(runner, tmp_path):
    """Markers come, but none is the volume marker: within 2 TRs every output says why."""
    name, sid = unique_id("nomatch"), unique_id("sid")
    t0 = pylsl.local_clock() - 17.0
    with SourceProcess(name, sid, streams=("eeg", "markers"), t0=t0, preroll_s=17.0,
                       marker="S  1") as proc:
        src = type("S", (), {"name": name, "source_id": sid, "tr": 1.0, "measured": None})
        statuses = []
        engine = LiveEngine(live_config(src, tmp_path), runner=runner,
                            on_status=statuses.append)
        proc.start()
        engine.start()
        try:
            deadline = time.monotonic() + 6
            while not engine.status().waiting_for and time.monotonic() < deadline:
                time.sleep(0.1)
            waited = time.monotonic() - (deadline - 6)
        finally:
            engine.stop()
    assert engine.n_frames == 0
    why = engine.status().waiting_for
    assert "R149" in why and "'S  1'" in why, why
    assert waited < 2 * 1.0 + 1.5
    rows = _events(engine)
    assert [e for e in rows if e[2] == "no_tick" and "R149" in e[3]]
    assert sum(e[2] == "marker" for e in rows) >= 2  # every marker is recorded anyway


def test_marker_stream_that_starts_late_is_picked_up(runner, tmp_path):
    name, sid = unique_id("late"), unique_id("sid")
    t0 = pylsl.local_clock() - 17.0
    eeg = SourceProcess(name, sid, streams=("eeg",), t0=t0, preroll_s=17.0)
    trig = SourceProcess(name, sid, streams=("markers",), t0=t0)
    src = type("S", (), {"name": name, "source_id": sid, "tr": 1.0, "measured": None})
    cfg = live_config(src, tmp_path, trigger__resolve_timeout_s=0.5)
    frames = []
    engine = LiveEngine(cfg, runner=runner, on_frame=frames.append)
    try:
        eeg.start()
        engine.start()
        assert engine.clock.mode == "internal"  # fell back: no trigger yet
        time.sleep(2.5)
        trig.start()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not (
                frames and "internal_clock" not in frames[-1].flags):
            time.sleep(0.1)
    finally:
        engine.stop()
        trig.kill()
        eeg.kill()
    assert engine.clock.mode == "markers"
    assert any("internal_clock" in f.flags for f in frames)
    assert frames[-1].flags == ()
    rows = _events(engine)
    assert any(e[2] == "clock" and "now from marker stream" in e[3] for e in rows)
    assert sum(e[2] == "marker" for e in rows) >= 1
