"""In-session calibration in a live session (issue 11, section 3), on real LSL streams
(loopback): after the set minutes of paired frames the engine starts `rtbold calibrate` as a
separate process, acquisition and inference go on meanwhile, the verdict with both held-out
numbers goes to events.tsv and the status, an accepted bundle is swapped into the running model
and the next frames come from it; the status panel's button asks for the same."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rtbold.atlas import load_atlas
from rtbold.models import create_model, save_bundle
from rtbold.stream.engine import LiveEngine
from rtbold.stream.recorder import read_predictions, read_tsv

from live_helpers import SyntheticSource, live_config, montage_channels

SFREQ, TR = 250.0, 1.0


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("unebolt", size="tiny", n_rois=64, ch_names=montage_channels())
    path = tmp_path_factory.mktemp("bundle") / "group.safetensors"
    save_bundle(path, model, {"roi_names": list(load_atlas(64).roi_names), "tr": TR,
                              "atlas": "DiFuMo64", "eeg_highpass_hz": 0.5})
    return path


def test_live_calibration_runs_aside_and_swaps_an_accepted_bundle(bundle, tmp_path):
    src = SyntheticSource(montage_channels(), SFREQ, 330.0, tr=TR, speed=4.0,
                          measured_rois=64)
    cfg = live_config(src, tmp_path)
    cfg.bundle = bundle
    cal = cfg.calibration
    # after 1.5 min of paired frames; accept whatever comes (the swap is what is tested here;
    # the verdict itself is tested in test_calibration.py)
    cal.after_min, cal.holdout_min, cal.gap_s, cal.epochs = 1.5, 0.5, 2.0, 1
    cal.params = "heads"  # this UnEBOLT has no band-power read-out for the closed form
    cal.batch_size, cal.min_gain = 16, -1.0
    frames, statuses, errors = [], [], []
    engine = LiveEngine(cfg, on_frame=frames.append, on_status=statuses.append,
                        on_error=errors.append)
    engine.start()
    swapped_at = None
    try:
        src.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(0.2)
            done = [e for e in engine.events if e[0] == "calibration" and "held-out" in e[2]]
            if done and swapped_at is None:
                swapped_at = len(frames)
            if swapped_at is not None and len(frames) >= swapped_at + 5:
                break
        running_name = engine.runner.name
        status = engine.status()
    finally:
        engine.stop()
        src.stop()
    assert not errors, errors
    assert swapped_at is not None, [e for e in engine.events if e[0] == "calibration"]
    _, events = read_tsv(engine.session_dir / "events.tsv")
    cal_events = [e for e in events if e[2] == "calibration"]
    assert any("started on" in e[3] for e in cal_events)
    verdict = [e for e in cal_events if "held-out Tcorr" in e[3]]
    assert len(verdict) == 1 and "accepted" in verdict[0][3] and "->" in verdict[0][3]
    assert '"before"' in verdict[0][4] and '"after"' in verdict[0][4]
    assert "subject.safetensors" in running_name
    assert "last: held-out Tcorr" in status.calibration
    # frames went on while the calibration ran, and after the swap
    pred = read_predictions(engine.session_dir)
    assert np.all(np.diff(pred["index"]) == 1)
    assert len(frames) >= swapped_at + 5
    folders = list((engine.session_dir / "calibration").iterdir())
    assert len(folders) == 1 and (folders[0] / "subject.safetensors").is_file()


def test_calibration_needs_a_recorded_session(bundle, tmp_path):
    src = SyntheticSource(montage_channels(), SFREQ, 20.0, tr=TR, speed=10.0)
    cfg = live_config(src)  # no session folder: nothing recorded
    cfg.bundle = bundle
    engine = LiveEngine(cfg)
    engine.start()
    try:
        answer = engine.request_calibration()
    finally:
        engine.stop()
    assert "not available" in answer and "live.output.record" in answer
    assert engine.status().calibration == ""


def test_status_panel_button_follows_the_engine(qtbot):
    from types import SimpleNamespace

    from rtbold.gui.status import StatusView

    view = StatusView()
    qtbot.addWidget(view)
    assert not view.calibrate_button.isEnabled()
    view.set_status(SimpleNamespace(connected=True, calibration="2.0 min paired; calibration "
                                                                 "on request"))
    assert view.calibrate_button.isEnabled()
    assert "on request" in view.fields["calibration"].text()
    with qtbot.waitSignal(view.calibrate_requested, timeout=1000):
        view.calibrate_button.click()
    view.set_status(SimpleNamespace(connected=True, calibration="2.5 min paired; calibrating "
                                                                 "(heads) in a separate process"))
    assert not view.calibrate_button.isEnabled()
    view.set_status(SimpleNamespace(connected=True, calibration=""))
    assert not view.calibrate_button.isEnabled()
    assert "not available" in view.fields["calibration"].text()


def test_the_whole_loop_from_a_watched_folder_to_a_calibration_verdict(tmp_path):
    """The closed loop: EEG with volume markers on LSL, the scanner's volumes (NIfTI, a
    synthetic 64-map atlas with the DiFuMo-64 names) in a watched folder, `rtbold
    scanner-export` pairing them with the markers, the engine recording predictions and
    measured BOLD, and a calibration of an UnEBOLT-BP bundle (the default closed-form read-out)
    in a separate process that ends with a verdict carrying both held-out numbers."""
    import nibabel as nib

    from rtbold.player.synthetic import unique_id
    from rtbold.scanner.export import ScannerExport

    from test_scanner_export import AFFINE, _atlas, _volume, _write

    torch.manual_seed(0)
    model = create_model("unebolt_bp", size="tiny", n_rois=64, ch_names=montage_channels())
    names = list(load_atlas(64).roi_names)
    bundle = tmp_path / "group_bp.safetensors"
    save_bundle(bundle, model, {"roi_names": names, "tr": TR, "atlas": "DiFuMo64",
                                "eeg_highpass_hz": 0.5})
    rng = np.random.default_rng(0)
    maps = _atlas(64, seed=3, shape=(16, 16, 12))
    nib.save(nib.Nifti1Image(maps, AFFINE), tmp_path / "maps64.nii.gz")
    folder = tmp_path / "export"
    folder.mkdir()
    src = SyntheticSource(montage_channels(), SFREQ, 130.0, tr=TR, speed=4.0)
    export = ScannerExport(folder, tmp_path / "maps64.nii.gz", roi_names=names,
                           atlas="DiFuMo64", tr=TR, markers=f"{src.name}-markers",
                           marker="R149", name=unique_id("scanner-bold"), settle_s=0.05,
                           poll_s=0.02, resolve_timeout_s=5.0, missing_s=300.0,
                           reference=_write(tmp_path, 0, _volume(maps, np.zeros(64), rng)))
    export.start()
    slow = np.cumsum(rng.normal(0, 1, (len(src.onsets), 64)), axis=0)  # BOLD-like drifts
    for k in range(len(src.onsets)):  # reconstructed before their triggers: they wait
        _write(folder, k + 1, _volume(maps, slow[k], rng))
    cfg = live_config(src, tmp_path)
    cfg.bundle = bundle
    cfg.measured.name = export.name
    cfg.measured.resolve_timeout_s = 5.0
    cal = cfg.calibration
    cal.after_min, cal.holdout_min, cal.gap_s, cal.batch_size = 1.5, 0.5, 2.0, 16
    engine = LiveEngine(cfg)
    engine.start()
    try:
        src.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if any(e[0] == "calibration" and "held-out" in e[2] for e in engine.events):
                break
    finally:
        engine.stop()
        src.stop()
        export.stop()
    assert export.counts["published"] >= 100 and export.counts["corrupt"] == 0
    _, events = read_tsv(engine.session_dir / "events.tsv")
    verdict = [e for e in events if e[2] == "calibration" and "held-out Tcorr" in e[3]]
    assert len(verdict) == 1, [e for e in events if e[2] == "calibration"]
    assert ("accepted" in verdict[0][3]) != ("kept the current model" in verdict[0][3])
    report = next((engine.session_dir / "calibration").glob("*/calibration.json"))
    import json

    res = json.loads(report.read_text())
    assert res["settings"]["params"] == "readout" and res["n_holdout"] >= 20
    assert f"{res['before']['tcorr']:.3f} -> {res['after']['tcorr']:.3f}" in verdict[0][3]


def test_calibration_settings_made_in_code_are_checked_at_start(bundle, tmp_path):
    from rtbold.config import ConfigError

    cfg = live_config(SyntheticSource(montage_channels(), SFREQ, 5.0, tr=TR), tmp_path)
    cfg.bundle = bundle
    cfg.calibration.holdout_min = 0.1
    with pytest.raises(ConfigError, match="live.calibration.holdout_min: 0.1 is out of range"):
        LiveEngine(cfg).start()
    assert not (tmp_path / "session" / "session.json").exists()  # nothing opened
