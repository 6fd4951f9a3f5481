"""DiFuMo region tables shipped with rtbold (64, 128 and 256 components).

The tables come from templateflow (Dadi et al. 2020); see README for credits. Region names are
kept exactly as published (``Heschl’s gyrus`` has a typographic apostrophe, U+2019).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

#: Readable names of the Yeo-7 codes used in the DiFuMo tables, in display order.
YEO7_NAMES: dict[str, str] = {
    "VisCent": "Visual",
    "SomMotA": "Somatomotor",
    "DorsAttnB": "Dorsal attention",
    "SalVentAttnA": "Salience/ventral attention",
    "LimbicA": "Limbic",
    "ContA": "Frontoparietal control",
    "DefaultB": "Default",
    "No network found": "Subcortical/other",
}
#: Network display order (Yeo's order, "other" last).
NETWORK_ORDER: tuple[str, ...] = tuple(YEO7_NAMES.values())

_NON_NEURAL_WORDS = ("ventricle", "sinus", "cerebrospinal")
SUPPORTED_N_REGIONS = (64, 128, 256)


@dataclass(frozen=True)
class Atlas:
    """A DiFuMo atlas as a table of regions.

    Attributes
    ----------
    n_regions : int
        64, 128 or 256.
    roi_names : tuple of str
        Region names in component order (component 1 first).
    networks : tuple of str
        Readable Yeo-7 network of each region (``"Subcortical/other"`` where none).
    non_neural : np.ndarray of bool
        True for components that are not grey matter signal (ventricles, sinus, CSF-dominated).
    coords : np.ndarray | None
        (n_regions, 3) MNI centre of mass, for DiFuMo-64 only.
    display : list of dict | None
        Glass-brain markers per region for DiFuMo-64: ``{"mode", "x", "y", "z"}`` with ``mode`` in
        ``midline``, ``bilateral_pair``, ``lateralized``.
    """

    n_regions: int
    roi_names: tuple[str, ...]
    networks: tuple[str, ...]
    non_neural: np.ndarray
    coords: np.ndarray | None = None
    display: tuple[dict, ...] | None = None

    @property
    def name(self) -> str:
        """Atlas identifier written into bundles and sidecars, e.g. ``DiFuMo64``."""
        return f"DiFuMo{self.n_regions}"

    def network_order(self) -> np.ndarray:
        """Region indices sorted by network (display order), stable within a network."""
        rank = {n: i for i, n in enumerate(NETWORK_ORDER)}
        return np.array(sorted(range(self.n_regions), key=lambda i: (rank[self.networks[i]], i)))

    def regions_in(self, network: str) -> list[int]:
        """Indices of the regions of one readable network name."""
        if network not in NETWORK_ORDER:
            raise ValueError(f"Unknown network {network!r}; expected one of {list(NETWORK_ORDER)}.")
        return [i for i, n in enumerate(self.networks) if n == network]

    def index(self, roi_name: str) -> int:
        """Index of a region by its exact name (case-insensitive, ASCII apostrophe accepted)."""
        key = normalise_region_name(roi_name)
        for i, name in enumerate(self.roi_names):
            if normalise_region_name(name) == key:
                return i
        raise KeyError(f"No region named {roi_name!r} in {self.name}; see `rtbold.atlas.load_atlas"
                       f"({self.n_regions}).roi_names` for the names.")


def normalise_region_name(name: str) -> str:
    """Key for matching region names: case-insensitive, typographic apostrophe = ASCII one."""
    return name.replace("\u2019", "'").strip().lower()


def _read_table(filename: str, delimiter: str) -> list[dict[str, str]]:
    text = files("rtbold.data").joinpath(filename).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter=delimiter))


@lru_cache(maxsize=None)
def load_atlas(n_regions: int = 64) -> Atlas:
    """Load the DiFuMo table with ``n_regions`` components.

    Parameters
    ----------
    n_regions : int
        64, 128 or 256.

    Returns
    -------
    Atlas
    """
    if n_regions not in SUPPORTED_N_REGIONS:
        raise ValueError(f"DiFuMo has {SUPPORTED_N_REGIONS} components, not {n_regions}.")
    rows = _read_table(f"difumo{n_regions}_labels.tsv", "\t")
    raw = [r["Difumo_names"] for r in rows]
    # DiFuMo-128/256 reuse a few names; region names key TSV columns and bundles, so repeated
    # names get their component number (e.g. "Cuneus (component 97)").
    names = tuple(n if raw.count(n) == 1 else f"{n} (component {r['Component']})"
                  for n, r in zip(raw, rows))
    networks = tuple(YEO7_NAMES[r["Yeo_networks7"]] for r in rows)
    non_neural = np.array([
        any(w in r["Difumo_names"].lower() for w in _NON_NEURAL_WORDS) or float(r["CSF"]) > 0.5
        for r in rows
    ])
    coords = display = None
    if n_regions == 64:
        disp = _read_table("difumo64_display_coords_approx.csv", ",")
        coords = np.array([[float(r["com_x"]), float(r["com_y"]), float(r["com_z"])] for r in disp])
        display = tuple(
            {"mode": r["display_mode"], "x": float(r["display_x"]) if r["display_mode"] != "midline"
             else float(r["com_x"]), "y": float(r["com_y"]), "z": float(r["com_z"])}
            for r in disp
        )
    return Atlas(n_regions, names, networks, non_neural, coords, display)


def load_group_fc() -> np.ndarray:
    """Group-average DiFuMo-64 FC of the real VU resting-state scans (64 x 64)."""
    rows = _read_table("neurobolt_vu_difumo64_group_fc.csv", ",")
    return np.array([[float(v) for k, v in r.items() if k != ""] for r in rows])
