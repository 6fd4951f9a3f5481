"""fMRI targets from a 4-D NIfTI BOLD image and an atlas image given by path (nilearn maskers)."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rtbold.io.fmri import extract_region_series


def _blob(shape, center, width=2.0):
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    return np.exp(-np.sum((grid - np.array(center)) ** 2, axis=-1) / (2 * width**2))


def test_region_series_from_nifti_with_motion_confounds(tmp_path, rng):
    shape, n_vol, tr = (12, 12, 10), 80, 2.0
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    centers = [(3, 3, 3), (8, 8, 6), (3, 9, 5)]
    maps = np.stack([_blob(shape, c) for c in centers], axis=-1).astype(np.float32)
    signals = rng.standard_normal((n_vol, 3))
    motion = rng.standard_normal((n_vol, 6))
    bold = 100 + np.einsum("xyzr,tr->xyzt", maps, signals * 5)
    bold += np.einsum("xyz,t->xyzt", np.ones(shape), motion[:, 0] * 3)  # global motion artefact
    bold += rng.standard_normal(bold.shape) * 0.5
    bold_img = nib.Nifti1Image(bold.astype(np.float32), affine)
    bold_img.header.set_zooms((3.0, 3.0, 3.0, tr))
    nib.save(bold_img, tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(maps, affine), tmp_path / "maps.nii.gz")
    np.savetxt(tmp_path / "motion.1D", motion)
    names = ["A", "B", "C"]
    series = extract_region_series(tmp_path / "bold.nii.gz", tmp_path / "maps.nii.gz", names,
                                   confounds=tmp_path / "motion.1D")
    assert series.data.shape == (n_vol, 3) and series.tr == tr and series.roi_names == names
    np.testing.assert_allclose(series.data.std(axis=0), 1, atol=0.02)  # standardised
    for r in range(3):
        assert np.corrcoef(series.data[:, r], signals[:, r])[0, 1] > 0.9
        assert abs(np.corrcoef(series.data[:, r], motion[:, 0])[0, 1]) < 0.05  # regressed out
    np.savetxt(tmp_path / "short.1D", motion[:50])
    with pytest.raises(ValueError, match="50 rows but .*bold.nii.gz has 80 volumes"):
        extract_region_series(tmp_path / "bold.nii.gz", tmp_path / "maps.nii.gz", names,
                              confounds=tmp_path / "short.1D")
    with pytest.raises(ValueError, match="maps.nii.gz has 3 regions but 2 names"):
        extract_region_series(tmp_path / "bold.nii.gz", tmp_path / "maps.nii.gz", names[:2])
    with pytest.raises(FileNotFoundError, match="atlas.nii"):
        extract_region_series(tmp_path / "bold.nii.gz", tmp_path / "atlas.nii", names)


# --- the real DiFuMo-64 maps (tests/data, credits in tests/data/README.md) ---------------------

DIFUMO64_MAPS = Path(__file__).resolve().parent / "data" / "difumo64_2mm_maps.nii.gz"


@pytest.fixture(scope="module")
def difumo64_at_4mm():
    """The real DiFuMo-64 maps resampled by nilearn to a 4 mm grid (keeps the test light;
    linear interpolation, so the BOLD is not made with exactly the maps the masker uses)."""
    from nilearn.image import resample_img

    maps = nib.load(DIFUMO64_MAPS)
    assert maps.shape == (104, 123, 104, 64)
    target = np.diag([4.0, 4.0, 4.0, 1.0])
    target[:3, 3] = maps.affine[:3, 3]
    shape = tuple(int(np.ceil(s / 2)) for s in maps.shape[:3])
    return resample_img(maps, target_affine=target, target_shape=shape,
                        interpolation="linear", force_resample=True, copy_header=True)


@pytest.mark.slow
def test_extract_regions_gives_back_known_series_through_the_real_difumo64_maps(
        tmp_path, rng, difumo64_at_4mm, capsys):
    """A 4-D BOLD made from known series through the real maps (with a motion artefact and voxel
    noise), extracted by `rtbold extract-regions` with the 2 mm maps file (nilearn resamples the
    maps to the BOLD grid): every region's series comes back."""
    from rtbold.atlas import load_atlas
    from rtbold.cli import main
    from rtbold.io.fmri import read_region_tsv

    maps = difumo64_at_4mm.get_fdata(dtype=np.float32)
    n_vol, tr = 60, 2.1
    signals = rng.standard_normal((n_vol, 64))
    motion = rng.standard_normal((n_vol, 6))
    scale = 400.0 / maps.max()
    bold = np.einsum("xyzk,tk->xyzt", maps, scale * signals, optimize=True)
    brain = maps.max(axis=3) > 0
    bold += 800.0 * brain[..., None] + 5.0 * motion[:, 0] * brain[..., None]
    bold += rng.standard_normal(bold.shape).astype(np.float32)
    img = nib.Nifti1Image(bold.astype(np.float32), difumo64_at_4mm.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((4.0, 4.0, 4.0, tr))
    nib.save(img, tmp_path / "bold.nii.gz")
    np.savetxt(tmp_path / "motion.1D", motion)

    out = tmp_path / "sub-01_task-rest_atlas-DiFuMo64_timeseries.tsv"
    assert main(["extract-regions", str(tmp_path / "bold.nii.gz"), str(DIFUMO64_MAPS), str(out),
                 "--confounds", str(tmp_path / "motion.1D")]) == 0
    assert "60 volumes x 64 regions (TR 2.1 s)" in capsys.readouterr().out
    series = read_region_tsv(out)
    assert series.roi_names == list(load_atlas(64).roi_names) and series.tr == tr
    # what an exact extraction gives: the known series without what the confounds (and the
    # linear trend) explain, as nilearn regresses them out
    design = np.column_stack([np.ones(n_vol), np.arange(n_vol), motion])
    expected = signals - design @ np.linalg.lstsq(design, signals, rcond=None)[0]
    r = np.array([np.corrcoef(series.data[:, k], expected[:, k])[0, 1] for k in range(64)])
    assert r.min() > 0.98, (r.min(), series.roi_names[int(np.argmin(r))])
    # the motion artefact is regressed out, not left in the regions
    assert np.abs([np.corrcoef(series.data[:, k], motion[:, 0])[0, 1] for k in range(64)]).max() < 1e-6


@pytest.mark.slow
def test_extract_regions_on_a_real_bold_image_resampled_by_nilearn(tmp_path, caplog):
    """nibabel's real example BOLD (20 volumes, 4x4x8 mm, a 3-slice slab) with the real 2 mm
    DiFuMo-64 maps: nilearn resamples the maps to the image; regions inside its field of view
    give the least-squares map signal, detrended and z-scored; regions (mostly) outside it are
    n/a and named, not numerical noise z-scored into something that looks like a signal."""
    import os

    from nibabel.testing import data_path
    from nilearn.image import resample_to_img
    from scipy.signal import detrend

    from rtbold.atlas import load_atlas

    bold = Path(data_path) / "functional.nii"
    names = list(load_atlas(64).roi_names)
    with caplog.at_level("WARNING", logger="rtbold.io.fmri"):
        series = extract_region_series(bold, DIFUMO64_MAPS, names)
    assert series.data.shape == (20, 64) and series.tr == 2.0
    # reference: the maps on the BOLD grid, least squares per volume, detrend, z-score
    img, atlas = nib.load(bold), nib.load(DIFUMO64_MAPS)
    maps = resample_to_img(atlas, img, interpolation="continuous", force_resample=True,
                           copy_header=True).get_fdata().reshape(-1, 64)
    voxel_ratio = np.prod(img.header.get_zooms()[:3]) / np.prod(atlas.header.get_zooms()[:3])
    share = np.abs(maps).sum(0) * voxel_ratio / np.abs(atlas.get_fdata()).reshape(-1, 64).sum(0)
    kept = np.flatnonzero(np.isfinite(series.data).all(axis=0))
    empty = np.flatnonzero(np.isnan(series.data).all(axis=0))
    assert kept.size + empty.size == 64 and 3 <= kept.size <= 40  # a slab: some in view
    assert share[kept].min() > 0.4 and share[empty].max() < 0.6  # the resampled maps agree
    y = img.get_fdata().reshape(-1, img.shape[3])
    ref = detrend(np.linalg.lstsq(maps, y, rcond=None)[0].T, axis=0)[:, kept]
    ref = (ref - ref.mean(0)) / ref.std(0, ddof=1)
    np.testing.assert_allclose(series.data[:, kept], ref, atol=0.05)
    np.testing.assert_allclose(series.data[:, kept].std(0, ddof=1), 1.0, atol=1e-6)
    assert f"{empty.size} of 64 regions have less than 50% of their map inside" in caplog.text
    assert names[empty[0]] in caplog.text and os.fspath(bold) in caplog.text


def test_extract_regions_refuses_an_image_outside_the_atlas(tmp_path):
    """A BOLD image that no DiFuMo map reaches (not in MNI space) is an error, not 64 zero
    columns."""
    from rtbold.atlas import load_atlas

    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = 500.0  # far away from the MNI brain
    data = np.random.default_rng(0).standard_normal((6, 6, 6, 12)).astype(np.float32) + 100
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "far.nii.gz")
    with pytest.raises(ValueError, match="No region of .*lies inside .*far.nii.gz.*0%.*MNI"):
        extract_region_series(tmp_path / "far.nii.gz", DIFUMO64_MAPS,
                              list(load_atlas(64).roi_names), tr=2.0)


