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


def test_unit_conventions():
    from rtbold.stream.inlet import unit_scale

    assert unit_scale(["microvolts"] * 3) == 1.0  # BrainVision Connector, OpenBCI, rtbold replay
    assert unit_scale(["µV", "uV"]) == 1.0
    assert unit_scale(["volts", "V"]) == 1e6
    assert unit_scale(["0", "0"]) == 1e6  # mne-lsl: 10^0 V
    assert unit_scale(["-6"]) == 1.0 and unit_scale(["-3"]) == 1e3
    assert unit_scale([""] * 2) == 1.0  # no unit: microvolts, checked by the amplitude test
    assert unit_scale(["0", "n/a"], ch_types=["eeg", "misc"]) == 1e6
    with pytest.raises(ValueError, match="mixed units"):
        unit_scale(["microvolts", "volts"])
    assert unit_scale(["volts"], "uV") == 1.0
    with pytest.raises(ValueError, match="live.stream.units"):
        unit_scale(["volts"], "furlongs")


def test_setup_errors_come_before_the_model_and_name_the_key(tmp_path):
    """An existing session folder or a missing bundle fail at once, naming key and flag."""
    import argparse

    from rtbold.stream.run import build_config

    session = tmp_path / "s"
    session.mkdir()
    (session / "session.json").write_text("{}")
    args = argparse.Namespace(config=ROOT / "configs" / "live.toml", bundle=None, stream=None,
                              source_id=None, session_dir=session, device=None, tr=None,
                              marker=None)
    with pytest.raises(ConfigError, match="--session-dir"):
        build_config(args)
    args.session_dir, args.bundle = None, tmp_path / "missing.safetensors"
    with pytest.raises(ConfigError, match="live.bundle.*--bundle"):
        build_config(args)
    args.bundle = None
    cfg = build_config(args)  # as shipped: the demo model, only the stream name to fill in
    assert cfg.stream.name == "EEG" and str(cfg.bundle) == "demo"
    text = (ROOT / "configs" / "live.toml").read_text()
    assert "FILL IN" in text


def test_skip_count_survives_ten_thousand_skips():
    from rtbold.stream.sink import FrameSink, Skip

    sink = FrameSink()
    for i in range(10_050):
        sink.skip(Skip(i, float(i), "not_covered"))
    assert sink.n_skipped == 10_050


def test_feedback_target_on_a_subset_of_regions():
    from rtbold.atlas import load_atlas
    from rtbold.stream.outlets import FeedbackTarget

    atlas = load_atlas(64)
    names = [atlas.roi_names[i] for i in (30, 3, 0, 12, 6, 50, 9, 22, 40, 61)]  # any order
    target = FeedbackTarget.parse("network:Default", names)
    default = [i for i, n in enumerate(names) if atlas.networks[atlas.index(n)] == "Default"]
    assert default and np.flatnonzero(target.weights).tolist() == default
    diff = FeedbackTarget.parse(f"diff:region:{names[1]} - network:Default", names)
    assert diff.weights[1] != 0
    with pytest.raises(ValueError, match="region names"):
        FeedbackTarget.parse("network:Default", 10)


def test_output_check_flags_nonfinite_and_constant_predictions():
    from rtbold.stream.quality import OutputCheck

    check = OutputCheck(n_trs=3)
    rng = np.random.default_rng(0)
    assert check.flags(np.array([np.nan, 1.0])) == ("nonfinite",)
    assert [check.flags(rng.normal(size=2)) for _ in range(3)] == [(), (), ()]
    same = np.array([0.44292, -0.1])
    assert [check.flags(same) for _ in range(3)] == [(), (), ("constant",)]
    assert check.flags(same + 1e-3) == ()  # varies again


def test_channel_quality_flat_clipped_saturated():
    from rtbold.stream.quality import ChannelQuality

    sfreq = 100.0
    q = ChannelQuality(["A", "B", "C", "D"], sfreq, saturation_uv=1000.0)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 20, size=(100, 4))
    x[:, 0] = 3.0  # flat
    x[:, 1] = np.clip(x[:, 1], -10, 10)  # clipped at +-10 uV
    x[:, 2] += 5000.0  # beyond the amplifier's range
    times = np.arange(100) / sfreq
    got = {flag: chans for flag, _, _, chans in q.add(x, times)}
    assert got == {"flat": ("A",), "clipped": ("B",), "saturated": ("C",)}
    x2 = rng.normal(0, 20, size=(100, 4))
    assert q.add(x2, times + 1.0) == [] and q.current["flat"] == ()
