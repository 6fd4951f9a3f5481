"""Reading fMRI region time series (the model's targets).

Three sources: (a) TSV tables with one column per region and a JSON sidecar giving the TR,
(b) the NeuroBOLT release's pickled tables, read only when the user says they trust them (and
converted to TSV once with :func:`convert_neurobolt_pickles`), and (c) 4-D NIfTI BOLD images with
an atlas image given by path, through nilearn's maskers with motion confounds.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Columns of the NeuroBOLT tables that are not DiFuMo regions.
GLOBAL_COLUMNS = ("global signal clean", "global signal raw")


@dataclass
class RegionSeries:
    """Region time series of one fMRI scan.

    Attributes
    ----------
    data : array, shape (n_volumes, n_regions)
    roi_names : list of str
    tr : float
        Repetition time (s).
    source : Path | None
    """

    data: np.ndarray
    roi_names: list[str]
    tr: float
    source: Path | None = None

    @property
    def label(self) -> str:
        return str(self.source) if self.source is not None else "region series"

    @property
    def n_volumes(self) -> int:
        return self.data.shape[0]

    def select(self, roi_names: list[str]) -> "RegionSeries":
        """The given regions, in the given order (names matched exactly, apostrophes normalised)."""
        from ..atlas import normalise_region_name as key

        index = {key(n): i for i, n in enumerate(self.roi_names)}
        missing = [n for n in roi_names if key(n) not in index]
        if missing:
            raise ValueError(f"{self.label} lacks region column(s) {missing[:5]}"
                             f"{' and more' if len(missing) > 5 else ''} ({len(missing)} of "
                             f"{len(roi_names)}). Its columns are {self.roi_names[:4]}...")
        cols = [index[key(n)] for n in roi_names]
        return RegionSeries(self.data[:, cols], list(roi_names), self.tr, self.source)


def sidecar_path(tsv: Path) -> Path:
    """The JSON sidecar of a TSV (``x.tsv`` -> ``x.json``)."""
    return tsv.with_suffix(".json")


def read_region_tsv(path: str | Path, *, tr: float | None = None) -> RegionSeries:
    """Read a region-series TSV (header = region names) and the TR from its JSON sidecar.

    Parameters
    ----------
    path : path-like
        The TSV file.
    tr : float | None
        Expected TR (s). When given and the sidecar disagrees, an error says so; when the sidecar
        is absent, this TR is used.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Region series file {path} does not exist.")
    with path.open(encoding="utf-8", newline="") as fid:
        rows = list(csv.reader(fid, delimiter="\t"))
    if len(rows) < 2:
        raise ValueError(f"{path} has no data rows; expected a header of region names and one row "
                         "per fMRI volume.")
    header = rows[0]
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise ValueError(f"{path} has duplicate column names {dup[:5]}. DiFuMo-128/256 reuse a "
                         "few names for different components; rtbold names them with their "
                         "component number, e.g. 'Cuneus (component 97)' (see "
                         "rtbold.atlas.load_atlas(256).roi_names): rename those columns.")
    try:
        data = np.array([[float(v) if v not in ("n/a", "") else np.nan for v in r] for r in rows[1:]])
    except ValueError as err:
        raise ValueError(f"{path}: non-numeric value in the region series ({err}).") from None
    if data.ndim != 2 or data.shape[1] != len(header):
        bad = next(i for i, r in enumerate(rows[1:], start=2) if len(r) != len(header))
        raise ValueError(f"{path}: line {bad} has a different number of columns than the header.")
    side = sidecar_path(path)
    side_tr = None
    if side.is_file():
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{side} is not valid JSON: {err}") from None
        if "RepetitionTime" not in meta:
            raise ValueError(f"{side} lacks the field 'RepetitionTime' (the TR in seconds).")
        side_tr = meta["RepetitionTime"]
        if not isinstance(side_tr, (int, float)) or not 0.1 <= side_tr <= 10:
            raise ValueError(f"{side}: RepetitionTime {side_tr!r} is not a TR in seconds "
                             "(expected a number between 0.1 and 10).")
    if side_tr is not None and tr is not None and abs(side_tr - tr) > 1e-6:
        raise ValueError(f"{side} says RepetitionTime {side_tr} s but {tr} s was expected "
                         "(config key tr). Fix whichever is wrong.")
    final_tr = side_tr if side_tr is not None else tr
    if final_tr is None:
        raise ValueError(f"No TR for {path}: add a JSON sidecar {side.name} with "
                         '{"RepetitionTime": <seconds>} or pass the TR.')
    return RegionSeries(data, header, float(final_tr), path)


