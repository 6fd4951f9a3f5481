"""fMRI targets from a 4-D NIfTI BOLD image and an atlas image given by path (nilearn maskers)."""

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
    with pytest.raises(ValueError, match="gave 3 regions but 2 names"):
        extract_region_series(tmp_path / "bold.nii.gz", tmp_path / "maps.nii.gz", names[:2])
    with pytest.raises(FileNotFoundError, match="atlas.nii"):
        extract_region_series(tmp_path / "bold.nii.gz", tmp_path / "atlas.nii", names)
