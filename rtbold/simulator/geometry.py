"""Head geometry: regions, cortical sources and electrodes in one frame, and the coupling priors.

Coordinate frames. Region coordinates are MNI (mm, origin at the anterior commissure); the
montage is MNE ``standard_1005`` head coordinates (m, origin between the pre-auricular points).
Both heads are treated as spheres: we fit a sphere to the 26 electrodes (centre ``c_e``, radius
``R_e``) and map an MNI point ``p`` to ``c_e + (p - C_MNI) * R_e / R_MNI`` with ``C_MNI = (0, -18,
5) mm`` (the centre of the MNI brain's bounding sphere) and ``R_MNI = 90 mm`` (the MNI scalp
radius). This places the occipital pole about 13 mm and the vertex cortex about 20 mm under the
electrodes, and the thalamus about 85 mm deep, which is what matters for volume conduction. It is
an approximation for a simulator, not a head model.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

from ..atlas import load_atlas
from ..montage import load_montage

C_MNI = np.array([0.0, -18.0, 5.0])
R_MNI = 90.0
BANDS: tuple[tuple[str, float, float], ...] = (
    ("delta", 1.0, 4.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 12.0), ("beta", 13.0, 30.0),
    ("gamma", 30.0, 45.0),
)
BAND_NAMES = tuple(b[0] for b in BANDS)


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through ``points`` (n, 3): centre and radius."""
    a = np.c_[2 * points, np.ones(len(points))]
    b = (points ** 2).sum(1)
    sol = np.linalg.lstsq(a, b, rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


@dataclass(frozen=True)
class Geometry:
    """Electrodes and region markers in the electrode (head) frame, metres."""

    electrodes: np.ndarray          # (26, 3)
    centre: np.ndarray              # (3,) sphere centre of the electrodes
    radius: float                   # sphere radius (m)
    region_points: tuple[np.ndarray, ...]  # per region (k, 3): 1 or 2 markers (bilateral pairs)
    region_depth_mm: np.ndarray     # (64,) distance from the scalp sphere

    def mni_to_head(self, p_mm: np.ndarray) -> np.ndarray:
        return self.centre + (np.asarray(p_mm) - C_MNI) / 1000.0 * (self.radius / (R_MNI / 1000.0))


@lru_cache(maxsize=1)
def load_geometry() -> Geometry:
    montage = load_montage()
    atlas = load_atlas(64)
    centre, radius = fit_sphere(montage.positions)
    scale = radius / (R_MNI / 1000.0)
    pts, depth = [], []
    for d in atlas.display:
        if d["mode"] == "bilateral_pair":
            mni = np.array([[-d["x"], d["y"], d["z"]], [d["x"], d["y"], d["z"]]])
        else:
            mni = np.array([[d["x"], d["y"], d["z"]]])
        head = centre + (mni - C_MNI) / 1000.0 * scale
        pts.append(head)
        depth.append(1000.0 * (radius - np.linalg.norm(head - centre, axis=1).max()))
    return Geometry(montage.positions, centre, radius, tuple(pts), np.clip(depth, 2.0, None))


# --- literature priors ----------------------------------------------------------------------

_BAND_WORDS = {"delta": "delta", "theta": "theta", "alpha": "alpha", "beta": "beta",
               "gamma": "gamma"}


def _midpoint(text: str) -> float | None:
    import re

    nums = [float(x) for x in re.findall(r"[-+]?\d*\.\d+|[-+]?\d+", text)]
    if not nums:
        return None
    return abs(float(np.mean(nums[:2])))


@lru_cache(maxsize=1)
def coupling_priors() -> dict[tuple[str, str], float]:
    """Signed coupling size per (network key, band) from ``eeg_band_bold_coupling_priors.csv``.

    Keys are DiFuMo Yeo-7 codes, ``"Thalamus"`` for the thalamus row and ``"all"`` for the
    any-cortical-ROI gamma row; the value is the signed midpoint of ``approx_r`` ("weak" = 0.05).
    """
    text = files("rtbold.data").joinpath("eeg_band_bold_coupling_priors.csv").read_text("utf-8")
    out: dict[tuple[str, str], float] = {}
    for row in csv.DictReader(text.splitlines()):
        band = next((b for w, b in _BAND_WORDS.items() if row["band"].lower().startswith(w)), None)
        if band is None:  # the vigilance index row: implemented as the state variable
            continue
        key = row["difumo_yeo7_label"]
        if "thalamus" in row["network"].lower():
            key = "Thalamus"
        size = _midpoint(row["approx_r"])
        if size is None:
            size = 0.05
        sign = -1.0 if row["sign"].lower().startswith("negative") else 1.0
        out[(key, band)] = sign * size
    return out


_CODE = {"Visual": "VisCent", "Somatomotor": "SomMotA", "Dorsal attention": "DorsAttnB",
         "Salience/ventral attention": "SalVentAttnA", "Frontoparietal control": "ContA",
         "Default": "DefaultB", "Limbic": "LimbicA", "Subcortical/other": "No network found"}


def region_prior_matrix() -> np.ndarray:
    """(n_bands, 64) signed prior coupling of each region's drive to each band's envelope.

    Regions of no network without a literature row (cerebellum, fusiform, basal ganglia, CSF,
    sinus) get a weak delta/gamma coupling of fixed alternating sign: weaker than any prior, and
    it keeps every region in the EEG so the per-region ceiling is defined.
    """
    atlas = load_atlas(64)
    pri = coupling_priors()
    mat = np.zeros((len(BANDS), 64))
    for r, (name, net) in enumerate(zip(atlas.roi_names, atlas.networks)):
        code = "Thalamus" if name == "Thalamus" else _CODE[net]
        for b, band in enumerate(BAND_NAMES):
            mat[b, r] = pri.get((code, band), 0.0)
            if band == "gamma" and code not in ("Thalamus", "No network found"):
                mat[b, r] = mat[b, r] or pri.get(("all", "gamma"), 0.05)
        if not mat[:, r].any():
            sign = 1.0 if r % 2 == 0 else -1.0
            mat[BAND_NAMES.index("delta"), r] = 0.04 * sign
            mat[BAND_NAMES.index("gamma"), r] = 0.03
    return mat
