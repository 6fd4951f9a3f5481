"""DiFuMo region tables shipped with rtbold (64, 128 and 256 components).

The label tables come from templateflow (Dadi et al. 2020); see README for credits. Region names
are kept exactly as published (``Heschl’s gyrus`` has a typographic apostrophe, U+2019).
``difumo{64,128,256}_coords.csv`` are numbers computed from the DiFuMo maps (centre of mass of
each absolute map, and per hemisphere its mass share and centre; DiFuMo-256 from its label volume,
so approximate); the maps themselves are not packaged.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
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


def _atlas_key(name: str | None) -> str:
    """``DiFuMo64``, ``difumo-64``, ``DiFuMo 64`` -> ``difumo64`` ("" when not given)."""
    return "".join(ch for ch in str(name or "").lower() if ch.isalnum())


@dataclass(frozen=True)
class RegionMatch:
    """Which of a model's regions a measured-BOLD stream carries, matched by name.

    Attributes
    ----------
    index : np.ndarray
        (P,) for each model region, its column in the stream, -1 where the stream lacks it.
    n_stream : int
        Channels of the stream.
    reason : str
        Why nothing is compared ("" when at least one region is).
    model_atlas, stream_atlas : str
        Atlas names as declared ("" when not declared).
    by_name : bool
        False when the stream has no channel labels and was matched by position.
    """

    index: np.ndarray
    n_stream: int
    reason: str = ""
    model_atlas: str = ""
    stream_atlas: str = ""
    by_name: bool = True

    @property
    def n_model(self) -> int:
        return int(self.index.size)

    @property
    def n_common(self) -> int:
        """Model regions with a measured series."""
        return int((self.index >= 0).sum())

    def take(self, values: np.ndarray) -> np.ndarray:
        """(n, n_stream) stream samples -> (n, P) in the model's order, NaN where not measured."""
        values = np.asarray(values, dtype=np.float32).reshape(-1, self.n_stream)
        out = np.full((values.shape[0], self.n_model), np.nan, np.float32)
        ok = self.index >= 0
        out[:, ok] = values[:, self.index[ok]]
        return out

    def describe(self, stream: str) -> str:
        """One sentence for the status panel, the headless line and events.tsv: both counts,
        what is compared and, when nothing is, what to do."""
        def count(n: int, atlas: str) -> str:
            return f"{n} regions" + (f" ({atlas})" if atlas else "")

        theirs, ours = count(self.n_stream, self.stream_atlas), count(self.n_model,
                                                                       self.model_atlas)
        if not self.n_common:
            return (f"measured BOLD from {stream!r} is not compared: the stream has {theirs}, "
                    f"the model predicts {ours}; {self.reason}. To compare, replay region series "
                    f"of the model's atlas (e.g. `rtbold simulate --n-regions {self.n_model} "
                    "...` or `rtbold extract-regions` with its maps) or run a bundle trained on "
                    f"the stream's {self.n_stream} regions.")
        if not self.by_name:
            return (f"measured BOLD from {stream!r}: {self.n_stream} unnamed channels, compared "
                    f"with the model's {self.n_model} regions in order (the stream has no "
                    "channel labels to match by name).")
        if self.n_common == self.n_model:
            extra = self.n_stream - self.n_common
            return (f"measured BOLD from {stream!r}: all {self.n_model} regions of the model, "
                    "matched by name" + (f" ({extra} other stream channels unused)."
                                         if extra else "."))
        return (f"measured BOLD from {stream!r} covers {self.n_common} of the model's "
                f"{self.n_model} regions (matched by name; the stream has {theirs}, the model "
                f"predicts {ours}): the other {self.n_model - self.n_common} have no measured "
                "BOLD.")


def match_regions(model_names: Sequence[str], stream_names: Sequence[str] | None, *,
                  n_stream: int | None = None, model_atlas: str | None = "",
                  stream_atlas: str | None = "") -> RegionMatch:
    """Match a measured stream's channels to a model's regions by name.

    Names are compared with :func:`normalise_region_name`. When both sides declare an atlas and
    the atlases differ (``DiFuMo64`` vs ``DiFuMo128``), nothing is compared: the DiFuMo
    resolutions reuse names for different components. A stream without channel labels is
    compared in order when it has exactly the model's count.

    Parameters
    ----------
    model_names : sequence of str
        The model's regions, in its order.
    stream_names : sequence of str | None
        The stream's channel labels (None: no labels).
    n_stream : int | None
        The stream's channel count (default ``len(stream_names)``).
    model_atlas, stream_atlas : str | None
        Declared atlas names ("" or None: not declared).
    """
    model = [normalise_region_name(str(n)) for n in model_names]
    n_stream = int(n_stream if n_stream is not None else len(stream_names or ()))
    model_atlas, stream_atlas = str(model_atlas or ""), str(stream_atlas or "")
    none = np.full(len(model), -1, dtype=np.int64)

    def refuse(reason: str, by_name: bool = True) -> RegionMatch:
        return RegionMatch(none, n_stream, reason, model_atlas, stream_atlas, by_name)

    if not stream_names:
        if n_stream == len(model):
            return RegionMatch(np.arange(len(model)), n_stream, "", model_atlas, stream_atlas,
                               by_name=False)
        return refuse("its channels have no labels to match by name", by_name=False)
    lookup: dict[str, int] = {}
    for i, name in enumerate(stream_names):
        lookup.setdefault(normalise_region_name(str(name)), i)
    index = np.array([lookup.get(k, -1) for k in model], dtype=np.int64)
    common = int((index >= 0).sum())
    if (model_atlas and stream_atlas and _atlas_key(model_atlas) != _atlas_key(stream_atlas)):
        return refuse(f"{stream_atlas} and {model_atlas} are different atlases"
                      + (f" (the {common} names they share belong to different components)"
                         if common else ""))
    if not common:
        return refuse("they have no region names in common")
    return RegionMatch(index, n_stream, "", model_atlas, stream_atlas)
