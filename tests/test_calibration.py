"""In-session calibration (issue 11, section 3) on real session folders written by the real
recorder, with real (tiny) torch models: the split keeps the held-out minutes out of the
fine-tuning, a participant whose read-out differs from the group model's is calibrated and the
result accepted, a model that cannot be beaten is kept, the subject bundle carries its provenance
and runs, bad folders get clear errors, and ``rtbold calibrate`` does the same from the shell."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from rtbold.atlas import load_atlas
from rtbold.calibration.config import CalibrationConfig
from rtbold.calibration.finetune import calibrate_session, trainable_names
from rtbold.calibration.session import read_session_frames, session_scan
from rtbold.models import create_model, load_bundle, save_bundle
from rtbold.player.synthetic import montage_channels, synthetic_eeg
from rtbold.stream.recorder import SessionRecorder
from rtbold.training import predict_items

SFREQ, TR, N_VOL, FIRST_S = 250.0, 2.0, 110, 17.0
ROIS = list(load_atlas(64).roi_names)
#: Quick settings: the last minute held out; for gradient fine-tuning few epochs and a learning
#: rate that moves in them.
QUICK = dict(holdout_min=1.0, gap_s=4.0, batch_size=16)
GRADIENT = dict(QUICK, params="heads", epochs=2, lr=2e-3, anchor=0.0)


def _bundle(path, model) -> str:
    save_bundle(path, model, {"roi_names": ROIS, "tr": TR, "atlas": "DiFuMo64",
                              "eeg_highpass_hz": 0.5, "marker": "R149"})
    return str(path)


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """A tiny UnEBOLT-BP bundle (the 'group model')."""
    torch.manual_seed(0)
    model = create_model("unebolt_bp", size="tiny", n_rois=64, ch_names=montage_channels())
    return _bundle(tmp_path_factory.mktemp("group") / "group.safetensors", model)


def _write_session(folder, measured_fn, *, seed=0, n_vol=N_VOL, flags=None):
    """A session as `rtbold run` records it: raw EEG with LSL-like timestamps, one frame per
    volume (window end = volume time) and the measured vector paired with each frame."""
    ch = montage_channels()
    n = int((FIRST_S + n_vol * TR + 1.0) * SFREQ)
    eeg = synthetic_eeg(len(ch), n, SFREQ, seed=seed)
    t0 = 5000.0
    times = t0 + np.arange(n) / SFREQ
    rec = SessionRecorder(folder, roi_names=ROIS, tr=TR, atlas="DiFuMo64",
                          bundle={"path": None}, eeg_ch_names=ch, eeg_sfreq=SFREQ, fsync=False,
                          stream_info={"config": {"stream": {"channel_policy": "refuse"},
                                                  "trigger": {"marker": "R149"}}})
    for a in range(0, n, 5000):
        rec.write_eeg(eeg[:, a:a + 5000], times[a:a + 5000])
    vol_t = t0 + FIRST_S + TR * np.arange(n_vol)
    measured = measured_fn(vol_t)
    for k, t in enumerate(vol_t):
        rec.write_event("marker", onset=float(t), description="R149")
        rec.write_prediction(k, float(t), np.zeros(64), flags=(flags or {}).get(k, ()),
                             measured=None if measured is None else measured[k])
    rec.close()
    return vol_t


def _model_outputs(folder_tmp, model):
    """What ``model`` predicts for each volume of a session like the ones written here."""
    _write_session(folder_tmp, lambda t: np.zeros((len(t), 64)))
    meta = load_bundle(_bundle(folder_tmp / "m.safetensors", model))[1]
    scan = session_scan(folder_tmp, meta.ch_names, highpass=0.5)
    items = [(0, int(k)) for k in scan.valid_indices]
    out = np.full((len(scan.volume_times), 64), np.nan)
    out[scan.valid_indices] = predict_items(model, [scan], items, device="cpu")
    return out, scan.valid


@pytest.fixture(scope="module")
def subject_session(group, tmp_path_factory):
    """A participant whose band-power read-out differs from the group model's: the measured BOLD
    is what a 'teacher' (the group model with other read-out weights) predicts, plus noise."""
    base, _ = load_bundle(group)
    teacher = copy.deepcopy(base)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        w = teacher.bandpower.linear.weight
        w.add_(0.05 * torch.randn(w.shape, generator=g))
    tmp = tmp_path_factory.mktemp("subject")
    truth, valid = _model_outputs(tmp / "probe", teacher)
    rng = np.random.default_rng(1)
    truth = np.where(valid[:, None], truth, 0.0) + 0.05 * rng.standard_normal(truth.shape)
    folder = tmp / "session"
    _write_session(folder, lambda t: truth * 40.0 + 100.0)  # raw scanner units
    return folder


def test_session_frames_and_windows_come_from_the_recorded_files(subject_session, group):
    frames = read_session_frames(subject_session)
    assert len(frames) == N_VOL and frames.paired.all()
    assert frames.roi_names == ROIS and frames.tr == TR
    meta = load_bundle(group)[1]
    scan = session_scan(subject_session, meta.ch_names, highpass=0.5, frames=frames)
    # windows need 16 s of EEG before the volume: the first volume at 17 s has them
    assert scan.valid.all()
    assert scan.eeg.shape[0] == 26 and np.allclose(scan.volume_times, frames.t)


@pytest.fixture(scope="module")
def calibrated(subject_session, group, tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "cal"
    return calibrate_session(subject_session, group, CalibrationConfig(**QUICK), out=out,
                             progress=False), out


def test_calibration_recovers_a_participants_read_out_and_is_accepted(calibrated, group):
    res, out = calibrated
    # the held-out part is the last minute, after a gap, and never trained on
    prov = load_bundle(res.bundle)[1].training["calibration"]
    fit_last, hold_first = prov["frames"]["calibration"][1], prov["frames"]["holdout"][0]
    sel_first, sel_last = prov["frames"]["selection"]
    assert prov["frames"]["holdout"][1] == N_VOL - 1
    assert res.n_holdout == pytest.approx(60.0 / TR, abs=1)
    assert fit_last < sel_first <= sel_last < hold_first
    assert (hold_first - sel_last) * TR > QUICK["gap_s"]
    assert res.after["tcorr"] > res.before["tcorr"] + 0.05, (res.before, res.after)
    assert res.accepted and prov["accepted"]
    assert prov["base_bundle"].endswith("group.safetensors")
    report = json.loads((out / "calibration.json").read_text())
    assert report["before"] == res.before and report["accepted"]
    assert len(report["region_r_after"]) == 64
    assert (out / "calibration.png").stat().st_size > 10_000
    # the closed-form read-out calibration changed the band-power read-out and nothing else
    assert res.selected["alpha"] is not None
    assert _moved(group, res.bundle) == {"bandpower.linear.weight"}
    meta = load_bundle(res.bundle)[1]
    assert meta.roi_names == ROIS and meta.ch_names == montage_channels()


def _moved(bundle_a, bundle_b) -> set:
    a, _ = load_bundle(bundle_a)
    b, _ = load_bundle(bundle_b)
    return {n for (n, x), (_, y) in zip(a.named_parameters(), b.named_parameters())
            if not torch.allclose(x, y)}


def test_gradient_fine_tuning_moves_only_the_chosen_set(subject_session, group, tmp_path):
    res = calibrate_session(subject_session, group, CalibrationConfig(**GRADIENT),
                            out=tmp_path / "cal", progress=False, figure=False)
    assert [h["epoch"] for h in res.history] == [0, 1, 2]
    assert 0 <= res.selected["epoch"] <= 2
    moved = _moved(group, res.bundle)
    assert moved <= set(trainable_names(load_bundle(group)[0], "heads"))
    assert bool(moved) == (res.selected["epoch"] > 0)


def test_a_model_that_already_predicts_the_session_is_kept(group, tmp_path):
    base, _ = load_bundle(group)
    own, valid = _model_outputs(tmp_path / "probe", base)
    _write_session(tmp_path / "s", lambda t: np.where(valid[:, None], own, 0.0))
    res = calibrate_session(tmp_path / "s", group, CalibrationConfig(**QUICK, min_gain=0.01),
                            out=tmp_path / "cal", progress=False, figure=False)
    assert not res.accepted
    assert res.after["tcorr"] - res.before["tcorr"] <= 0.01
    assert "kept the current model" in res.line()
    assert (tmp_path / "cal" / "subject.safetensors").is_file()  # saved with its verdict


def test_flagged_and_unpaired_frames_are_not_trained_on(group, tmp_path):
    flags = {k: ("gap",) for k in range(10, 20)}
    _write_session(tmp_path / "s", lambda t: np.random.default_rng(0).normal(size=(len(t), 64)),
                   flags=flags)
    frames = read_session_frames(tmp_path / "s")
    scan = session_scan(tmp_path / "s", montage_channels(), highpass=0.5, frames=frames)
    assert not scan.valid[10:20].any() and scan.valid[20:].all()


def test_parameter_sets(group):
    model, _ = load_bundle(group)
    names = [n for n, _ in model.named_parameters()]
    heads, last = trainable_names(model, "heads"), trainable_names(model, "last")
    assert trainable_names(model, "readout") == ["bandpower.linear.weight",
                                                 "bandpower.linear.bias"]
    assert "bandpower.linear.weight" in heads and "roi_weight" in heads
    assert not any(n.startswith(("labram.", "mss_module.")) for n in heads)
    last_block = max(int(n.split(".")[2]) for n in names if n.startswith("labram.blocks."))
    assert set(heads) < set(last)
    assert any(n.startswith(f"labram.blocks.{last_block}.") for n in last)
    assert not any(n.startswith("labram.patch_embed.") for n in last)
    assert trainable_names(model, "all") == names
    with pytest.raises(ValueError, match="'readout', 'heads', 'last' or 'all'"):
        trainable_names(model, "everything")


def test_bad_sessions_get_clear_errors(group, tmp_path):
    with pytest.raises(FileNotFoundError, match="no rtbold session"):
        calibrate_session(tmp_path, group, progress=False)
    _write_session(tmp_path / "nomeas", lambda t: None, n_vol=20)
    with pytest.raises(FileNotFoundError, match="no measured.tsv"):
        calibrate_session(tmp_path / "nomeas", group, progress=False)
    _write_session(tmp_path / "short", lambda t: np.zeros((len(t), 64)), n_vol=40)
    with pytest.raises(ValueError, match="usable paired frames.*Record longer"):
        calibrate_session(tmp_path / "short", group, CalibrationConfig(holdout_min=1.0),
                          progress=False)


def test_rtbold_calibrate_command(subject_session, group, tmp_path, capsys):
    from rtbold.cli import main

    rc = main(["calibrate", str(subject_session), "--bundle", group, "--out",
               str(tmp_path / "cli"), "--no-progress", "--holdout-min", "1", "--gap-s", "4",
               "--batch-size", "16"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "held-out" in out and "subject bundle:" in out
    assert (tmp_path / "cli" / "subject.safetensors").is_file()
    # without --bundle the session's own bundle is used; this one recorded none
    rc = main(["calibrate", str(subject_session), "--no-progress"])
    assert rc == 2 and "pass --bundle" in capsys.readouterr().err


def test_a_measured_stream_of_a_few_regions_calibrates_those(group, tmp_path):
    """A real-time fMRI pipeline may send only the target's regions: the frames are paired on
    those, the other regions are neither trained nor scored, and the read-out changes only
    for the measured regions."""
    base, _ = load_bundle(group)
    teacher = copy.deepcopy(base)
    with torch.no_grad():
        w = teacher.bandpower.linear.weight
        w.add_(0.05 * torch.randn(w.shape, generator=torch.Generator().manual_seed(5)))
    truth, valid = _model_outputs(tmp_path / "probe", teacher)
    few = [3, 17, 40, 41, 60]
    measured = np.full(truth.shape, np.nan)
    measured[:, few] = np.where(valid[:, None], truth[:, few], 0.0)
    _write_session(tmp_path / "s", lambda t: measured)
    frames = read_session_frames(tmp_path / "s")
    assert frames.region_mask.sum() == len(few) and frames.paired.all()
    res = calibrate_session(tmp_path / "s", group, CalibrationConfig(**QUICK),
                            out=tmp_path / "cal", progress=False, figure=False)
    r_after = np.array(res.region_r_after, dtype=float)
    assert np.isfinite(r_after[few]).all() and np.isnan(np.delete(r_after, few)).all()
    assert res.after["tcorr"] > res.before["tcorr"] and res.accepted
    changed = (load_bundle(res.bundle)[0].bandpower.linear.weight - base.bandpower.linear.weight
               ).abs().sum(dim=1) > 0
    assert changed.nonzero().flatten().tolist() == few
