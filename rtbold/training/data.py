"""Training data: discover and prepare the scans, split them into train/val/test (MODEL.md 1.7)
and group dataset items by scan."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError
from .config import DataConfig

logger = logging.getLogger(__name__)


@dataclass
class DataSplit:
    """Prepared scans and, per part, which (scan, volume) items belong to it."""

    scans: list  # list[PreparedScan]
    items: dict[str, list[tuple[int, int]]]
    assignment: dict[str, list[str]]  # part -> scan ids (cross-subject) or all scan ids
    protocol: str

    def scan_ids(self, part: str) -> list[int]:
        return sorted({s for s, _ in self.items[part]})

    def summary(self) -> dict:
        out: dict[str, Any] = {"protocol": self.protocol}
        for part, items in self.items.items():
            ids = sorted({s for s, _ in items})
            out[part] = {
                "scans": [scan_id(self.scans[i]) for i in ids],
                "subjects": sorted({self.scans[i].spec.subject for i in ids}),
                "n_windows": len(items),
            }
        return out


def scan_id(scan) -> str:
    """Identifier of a prepared scan: ``<subject>_<scan>`` (``ScanSpec.name``)."""
    return scan.spec.name


def default_channels() -> list[str]:
    from ..montage import load_montage

    return list(load_montage().ch_names)


def resolve_roi_names(data: DataConfig) -> list[str]:
    from ..atlas import load_atlas

    atlas = load_atlas(data.n_regions)
    if not data.roi_names:
        return list(atlas.roi_names)
    return [atlas.roi_names[atlas.index(n)] for n in data.roi_names]


def load_scans(data: DataConfig, ch_names: Sequence[str], roi_names: Sequence[str],
               max_windows: int | None = None) -> list:
    """Discover and prepare every scan under ``data.root``."""
    from ..datasets import discover_scans, prepare_scan

    if data.root is None:
        raise ConfigError("data.root is not set: give the dataset folder in [data] root = '...'.")
    root = Path(data.root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root {root} is not a folder.")
    specs = discover_scans(root, data.layout)
    if not specs:
        raise ValueError(f"No scans found under {root} (layout {data.layout!r}).")
    scans = []
    for spec in specs:
        sc = prepare_scan(spec, list(ch_names), marker=data.marker, policy=data.missing_channels,
                          roi_names=list(roi_names), highpass=data.highpass,
                          artifacts=data.artifacts if data.artifacts.enabled else None)
        if max_windows is not None:
            valid = np.flatnonzero(sc.valid)
            sc.valid = sc.valid.copy()
            sc.valid[valid[max_windows:]] = False
        scans.append(sc)
    logger.info("Prepared %d scans from %s", len(scans), root)
    return scans


def make_split(scans: list, protocol: str, *, split_seed: int = 0,
               ratios: Sequence[int] = (3, 1, 1), gap_s: float = 20.0,
               assignment: dict[str, list[str]] | None = None) -> DataSplit:
    """Assign windows to train/val/test (MODEL.md 1.7).

    ``cross_subject``: subjects grouped 3:1:1 by :func:`rtbold.datasets.cross_subject_split`
    (or by a stored ``assignment`` of scan ids, e.g. from a bundle). ``intra_scan``: each scan's
    valid windows split chronologically 8:1:1 with guard gaps by
    :func:`rtbold.datasets.intra_scan_split`.
    """
    from ..datasets import cross_subject_split, intra_scan_split

    items: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "test": []}
    if protocol == "cross_subject":
        if assignment is None:
            subjects = sorted({s.spec.subject for s in scans})
            if len(subjects) < 3:
                raise ValueError(f"The cross-subject protocol needs at least 3 subjects; the data "
                                 f"has {len(subjects)} ({subjects}). Use train.protocol = "
                                 "'intra_scan' or add subjects.")
            parts = cross_subject_split(subjects, ratios=tuple(ratios), seed=split_seed)
            by_subject = {sub: part for part, subs in parts.items() for sub in subs}
            assignment = {p: [scan_id(s) for s in scans if by_subject.get(s.spec.subject) == p]
                          for p in ("train", "val", "test")}
        where = {sid: part for part, sids in assignment.items() for sid in sids}
        for i, sc in enumerate(scans):
            part = where.get(scan_id(sc))
            if part in items:
                items[part].extend((i, int(k)) for k in np.flatnonzero(sc.valid))
    elif protocol == "intra_scan":
        for i, sc in enumerate(scans):
            valid = np.flatnonzero(sc.valid)
            idx = intra_scan_split(len(valid), sc.tr, gap_s=gap_s)
            for part in items:
                items[part].extend((i, int(valid[j])) for j in np.asarray(idx[part], dtype=int))
        assignment = {p: [scan_id(s) for s in scans] for p in ("train", "val", "test")}
    else:
        raise ValueError(f"Unknown protocol {protocol!r}; expected cross_subject or intra_scan.")
    for part in ("train", "val"):
        if not items[part]:
            raise ValueError(f"The {protocol} split left no {part} windows; add scans or windows.")
    return DataSplit(scans=scans, items=items, assignment=assignment, protocol=protocol)


def targets_of(scans: list, items: Sequence[tuple[int, int]]) -> np.ndarray:
    return np.stack([scans[s].targets[k] for s, k in items]).astype(np.float32)


def per_scan(items: Sequence[tuple[int, int]], *arrays: np.ndarray
             ) -> dict[int, tuple[np.ndarray, ...]]:
    """Group rows of arrays aligned with ``items`` by scan, each in time order."""
    groups: dict[int, list[int]] = {}
    for row, (s, _) in enumerate(items):
        groups.setdefault(s, []).append(row)
    out = {}
    for s, rows in groups.items():
        rows = sorted(rows, key=lambda r: items[r][1])
        out[s] = tuple(a[rows] for a in arrays)
    return out


def networks_for(roi_names: Sequence[str], n_regions: int) -> list[str]:
    """DiFuMo network of each region (the first atlas resolution that knows all the names)."""
    from ..atlas import load_atlas

    for n in (n_regions, 64, 128, 256):
        atlas = load_atlas(n)
        try:
            return [atlas.networks[atlas.index(r)] for r in roi_names]
        except KeyError:
            continue
    return ["Subcortical/other"] * len(roi_names)
