"""End to end: a raw in-scanner recording replayed at 5 kHz over LSL (loopback) into the live
engine with MR-artefact correction gives the demo model's predictions on the clean EEG."""

from __future__ import annotations

import numpy as np
import pytest

from rtbold.artifacts import ArtifactConfig
from rtbold.datasets import discover_scans, prepare_scan
from rtbold.demo import demo_bundle_path
from rtbold.io.eeg import read_eeg
from rtbold.player.replay import Replayer
from rtbold.simulator import simulate_dataset
from rtbold.simulator.config import in_scanner_config
from rtbold.stream.worker import ModelRunner

from live_helpers import live_config, run_replay, unique_id

# The default templates (20 volumes, 20 beats): a 113-s recording has ~20 fully corrected
# windows (fewer volumes in a template put more EEG noise into it: 8 gave r = 0.84).
CFG = ArtifactConfig(gradient="aas", bcg="aas")


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    root = tmp_path_factory.mktemp("inscanner_live")
    simulate_dataset(root, in_scanner_config(n_subjects=1, n_volumes=50, lead_s=8.0, seed=2),
                     progress=False)
    (spec,) = discover_scans(root)
    return spec


def _offline(spec, eeg=None, artifacts=None):
    """The demo model's predictions on every full window of a recording, in order (offline)."""
    runner = ModelRunner.from_bundle(demo_bundle_path(), device="cpu")
    prep = prepare_scan(spec, runner.ch_names, marker="R128", highpass=runner.highpass_hz,
                        eeg=eeg, artifacts=artifacts)
    return prep.volume_times, {k: runner.predict(prep.window(k)) for k in prep.valid_indices}


def _region_r(a, b):
    return float(np.mean([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])]))


def test_replayed_raw_recording_with_correction_predicts_as_clean(scan, tmp_path):
    runner = ModelRunner.from_bundle(demo_bundle_path(), device="cpu")
    replay = Replayer(scan.eeg_path, name=unique_id("raw"), source_id=unique_id("rawsid"),
                      speed=4.0, marker="R128", measured=False)
    assert replay.sfreq == 5000.0

    class _Src:  # what live_config needs
        name, source_id, tr, measured = replay.name, replay.source_id, 2.1, None

    # A sender starved by a loaded machine (5 kHz from a thread of this process) is not a
    # stream that went away: no reconnection, which would lose samples.
    cfg = live_config(_Src, tmp_path, trigger__marker="R128", stream__silence_s=20.0,
                      stream__reconnect_s=60.0)
    cfg.artifacts = CFG
    frames, engine, status = run_replay(replay, cfg, runner, timeout_s=120)
    line = status.artifacts
    assert engine.inlet.lost_samples == 0 and engine.clock.mode == "markers"
    # The status line shows the correction with full templates and the heart rate.
    assert line.startswith("GA 20/20") and "BCG 20/20" in line and "bpm" in line, line

    deriv = scan.eeg_path.parents[2] / "derivatives" / "rtbold-sim" / "sub-01" / "eeg"
    volume_times, clean = _offline(
        scan, eeg=read_eeg(deriv / scan.eeg_path.name.replace("_eeg", "_desc-clean_eeg")))
    _, raw = _offline(scan)
    _, cor = _offline(scan, artifacts=CFG)
    # The frames whose window the correction did not flag (templates full), on the clean ones'.
    live, ref, unc, off = [], [], [], []
    by_t = {round(t, 3): k for k, t in enumerate(volume_times)}
    for f in frames:
        if "trigger" in f.flags:  # e.g. a missed trigger placed after the end of the scan
            continue
        k = by_t.get(round(f.t - replay.t0, 3))
        assert k is not None, f"frame at {f.t - replay.t0:.3f} s is not a volume"
        if k in clean and not set(f.flags) & {"gradient", "bcg"}:
            live.append(f.values)
            ref.append(clean[k])
            unc.append(raw[k])
            off.append(cor[k])
    assert len(live) >= 15
    flagged = [f for f in frames if "gradient" in f.flags]
    assert flagged and flagged[0].index < frames[-1].index  # the first volumes are flagged
    r = _region_r(np.array(live), np.array(ref))
    r_unc = _region_r(np.array(unc), np.array(ref))
    # Live equals the offline correction of the same file (prepare_scan, as rtbold train and
    # evaluate run it) up to the session statistics' warm-up.
    assert _region_r(np.array(off), np.array(live)) > 0.99
    # Measured 0.94 (uncorrected 0.87) on 22 windows; the benchmark gives 0.95-0.98 on longer
    # recordings. Without correction the predictions are further off.
    assert r > 0.9, (r, r_unc)
    assert r_unc < r - 0.03, (r, r_unc)
