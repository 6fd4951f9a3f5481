"""Dataset discovery, EEG-window / fMRI-volume pairing, bad inputs and splits."""

import numpy as np
import pandas as pd
import pytest
from conftest import write_bids_scan

from rtbold.atlas import load_atlas
from rtbold.datasets import (WindowDataset, cross_subject_split, discover_scans, intra_scan_split,
                             prepare_scan)
from rtbold.io.fmri import convert_neurobolt_pickles
from rtbold.preprocessing import EEG_SCALE, SFREQ, WINDOW_SAMPLES

CH = ["Fp1", "Cz", "O1", "Pz"]
MODEL_CH = ["FP1", "CZ", "O1", "PZ"]
TR = 2.1


def _scan(tmp_path, rng, *, sfreq=250, n_vol=40, first=18.0, marker="R149", n_markers=None,
          sidecar_tr=None, spikes=True, subject="01", run=1):
    onsets = first + TR * np.arange(n_vol if n_markers is None else n_markers)
    n = int((onsets[-1] + 3) * sfreq)
    eeg = rng.standard_normal((len(CH), n)) * 10
    if spikes:  # a 200 µV step on Cz at every volume onset, to check alignment to the sample
        for t in onsets:
            eeg[1, int(round(t * sfreq)):] += 200
    bold = rng.standard_normal((n_vol, 3))
    return write_bids_scan(tmp_path, subject, run, eeg, sfreq, CH, onsets, bold,
                           ["Cuneus", "Thalamus", "Putamen"], TR, marker, sidecar_tr), onsets, eeg


@pytest.mark.parametrize("sfreq", [250, 1000])
def test_bids_round_trip_windows_align_to_markers(tmp_path, rng, sfreq):
    (vhdr, tsv), onsets, eeg = _scan(tmp_path, rng, sfreq=sfreq)
    specs = discover_scans(tmp_path)
    assert len(specs) == 1 and specs[0].eeg_path == vhdr and specs[0].bold_path == tsv
    scan = prepare_scan(specs[0], MODEL_CH)
    np.testing.assert_allclose(scan.volume_times, np.round(onsets * sfreq) / sfreq, atol=1e-9)
    # Volumes whose 16 s window starts before the EEG are not used (first volume at 18 s: all ok
    # except none); windows exist for every other volume.
    assert scan.valid.sum() == len(onsets)
    ds = WindowDataset([scan])
    assert len(ds) == len(onsets)
    x, y = ds[10]
    assert tuple(x.shape) == (4, WINDOW_SAMPLES) and tuple(y.shape) == (3,)
    # The step at this volume's onset is not in its window (window ends 5 ms before the volume);
    # the steps of the earlier volumes are, at samples 3200 - m * 420 (m = 1..7), to the sample.
    # (The anti-alias filter is zero-phase, so the next step pre-rings into the last samples,
    # within the filter's 50 ms half-length; steps are counted before that.)
    jump = np.diff(x[1].numpy() * EEG_SCALE)[: WINDOW_SAMPLES - 11]
    steps = np.sort(np.argsort(jump)[-7:] + 1)
    expected = WINDOW_SAMPLES - int(round(TR * SFREQ)) * np.arange(7, 0, -1)
    np.testing.assert_array_equal(steps, expected)
    assert np.all(jump[steps - 1] > 50)
    # Targets are the normalised region series of the same volumes.
    np.testing.assert_allclose(y.numpy(), scan.targets[10])


def test_windows_dropped_before_the_recording(tmp_path, rng):
    (_, _), onsets, _ = _scan(tmp_path, rng, first=2.0)
    scan = prepare_scan(discover_scans(tmp_path)[0], MODEL_CH)
    expected = onsets - onsets[0] + 2.0 >= 16.0
    np.testing.assert_array_equal(scan.valid, expected)
    with pytest.raises(ValueError, match="no full EEG window"):
        WindowDataset([scan], [(0, 0)])


def test_fewer_markers_than_volumes(tmp_path, rng):
    _scan(tmp_path, rng, n_vol=40, n_markers=35)
    with pytest.raises(ValueError, match="35 volume markers 'R149' but the fMRI series has 40"):
        prepare_scan(discover_scans(tmp_path)[0], MODEL_CH)


def test_missing_marker_lists_annotations(tmp_path, rng):
    _scan(tmp_path, rng, marker="R128")
    with pytest.raises(ValueError, match=r"no volume marker 'R149'.*Response/R128"):
        prepare_scan(discover_scans(tmp_path)[0], MODEL_CH)
    scan = prepare_scan(discover_scans(tmp_path)[0], MODEL_CH, marker="R128")
    assert scan.valid.sum() == 40


def test_volumes_from_tr_and_markers_beyond_eeg(tmp_path, rng):
    _scan(tmp_path, rng, n_vol=40)
    spec = discover_scans(tmp_path)[0]
    scan = prepare_scan(spec, MODEL_CH, marker=None, first_volume_s=18.0)
    np.testing.assert_allclose(scan.volume_times, 18.0 + TR * np.arange(40))
    with pytest.raises(ValueError, match="beyond the end of the EEG"):
        prepare_scan(spec, MODEL_CH, marker=None, first_volume_s=60.0)


