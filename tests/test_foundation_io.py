"""Readers and channel mapping on the real recordings, plus their bad-input errors."""

import numpy as np
import pandas as pd
import pytest

from rtbold.atlas import NETWORK_ORDER, load_atlas
from rtbold.channels import ChannelMapping, normalise_channel_name
from rtbold.io.eeg import read_eeg
from rtbold.io.fmri import (RegionSeries, convert_neurobolt_pickles, read_neurobolt_pickle,
                            read_region_npz, read_region_tsv, write_region_tsv)
from rtbold.montage import load_montage

MONTAGE = load_montage()


@pytest.mark.parametrize("key, sfreq, n_ch, missing", [
    ("eegmmidb", 160.0, 64, {"FT9", "FT10", "TP9", "TP10"}),
    ("eegmat", 500.0, 21, {"FPZ", "POZ", "OZ", "FT9", "FT10", "TP9", "TP10"}),
    ("eeglab", 128.0, 32, {"FP1", "FP2", "F7", "F8", "FT9", "FT10", "TP9", "TP10"}),
])
def test_real_recordings_read_and_map(eeg_files, key, sfreq, n_ch, missing):
    rec = read_eeg(eeg_files[key])
    assert rec.sfreq == sfreq and rec.data.shape[0] == n_ch
    eeg = [i for i, t in enumerate(rec.ch_types) if t == "eeg"]
    rms = np.sqrt(np.mean(rec.data[eeg] ** 2, axis=1))
    assert 1 < np.median(rms) < 200, "EEG must come out in microvolts"
    with pytest.raises(ValueError) as err:
        ChannelMapping.build(rec.ch_names, MONTAGE.ch_names, source_types=rec.ch_types,
                             what=str(eeg_files[key]))
    assert str(eeg_files[key]) in str(err.value)
    assert all(m in str(err.value) for m in missing) and "interpolate" in str(err.value)
    zero = ChannelMapping.build(rec.ch_names, MONTAGE.ch_names, source_types=rec.ch_types,
                                policy="zero")
    assert set(zero.missing) == missing
    out = zero.apply(rec.data)
    assert out.shape == (26, rec.n_times)
    miss_rows = [MONTAGE.ch_names.index(m) for m in missing]
    assert np.all(out[miss_rows] == 0)
    # Present channels are copied unchanged, by name.
    cz = [i for i, n in enumerate(rec.ch_names) if normalise_channel_name(n) == "CZ"][0]
    np.testing.assert_array_equal(out[MONTAGE.ch_names.index("CZ")], rec.data[cz])
    # Non-EEG channels never enter the model.
    assert not any(rec.ch_types[rec.ch_names.index(d)] == "eeg" and normalise_channel_name(d)
                   in MONTAGE.ch_names for d in zero.dropped)


def test_interpolation_predicts_a_real_channel(eeg_files):
    """Drop a real channel, interpolate it from the others: it must resemble the original."""
    rec = read_eeg(eeg_files["eegmmidb"])
    src = [n for n in rec.ch_names if normalise_channel_name(n) != "C3"]
    data = np.stack([rec.data[rec.ch_names.index(n)] for n in src])
    mapping = ChannelMapping.build(src, ["C3", "CZ", "C4"], policy="interpolate")
    assert mapping.missing == ["C3"]
    est = mapping.apply(data)[0]
    truth = rec.data[[normalise_channel_name(n) for n in rec.ch_names].index("C3")]
    assert np.corrcoef(est, truth)[0, 1] > 0.7


def test_channel_names_normalise():
    assert normalise_channel_name("EEG Fp1") == "FP1"
    assert normalise_channel_name("Fp1.") == "FP1"
    assert normalise_channel_name("Poz.") == "POZ"
    assert [normalise_channel_name(n) for n in ("T3", "eeg t4", "T5", "T6")] == ["T7", "T8", "P7", "P8"]


def test_duplicate_channel_names_are_refused():
    with pytest.raises(ValueError, match="duplicate channel names.*FP1"):
        ChannelMapping.build(["Fp1", "EEG FP1", "Cz"], ["FP1", "CZ"], what="amp stream")


def test_non_eeg_dropped_by_type_and_name():
    m = ChannelMapping.build(["ECG", "Cz", "EOG1", "CWL1", "Pz"], ["CZ", "PZ"],
                             source_types=["eeg", "eeg", "eeg", "eeg", "misc"], policy="zero")
    assert m.missing == ["PZ"]  # Pz is typed misc: never used as EEG
    assert set(m.dropped) == {"ECG", "EOG1", "CWL1", "Pz"}


def test_corrupt_and_missing_eeg_files(tmp_path):
    bad = tmp_path / "broken.edf"
    bad.write_bytes(b"0       not an edf file at all" * 10)
    with pytest.raises(ValueError, match="broken.edf"):
        read_eeg(bad)
    with pytest.raises(FileNotFoundError, match="nothere.vhdr"):
        read_eeg(tmp_path / "nothere.vhdr")


