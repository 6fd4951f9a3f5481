"""What the views need to know about the P regions: names, networks, display order and positions."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rtbold.atlas import (NETWORK_ORDER, SUPPORTED_N_REGIONS, RegionMarker, load_atlas,
                          normalise_region_name)

logger = logging.getLogger(__name__)


@dataclass
class RegionInfo:
    """Region names with their Yeo-7 networks and, for DiFuMo tables, glass-brain positions.

    Attributes
    ----------
    names : list of str
    networks : list of str
        Readable network names (``rtbold.atlas.NETWORK_ORDER``).
    non_neural : np.ndarray of bool
    display : list of RegionMarker | None
        Per region its glass-brain marker(s) in MNI mm (:attr:`rtbold.atlas.Atlas.markers`,
        computed from the DiFuMo maps at 64, 128 and 256 components), or None when the names are
        not those of a DiFuMo table.
    atlas_name : str
    """

    names: list[str]
    networks: list[str]
    non_neural: np.ndarray
    display: list[RegionMarker] | None = None
    atlas_name: str = "custom"
    _order: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.names)

    def order(self) -> np.ndarray:
        """Region indices sorted by network (display order), stable within a network."""
        if self._order is None:
            rank = {n: i for i, n in enumerate(NETWORK_ORDER)}
            self._order = np.array(sorted(range(self.n),
                                          key=lambda i: (rank.get(self.networks[i], 99), i)))
        return self._order

    def networks_present(self) -> list[str]:
        """Networks with at least one region, in display order."""
        present = set(self.networks)
        return [n for n in NETWORK_ORDER if n in present] + sorted(present - set(NETWORK_ORDER))

    def regions_in(self, network: str) -> list[int]:
        return [i for i, n in enumerate(self.networks) if n == network]

    def index(self, name: str) -> int:
        """Index of a region by name (case-insensitive, ASCII apostrophe accepted)."""
        key = normalise_region_name(name)
        for i, nm in enumerate(self.names):
            if normalise_region_name(nm) == key:
                return i
        raise KeyError(f"No region named {name!r} among the {self.n} displayed regions "
                       f"({self.atlas_name}).")

    def default_selection(self) -> list[int]:
        """One grey-matter region per network (the first in component order)."""
        sel = []
        for net in self.networks_present():
            members = self.regions_in(net)
            idx = [i for i in members if not self.non_neural[i]] or members
            sel.append(idx[0])
        return sel

    def resolve(self, items: Sequence[str | int]) -> list[int]:
        """Region indices for names, network names or indices (networks expand to their regions)."""
        out: list[int] = []
        for it in items:
            if isinstance(it, (int, np.integer)):
                if not 0 <= int(it) < self.n:
                    raise IndexError(f"Region index {it} out of range 0..{self.n - 1}.")
                out.append(int(it))
            elif it in self.networks_present():
                out.extend(self.regions_in(it))
            else:
                out.append(self.index(it))
        seen = set()
        return [i for i in out if not (i in seen or seen.add(i))]


def region_info(roi_names: Sequence[str] | None = None, networks: Sequence[str] | None = None,
                n_regions: int | None = None) -> RegionInfo:
    """Build :class:`RegionInfo` from an engine's ROI names (or a DiFuMo size).

    When the names are those of a DiFuMo table (any order), networks, non-neural flags and
    glass-brain markers come from :func:`rtbold.atlas.load_atlas`; otherwise the given ``networks`` (or
    ``"Subcortical/other"``) are used and the glass brain has no positions.
    """
    if roi_names is None:
        atlas = load_atlas(n_regions or 64)
        roi_names = atlas.roi_names
    names = [str(n) for n in roi_names]
    p = len(names)
    if p in SUPPORTED_N_REGIONS:
        atlas = load_atlas(p)
        lookup = {normalise_region_name(n): i for i, n in enumerate(atlas.roi_names)}
        idx = [lookup.get(normalise_region_name(n)) for n in names]
        if all(i is not None for i in idx):
            disp = None if atlas.markers is None else [atlas.markers[i] for i in idx]
            return RegionInfo(names, [atlas.networks[i] for i in idx],
                              np.asarray(atlas.non_neural)[idx], disp, atlas.name)
        logger.info("ROI names are not the DiFuMo-%d names; no atlas positions.", p)
    nets = list(networks) if networks is not None and len(networks) == p \
        else ["Subcortical/other"] * p
    return RegionInfo(names, nets, np.zeros(p, bool), None, "custom")