def test_wrong_tr_in_sidecar(tmp_path, rng):
    _scan(tmp_path, rng, sidecar_tr=2.0)
    with pytest.raises(ValueError, match="RepetitionTime 2.0 s but 2.1 s"):
        prepare_scan(discover_scans(tmp_path)[0], MODEL_CH, tr=2.1)


def test_missing_channels_refused_by_default(tmp_path, rng):
    _scan(tmp_path, rng)
    spec = discover_scans(tmp_path)[0]
    with pytest.raises(ValueError, match=r"lacks 1 of the model's 5 channels: OZ"):
        prepare_scan(spec, MODEL_CH + ["OZ"])
    scan = prepare_scan(spec, MODEL_CH + ["OZ"], policy="interpolate")
    assert scan.mapping.missing == ["OZ"] and np.abs(scan.eeg[4]).max() > 0


def test_nan_in_eeg_named(tmp_path, rng):
    import pybv

    (vhdr, _), _, eeg = _scan(tmp_path, rng)
    eeg[2, 5000:5010] = np.nan
    events = np.column_stack([np.arange(40) * 525 + 4500, np.full(40, 149)])
    pybv.write_brainvision(data=eeg * 1e-6, sfreq=250, ch_names=CH, fname_base=vhdr.stem,
                           folder_out=vhdr.parent, events=events, overwrite=True)
    with pytest.raises(ValueError, match=r"O1 contain NaN"):
        prepare_scan(discover_scans(tmp_path)[0], MODEL_CH, marker="S149")


def test_no_dataset_found(tmp_path):
    with pytest.raises(ValueError, match="neither a BIDS dataset"):
        discover_scans(tmp_path)
    with pytest.raises(FileNotFoundError):
        discover_scans(tmp_path / "nope")


def test_neurobolt_release_layout(tmp_path, rng, eeg_files):
    """EEG_set/*.set + fMRI_difumo64/*.pkl, converted once to TSV, then found and windowed."""
    import mne

    raw = mne.io.read_raw_eeglab(eeg_files["eeglab"], preload=True, verbose="error")
    raw.set_annotations(mne.Annotations(16.0 + TR * np.arange(60), 0.0, "R149"))
    (tmp_path / "EEG_set").mkdir()
    mne.export.export_raw(tmp_path / "EEG_set" / "sub01-scan01_eeg.set", raw, verbose="error")
    names = list(load_atlas(64).roi_names) + ["global signal clean", "global signal raw"]
    (tmp_path / "fMRI_difumo64").mkdir()
    pd.DataFrame(rng.standard_normal((60, 66)), columns=names).to_pickle(
        tmp_path / "fMRI_difumo64" / "sub01-scan01_difumo64_roi.pkl")
    with pytest.raises(ValueError, match="convert-neurobolt --trust-pickle"):
        discover_scans(tmp_path)
    convert_neurobolt_pickles(tmp_path, tmp_path / "fMRI_difumo64_tsv", trust_pickle=True)
    specs = discover_scans(tmp_path)
    assert [(s.subject, s.scan, s.layout) for s in specs] == [("sub01", "scan01", "neurobolt")]
    scan = prepare_scan(specs[0], ["F3", "FZ", "F4", "C3", "CZ", "C4"], highpass=0.5)
    assert scan.targets.shape == (60, 64)  # global-signal columns are not regions
    assert scan.valid.sum() == 60 and WindowDataset([scan])[0][0].shape == (6, 3200)


def test_intra_scan_split_matches_neurobolt():
    s = intra_scan_split(567, 2.1)
    assert (s["train"][0], s["train"][-1], len(s["train"])) == (0, 452, 453)
    assert (s["val"][0], s["val"][-1], len(s["val"])) == (463, 508, 46)
    assert (s["test"][0], s["test"][-1], len(s["test"])) == (519, 566, 48)
    with pytest.raises(ValueError, match="too few"):
        intra_scan_split(40, 2.1)


def test_cross_subject_split_groups_subjects():
    subjects = [f"sub-{i:02d}" for i in range(1, 16)]
    s = cross_subject_split(subjects + subjects[:5], seed=3)  # repeated subjects = several scans
    sets = [set(s[k]) for k in ("train", "val", "test")]
    assert sum(len(x) for x in sets) == 15 and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (9, 3, 3)
    assert cross_subject_split(subjects, seed=3) == s
    assert cross_subject_split(subjects, seed=4) != s


def test_cross_subject_split_with_an_empty_test_part():
    """Ratios (4, 1, 0): the test subjects are a separate held-out dataset, none are taken here."""
    subjects = [f"sub-{i:02d}" for i in range(10)]
    s = cross_subject_split(subjects, ratios=(4, 1, 0), seed=0)
    assert s["test"] == [] and len(s["val"]) == 2 and len(s["train"]) == 8
    assert sorted(s["train"] + s["val"]) == subjects
