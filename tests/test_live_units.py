"""Ring buffer, TR clock, live config and marker inlets (mne-lsl annotations) on their own."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from rtbold.config import ConfigError
from rtbold.preprocessing import extract_window
from rtbold.stream.config import LiveConfig, load_live_config
from rtbold.stream.ringbuffer import RingBuffer
from rtbold.stream.trclock import TRClock, marker_matches

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_ringbuffer_wraps_without_copy_and_matches_extract_window(rng):
    ring = RingBuffer(3, capacity_s=17.0)  # 3400 samples
    n = 9000
    data = rng.normal(size=(3, n)).astype(np.float32) * 20
    times = 100.0 + np.arange(n) / 200.0
    for start in range(0, n, 37):  # odd chunk size: wraps at arbitrary offsets
        ring.write(data[:, start:start + 37], times[start:start + 37])
    view, vtimes = ring.view()
    assert view.shape == (3, ring.capacity)
    assert np.shares_memory(view, ring._data)  # a view, not a copy
    np.testing.assert_array_equal(view, data[:, -ring.capacity:])
    np.testing.assert_array_equal(vtimes, times[-ring.capacity:])
    t = times[-1]
    np.testing.assert_array_equal(ring.window(t), extract_window(data, times, t))
    assert ring.covers(t) and not ring.covers(t + 0.01)
    with pytest.raises(ValueError, match="not covered"):
        ring.window(times[-ring.capacity] + 5.0)  # window would start before the buffer


def test_ringbuffer_flags_gap_and_nan():
    ring = RingBuffer(1)
    ring.mark_gap(10.0, 10.5)
    ring.mark_nan(30.0, 30.1)
    assert ring.flags(20.0) == ("gap",)
    assert ring.flags(27.0) == ()
    assert ring.flags(31.0) == ("nan",)


def test_trclock_markers_and_internal():
    assert marker_matches("Response/R149", "R149") and marker_matches("R 149", "R149")
    assert not marker_matches("R148", "R149")
    clock = TRClock(2.0, "markers", "R149")
    ticks = clock.on_markers([("R149", 10.0), ("S  1", 10.5), ("Response/R149", 12.0)])
    assert [(t.index, t.t, t.source) for t in ticks] == [(0, 10.0, "marker"), (1, 12.0, "marker")]
    assert clock.on_data(0.0, 100.0) == []  # not internal
    clock.fall_back("marker stream absent")
    assert clock.mode == "internal" and clock.fallback_reason
    assert clock.on_data(16.0, 15.9) == []
    ticks = clock.on_data(16.0, 20.1)
    assert [t.t for t in ticks] == [16.0, 18.0, 20.0] and ticks[0].index == 2
    assert [t.t for t in clock.on_data(16.0, 22.0)] == [22.0]


def test_live_config_example_and_errors(tmp_path):
    cfg = load_live_config(ROOT / "configs" / "live.toml")
    assert cfg.stream.channel_policy == "refuse" and cfg.trigger.marker == "R149"
    bad = tmp_path / "bad.toml"
    bad.write_text("[live.stream]\nnmae = 'EEG'\n")
    with pytest.raises(ConfigError, match="live.stream"):
        load_live_config(bad)
    bad.write_text("[live.stream]\nnan_policy = 'interpolate'\n")
    with pytest.raises(ConfigError, match="nan_policy"):
        load_live_config(bad)
    with pytest.raises(ConfigError, match="bundle"):
        LiveConfig().check()


def test_mne_lsl_player_annotations_give_ticks():
    """mne-lsl's PlayerLSL publishes <name>-annotations (one-hot); the marker inlet decodes it."""
    import mne
    from mne_lsl.player import PlayerLSL

    from rtbold.stream.inlet import MarkerInlet, resolve_stream

    sfreq = 200.0
    info = mne.create_info(["FP1", "FP2"], sfreq, "eeg")
    raw = mne.io.RawArray(np.zeros((2, int(3 * sfreq))), info, verbose=False)
    raw.set_annotations(mne.Annotations([0.5, 1.0, 1.5], [0, 0, 0],
                                        ["Response/R149", "Stimulus/S  1", "Response/R149"]))
    name, sid = f"rtbold-mnelsl-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    player = PlayerLSL(raw, chunk_size=20, n_repeat=1, name=name, source_id=sid,
                       annotations=True)
    player.start()
    try:
        inlet = MarkerInlet(resolve_stream(f"{name}-annotations", source_id=sid, timeout=5.0,
                                           what="annotation"))
        clock = TRClock(2.0, "markers", "R149")
        got, ticks = [], []
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline and len(got) < 3:
            markers = inlet.pull()
            got += markers
            ticks += clock.on_markers(markers)
            time.sleep(0.05)
        inlet.close()
    finally:
        player.stop()
    assert [d for d, _ in got] == ["Response/R149", "Stimulus/S  1", "Response/R149"]
    assert len(ticks) == 2
    assert ticks[1].t - ticks[0].t == pytest.approx(1.0, abs=0.01)
