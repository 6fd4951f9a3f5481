"""The EEG-fMRI simulator: files on disk read back with mne, determinism, EEG realism, no leakage."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import mne
import numpy as np
import pytest
from scipy.signal import butter, hilbert, lfilter, sosfiltfilt, welch

from rtbold.atlas import load_atlas, load_group_fc
from rtbold.config import ConfigError
from rtbold.montage import load_montage
from rtbold.simulator import (SimulatorConfig, load_bold_source, load_simulator_config,
                              simulate_dataset, simulate_scan, simulator_config)
from rtbold.simulator.bids import write_brainvision
from rtbold.simulator.core import ScanSimulator
from rtbold.simulator.geometry import BANDS
from rtbold.simulator.hrf import hrf_kernels

ROOT = Path(__file__).resolve().parents[1]
BASE = "task-rest_run-01"


def _small(**kw) -> SimulatorConfig:
    base = dict(n_subjects=2, scans_per_subject=1, n_volumes=40, sfreq=250.0, seed=7)
    base.update(kw)
    return simulator_config(base)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "ds"
    cfg = _small()
    summary = simulate_dataset(out, cfg, progress=False)
    return out, cfg, summary


def _real_scans():
    with files("rtbold.data").joinpath("neurobolt_vu_difumo64_rest.npz").open("rb") as fid:
        npz = np.load(fid, allow_pickle=False)
        return npz["data"][:, :, :64], [str(s) for s in npz["scans"]]


# ---- files ---------------------------------------------------------------------------------

def test_dataset_layout_and_sidecars(dataset):
    out, cfg, summary = dataset
    atlas = load_atlas(64)
    desc = json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))
    assert desc["BIDSVersion"] and desc["DatasetType"] == "raw"
    parts = (out / "participants.tsv").read_text(encoding="utf-8").splitlines()
    assert parts[0].split("\t")[0] == "participant_id"
    assert [p.split("\t")[0] for p in parts[1:]] == ["sub-01", "sub-02"]
    for sub in ("01", "02"):
        eeg_dir = out / f"sub-{sub}" / "eeg"
        stem = f"sub-{sub}_{BASE}"
        for suffix in ("_eeg.vhdr", "_eeg.vmrk", "_eeg.eeg", "_eeg.json", "_channels.tsv",
                       "_events.tsv"):
            assert (eeg_dir / f"{stem}{suffix}").is_file(), suffix
        side = json.loads((eeg_dir / f"{stem}_eeg.json").read_text(encoding="utf-8"))
        assert side["SamplingFrequency"] == 250.0 and side["EEGChannelCount"] == 26
        assert side["TaskName"] == "rest" and side["EEGReference"] == "average"
        chans = (eeg_dir / f"{stem}_channels.tsv").read_text(encoding="utf-8").splitlines()
        assert chans[0].split("\t")[:3] == ["name", "type", "units"]
        assert [c.split("\t")[0] for c in chans[1:]] == list(load_montage().ch_names)
        events = (eeg_dir / f"{stem}_events.tsv").read_text(encoding="utf-8").splitlines()
        assert events[0].split("\t")[0] == "onset" and len(events) == 1 + cfg.n_volumes
        func = out / f"sub-{sub}" / "func" / f"{stem}_atlas-DiFuMo64_timeseries"
        header = func.with_suffix(".tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
        assert header == list(atlas.roi_names)  # exact names, U+2019 apostrophe included
        fside = json.loads(func.with_suffix(".json").read_text(encoding="utf-8"))
        assert fside["RepetitionTime"] == pytest.approx(2.1) and fside["Atlas"] == "DiFuMo64"
        with np.load(out / "derivatives" / "rtbold-sim" / f"sub-{sub}" / f"{stem}_desc-latent.npz",
                     allow_pickle=False) as npz:
            assert npz["u_eeg"].shape[1] == 64
            assert npz["explainable_bold"].shape == (cfg.n_volumes, 64)
    deriv = out / "derivatives" / "rtbold-sim"
    knobs = json.loads((deriv / "knobs.json").read_text(encoding="utf-8"))
    assert knobs["config"]["seed"] == 7 and knobs["config"]["n_volumes"] == 40
    rows = (deriv / "ceiling.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0].split("\t")[:3] == ["region", "network", "ceiling_r"]
    assert len(rows) == 65
    ceil = np.array([float(r.split("\t")[2]) for r in rows[1:]])
    assert summary.ceiling_mean == pytest.approx(ceil.mean(), abs=1e-5)
    assert all(p.is_file() for p in summary.files)


def test_mne_reads_eeg_and_one_marker_per_volume(dataset):
    out, cfg, _ = dataset
    raw = mne.io.read_raw_brainvision(out / "sub-01" / "eeg" / f"sub-01_{BASE}_eeg.vhdr",
                                      preload=True, verbose="error")
    assert raw.info["sfreq"] == 250.0
    assert raw.ch_names == list(load_montage().ch_names)
    assert set(raw.get_channel_types()) == {"eeg"}
    vols = [a for a in raw.annotations if a["description"].replace(" ", "").endswith("R149")]
    assert len(vols) == cfg.n_volumes
    expected = cfg.lead_s + 2.1 * np.arange(cfg.n_volumes)
    onsets = np.array([a["onset"] for a in vols])
    np.testing.assert_allclose(onsets, expected, atol=0.5 / raw.info["sfreq"])
    # the file holds exactly what the in-memory API returns (µV, float32 precision)
    res = simulate_scan(cfg, 0, 0)
    np.testing.assert_allclose(raw.get_data() * 1e6, res.eeg, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(np.round(onsets * 250).astype(int), res.volume_samples)


def test_semi_synthetic_bold_is_the_real_series(dataset):
    out, cfg, _ = dataset
    real, scans = _real_scans()
    for sub, k in (("01", 0), ("02", 1)):  # subject i, run 1 <- real scan i
        path = out / f"sub-{sub}" / "func" / f"sub-{sub}_{BASE}_atlas-DiFuMo64_timeseries.tsv"
        values = np.loadtxt(path, delimiter="\t", skiprows=1)
        np.testing.assert_array_equal(values, real[k, : cfg.n_volumes].astype(np.float64))
    assert scans[1] in (out / "participants.tsv").read_text(encoding="utf-8")


def test_refuses_non_empty_folder_without_overwrite(dataset, tmp_path):
    out, cfg, _ = dataset
    with pytest.raises(ValueError, match="overwrite"):
        simulate_dataset(out, cfg, progress=False)
    from rtbold.cli import main

    (tmp_path / "x.txt").write_text("keep", encoding="utf-8")
    assert main(["simulate", str(tmp_path), "--n-volumes", "20", "--no-progress"]) == 2
    assert (tmp_path / "x.txt").read_text(encoding="utf-8") == "keep"


def test_cli_writes_dataset_and_summary(tmp_path, capsys):
    from rtbold.cli import main

    rc = main(["simulate", str(tmp_path / "ds"), "--subjects", "1", "--n-volumes", "20",
               "--seed", "3", "--snr", "5", "--coupling", "0.8", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Ceiling" in text and "mean R" in text and "s of EEG per scan" in text
    knobs = json.loads((tmp_path / "ds" / "derivatives" / "rtbold-sim" / "knobs.json")
                       .read_text(encoding="utf-8"))["config"]
    assert knobs["snr"] == 5.0 and knobs["coupling"] == 0.8 and knobs["n_subjects"] == 1


# ---- determinism -------------------------------------------------------------------------

def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    cfg = simulator_config(n_subjects=1, n_volumes=20, seed=11)
    a = simulate_dataset(tmp_path / "a", cfg, progress=False)
    simulate_dataset(tmp_path / "b", cfg, progress=False)
    rel = sorted(p.relative_to(tmp_path / "a") for p in a.files)
    for r in rel:
        assert (tmp_path / "a" / r).read_bytes() == (tmp_path / "b" / r).read_bytes(), r
    import zipfile

    npz = next(p for p in a.files if p.suffix == ".npz")
    with zipfile.ZipFile(npz) as zf:  # no wall-clock timestamps inside the archive
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    r1 = simulate_scan(cfg, 0, 0)
    r2 = simulate_scan(cfg, 0, 0)
    np.testing.assert_array_equal(r1.eeg, r2.eeg)
    np.testing.assert_array_equal(r1.bold, r2.bold)
    r3 = simulate_scan(simulator_config(n_subjects=1, n_volumes=20, seed=12), 0, 0)
    assert not np.allclose(r1.eeg, r3.eeg)
    np.testing.assert_array_equal(r1.bold, r3.bold)  # semi-synthetic: same real series


def test_subject_offset_makes_the_same_subject_alone(tmp_path):
    """A held-out subject can be made alone: offset 1 gives the second subject of a full run."""
    both = simulate_dataset(tmp_path / "both", simulator_config(n_subjects=2, n_volumes=20),
                            progress=False)
    alone = simulate_dataset(tmp_path / "alone", simulator_config(n_subjects=1, n_volumes=20,
                                                                  subject_offset=1), progress=False)
    eeg = sorted(p.relative_to(tmp_path / "alone") for p in alone.files if p.suffix == ".eeg")
    assert [str(p) for p in eeg] == ["sub-02/eeg/sub-02_task-rest_run-01_eeg.eeg"]
    assert (tmp_path / "alone" / eeg[0]).read_bytes() == (tmp_path / "both" / eeg[0]).read_bytes()
    assert len([p for p in both.files if p.suffix == ".eeg"]) == 2


def test_bold_scans_keep_held_out_real_scans_apart(tmp_path):
    """bold_scans picks which real scans drive the subjects: a held-out set made from 17-22
    never uses a real scan of a training set made from 0-16."""
    from rtbold.simulator.bold import parse_scan_selection

    assert parse_scan_selection("0-2,5", 23) == [0, 1, 2, 5]
    assert parse_scan_selection("", 3) == [0, 1, 2]
    for bad in ("5-2", "0-23", "a"):
        with pytest.raises(ValueError, match="bold_scans"):
            parse_scan_selection(bad, 23)
    real, scans = _real_scans()
    simulate_dataset(tmp_path / "held", simulator_config(n_subjects=2, n_volumes=12,
                                                         bold_scans="17-22"), progress=False)
    for sub, k in (("01", 17), ("02", 18)):
        path = (tmp_path / "held" / f"sub-{sub}" / "func" /
                f"sub-{sub}_{BASE}_atlas-DiFuMo64_timeseries.tsv")
        values = np.loadtxt(path, delimiter="\t", skiprows=1)
        np.testing.assert_array_equal(values, real[k, :12].astype(np.float64))
    participants = (tmp_path / "held" / "participants.tsv").read_text(encoding="utf-8")
    assert scans[17] in participants and scans[0] not in participants


# ---- EEG realism --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def long_scan():
    """About 10 min of EEG at 100 Hz: long enough for spectra and BOLD correlations."""
    return simulate_scan(simulator_config(n_volumes=300, sfreq=100.0, seed=5), 0, 0)


def test_eeg_looks_like_eeg(long_scan):
    res = long_scan
    x = res.eeg.astype(np.float64)
    rms = np.sqrt((x ** 2).mean(1))
    assert np.all((rms > 5) & (rms < 100)), rms
    f, p = welch(x, fs=res.sfreq, nperseg=int(4 * res.sfreq))
    ch = res.ch_names

    def band(chs, lo, hi):
        m = (f >= lo) & (f < hi)
        return np.mean([p[ch.index(c), m].mean() for c in chs])

    posterior, frontal = ["O1", "O2", "OZ", "POZ"], ["FP1", "FP2", "FZ", "F3", "F4"]
    assert band(posterior, 8, 12) > 2 * band(frontal, 8, 12)
    # an alpha peak above the 1/f trend on posterior channels
    assert band(posterior, 8.5, 11.5) > 3 * (band(posterior, 5, 7) + band(posterior, 14, 17)) / 2
    # 1/f: power falls with frequency outside the alpha band
    m = ((f > 2) & (f < 7)) | ((f > 15) & (f < 40))
    slopes = [np.polyfit(np.log10(f[m]), np.log10(p[i, m]), 1)[0] for i in range(26)]
    assert all(-4.0 < s < -0.5 for s in slopes), slopes


def _envelope_features(eeg, sfreq, vol_samples, tr):
    """Log band envelope of every channel averaged over each TR, convolved with a canonical HRF."""
    per = int(round(tr * sfreq))
    out = []
    for _, lo, hi in BANDS:
        if hi >= 0.45 * sfreq:
            continue
        sos = butter(4, [lo, hi], btype="band", fs=sfreq, output="sos")
        env = np.log(np.abs(hilbert(sosfiltfilt(sos, eeg.astype(np.float64), axis=1), axis=1)) + 1e-6)
        out.append(np.stack([env[:, s - per : s].mean(1) for s in vol_samples], 0))
    feats = np.concatenate(out, 1)
    h = hrf_kernels(np.array([5.0]), tr)[:, 0]
    return lfilter(h, [1.0], feats - feats[:5].mean(0), axis=0)


def _corr(x, y):
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean(0)) / y.std(0)
    return x.T @ y / len(x)


def _ridge_cv(x, y, lam=1.0, gap=10):
    n = len(x)
    h = n // 2
    rs = []
    for tr_i, te_i in ((np.arange(0, h - gap), np.arange(h, n)), (np.arange(h + gap, n), np.arange(0, h))):
        mu, sd = x[tr_i].mean(0), x[tr_i].std(0) + 1e-9
        a, b = (x[tr_i] - mu) / sd, (x[te_i] - mu) / sd
        w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ (y[tr_i] - y[tr_i].mean(0)))
        rs.append(np.diag(_corr(b @ w, y[te_i])))
    return np.mean(rs, 0)


def test_no_channel_beats_the_ceiling_and_shuffling_kills_the_relation(long_scan):
    res = long_scan
    skip = 10  # HRF warm-up of the features
    feats = _envelope_features(res.eeg, res.sfreq, res.volume_samples, res.tr)[skip:]
    y = res.bold[skip:]
    best = np.abs(_corr(feats, y)).max(0)  # best single channel-band envelope per region
    assert best.mean() < res.ceiling.mean()
    assert np.all(best < res.ceiling + 0.2), (best - res.ceiling).max()
    real = _ridge_cv(feats, y)
    # shuffle the EEG in TR-long segments: the EEG-BOLD relation must vanish
    rng = np.random.default_rng(0)
    per = int(round(res.tr * res.sfreq))
    shuffled = res.eeg.copy()
    segs = [res.eeg[:, s - per : s] for s in res.volume_samples]
    for k, j in enumerate(rng.permutation(len(segs))):
        s = res.volume_samples[k]
        shuffled[:, s - per : s] = segs[j]
    sh = _ridge_cv(_envelope_features(shuffled, res.sfreq, res.volume_samples, res.tr)[skip:], y)
    assert abs(sh.mean()) < 0.08, sh.mean()
    assert real.mean() > sh.mean() + 0.15, (real.mean(), sh.mean())


def test_coupling_zero_removes_the_relation():
    res = simulate_scan(simulator_config(n_volumes=300, sfreq=100.0, seed=5, coupling=0.0,
                                         state_alpha=0.0, state_theta=0.0), 0, 0)
    feats = _envelope_features(res.eeg, res.sfreq, res.volume_samples, res.tr)[10:]
    assert abs(_ridge_cv(feats, res.bold[10:]).mean()) < 0.08


# ---- BOLD side and ceiling -------------------------------------------------------------------

def test_ceiling_is_corr_with_explainable_bold_and_calibrated():
    cfg = simulator_config(n_volumes=575)
    src = load_bold_source()
    atlas = load_atlas(64)
    ceil = []
    for s in range(3):
        res = simulate_scan(cfg, s, 0, source=src, keep_eeg=False)
        assert res.eeg is None
        for r in (0, 24, 46):
            c = np.corrcoef(res.bold[:, r], res.explainable[:, r])[0, 1]
            assert res.ceiling[r] == pytest.approx(c, abs=1e-9)
        assert np.all(res.ceiling < res.deconv_fit + 1e-9)
        ceil.append(res.ceiling)
    ceil = np.mean(ceil, 0)
    assert 0.55 < ceil.mean() < 0.75
    visual = ceil[atlas.regions_in("Visual")].mean()
    deep = ceil[[atlas.index(n) for n in ("Thalamus", "Putamen", "Caudate")]].mean()
    assert visual > deep + 0.1 and deep > 0.25


def test_synthetic_mode_keeps_group_fc():
    cfg = simulator_config(mode="synthetic", n_volumes=575, seed=2)
    fcs = [np.corrcoef(simulate_scan(cfg, s, 0, keep_eeg=False).bold.T) for s in range(2)]
    fc = np.mean(fcs, 0)
    group = load_group_fc()
    iu = np.triu_indices(64, 1)
    assert np.corrcoef(fc[iu], group[iu])[0, 1] > 0.8
    assert np.abs(fc[iu] - group[iu]).mean() < 0.15


def test_bold_from_tsv_with_sidecar(tmp_path):
    real, _ = _real_scans()
    atlas = load_atlas(64)
    order = np.random.default_rng(0).permutation(64)  # any column order is accepted
    path = tmp_path / "scan.tsv"
    rows = ["\t".join(atlas.roi_names[i] for i in order)]
    rows += ["\t".join(repr(float(v)) for v in real[3, t, order]) for t in range(60)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps({"RepetitionTime": 2.0}), encoding="utf-8")
    res = simulate_scan(simulator_config(n_volumes=50, bold_from=str(path)), 0, 0, keep_eeg=False)
    assert res.tr == 2.0
    np.testing.assert_array_equal(res.bold, real[3, :50].astype(np.float64))
    rows[0] = rows[0].replace(atlas.roi_names[order[0]], "Not a region")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="lacks 1 DiFuMo-64 region"):
        load_bold_source(path)
    with pytest.raises(ValueError, match="n_volumes"):
        simulate_scan(simulator_config(n_volumes=600), 0, 0, keep_eeg=False)


# ---- high amplifier rates ---------------------------------------------------------------------

def test_streamed_writer_matches_pybv_at_1khz(tmp_path):
    cfg = simulator_config(n_volumes=12, sfreq=1000.0, seed=4)
    sim = ScanSimulator(cfg, 0, 0)
    write_brainvision(sim, tmp_path / "pybv", "x")
    write_brainvision(sim, tmp_path / "stream", "x", max_in_memory=0)
    raws = [mne.io.read_raw_brainvision(tmp_path / d / "x.vhdr", preload=True, verbose="error")
            for d in ("pybv", "stream")]
    assert raws[0].info["sfreq"] == raws[1].info["sfreq"] == 1000.0
    np.testing.assert_allclose(raws[0].get_data(), raws[1].get_data(), rtol=1e-6, atol=1e-12)
    assert list(raws[0].annotations.onset) == list(raws[1].annotations.onset)
    assert list(raws[0].annotations.description) == list(raws[1].annotations.description)
    np.testing.assert_allclose(raws[1].annotations.onset,
                               cfg.lead_s + 2.1 * np.arange(12), atol=0.5e-3)
    x = raws[1].get_data() * 1e6
    assert x.shape == (26, sim.n_times)
    # upsampled in blocks without steps at the block borders (block = 10 s)
    d = np.abs(np.diff(x, axis=1)).mean(0)
    border = int(cfg.block_s * 1000) - 1
    assert d[border] < 5 * np.median(d)


# ---- configuration -----------------------------------------------------------------------------

def test_config_file_and_errors_name_the_key(tmp_path):
    assert load_simulator_config(ROOT / "configs" / "simulate.toml") == SimulatorConfig()
    bad = tmp_path / "bad.toml"
    bad.write_text("[simulate]\nsnr = 3.0\nwobble = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="wobble"):
        load_simulator_config(bad)
    bad.write_text("[simulate]\nsnr = -1.0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"simulate\.snr"):
        load_simulator_config(bad)
    with pytest.raises(ConfigError, match="mode"):
        simulator_config(mode="fantasy")
    with pytest.raises(ConfigError, match="n_volumes"):
        load_simulator_config(None, n_volumes=3)
    with pytest.raises(ConfigError, match="marker"):
        simulator_config(marker="T149")
    with pytest.raises(ConfigError, match="hrf_peak_min"):
        simulator_config(hrf_peak_min=8.0, hrf_peak_max=5.0)


def test_rtbold_datasets_reads_the_simulated_dataset(dataset):
    from rtbold.datasets import discover_scans, prepare_scan

    out, cfg, _ = dataset
    specs = discover_scans(out)
    assert [s.subject for s in specs] == ["sub-01", "sub-02"]
    prep = prepare_scan(specs[0], list(load_montage().ch_names))
    assert prep.tr == pytest.approx(2.1) and prep.targets.shape == (cfg.n_volumes, 64)
    assert prep.roi_names == list(load_atlas(64).roi_names)
    # lead_s = 20 s: every volume has a full 16 s window before it
    assert prep.valid.all()
    np.testing.assert_allclose(prep.volume_times, cfg.lead_s + 2.1 * np.arange(cfg.n_volumes),
                               atol=0.5 / cfg.sfreq)
