"""Live/offline parity: a replayed recording gives the offline evaluator's predictions.

A bundle trained with the cross-subject EEG high-pass (0.5 Hz) runs in the live engine on
``rtbold replay`` of a simulated BIDS scan, in fast mode and at 1x; every frame must equal the
offline evaluator's prediction for the same volume (tolerance 1e-4). This is what makes a model
trained offline valid live (ARCHITECTURE.md section 1).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rtbold.evaluate import data_config_for
from rtbold.models import create_model, load_bundle, save_bundle
from rtbold.simulator import simulate_dataset, simulator_config
from rtbold.stream.config import LiveConfig
from rtbold.stream.engine import LiveEngine
from rtbold.player.replay import Replayer
from rtbold.stream.worker import ModelRunner
from rtbold.training import load_scans, predict_items

from live_helpers import live_config, montage_channels, unique_id

N_VOLUMES = 20  # the targets low-pass needs more than 18 volumes


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    simulate_dataset(root, simulator_config(n_subjects=1, n_volumes=N_VOLUMES, seed=3,
                                            lead_s=18.0), progress=False)
    return root


@pytest.fixture(scope="module", params=["unebolt", "unebolt_bp"])
def bundle(request, tmp_path_factory):
    """The paper's UnEBOLT, and UnEBOLT-BP whose session-normalised band power needs the causal
    statistics of every window since the start of the recording (live = offline)."""
    from rtbold.atlas import load_atlas

    torch.manual_seed(1)
    # Heads at full scale (not x1e-3 as for training) so outputs are O(1), like a trained model.
    model = create_model(request.param, size="tiny", n_rois=64, ch_names=montage_channels(),
                         head_init_scale=1.0)
    if request.param == "unebolt_bp":
        feats = model.bandpower.features
        with torch.no_grad():  # a prior unlike the data and readouts that are not zero
            feats.set_standardisation(np.full(feats.n_features, -1.0),
                                      np.full(feats.n_features, 0.5), prior=True)
            model.bandpower.linear.weight.normal_(0, 0.05)
            model.bandpower.mlp_readout.weight.normal_(0, 0.05)
    path = tmp_path_factory.mktemp(f"bundle_{request.param}_") / "model.safetensors"
    save_bundle(path, model, {"roi_names": list(load_atlas(64).roi_names), "tr": 2.1,
                              "atlas": "DiFuMo64", "eeg_highpass_hz": 0.5, "marker": "R149"})
    return path


@pytest.fixture(scope="module")
def offline(dataset, bundle):
    """Predictions of the offline evaluator's path (data settings from the bundle)."""
    model, meta = load_bundle(bundle)
    assert data_config_for(meta, dataset).highpass == 0.5
    (scan,) = load_scans(data_config_for(meta, dataset), meta.ch_names, meta.roi_names)
    items = [(0, int(k)) for k in scan.valid_indices]
    assert len(items) == N_VOLUMES
    return scan, predict_items(model, [scan], items, device="cpu")


@pytest.mark.parametrize("mode", ["fast", "10x", "1x"])
def test_replayed_predictions_equal_offline_evaluator(dataset, bundle, offline, tmp_path, mode):
    if "bundle_unebolt_bp" in str(bundle.parent) and mode == "1x":
        pytest.skip("the session statistics are speed-independent: fast and 10x cover them")
    scan, expected = offline
    runner = ModelRunner.from_bundle(bundle, "cpu")
    assert runner.highpass_hz == 0.5
    name = unique_id("parity")
    # 1x: pre-roll the first 18 s (EEG before the first volume), then real time.
    replay = Replayer(scan.spec.eeg_path, name=name, source_id=name, fast=mode == "fast",
                      speed=10.0 if mode == "10x" else 1.0,
                      preroll_s=0.0 if mode == "fast" else 18.0, consumer_grace_s=2.0)

    class _Src:  # what live_config reads
        source_id, tr, measured = name, 2.1, True
    _Src.name = name
    cfg = live_config(_Src, tmp_path)
    # The shipped defaults (fast mode waits in the inlet buffer, back-pressure keeps every TR),
    # and stale skipping on as in a real session: speed must change nothing.
    defaults = LiveConfig()
    cfg.stream.max_buflen_s, cfg.buffer_s = defaults.stream.max_buflen_s, defaults.buffer_s
    cfg.worker.queue_size = defaults.worker.queue_size
    cfg.worker.skip_stale = defaults.worker.skip_stale
    frames = []
    engine = LiveEngine(cfg, on_frame=frames.append, runner=runner)
    replay.start()
    try:
        engine.start()
        replay.join(120)
        deadline = time.monotonic() + 20
        while len(frames) + engine.n_skipped < N_VOLUMES and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        engine.stop()
        replay.stop()
    assert engine.inlet.lost_samples == 0 and engine.n_skipped == 0
    assert len(frames) == N_VOLUMES
    assert all(f.flags == () for f in frames)
    live = np.array([f.values for f in frames])
    np.testing.assert_allclose(live, expected, atol=1e-4, rtol=0)
    # Frames are stamped with their volume's stream time and carry the measured BOLD.
    np.testing.assert_allclose([f.t for f in frames], replay.t0 + scan.volume_times, atol=1e-3)
    assert all(f.measured is not None for f in frames)
