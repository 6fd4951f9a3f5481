"""`rtbold scanner-export`: volumes written one by one into a watched folder (real NIfTI files,
nibabel), volume markers on a real LSL stream (loopback), region values through nilearn's maps
masker on a synthetic atlas, published over LSL stamped with the markers' times; late, missing,
corrupt and out-of-order volumes are flagged and the watcher goes on."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pylsl
import pytest

from rtbold.player.synthetic import unique_id
from rtbold.scanner.export import ScannerExport
from rtbold.scanner.normalise import OnlineTargetNormaliser
from rtbold.scanner.volumes import volume_number

SHAPE = (10, 10, 8)
AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])


def _atlas(n_regions: int, seed: int = 0, shape=SHAPE) -> np.ndarray:
    """(x, y, z, P) overlapping Gaussian blobs at random centres: a probabilistic atlas."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    centres = rng.uniform([1, 1, 1], np.array(shape) - 2, size=(n_regions, 3))
    maps = [np.exp(-np.sum((grid - c) ** 2, axis=-1) / (2 * 1.2 ** 2)) for c in centres]
    return np.stack(maps, axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def atlas3(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atlas")
    maps = _atlas(3)
    path = folder / "maps.nii.gz"
    nib.save(nib.Nifti1Image(maps, AFFINE), path)
    return path, maps


def _volume(maps: np.ndarray, values: np.ndarray, rng) -> nib.Nifti1Image:
    data = 500.0 + maps @ values + rng.normal(0, 0.05, maps.shape[:3])
    return nib.Nifti1Image(data.astype(np.float32), AFFINE)


def _write(folder: Path, number: int, img) -> Path:
    """Write like a scanner: to a hidden temporary name, then renamed into place."""
    path = folder / f"001_000007_{number:06d}.nii"
    tmp = folder / f".part-{path.name}"
    nib.save(img, tmp)
    tmp.rename(path)
    return path


class _Triggers:
    """A real LSL marker stream sending volume markers (and other markers) now."""

    def __init__(self) -> None:
        self.name = unique_id("scanner-markers")
        info = pylsl.StreamInfo(self.name, "Markers", 1, 0, "string", self.name)
        self.outlet = pylsl.StreamOutlet(info)
        self.times: list[float] = []

    def volume(self) -> float:
        t = pylsl.local_clock()
        self.outlet.push_sample(["R128"], t)
        self.times.append(t)
        return t

    def other(self, text: str = "S  1") -> None:
        self.outlet.push_sample([text], pylsl.local_clock())


def _baseline(maps: np.ndarray) -> np.ndarray:
    """What the maps' least-squares fit makes of the volumes' constant 500."""
    flat = maps.reshape(-1, maps.shape[-1]).astype(np.float64)
    return np.linalg.lstsq(flat, np.full(len(flat), 500.0), rcond=None)[0]


def _export(folder, maps_path, triggers, names, reference=None, **kw) -> ScannerExport:
    """The exporter, its maps resampled at start to ``reference``'s grid (a volume written
    beside the folder), so that no volume waits for it."""
    kw.setdefault("tr", 0.5)
    if reference is None:
        reference = Path(folder).parent / "reference.nii"
        shape = nib.load(maps_path).shape[:3]
        nib.save(nib.Nifti1Image(np.ones(shape, dtype=np.float32), AFFINE), reference)
    kw["reference"] = reference
    return ScannerExport(folder, maps_path, roi_names=names, atlas="synthetic",
                         markers=triggers.name, marker="R128", name=unique_id("scanner-bold"),
                         settle_s=0.05, poll_s=0.02, resolve_timeout_s=5.0, **kw)


def _inlet(name: str, timeout: float = 5.0) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("name", name, 1, timeout)
    assert found, f"published stream {name!r} not found"
    inlet = pylsl.StreamInlet(found[0], recover=False)
    inlet.open_stream(5.0)
    return inlet


def _pull_all(inlet, n: int, timeout: float = 10.0):
    values, stamps = [], []
    deadline = time.monotonic() + timeout
    while len(stamps) < n and time.monotonic() < deadline:
        data, ts = inlet.pull_chunk(timeout=0.2)
        values += data
        stamps += ts
    return np.asarray(values), np.asarray(stamps)


def _wait(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_volumes_are_published_with_their_markers_times_and_region_values(tmp_path, atlas3, rng):
    """Volume k (file number k + 1) written after the k-th R128 marker (other markers in
    between) is published with that marker's time and the region values put into it."""
    maps_path, maps = atlas3
    folder = tmp_path / "export"
    folder.mkdir()
    _write(folder, 99, _volume(maps, np.zeros(3), rng))  # an earlier run's file: not read
    triggers = _Triggers()
    names = ["Region A", "Region B", "Region C"]
    export = _export(folder, maps_path, triggers, names, normalise=False).start()
    inlet = _inlet(export.name)
    series = rng.normal(0, 10, (8, 3))
    try:
        for k, values in enumerate(series):
            triggers.other()
            triggers.volume()
            time.sleep(0.05)
            _write(folder, k + 1, _volume(maps, values, rng))
            time.sleep(0.1)
        got, stamps = _pull_all(inlet, len(series))
    finally:
        export.stop()
    info = inlet.info()
    labels = [info.desc().child("channels").child("channel")]
    while len(labels) < 3:
        labels.append(labels[-1].next_sibling())
    assert [c.child_value("label") for c in labels] == names
    assert info.desc().child_value("atlas") == "synthetic"
    assert got.shape == series.shape
    np.testing.assert_allclose(stamps, triggers.times, atol=1e-3)
    np.testing.assert_allclose(got, series + _baseline(maps), atol=0.05)
    assert export.counts == {"published": 8, "late": 0, "out_of_order": 0, "missing": 0,
                             "corrupt": 0, "duplicate": 0, "unpaired": 0}
    assert [p.volume for p in export.published] == list(range(8))


def test_the_precomputed_fit_is_nilearns_maps_masker(tmp_path, atlas3, rng):
    """The per-volume values equal NiftiMapsMasker.transform on the same volume (maps given on
    another grid, so nilearn resamples them)."""
    from nilearn.maskers import NiftiMapsMasker

    maps_path, maps = atlas3
    fine = np.diag([2.0, 2.0, 2.0, 1.0])
    fine_path = tmp_path / "maps_2mm.nii.gz"
    from nilearn.image import resample_img

    nib.save(resample_img(nib.load(maps_path), target_affine=fine, target_shape=(20, 20, 16),
                          interpolation="linear", force_resample=True, copy_header=True),
             fine_path)
    folder = tmp_path / "export"
    folder.mkdir()
    triggers = _Triggers()
    img = _volume(maps, rng.normal(0, 10, 3), rng)
    export = _export(folder, fine_path, triggers, ["a", "b", "c"], normalise=False,
                     reference=_write(tmp_path, 0, img))
    ours = export.region_values(img, Path("v.nii"))
    ref = NiftiMapsMasker(str(fine_path), standardize=None).fit(img).transform(img)
    np.testing.assert_allclose(ours, np.ravel(ref), rtol=1e-4, atol=1e-4)


def test_late_missing_corrupt_and_out_of_order_volumes_are_flagged_and_the_watcher_goes_on(
        tmp_path, atlas3, rng, caplog):
    maps_path, maps = atlas3
    folder = tmp_path / "export"
    folder.mkdir()
    triggers = _Triggers()
    export = _export(folder, maps_path, triggers, ["a", "b", "c"], normalise=False, late_s=0.4,
                     missing_s=1.5, corrupt_after_s=0.3).start()
    inlet = _inlet(export.name)
    series = rng.normal(0, 10, (9, 3))
    try:
        with caplog.at_level("WARNING", logger="rtbold.scanner.export"):
            for k in (0, 1):  # on time
                triggers.volume()
                _write(folder, k + 1, _volume(maps, series[k], rng))
            _wait(lambda: export.counts["published"] == 2)
            for _ in range(2, 6):
                triggers.volume()
            # volume 3 (k = 2) is never written: missing
            (folder / "001_000007_000004.nii").write_bytes(b"\x00" * 348)  # k = 3: corrupt
            _write(folder, 6, _volume(maps, series[5], rng))  # k = 5 before k = 4
            _wait(lambda: 5 in {p.volume for p in export.published})
            time.sleep(0.5)
            _write(folder, 5, _volume(maps, series[4], rng))  # out of order and late
            _wait(lambda: export.counts["missing"] >= 1 and export.counts["corrupt"] == 1)
            for k in (6, 7, 8):  # the watcher goes on
                triggers.volume()
                _write(folder, k + 1, _volume(maps, series[k], rng))
            _wait(lambda: export.counts["published"] == 7)
            got, stamps = _pull_all(inlet, 7)
    finally:
        export.stop()
    kept = [0, 1, 5, 4, 6, 7, 8]
    assert [p.volume for p in export.published] == kept
    np.testing.assert_allclose(stamps, np.asarray(triggers.times)[kept], atol=1e-3)
    np.testing.assert_allclose(got, series[kept] + _baseline(maps), atol=0.05)
    c = export.counts
    assert (c["missing"], c["corrupt"], c["out_of_order"]) == (1, 1, 1)
    by_kind = {e.kind: e for e in export.events if e.kind != "late"}
    assert by_kind["missing"].volume == 2 and "volume 3: no file in" in by_kind["missing"].text
    assert by_kind["corrupt"].file == "001_000007_000004.nii"
    assert "not a readable NIfTI volume" in by_kind["corrupt"].text
    assert by_kind["out_of_order"].volume == 4 and "came after volume 6" in \
        by_kind["out_of_order"].text
    assert "out_of_order" in export.published[3].flags and "late" in export.published[3].flags
    logged = caplog.text
    assert "001_000007_000004.nii" in logged and "volume 3: no file" in logged
    assert export.summary().startswith("7 volume(s) published")


def test_more_files_than_markers_wait_for_their_marker(tmp_path, atlas3, rng):
    """A volume whose marker has not come is held (flagged unpaired after missing_s) and
    published with its marker's time once the marker comes; skip_markers passes dummies."""
    maps_path, maps = atlas3
    folder = tmp_path / "export"
    folder.mkdir()
    triggers = _Triggers()
    export = _export(folder, maps_path, triggers, ["a", "b", "c"], normalise=False,
                     skip_markers=1, missing_s=0.3).start()
    try:
        triggers.volume()  # a dummy's trigger
        _write(folder, 1, _volume(maps, np.ones(3), rng))
        _wait(lambda: export.counts["unpaired"] == 1)
        assert export.counts["published"] == 0
        t = triggers.volume()
        _wait(lambda: export.counts["published"] == 1)
    finally:
        export.stop()
    assert export.published[0].t == pytest.approx(t, abs=1e-3)  # LSL clock correction
    assert export.published[0].flags == ("unpaired",)


def test_volume_numbers_and_bad_arguments(tmp_path, atlas3):
    assert volume_number("001_000007_000012.nii") == 12
    assert volume_number("vol0012.nii.gz") == 12
    assert volume_number("scan.nii") is None
    with pytest.raises(FileNotFoundError, match="Export folder .*nowhere does not exist"):
        ScannerExport(tmp_path / "nowhere", atlas3[0], roi_names=["a", "b", "c"], atlas="x",
                      tr=2.0, markers="m", resolve_timeout_s=0)
    with pytest.raises(FileNotFoundError, match="Atlas maps .*none.nii.gz do not exist"):
        ScannerExport(tmp_path, tmp_path / "none.nii.gz", roi_names=["a"], atlas="x", tr=2.0,
                      markers="m", resolve_timeout_s=0)


def test_online_normalisation_approaches_the_offline_one():
    """On a real resting-state region series with a scanner-like offset, scale and drift, the
    causal normalisation agrees with the offline one (detrend + z-score, then the targets'
    low-pass and robust scaling) more and more as the scan goes on."""
    from scipy.signal import detrend

    from rtbold.preprocessing import preprocess_targets
    from rtbold.simulator.bold import load_bold_source

    source = load_bold_source(None)
    y, tr = source.data[0], source.tr
    k = np.arange(len(y))[:, None]
    raw = 1000 + 15 * y + 0.05 * k  # intensity units, a linear scanner drift
    offline, _ = preprocess_targets(detrend(raw, axis=0), tr)
    norm = OnlineTargetNormaliser(64, tr)
    online = np.array([norm.update(v) for v in raw])
    assert np.all(online[:2] == 0) and not norm.warming_up
    half = len(y) // 2
    r_late = [np.corrcoef(online[half:, i], offline[half:, i])[0, 1] for i in range(64)]
    r_early = [np.corrcoef(online[20:half, i], offline[20:half, i])[0, 1] for i in range(64)]
    assert np.median(r_late) > 0.9 and np.median(r_late) > np.median(r_early)
    # the scale is the offline one's by the end
    assert np.median(np.abs(online[-1] - offline[-1])) < 0.1 * np.median(np.abs(offline[-1]))


@pytest.mark.slow
def test_rtbold_run_reads_the_published_stream_as_its_measured_bold(tmp_path, rng):
    """End to end: the live engine (a random-weight DiFuMo-64 model) on a synthetic EEG stream
    with R149 volume markers; the exporter pairs volumes (a synthetic 64-map atlas labelled with
    the DiFuMo-64 names) with the same markers. The engine matches all 64 regions by name and
    holds each published volume at its marker's time, which is where a frame looks it up."""
    from rtbold.atlas import load_atlas

    from live_helpers import (SyntheticSource, live_config, make_runner, montage_channels,
                              run_engine)

    runner = make_runner(montage_channels())  # before the volumes come: it takes seconds
    names = list(load_atlas(64).roi_names)
    shape = (16, 16, 12)
    maps = _atlas(64, seed=3, shape=shape)
    maps_path = tmp_path / "maps64.nii.gz"
    nib.save(nib.Nifti1Image(maps, AFFINE), maps_path)
    folder = tmp_path / "export"
    folder.mkdir()
    src = SyntheticSource(montage_channels(), 250.0, 19.2, tr=1.0, speed=10.0)
    export = ScannerExport(folder, maps_path, roi_names=names, atlas="DiFuMo64", tr=1.0,
                           markers=f"{src.name}-markers", marker="R149",
                           name=unique_id("scanner-bold"), settle_s=0.05, poll_s=0.02,
                           resolve_timeout_s=5.0, missing_s=120.0,  # the engine starts slowly
                           reference=_write(tmp_path, 0, _volume(maps, np.zeros(64), rng)))
    export.start()
    for k in range(len(src.onsets)):  # reconstructed before their triggers come: they wait
        _write(folder, k + 1, _volume(maps, rng.normal(0, 10, 64), rng))
    cfg = live_config(src, tmp_path)
    cfg.measured.name = export.name
    cfg.measured.resolve_timeout_s = 5.0
    try:
        engine, frames, statuses, errors = run_engine(src, runner, cfg)
        _wait(lambda: export.counts["published"] == len(src.onsets))
    finally:
        export.stop()
    assert not errors and frames
    assert export.counts == {"published": len(src.onsets), "late": 0, "out_of_order": 0,
                             "missing": 0, "corrupt": 0, "duplicate": 0, "unpaired": 0}
    assert statuses[-1].measured_regions == 64
    np.testing.assert_allclose([p.t for p in export.published], src.marker_times, atol=1e-3)
    from rtbold.stream.recorder import read_measured

    # every frame has its own volume, on time or paired after it (scanner latency)
    meas = read_measured(engine.session_dir)
    assert meas["index"].tolist() == sorted(f.index for f in frames)
    for i, t, values in zip(meas["index"], meas["t"], meas["values"]):
        k = int(np.argmin(np.abs(src.marker_times - t)))
        np.testing.assert_allclose(values, export.published[k].values, rtol=1e-6)


def test_the_pairing_keeps_an_out_of_order_volume_in_its_place():
    from rtbold.stream.pairing import MeasuredPairing

    store = MeasuredPairing(tr=2.0, maxlen=3)
    for t in (10.0, 14.0, 12.0):  # the volume at 12 s came after the one at 14 s
        store.add(np.array([t]), np.array([[t]]))
    assert [store.at(t)[0] for t in (10.0, 12.0, 14.0, 15.9)] == [10.0, 12.0, 14.0, 14.0]
    store.add(np.array([13.0]), np.array([[13.0]]))  # full: the oldest (10 s) goes
    assert store.at(10.0) is None and store.at(13.5)[0] == 13.0 and len(store) == 3


def test_the_command_publishes_until_n_volumes_and_says_what_it_did(tmp_path, rng, capsys):
    import threading

    from rtbold.cli import main

    shape = (16, 16, 12)
    maps = _atlas(64, seed=3, shape=shape)
    nib.save(nib.Nifti1Image(maps, AFFINE), tmp_path / "maps.nii.gz")
    reference = _write(tmp_path, 0, _volume(maps, np.zeros(64), rng))
    folder = tmp_path / "export"
    folder.mkdir()
    triggers = _Triggers()
    name = unique_id("scanner-bold")
    argv = ["scanner-export", str(folder), "--maps", str(tmp_path / "maps.nii.gz"),
            "--reference", str(reference), "--markers", f"{triggers.name}:{triggers.name}",
            "--tr", "0.5", "--name", name, "--volumes", "3", "--missing", "1"]
    rc = []
    thread = threading.Thread(target=lambda: rc.append(main(argv)), daemon=True)
    thread.start()
    _inlet(name, timeout=30.0)  # the command is up
    for k in range(2):
        triggers.volume()
        _write(folder, k + 1, _volume(maps, rng.normal(0, 10, 64), rng))
        time.sleep(0.3)
    triggers.volume()  # the third volume never comes: missing after 1 s
    thread.join(30)
    assert rc == [0]
    out = capsys.readouterr().out
    assert f"publishing DiFuMo64 region values as LSL stream {name!r}" in out
    assert "volume 1: t=" in out and "volume 2: t=" in out
    assert "2 volume(s) published" in out and "1 missing" in out

    assert main(["scanner-export", str(tmp_path / "nowhere"), "--maps", str(reference),
                 "--markers", "m", "--tr", "2"]) == 2
    assert "Export folder" in capsys.readouterr().err


def test_maps_that_miss_the_volumes_flag_them_without_stopping(tmp_path, atlas3, rng):
    """Volumes far from the atlas's space (no registration): each is flagged corrupt with
    the reason, the watcher goes on, nothing is published."""
    maps_path, maps = atlas3
    folder = tmp_path / "export"
    folder.mkdir()
    triggers = _Triggers()
    export = ScannerExport(folder, maps_path, roi_names=["a", "b", "c"], atlas="synthetic",
                           tr=0.5, markers=triggers.name, marker="R128",
                           name=unique_id("scanner-bold"), settle_s=0.05, poll_s=0.02,
                           resolve_timeout_s=5.0, corrupt_after_s=0.0).start()
    far = AFFINE.copy()
    far[:3, 3] = 500.0
    try:
        for k in range(2):
            triggers.volume()
            _write(folder, k + 1, nib.Nifti1Image(np.ones(SHAPE, dtype=np.float32), far))
        _wait(lambda: export.counts["corrupt"] == 2)
    finally:
        export.stop()
    assert export.counts["published"] == 0 and export.counts["corrupt"] == 2
    assert all("No region of" in e.text and "lies inside the first volume" in e.text
               for e in export.events if e.kind == "corrupt")


def _nibabel_dicom(name: str, dst: Path) -> Path:
    """A DICOM file from nibabel's own test data (real scanner headers, pixel data blanked)."""
    import gzip
    import os
    import shutil

    src = Path(os.path.dirname(nib.__file__)) / "nicom" / "tests" / "data" / name
    if name.endswith(".gz"):
        with gzip.open(src) as a, dst.open("wb") as b:
            shutil.copyfileobj(a, b)
    else:
        shutil.copy(src, dst)
    return dst


def test_a_siemens_mosaic_dicom_is_read_as_its_volume_in_ras(tmp_path):
    """Siemens' real-time export writes one mosaic DICOM per EPI volume: a real Siemens header
    (nibabel's test file) with a mosaic whose tile k is filled with 10 + k comes back as a
    128 x 128 x 48 volume whose slice k is 10 + k, with the scanner's affine in RAS+."""
    import warnings

    import pydicom

    from rtbold.scanner.volumes import read_volume

    with warnings.catch_warnings():  # nibabel calls its DICOM readers experimental
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import dicomwrappers

    path = _nibabel_dicom("siemens_dwi_0.dcm.gz", tmp_path / "001_000007_000003.dcm")
    ds = pydicom.dcmread(path)
    n_slices, size = 48, 128
    tiles = int(np.ceil(np.sqrt(n_slices)))
    assert (ds.Rows, ds.Columns) == (tiles * size, tiles * size)
    mosaic = np.zeros((ds.Rows, ds.Columns), np.uint16)
    for k in range(n_slices):
        r, c = divmod(k, tiles)
        mosaic[r * size:(r + 1) * size, c * size:(c + 1) * size] = 10 + k
    ds.PixelData = mosaic.tobytes()
    ds.save_as(path)
    img = read_volume(path)
    assert img.shape == (size, size, n_slices)
    data = img.get_fdata()
    for k in range(n_slices):
        assert np.all(data[..., k] == data[0, 0, k])
    assert np.array_equal(np.argsort(data[0, 0, :]), np.arange(n_slices))  # slice order kept
    wrapper = dicomwrappers.wrapper_from_file(str(path))
    np.testing.assert_allclose(img.affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ wrapper.affine)
    assert volume_number(path) == 3


def test_a_dicom_slice_or_a_broken_dicom_is_refused_naming_the_file(tmp_path):
    from rtbold.scanner.volumes import VolumeError, read_volume

    single = _nibabel_dicom("decimal_rescale.dcm", tmp_path / "001_000001_000001.dcm")
    with pytest.raises(VolumeError, match="001_000001_000001.dcm.*one slice per file"):
        read_volume(single)
    broken = tmp_path / "001_000001_000002.dcm"
    broken.write_bytes(b"DICM" + b"\x00" * 200)
    with pytest.raises(VolumeError, match="001_000001_000002.dcm: not a readable DICOM"):
        read_volume(broken)