def test_header_tr_in_milliseconds_is_converted(tmp_path):
    """A header whose time unit is ms gives the TR in seconds; a TR of 2000 "seconds" is refused
    with the way out (--tr)."""
    from rtbold.atlas import load_atlas

    shape = (12, 12, 10)
    maps = np.stack([_blob(shape, c) for c in [(3, 3, 3), (8, 8, 6)]], axis=-1).astype(np.float32)
    data = 100 + np.random.default_rng(1).standard_normal(shape + (30,)).astype(np.float32)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(maps, affine), tmp_path / "maps.nii.gz")
    for unit, zoom in (("msec", 2000.0), ("sec", 2000.0)):
        img = nib.Nifti1Image(data, affine)
        img.header.set_xyzt_units("mm", unit)
        img.header.set_zooms((3.0, 3.0, 3.0, zoom))
        nib.save(img, tmp_path / f"{unit}.nii.gz")
    names = list(load_atlas(64).roi_names[:2])
    assert extract_region_series(tmp_path / "msec.nii.gz", tmp_path / "maps.nii.gz", names).tr == 2.0
    with pytest.raises(ValueError, match="header TR 2000 s looks wrong.*--tr"):
        extract_region_series(tmp_path / "sec.nii.gz", tmp_path / "maps.nii.gz", names)


