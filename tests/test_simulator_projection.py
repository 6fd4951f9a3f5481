"""Simulator targets at 128 and 256 regions, derived from the real DiFuMo-64 series through maps.

The real DiFuMo-64 maps come from tests/data (credits in tests/data/README.md); they are
resampled to 6 mm here to keep the tests fast. The real DiFuMo-128/256 maps are not shipped with
the tests, so the target atlases are built from the 64 maps in ways whose answer is known: each
map cut in two at the x that halves its mass (128 maps), and each component's strongest-voxel
parcel cut into four (256 labels).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rtbold.atlas import load_atlas
from rtbold.config import ConfigError
from rtbold.simulator import simulate_dataset, simulator_config
from rtbold.simulator.projection import region_projection

DIFUMO64_MAPS = Path(__file__).resolve().parent / "data" / "difumo64_2mm_maps.nii.gz"


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """Paths of a 6-mm copy of the real DiFuMo-64 maps and two target atlases made from it."""
    from nilearn.image import resample_img

    folder = tmp_path_factory.mktemp("maps")
    real = nib.load(DIFUMO64_MAPS)
    affine = np.diag([6.0, 6.0, 6.0, 1.0])
    affine[:3, 3] = real.affine[:3, 3]
    small = resample_img(real, target_affine=affine, target_shape=(35, 41, 35),
                         interpolation="linear", force_resample=True, copy_header=True)
    m64 = small.get_fdata(dtype=np.float32)
    nib.save(nib.Nifti1Image(m64, small.affine), folder / "difumo64_6mm.nii.gz")
    # 128 maps: component k's left part, then its right part, cut at the x that halves its mass
    x = nib.affines.apply_affine(small.affine, np.indices(m64.shape[:3]).reshape(3, -1).T)[:, 0]
    x = x.reshape(m64.shape[:3])
    flat = np.abs(m64).reshape(-1, 64)
    cut = []
    for k in range(64):
        order = np.argsort(x.ravel())
        cum = np.cumsum(flat[order, k])
        cut.append(x.ravel()[order][np.searchsorted(cum, cum[-1] / 2)])
    left = x[..., None] < np.array(cut)
    halves = np.concatenate([m64 * left, m64 * ~left], axis=3)
    order = np.arange(128).reshape(2, 64).T.ravel()  # k-left, k-right, (k+1)-left, ...
    nib.save(nib.Nifti1Image(halves[..., order], small.affine), folder / "split128.nii.gz")
    # 256 labels: each voxel's strongest component, that parcel cut into 4 runs of voxels
    strongest = np.where(m64.max(axis=3) > 0, m64.argmax(axis=3) + 1, 0)
    labels = np.zeros(strongest.shape, np.int16)
    for k in range(1, 65):
        idx = np.flatnonzero(strongest.ravel() == k)
        assert idx.size >= 4, f"component {k} has {idx.size} voxels at 6 mm"
        labels.ravel()[idx] = 4 * (k - 1) + 1 + (np.arange(idx.size) * 4 // idx.size)
    nib.save(nib.Nifti1Image(labels, small.affine), folder / "parcels256.nii.gz")
    return {"64": folder / "difumo64_6mm.nii.gz", "128": folder / "split128.nii.gz",
            "256": folder / "parcels256.nii.gz"}


@pytest.fixture(scope="module")
def proj128(maps):
    return region_projection(maps["64"], maps["128"], 128)


def test_split_maps_give_each_half_its_whole_component(proj128):
    """The maps masker on the back-projected image: component k = its left part + its right
    part, so both parts carry exactly series k (least squares finds 1, 1, zeros elsewhere)."""
    proj = proj128
    assert proj.matrix.shape == (128, 64) and proj.masker == "NiftiMapsMasker"
    assert proj.rank == 64 and proj.roi_names == load_atlas(128).roi_names
    np.testing.assert_allclose(proj.matrix, np.repeat(np.eye(64), 2, axis=0), atol=1e-4)


@pytest.mark.parametrize("n_regions", [128, 256])
def test_projection_equals_nilearn_on_the_back_projected_image(maps, proj128, n_regions, rng):
    """The (P, 64) matrix gives what nilearn's masker gives on a real 4-D image made from 64
    region series through the maps (the long way round, done here for 6 volumes)."""
    from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker

    proj = (proj128 if n_regions == 128 else
            region_projection(maps["64"], maps["256"], 256, smoothing_fwhm_mm=6.0))
    y = rng.standard_normal((6, 64))
    src = nib.load(maps["64"])
    voxels = np.einsum("xyzk,tk->xyzt", src.get_fdata(dtype=np.float32), y)
    img = nib.Nifti1Image(voxels.astype(np.float32), src.affine)
    if n_regions == 128:
        masker = NiftiMapsMasker(maps["128"], standardize=None, detrend=False)
    else:
        masker = NiftiLabelsMasker(maps["256"], standardize=None, detrend=False,
                                   smoothing_fwhm=6.0)
    direct = masker.fit_transform(img)
    np.testing.assert_allclose(proj.apply(y), direct, rtol=1e-4, atol=1e-6 * np.abs(direct).max())
    assert proj.rank <= 64


@pytest.mark.slow
def test_simulator_writes_128_region_targets_that_train_accepts(maps, tmp_path):
    """--n-regions 128: the EEG files are byte for byte those of the 64-region run with the same
    seed, the targets are 128 DiFuMo-128 columns of rank <= 64 (each split half is its
    component's real series), the ceiling has 128 rows, and `rtbold train` (ridge) fits on it."""
    from rtbold.cli import main
    from rtbold.io.fmri import read_region_tsv
    from rtbold.models import load_bundle
    from rtbold.training import load_train_config, train

    common = ["--subjects", "3", "--n-volumes", "40", "--seed", "5", "--bold-scans", "0-2",
              "--no-progress"]
    assert main(["simulate", str(tmp_path / "d64"), *common]) == 0
    assert main(["simulate", str(tmp_path / "d128"), *common, "--n-regions", "128",
                 "--source-maps", str(maps["64"]), "--target-maps", str(maps["128"])]) == 0
    for sub in ("sub-01", "sub-02", "sub-03"):
        for ext in ("eeg", "vhdr", "vmrk"):
            name = f"{sub}/eeg/{sub}_task-rest_run-01_eeg.{ext}"
            assert (tmp_path / "d64" / name).read_bytes() == (tmp_path / "d128" / name).read_bytes()
    assert not list((tmp_path / "d128").rglob("*DiFuMo64_timeseries.tsv"))
    t64 = read_region_tsv(tmp_path / "d64/sub-01/func/sub-01_task-rest_run-01_atlas-DiFuMo64_"
                                     "timeseries.tsv")
    tsv = tmp_path / "d128/sub-01/func/sub-01_task-rest_run-01_atlas-DiFuMo128_timeseries.tsv"
    t128 = read_region_tsv(tsv)
    assert t128.roi_names == list(load_atlas(128).roi_names) and t128.data.shape == (40, 128)
    assert np.linalg.matrix_rank(t128.data) <= 64
    z64 = (t64.data - t64.data.mean(0)) / t64.data.std(0, ddof=1)
    np.testing.assert_allclose(t128.data[:, 0::2], z64, atol=1e-3)  # each part = its component
    np.testing.assert_allclose(t128.data[:, 1::2], z64, atol=1e-3)
    side = json.loads(tsv.with_suffix(".json").read_text(encoding="utf-8"))
    assert side["Atlas"] == "DiFuMo128" and "rank" in side["Source"] and "<= 64" in side["Source"]
    deriv = tmp_path / "d128" / "derivatives" / "rtbold-sim"
    assert (deriv / "ceiling.tsv").read_text(encoding="utf-8").count("\n") == 129
    proj = json.loads((deriv / "projection.json").read_text(encoding="utf-8"))
    assert proj["Masker"] == "NiftiMapsMasker" and proj["Rank"] == 64
    knobs = json.loads((deriv / "knobs.json").read_text(encoding="utf-8"))["config"]
    assert knobs["n_regions"] == 128
    with np.load(next(deriv.rglob("sub-01*desc-latent.npz")), allow_pickle=False) as z:
        assert z["explainable_bold"].shape == (40, 128) and len(z["roi_names"]) == 128
        assert z["u_eeg"].shape[1] == 64 and len(z["latent_roi_names"]) == 64
    # the 64-region output keeps its old form (no new knobs in knobs.json)
    knobs64 = json.loads((tmp_path / "d64/derivatives/rtbold-sim/knobs.json").read_text())
    assert "n_regions" not in knobs64["config"]

    cfg_path = tmp_path / "ridge128.toml"
    cfg_path.write_text(f'[data]\nroot = "{tmp_path / "d128"}"\nn_regions = 128\n'
                        '[model]\nname = "ridge"\n[train]\nsplit_ratios = [1, 1, 1]\n'
                        'device = "cpu"\nprogress = false\n'
                        f'[output]\ndir = "{tmp_path / "run128"}"\n', encoding="utf-8")
    res = train(load_train_config(cfg_path))
    _, meta = load_bundle(res.bundle)
    assert meta.roi_names == list(load_atlas(128).roi_names) and meta.atlas == "DiFuMo128"
    assert "its 128-region targets are derived from DiFuMo-64 series" in meta.notes
    assert "rank 64 (<= 64)" in meta.notes
    assert meta.metrics["test"]["tcorr"] is not None


def test_projected_summary_and_ceiling_use_the_target_atlas(maps, tmp_path):
    """256 labels through the API: the ceiling is per DiFuMo-256 region, networks from that
    table, and the simulator's ceiling equals corr(targets, projected explainable BOLD)."""
    cfg = simulator_config({"n_subjects": 1, "n_volumes": 30, "seed": 2, "n_regions": 256,
                            "source_maps": str(maps["64"]), "target_maps": str(maps["256"])})
    summary = simulate_dataset(tmp_path / "d", cfg, progress=False)
    deriv = tmp_path / "d" / "derivatives" / "rtbold-sim"
    with np.load(next(deriv.rglob("*desc-latent.npz")), allow_pickle=False) as z:
        ex, ceiling = z["explainable_bold"], z["ceiling"]
    from rtbold.io.fmri import read_region_tsv

    y = read_region_tsv(next((tmp_path / "d").rglob("*DiFuMo256_timeseries.tsv"))).data
    r = [np.corrcoef(y[:, j], ex[:, j])[0, 1] for j in range(256)]
    np.testing.assert_allclose(ceiling, r, atol=1e-5)
    assert summary.ceiling_mean == pytest.approx(float(np.mean(r)), abs=1e-5)
    atlas = load_atlas(256)
    assert set(summary.ceiling_by_network) == set(atlas.networks)
    assert "Limbic" in summary.ceiling_by_network  # DiFuMo-256 has limbic components


def test_target_options_are_checked_with_their_names(maps, tmp_path):
    with pytest.raises(ConfigError, match="n_regions = 128 .*source_maps .*target_maps"):
        simulator_config({"n_regions": 128})
    with pytest.raises(ConfigError, match="only with simulate.n_regions = 128 or 256"):
        simulator_config({"target_maps": str(maps["128"])})
    with pytest.raises(ValueError, match="target_maps .*split128.nii.gz has 128 maps; .*"
                                         "n_regions = 256 needs the DiFuMo-256 maps"):
        region_projection(maps["64"], maps["128"], 256)
    with pytest.raises(ValueError, match="source_maps .*split128.nii.gz: expected the DiFuMo-64"):
        region_projection(maps["128"], maps["128"], 128)
    with pytest.raises(FileNotFoundError, match="target_maps = .*nope.nii.gz.*neither ships nor "
                                                "downloads"):
        region_projection(maps["64"], tmp_path / "nope.nii.gz", 128)
    labels = nib.load(maps["256"])
    cut = np.asarray(labels.dataobj).copy()
    cut[cut == 7] = 0
    nib.save(nib.Nifti1Image(cut, labels.affine), tmp_path / "cut.nii.gz")
    with pytest.raises(ValueError, match="needs labels 1-256; missing \\[7\\]"):
        region_projection(maps["64"], tmp_path / "cut.nii.gz", 256)
