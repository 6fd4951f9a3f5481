"""BOLD region series that drive the simulator: real (semi-synthetic) or synthetic."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..atlas import load_atlas

PACKAGED_BOLD = "neurobolt_vu_difumo64_rest.npz"


@dataclass(frozen=True)
class BoldSource:
    """Real region series to build scans from.

    Attributes
    ----------
    data : np.ndarray
        (n_scans, n_times, 64) float64, columns in DiFuMo-64 component order.
    scans : list of str
        A label per scan (e.g. ``sub01-scan01``).
    tr : float
        Repetition time (s).
    origin : str
        Where the series came from (file name).
    """

    data: np.ndarray
    scans: list[str]
    tr: float
    origin: str


def _column_order(names: list[str], where: str) -> np.ndarray:
    """Indices of the 64 DiFuMo regions in ``names`` (exact names, case/apostrophe tolerant)."""
    atlas = load_atlas(64)
    lookup = {}
    for i, n in enumerate(names):
        try:
            lookup[atlas.index(str(n))] = i
        except KeyError:
            continue
    missing = [atlas.roi_names[r] for r in range(64) if r not in lookup]
    if missing:
        raise ValueError(f"{where}: the BOLD series lacks {len(missing)} DiFuMo-64 region(s), e.g. "
                         f"{missing[:3]}; the header must name all 64 regions exactly "
                         "(see rtbold.atlas.load_atlas(64).roi_names).")
    return np.array([lookup[r] for r in range(64)])


def load_bold_source(path: str | Path | None = None, tr: float | None = None) -> BoldSource:
    """Load region series for the semi-synthetic mode.

    Parameters
    ----------
    path : path | None
        ``None`` or ``""``: the packaged 23 real VU scans. An ``.npz`` with ``data``
        (scans, times, columns) or (times, columns), optional ``columns`` and ``tr_s``; or a
        region TSV whose header names the DiFuMo-64 regions (TR from the ``.json`` sidecar
        ``RepetitionTime`` when present).
    tr : float | None
        TR to use when the file does not state one.
    """
    if path in (None, ""):
        src = files("rtbold.data").joinpath(PACKAGED_BOLD)
        with src.open("rb") as fid:
            npz = np.load(fid, allow_pickle=False)
            data = npz["data"][:, :, :64].astype(np.float64)
            return BoldSource(data, [str(s) for s in npz["scans"]], float(npz["tr_s"]),
                              PACKAGED_BOLD)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--bold-from {path}: no such file; give a region TSV or an npz.")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if "data" not in npz:
                raise ValueError(f"{path}: the npz has no 'data' array (scans, times, regions).")
            data = np.asarray(npz["data"], dtype=np.float64)
            if data.ndim == 2:
                data = data[None]
            if data.ndim != 3:
                raise ValueError(f"{path}: 'data' must be (scans, times, regions), got {data.shape}.")
            if "columns" in npz:
                data = data[:, :, _column_order(list(npz["columns"]), str(path))]
            elif data.shape[2] >= 64:
                data = data[:, :, :64]
            else:
                raise ValueError(f"{path}: 'data' has {data.shape[2]} columns and no 'columns' "
                                 "array; need the 64 DiFuMo regions.")
            scans = ([str(s) for s in npz["scans"]] if "scans" in npz
                     else [f"{path.stem}-{i + 1:02d}" for i in range(data.shape[0])])
            file_tr = float(npz["tr_s"]) if "tr_s" in npz else tr
    else:
        with path.open(encoding="utf-8", newline="") as fid:
            rows = list(csv.reader(fid, delimiter="\t"))
        if len(rows) < 3:
            raise ValueError(f"{path}: expected a header of region names and rows of values.")
        order = _column_order(rows[0], str(path))
        try:
            values = np.array([[float(v) for v in r] for r in rows[1:] if r], dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"{path}: non-numeric value in the region series ({err}).") from None
        data = values[None][:, :, order]
        scans = [path.stem]
        sidecar = path.with_suffix(".json")
        file_tr = tr
        if sidecar.is_file():
            file_tr = float(json.loads(sidecar.read_text(encoding="utf-8")).get("RepetitionTime", tr))
    if file_tr is None:
        raise ValueError(f"{path}: no TR in the file; set simulate.tr.")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: the region series contain NaN or inf.")
    return BoldSource(data, scans, float(file_tr), path.name)


def parse_scan_selection(spec: str, n_scans: int, where: str = "simulate.bold_scans") -> list[int]:
    """Indices from a selection such as ``"0-16"`` or ``"0,3,5-7"`` (0-based, inclusive ranges).

    An empty string selects all ``n_scans``. Out-of-range or malformed entries raise
    ``ValueError`` naming ``where``.
    """
    spec = (spec or "").strip()
    if not spec:
        return list(range(n_scans))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if m is None:
            raise ValueError(f"{where} = {spec!r}: {part!r} is not an index or a range like 0-16.")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi >= n_scans:
            raise ValueError(f"{where} = {spec!r}: {part!r} is outside the {n_scans} real scans "
                             f"(0-{n_scans - 1}).")
        out += [i for i in range(lo, hi + 1) if i not in out]
    return out


def select_scans(source: BoldSource, spec: str) -> BoldSource:
    """The source restricted to the scans of :func:`parse_scan_selection` (order kept)."""
    idx = parse_scan_selection(spec, source.data.shape[0])
    if idx == list(range(source.data.shape[0])):
        return source
    return BoldSource(source.data[idx], [source.scans[i] for i in idx], source.tr,
                      f"{source.origin} scans {spec}")


def synthetic_latent(n: int, dt: float, fc: np.ndarray, exponent: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Latent drive (n, P) with cross-region covariance ``fc`` and a 1/f^exponent spectrum.

    The same temporal filter is applied to every region, so the zero-lag covariance of the
    output is that of the spatially coloured white noise, i.e. ``fc``.
    """
    w, v = np.linalg.eigh((fc + fc.T) / 2)
    chol = v * np.sqrt(np.clip(w, 1e-6, None))
    white = rng.standard_normal((n, fc.shape[0])) @ chol.T
    freqs = np.fft.rfftfreq(n, dt)
    shape = 1.0 / np.maximum(freqs, 1.0 / (n * dt)) ** (exponent / 2)
    shape[0] = 0.0
    u = np.fft.irfft(np.fft.rfft(white, axis=0) * shape[:, None], n, axis=0)
    return (u - u.mean(0)) / u.std(0)
