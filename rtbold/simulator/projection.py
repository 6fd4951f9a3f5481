"""DiFuMo-128 and -256 region series derived from DiFuMo-64 series through the atlas maps.

No real recording at 128 or 256 regions is available here, only the 23 real DiFuMo-64 scans. To
benchmark at another resolution, the simulator derives the targets from those scans:

1. **Back-projection**: the voxel image of a 64-region frame ``y`` is ``sum_k y_k M_k`` with
   ``M_k`` the DiFuMo-64 probabilistic maps (the image that the 64 maps would have extracted
   ``y`` from, without the residual they cannot see).
2. **Extraction** with nilearn, as NeuroBOLT extracted the real series: ``NiftiMapsMasker`` (least
   squares on the maps) for a 4-D probabilistic atlas such as the DiFuMo-128 maps, or
   ``NiftiLabelsMasker`` (mean over each parcel) for a 3-D label image such as the DiFuMo-256
   label volume. Parcels of a label image may lie where every 64 map is zero (white matter, fluid
   spaces: 9 of the 256), so the back-projected image is smoothed first for labels
   (``smoothing_fwhm_mm``, 6 mm by default); such parcels then carry their neighbours' signal.

Both steps are linear, so the whole path is one (P, 64) matrix, computed once by running the masker
on the DiFuMo-64 maps image itself (the back-projection of the 64 unit frames) and applied to every
scan: the same numbers as masking each back-projected 4-D scan, without writing 575 volumes of
1.3 M voxels per scan. The derived series are then z-scored per scan, as the real ones are.

This is an **approximation**: the derived P series are linear combinations of 64 series, so their
rank is at most 64, and what the 64 maps did not capture of the real voxels is missing. The atlas
maps are read from paths the user gives; rtbold neither packages nor downloads them.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atlas import Atlas, load_atlas

logger = logging.getLogger(__name__)

#: Resolution of the real region series the simulator starts from.
SOURCE_REGIONS = 64


@dataclass(frozen=True)
class RegionProjection:
    """The linear map from DiFuMo-64 region series to another atlas's region series.

    Attributes
    ----------
    matrix : np.ndarray
        (P, 64): ``target = source @ matrix.T`` before z-scoring.
    atlas : Atlas
        The target atlas (DiFuMo-128 or -256).
    source_maps, target_maps : Path
        The map images it was computed from.
    masker : str
        ``"NiftiMapsMasker"`` or ``"NiftiLabelsMasker"``.
    smoothing_fwhm_mm : float | None
        Smoothing of the back-projected image before extraction (labels only).
    """

    matrix: np.ndarray
    atlas: Atlas
    source_maps: Path
    target_maps: Path
    masker: str
    smoothing_fwhm_mm: float | None

    @property
    def roi_names(self) -> tuple[str, ...]:
        return self.atlas.roi_names

    @property
    def rank(self) -> int:
        """Rank of the map (at most 64): the derived series span no more dimensions."""
        return int(np.linalg.matrix_rank(self.matrix))

    def apply(self, series: np.ndarray) -> np.ndarray:
        """(T, 64) DiFuMo-64 series -> (T, P) series of the target atlas (not z-scored)."""
        series = np.asarray(series, dtype=np.float64)
        if series.ndim != 2 or series.shape[1] != self.matrix.shape[1]:
            raise ValueError(f"expected (T, {self.matrix.shape[1]}) DiFuMo-64 series, got "
                             f"{series.shape}.")
        return series @ self.matrix.T

    def describe(self) -> str:
        """One sentence for sidecars and logs."""
        smooth = (f", the back-projected image smoothed by {self.smoothing_fwhm_mm:g} mm FWHM"
                  if self.smoothing_fwhm_mm else "")
        return (f"back-projected to voxels with the DiFuMo-64 maps ({self.source_maps.name}) and "
                f"extracted with nilearn's {self.masker} on {self.target_maps.name}{smooth}, "
                f"then z-scored per scan: an approximation of rank {self.rank} (<= 64)")


def _check_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not str(path) or not path.is_file():
        raise FileNotFoundError(f"simulate.{what} = {str(path)!r}: no such file. Give the path of "
                                "the DiFuMo map image (rtbold neither ships nor downloads the "
                                "maps; nilearn's fetch_atlas_difumo or templateflow have them).")
    return path


def region_projection(source_maps: str | Path, target_maps: str | Path, n_regions: int, *,
                      smoothing_fwhm_mm: float = 6.0) -> RegionProjection:
    """Compute the DiFuMo-64 -> DiFuMo-``n_regions`` map (see the module notes).

    Parameters
    ----------
    source_maps : path
        The DiFuMo-64 probabilistic maps, 4-D with 64 volumes (component k = volume k - 1).
    target_maps : path
        The DiFuMo-``n_regions`` maps: 4-D with ``n_regions`` volumes, or a 3-D label image with
        labels 1..``n_regions`` (0 = background).
    n_regions : int
        128 or 256.
    smoothing_fwhm_mm : float
        FWHM (mm) of the smoothing of the back-projected image before a label image's parcel
        means (0: none). Not used with 4-D maps.

    Returns
    -------
    RegionProjection
    """
    import nibabel as nib
    from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker

    if n_regions not in (128, 256):
        raise ValueError(f"simulate.n_regions = {n_regions}: derived targets exist for 128 and "
                         "256 regions (64 is the real series itself).")
    source_maps = _check_file(source_maps, "source_maps")
    target_maps = _check_file(target_maps, "target_maps")
    src = nib.load(source_maps)
    if src.ndim != 4 or src.shape[3] != SOURCE_REGIONS:
        raise ValueError(f"simulate.source_maps {source_maps}: expected the DiFuMo-64 maps, a 4-D "
                         f"image with 64 volumes; got shape {src.shape}.")
    tgt = nib.load(target_maps)
    if tgt.ndim == 4:
        if tgt.shape[3] != n_regions:
            raise ValueError(f"simulate.target_maps {target_maps} has {tgt.shape[3]} maps; "
                             f"simulate.n_regions = {n_regions} needs the DiFuMo-{n_regions} maps.")
        masker = NiftiMapsMasker(tgt, standardize=None, detrend=False)
        smoothing = None
    elif tgt.ndim == 3:
        labels = np.unique(np.asarray(tgt.dataobj)).astype(int)
        missing = sorted(set(range(1, n_regions + 1)) - set(labels.tolist()))
        extra = sorted(set(labels.tolist()) - set(range(n_regions + 1)))
        if missing or extra:
            raise ValueError(f"simulate.target_maps {target_maps}: a label image for "
                             f"simulate.n_regions = {n_regions} needs labels 1-{n_regions}; "
                             f"missing {missing[:5]}, unexpected {extra[:5]}.")
        smoothing = float(smoothing_fwhm_mm) or None
        masker = NiftiLabelsMasker(tgt, standardize=None, detrend=False,
                                   smoothing_fwhm=smoothing)
    else:
        raise ValueError(f"simulate.target_maps {target_maps} is {tgt.ndim}-D; give 4-D maps or "
                         "a 3-D label image.")
    logger.info("Projecting DiFuMo-64 series to %d regions: %s on %s", n_regions,
                type(masker).__name__, target_maps)
    with warnings.catch_warnings():  # nilearn notes about resampling and dtype: not our business
        warnings.simplefilter("ignore", UserWarning)
        # Row k is what the masker extracts from map k, the back-projection of unit frame e_k.
        rows = masker.fit_transform(src)
    matrix = np.asarray(rows, dtype=np.float64).T
    if matrix.shape != (n_regions, SOURCE_REGIONS):
        raise ValueError(f"{target_maps} gave {matrix.shape[0]} regions for {n_regions} names.")
    empty = np.flatnonzero(~np.any(matrix != 0, axis=1))
    atlas = load_atlas(n_regions)
    if empty.size:
        raise ValueError(f"simulate.target_maps {target_maps}: {empty.size} region(s) get no "
                         f"signal from the DiFuMo-64 maps, e.g. "
                         f"{[atlas.roi_names[i] for i in empty[:3]]}; raise "
                         "simulate.target_smoothing_mm.")
    return RegionProjection(matrix, atlas, source_maps, target_maps, type(masker).__name__,
                            smoothing)


def zscore_series(x: np.ndarray) -> np.ndarray:
    """Per-column z-score with the sample SD (nilearn's ``zscore_sample``)."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0, ddof=1)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


__all__ = ["RegionProjection", "region_projection", "zscore_series", "SOURCE_REGIONS"]