def write_region_tsv(path: str | Path, series: RegionSeries, **sidecar) -> Path:
    """Write region series as TSV + JSON sidecar (``RepetitionTime`` and any extra fields)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fid:
        w = csv.writer(fid, delimiter="\t", lineterminator="\n")
        w.writerow(series.roi_names)
        for row in series.data:
            w.writerow(["n/a" if np.isnan(v) else f"{v:.6g}" for v in row])
    meta = {"RepetitionTime": series.tr, **sidecar}
    sidecar_path(path).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
    return path


def read_neurobolt_pickle(path: str | Path, *, trust_pickle: bool = False,
                          tr: float = 2.1) -> RegionSeries:
    """Read one NeuroBOLT release table (``*_difumo64_roi.pkl``, a pickled pandas DataFrame).

    Unpickling runs code from the file, so it happens only with ``trust_pickle=True`` (the CLI's
    ``--trust-pickle``). Convert the release to TSV once with :func:`convert_neurobolt_pickles`.
    """
    path = Path(path)
    if not trust_pickle:
        raise ValueError(
            f"{path} is a pickle; reading it would run code stored in the file. If you trust its "
            "origin, convert the folder once: `rtbold convert-neurobolt --trust-pickle ROOT OUT`, "
            "then use the TSV files."
        )
    import pandas as pd

    df = pd.read_pickle(path)
    if not hasattr(df, "columns"):
        raise ValueError(f"{path} does not hold a table (got {type(df).__name__}).")
    return RegionSeries(df.to_numpy(dtype=np.float64), [str(c) for c in df.columns], tr, path)


def convert_neurobolt_pickles(root: str | Path, out: str | Path, *, trust_pickle: bool = False,
                              tr: float = 2.1) -> list[Path]:
    """Convert every ``fMRI_difumo*/*.pkl`` of a NeuroBOLT release to TSV + JSON in ``out``.

    The EEG files stay where they are; :func:`rtbold.datasets.discover_scans` pairs them with the
    converted tables when ``out`` is the release's ``fMRI_difumo64_tsv`` folder or any folder given
    to it.
    """
    root, out = Path(root), Path(out)
    pkls = sorted(p for d in ("fMRI_difumo64", "fMRI_difumo") for p in (root / d).glob("*.pkl"))
    if not pkls:
        raise FileNotFoundError(f"No fMRI_difumo64/*.pkl or fMRI_difumo/*.pkl under {root}.")
    written = []
    for pkl in pkls:
        series = read_neurobolt_pickle(pkl, trust_pickle=trust_pickle, tr=tr)
        written.append(write_region_tsv(out / (pkl.stem + ".tsv"), series, Source=pkl.name,
                                        Atlas="DiFuMo64"))
    logger.info("Converted %d NeuroBOLT tables to %s", len(written), out)
    return written


def read_region_npz(path: str | Path, scan: int | str = 0) -> RegionSeries:
    """One scan from an npz like rtbold's packaged real data (``data``, ``columns``, ``tr_s``)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("data", "columns", "tr_s") if k not in z]
        if missing:
            raise ValueError(f"{path} lacks array(s) {missing}; expected data [scans, TRs, regions], "
                             "columns and tr_s.")
        data, columns = z["data"], [str(c) for c in z["columns"]]
        tr = round(float(z["tr_s"]), 6)  # stored as float32
        scans = [str(s) for s in z["scans"]] if "scans" in z else [str(i) for i in range(len(data))]
    idx = scans.index(scan) if isinstance(scan, str) else int(scan)
    return RegionSeries(np.asarray(data[idx], dtype=np.float64), columns, tr, path)


def field_of_view_coverage(atlas_img, bold_img, *, labels: bool = False) -> np.ndarray:
    """Share of each region's map mass (or parcel voxels) inside a BOLD image's field of view.

    The field of view is the box of the BOLD voxels (half a voxel beyond the outer centres),
    taken in world (scanner/MNI) coordinates; no resampling is involved.

    Parameters
    ----------
    atlas_img : nibabel image
        4-D maps (one volume per region) or, with ``labels``, a 3-D label image (1..P).
    bold_img : nibabel image
        The BOLD image (its first three dimensions and affine are used).

    Returns
    -------
    np.ndarray
        (P,) shares in [0, 1].
    """
    from nibabel.affines import apply_affine

    shape = atlas_img.shape[:3]
    # voxels in Fortran order, the order of NIfTI data on disk: no transposed copy of the maps
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1, order="F").T
    to_bold = np.linalg.inv(bold_img.affine) @ atlas_img.affine
    pos = apply_affine(to_bold, ijk)
    extent = np.asarray(bold_img.shape[:3], dtype=np.float64)
    inside = np.all((pos > -0.5) & (pos < extent - 0.5), axis=1)
    if labels:
        lab = np.asarray(atlas_img.dataobj).reshape(-1, order="F").astype(np.int64)
        n = int(lab.max())
        total = np.bincount(lab, minlength=n + 1)[1:]
        within = np.bincount(lab[inside], minlength=n + 1)[1:]
    else:
        data = np.asarray(atlas_img.dataobj, dtype=np.float32)
        mass = np.abs(data.reshape(-1, data.shape[3], order="F"))
        total, within = mass.sum(0), inside.astype(np.float32) @ mass
    return within / np.where(total > 0, total, 1.0)


def atlas_masker(atlas_maps: str | Path, ref_img, roi_names: list[str], *, labels: bool = False,
                 min_coverage: float = 0.5, what: str = "the BOLD image", **masker_kw):
    """A nilearn masker on atlas maps given by path, for images on ``ref_img``'s grid.

    Parameters
    ----------
    atlas_maps : path-like
        4-D probabilistic maps (NiftiMapsMasker) or, with ``labels``, a 3-D label image
        (NiftiLabelsMasker).
    ref_img : nibabel image
        An image of the data (its grid and field of view).
    roi_names : list of str
        Names of the atlas regions, in order.
    min_coverage : float
        Regions with a smaller share of their map inside ``ref_img``'s field of view are listed
        in ``outside`` (their values are numerical noise: set them to NaN), with a warning.
    what : str
        How to name the data in messages.
    **masker_kw
        Passed to the masker (detrending, standardising, ``t_r``).

    Returns
    -------
    masker : NiftiMapsMasker | NiftiLabelsMasker
        Not fitted.
    outside : np.ndarray
        Indices of the regions outside the field of view.
    """
    import nibabel as nib
    from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker

    atlas_maps = Path(atlas_maps)
    if not atlas_maps.is_file():
        raise FileNotFoundError(f"NIfTI file {atlas_maps} does not exist.")
    atlas_img = nib.load(atlas_maps)
    coverage = field_of_view_coverage(atlas_img, ref_img, labels=labels)
    if coverage.size != len(roi_names):
        raise ValueError(f"{atlas_maps} has {coverage.size} regions but {len(roi_names)} names were "
                         "given; pass the names of this atlas.")
    if not np.any(coverage >= min_coverage):
        raise ValueError(f"No region of {atlas_maps} lies inside {what} (largest share of a "
                         f"region in its field of view: {coverage.max():.0%}): is the BOLD image "
                         "in the atlas's space (MNI for DiFuMo), after registration?")
    masker = (NiftiLabelsMasker(atlas_img, **masker_kw) if labels
              else NiftiMapsMasker(atlas_img, **masker_kw))
    # A region mostly outside the image's field of view has no measured signal: its
    # least-squares value is numerical noise that z-scoring would make look like one.
    outside = np.flatnonzero(coverage < min_coverage)
    if outside.size:
        logger.warning("%d of %d regions have less than %.0f%% of their map inside the field of "
                       "view of %s and are left empty (n/a): %s%s", outside.size, coverage.size,
                       100 * min_coverage, what,
                       ", ".join(f"{roi_names[i]} ({coverage[i]:.0%})" for i in outside[:5]),
                       " ..." if outside.size > 5 else "")
    return masker, outside


def extract_region_series(bold: str | Path, atlas_maps: str | Path, roi_names: list[str], *,
                          confounds: str | Path | None = None, tr: float | None = None,
                          labels: bool = False, min_coverage: float = 0.5) -> RegionSeries:
    """Region series from a 4-D NIfTI BOLD image and an atlas image, as NeuroBOLT made them.

    Parameters
    ----------
    bold : path-like
        4-D BOLD NIfTI.
    atlas_maps : path-like
        A 4-D probabilistic atlas (e.g. DiFuMo maps, one volume per region: NiftiMapsMasker) or,
        with ``labels=True``, a 3-D label image (NiftiLabelsMasker).
    roi_names : list of str
        Names of the atlas regions in order (e.g. ``rtbold.atlas.load_atlas(64).roi_names``).
    confounds : path-like | None
        Motion parameters (one row per volume, e.g. 6 columns from AFNI volreg; whitespace or
        tab separated, an optional header) regressed out, standardised.
    tr : float | None
        TR (s); read from the NIfTI header when None (converted from ms or µs when the header's
        time unit says so).
    labels : bool
        ``atlas_maps`` is a 3-D label image.
    min_coverage : float
        Regions with a smaller share of their map (or parcel) inside the BOLD image's field of
        view are left empty (NaN).

    Returns
    -------
    RegionSeries
        Detrended, z-scored series, one column per region; regions outside the field of view
        (see ``min_coverage``) are NaN (written as ``n/a``), with a warning naming them.
    """
    import nibabel as nib

    bold, atlas_maps = Path(bold), Path(atlas_maps)
    for p in (bold, atlas_maps):
        if not p.is_file():
            raise FileNotFoundError(f"NIfTI file {p} does not exist.")
    img = nib.load(bold)
    if img.ndim != 4:
        raise ValueError(f"{bold} is {img.ndim}-D; a BOLD series must be 4-D.")
    if tr is None:
        tr = float(img.header.get_zooms()[3])
        unit = img.header.get_xyzt_units()[1] if hasattr(img.header, "get_xyzt_units") else "sec"
        # float32 in the header (2.1 is stored as 2.0999999): keep the TR the user set
        tr = round(tr / {"msec": 1e3, "usec": 1e6}.get(unit, 1.0), 6)
        if not 0.1 <= tr <= 10:
            raise ValueError(f"{bold}: header TR {tr:g} s looks wrong (a TR in ms with the unit "
                             "set to seconds?); pass the TR explicitly (--tr).")
    conf = None
    if confounds is not None:
        conf = np.loadtxt(confounds, comments="#", ndmin=2)
        if conf.shape[0] != img.shape[3]:
            raise ValueError(f"{confounds} has {conf.shape[0]} rows but {bold} has {img.shape[3]} "
                             "volumes.")
    kw = dict(detrend=True, standardize="zscore_sample", standardize_confounds=True, t_r=tr)
    masker, outside = atlas_masker(atlas_maps, img, roi_names, labels=labels,
                                   min_coverage=min_coverage, what=str(bold), **kw)
    data = np.asarray(masker.fit_transform(img, confounds=conf), dtype=np.float64)
    if data.shape[1] != len(roi_names):
        raise ValueError(f"{atlas_maps} gave {data.shape[1]} regions but {len(roi_names)} names were "
                         "given; pass the names of this atlas.")
    data[:, outside] = np.nan
    return RegionSeries(data, list(roi_names), tr, bold)