def test_nan_samples_are_reported(eeg_files):
    rec = read_eeg(eeg_files["eeglab"])
    rec.data[3, 1000:1010] = np.nan
    with pytest.raises(ValueError, match=rf"{rec.ch_names[3]}.*NaN.*{1000 / rec.sfreq:.3f} s"):
        rec.check_finite()


def test_region_tsv_round_trip_and_sidecar_errors(tmp_path, rng):
    names = list(load_atlas(64).roi_names)
    series = RegionSeries(rng.standard_normal((40, 64)), names, 2.1)
    path = write_region_tsv(tmp_path / "x_timeseries.tsv", series)
    back = read_region_tsv(path)
    assert back.roi_names == names and back.tr == 2.1
    assert "Heschl\u2019s gyrus" in back.roi_names
    np.testing.assert_allclose(back.data, series.data, rtol=1e-5)
    with pytest.raises(ValueError, match="RepetitionTime 2.1 s but 2.0 s"):
        read_region_tsv(path, tr=2.0)
    path.with_suffix(".json").write_text('{"RepetitionTime": 2100}')
    with pytest.raises(ValueError, match="RepetitionTime 2100"):
        read_region_tsv(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ValueError, match="No TR"):
        read_region_tsv(path)
    assert read_region_tsv(path, tr=2.1).tr == 2.1
    with pytest.raises(ValueError, match="lacks region column"):
        back.select(["Not a region"])
    # Apostrophe spelling does not matter when selecting.
    assert back.select(["Heschl's gyrus"]).data.shape == (40, 1)


def test_difumo256_names_round_trip_and_raw_duplicates_are_explained(tmp_path, rng):
    """DiFuMo-256 repeats names for different components: rtbold's names (with the component
    number) round-trip; a table with the raw repeated names is refused with that fix, and NaN
    (a region outside the field of view) is written as n/a."""
    atlas = load_atlas(256)
    series = RegionSeries(rng.standard_normal((10, 256)), list(atlas.roi_names), 2.1)
    series.data[:, 3] = np.nan
    path = write_region_tsv(tmp_path / "x_timeseries.tsv", series)
    assert "\tn/a\t" in path.read_text(encoding="utf-8").splitlines()[1]
    back = read_region_tsv(path)
    assert back.roi_names == list(atlas.roi_names) and np.isnan(back.data[:, 3]).all()
    raw = [n.split(" (component")[0] for n in atlas.roi_names]
    path.write_text("\t".join(raw) + "\n" + "\t".join(["0"] * 256) + "\n", encoding="utf-8")
    dup = sorted({n for n in raw if raw.count(n) > 1})
    with pytest.raises(ValueError, match=f"duplicate column names .*{dup[0]}.*component number"):
        read_region_tsv(path)


def test_neurobolt_pickles_need_trust_and_convert(tmp_path, rng):
    names = list(load_atlas(64).roi_names) + ["global signal clean", "global signal raw"]
    (tmp_path / "fMRI_difumo64").mkdir()
    df = pd.DataFrame(rng.standard_normal((30, 66)).astype(np.float32), columns=names)
    pkl = tmp_path / "fMRI_difumo64" / "sub01-scan01_difumo64_roi.pkl"
    df.to_pickle(pkl)
    with pytest.raises(ValueError, match="--trust-pickle"):
        read_neurobolt_pickle(pkl)
    with pytest.raises(ValueError, match="--trust-pickle"):
        convert_neurobolt_pickles(tmp_path, tmp_path / "out")
    written = convert_neurobolt_pickles(tmp_path, tmp_path / "out", trust_pickle=True)
    back = read_region_tsv(written[0])
    assert back.roi_names == names and back.tr == 2.1
    np.testing.assert_allclose(back.data, df.to_numpy(), rtol=1e-5)


def test_packaged_real_fmri_and_atlas():
    s = read_region_npz(__import__("rtbold").__path__[0] + "/data/neurobolt_vu_difumo64_rest.npz",
                        "sub01-scan01")
    assert s.data.shape == (575, 66) and s.tr == 2.1
    atlas = load_atlas(64)
    assert list(s.roi_names[:64]) == list(atlas.roi_names)
    assert atlas.roi_names[44] == "Heschl\u2019s gyrus"
    assert set(atlas.networks) <= set(NETWORK_ORDER)
    assert sum(n == "Visual" for n in atlas.networks) == 12
    assert sum(n == "Subcortical/other" for n in atlas.networks) == 9
    assert atlas.non_neural[atlas.index("ventricles")] and not atlas.non_neural[atlas.index("Thalamus")]
    assert atlas.display[atlas.index("Heschl's gyrus")]["mode"] == "bilateral_pair"
    for n in (128, 256):
        a = load_atlas(n)
        assert len(a.roi_names) == n and len(set(a.roi_names)) == n
    assert "Limbic" in load_atlas(256).networks
    assert len(MONTAGE.ch_names) == 26 and MONTAGE.positions.shape == (26, 3)
