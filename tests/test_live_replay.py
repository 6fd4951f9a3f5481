"""Live engine fed by ``rtbold replay`` of a simulated BIDS scan (EEG + markers + measured BOLD).

The windows the engine builds from the replayed stream equal the offline dataset's windows
(:func:`rtbold.datasets.prepare_scan` + :func:`extract_window`), and the frames carry the measured
BOLD of their volume.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from rtbold.datasets import discover_scans, prepare_scan
from rtbold.preprocessing import extract_window
from rtbold.simulator import simulate_dataset, simulator_config
from rtbold.stream.engine import LiveEngine
from rtbold.player.replay import Replayer

from live_helpers import live_config, make_runner, montage_channels, unique_id


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    simulate_dataset(root, simulator_config(n_subjects=1, n_volumes=20, seed=5, lead_s=26.0),
                     progress=False)
    (spec,) = discover_scans(root)
    return spec


def test_replay_into_engine_matches_offline_windows(scan, tmp_path):
    runner = make_runner(montage_channels(), size="tiny", tr=2.1)
    replay = Replayer(scan.eeg_path, name=unique_id("replay"), source_id=unique_id("rsid"),
                      speed=8.0)

    class _Src:  # what live_config needs
        name, source_id, tr, measured = replay.name, replay.source_id, 2.1, True

    cfg = live_config(_Src, tmp_path)
    frames, windows = [], {}
    engine = LiveEngine(cfg, on_frame=frames.append, runner=runner)
    replay.start()  # outlets exist from here; the first stream seconds may go by unseen
    try:
        engine.start()
        engine.worker.window_hook = lambda tick, w: windows.__setitem__(tick.t, w.copy())
        replay.join(60)
        deadline = time.monotonic() + 10
        while len(frames) + engine.n_skipped < len(replay.events) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        engine.stop()
        replay.stop()
    assert engine.marker_stream is not None and engine.clock.mode == "markers"
    assert engine.inlet.lost_samples == 0
    prep = prepare_scan(scan, runner.ch_names)
    assert len(frames) == len(prep.volume_times) == 20
    for f, vt in zip(frames, prep.volume_times):
        assert f.t == pytest.approx(replay.t0 + vt, abs=1e-3)
        offline = extract_window(prep.eeg, prep.times, vt)
        np.testing.assert_allclose(windows[f.t], offline, atol=1e-4, rtol=0)
        assert f.measured is not None and f.measured.shape == (64,)
    meas = np.array([f.measured for f in frames])
    np.testing.assert_allclose(meas, replay.measured.data[:20], rtol=1e-6)