def test_field_of_view_coverage_of_maps_and_labels():
    """The share of each region inside a BOLD image's box, for 4-D maps and a 3-D label image,
    on another grid (3 mm voxels, shifted) than the atlas (2 mm)."""
    from rtbold.io.fmri import field_of_view_coverage

    atlas_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    labels = np.zeros((10, 10, 10), np.int16)
    labels[:5] = 1   # x = 0..8 mm
    labels[5:] = 2   # x = 10..18 mm
    labels[:, :, 8:] = 3  # z = 16..18 mm, outside the BOLD box in z
    maps = np.stack([(labels == k).astype(np.float32) * k for k in (1, 2, 3)], axis=-1)
    # BOLD voxels at x = 6, 9, 12 mm (3 mm apart): the box is x in [4.5, 13.5) mm
    bold_affine = np.diag([3.0, 3.0, 3.0, 1.0])
    bold_affine[:3, 3] = [6.0, 0.0, 0.0]
    bold = nib.Nifti1Image(np.zeros((3, 8, 5, 4), np.float32), bold_affine)  # y < 22.5, z < 13.5
    # x = 6, 8 of 0..8 mm and x = 10, 12 of 10..18 mm; z = 0..12 of 0..14 mm; z >= 16 outside
    expected = [2 / 5 * 7 / 8, 2 / 5 * 7 / 8, 0.0]
    np.testing.assert_allclose(
        field_of_view_coverage(nib.Nifti1Image(maps, atlas_affine), bold), expected)
    np.testing.assert_allclose(
        field_of_view_coverage(nib.Nifti1Image(labels, atlas_affine), bold, labels=True), expected)
