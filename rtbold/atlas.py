"""DiFuMo region tables shipped with rtbold (64, 128 and 256 components).

The label tables come from templateflow (Dadi et al. 2020); see README for credits. Region names
are kept exactly as published (``Heschl’s gyrus`` has a typographic apostrophe, U+2019).
``difumo{64,128,256}_coords.csv`` are numbers computed from the DiFuMo maps (centre of mass of
each absolute map, and per hemisphere its mass share and centre; DiFuMo-256 from its label volume,
so approximate); the maps themselves are not packaged.
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

#: A component is drawn as a left/right pair when each hemisphere holds at least this share of its
#: (absolute) map mass ...
PAIR_MIN_SHARE = 0.25
#: ... and its two hemisphere centres are at least this far apart in x (mm). Medial components
#: (posterior cingulate, precuneus, medial frontal) straddle the midline with hemisphere centres
#: about 5 mm either side of it: one marker at the centre of mass shows them better.
PAIR_MIN_SEPARATION_MM = 16.0


@dataclass(frozen=True)
class RegionMarker:
    """Where the glass brain draws one component (MNI mm), from its map's mass distribution.

    Attributes
    ----------
    points : tuple of (x, y, z)
        Two points (left, right hemisphere centres of mass) for a bilateral component, else one.
    lh_share, rh_share : float
        Share of the component's absolute map mass with x < 0 and x > 0.
    """

    points: tuple[tuple[float, float, float], ...]
    lh_share: float
    rh_share: float

    @property
    def bilateral(self) -> bool:
        """True when the component is drawn as a left/right pair."""
        return len(self.points) == 2

    @property
    def side(self) -> str:
        """``"both hemispheres"``, ``"left"``, ``"right"`` or ``"midline"``."""
        if self.bilateral:
            return "both hemispheres"
        if min(self.lh_share, self.rh_share) >= PAIR_MIN_SHARE:
            return "midline"
        return "left" if self.lh_share > self.rh_share else "right"


def marker_from_coords(row: dict[str, str]) -> RegionMarker:
    """The glass-brain marker of one row of ``difumo{N}_coords.csv``.

    Rule: a component with at least :data:`PAIR_MIN_SHARE` of its mass in each hemisphere and
    hemisphere centres at least :data:`PAIR_MIN_SEPARATION_MM` apart is a left/right pair at the
    two hemisphere centres of mass; a lateralised one (a smaller share on one side) is one marker at
    its dominant hemisphere's centre; a medial one (both shares large, centres close) is one marker
    at the whole map's centre of mass.
    """
    def point(prefix: str) -> tuple[float, float, float]:
        return tuple(float(row[f"{prefix}_{a}"]) for a in "xyz")  # type: ignore[return-value]

    lh, rh = float(row["lh_share"]), float(row["rh_share"])
    if min(lh, rh) >= PAIR_MIN_SHARE:
        left, right = point("lh"), point("rh")
        if right[0] - left[0] >= PAIR_MIN_SEPARATION_MM:
            return RegionMarker((left, right), lh, rh)
        return RegionMarker((point("com"),), lh, rh)
    return RegionMarker((point("lh" if lh > rh else "rh"),), lh, rh)


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
        (n_regions, 3) MNI centre of mass of each component's absolute map (mm), computed from the
        DiFuMo maps (``difumo{N}_coords.csv``; DiFuMo-256 from its label volume, approximate).
    display : list of dict | None
        The older hand-set DiFuMo-64 positions (``difumo64_display_coords_approx.csv``:
        ``{"mode", "x", "y", "z"}`` with ``mode`` in ``midline``, ``bilateral_pair``,
        ``lateralized`` and x from typical positions of the named structure), for DiFuMo-64 only.
        The simulator's head geometry still uses them; the glass brain uses ``markers``.
    markers : tuple of RegionMarker | None
        Glass-brain markers per region computed from the maps (see :func:`marker_from_coords`),
        at every size.
    """

    n_regions: int
    roi_names: tuple[str, ...]
    networks: tuple[str, ...]
    non_neural: np.ndarray
    coords: np.ndarray | None = None
    display: tuple[dict, ...] | None = None
    markers: tuple[RegionMarker, ...] | None = None

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
    table = _read_table(f"difumo{n_regions}_coords.csv", ",")
    if [int(r["component"]) for r in table] != [int(r["Component"]) for r in rows]:
        raise RuntimeError(f"difumo{n_regions}_coords.csv does not list the components of "
                           f"difumo{n_regions}_labels.tsv in order; reinstall rtbold.")
    coords = np.array([[float(r[f"com_{a}"]) for a in "xyz"] for r in table])
    markers = tuple(marker_from_coords(r) for r in table)
    display = None
    if n_regions == 64:
        disp = _read_table("difumo64_display_coords_approx.csv", ",")
        display = tuple(
            {"mode": r["display_mode"], "x": float(r["display_x"]) if r["display_mode"] != "midline"
             else float(r["com_x"]), "y": float(r["com_y"]), "z": float(r["com_z"])}
            for r in disp
        )
    return Atlas(n_regions, names, networks, non_neural, coords, display, markers)


def load_group_fc() -> np.ndarray:
    """Group-average DiFuMo-64 FC of the real VU resting-state scans (64 x 64)."""
    rows = _read_table("neurobolt_vu_difumo64_group_fc.csv", ",")
    return np.array([[float(v) for k, v in r.items() if k != ""] for r in rows])


def atlas_for_regions(roi_names) -> Atlas:
    """The regions ``roi_names`` (a bundle's, in its order) as an :class:`Atlas`.

    Regions are identified by name: names, networks and positions come from the packaged DiFuMo
    table (64, 128 or 256) that holds every name, so a bundle trained on a subset of regions
    (or in another order) gets its own networks right.

    Raises
    ------
    ValueError
        When no packaged DiFuMo table holds all the names (the first unknown ones are listed).
    """
    names = [str(n) for n in roi_names]
    keys = [normalise_region_name(n) for n in names]
    best: list[str] = names
    for n in SUPPORTED_N_REGIONS:
        full = load_atlas(n)
        lookup = {normalise_region_name(r): i for i, r in enumerate(full.roi_names)}
        unknown = [nm for nm, k in zip(names, keys) if k not in lookup]
        if unknown:
            best = unknown if len(unknown) < len(best) else best
            continue
        idx = [lookup[k] for k in keys]
        if idx == list(range(full.n_regions)):
            return full
        pick = np.array(idx)
        return Atlas(len(idx), tuple(full.roi_names[i] for i in idx),
                     tuple(full.networks[i] for i in idx), full.non_neural[pick],
                     None if full.coords is None else full.coords[pick],
                     None if full.display is None else tuple(full.display[i] for i in idx),
                     None if full.markers is None else tuple(full.markers[i] for i in idx))
    raise ValueError(f"Regions {best[:5]} are in no packaged DiFuMo atlas "
                     f"({SUPPORTED_N_REGIONS}); region names must be DiFuMo names.")
