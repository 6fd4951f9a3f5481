"""Accuracy metrics for predicted BOLD (MODEL.md section 6.2).

All functions take ``pred`` and ``true`` arrays of shape ``(T, P)``: T time points (windows of one
scan) by P regions, in the same (normalised) units. Metrics are computed per scan, then aggregated
as mean (std) over scans, as the UnEBOLT paper reports them.

A prediction that is constant over time has no defined correlation. Such regions give NaN, never a
warning or a crash, and the means skip NaN (``nanmean``) while counting how many values were
undefined so that a report can say so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

#: Metric names in report order. ``tcorr`` is the mean over regions of the per-region Pearson r.
#: The ``res_`` metrics, ``global_share`` and ``mean_fc`` are MODEL.md 6.2b: metrics that a
#: prediction of the global signal alone cannot win.
METRIC_NAMES: tuple[str, ...] = ("tcorr", "pixcorr", "connmse", "f1_25", "f1_50",
                                 "res_tcorr", "res_pixcorr", "global_share", "mean_fc")
#: Readable labels for tables and figures.
METRIC_LABELS: dict[str, str] = {
    "tcorr": "Tcorr", "pixcorr": "Pixcorr", "connmse": "ConnMSE",
    "f1_25": "F1@25%", "f1_50": "F1@50%", "mse": "MSE",
    "res_tcorr": "res. Tcorr", "res_pixcorr": "res. Pixcorr",
    "global_share": "global share", "mean_fc": "mean FC",
    "true_global_share": "global share (truth)", "true_mean_fc": "mean FC (truth)",
}
#: Model-selection criteria (``[train] select_on``) and what they average; ``composite`` is the
#: default: Tcorr alone rewards predicting the global signal everywhere, the residual Tcorr and
#: Pixcorr do not (a global-only prediction scores ~0 and NaN on them).
SELECTION_CRITERIA: dict[str, tuple[str, ...]] = {
    "composite": ("tcorr", "res_tcorr", "pixcorr"),
    "tcorr": ("tcorr",),
    "res_tcorr": ("res_tcorr",),
}
#: Smallest standard deviation treated as "varies over time". Normalised BOLD has std ~0.5, so a
#: series with std below this is constant to float32 precision.
EPS = 1e-8


def _check_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.ndim == 1:
        pred = pred[:, None]
    if true.ndim == 1:
        true = true[:, None]
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"pred and true must both be (T, P) arrays of the same shape; "
                         f"got {pred.shape} and {true.shape}.")
    if pred.shape[0] < 2:
        raise ValueError(f"Need at least 2 time points to correlate, got {pred.shape[0]}.")
    return pred, true


def columnwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of two (T, P) arrays; NaN where a column is constant."""
    a, b = _check_pair(a, b)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    sa = np.sqrt((a * a).sum(axis=0))
    sb = np.sqrt((b * b).sum(axis=0))
    n = a.shape[0]
    ok = (sa > EPS * np.sqrt(n)) & (sb > EPS * np.sqrt(n))
    r = np.full(a.shape[1], np.nan)
    r[ok] = (a[:, ok] * b[:, ok]).sum(axis=0) / (sa[ok] * sb[ok])
    return np.clip(r, -1.0, 1.0)


def tcorr(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-region temporal correlation r_p (NaN for a region whose prediction is constant)."""
    return columnwise_corr(pred, true)


def fc_matrix(y: np.ndarray) -> np.ndarray:
    """P x P Pearson correlation of the columns of ``y`` (T, P) over time.

    Rows/columns of a constant region are NaN (its FC is undefined); the diagonal is 1 elsewhere.
    """
    y = np.asarray(y, dtype=np.float64)
    y = y - y.mean(axis=0)
    s = np.sqrt((y * y).sum(axis=0))
    ok = s > EPS * np.sqrt(max(y.shape[0], 1))
    z = np.zeros_like(y)
    z[:, ok] = y[:, ok] / s[ok]
    fc = np.clip(z.T @ z, -1.0, 1.0)
    fc[~ok, :] = np.nan
    fc[:, ~ok] = np.nan
    return fc


def remove_global(y: np.ndarray) -> np.ndarray:
    """Regress the across-region mean time course (with intercept) out of every column.

    Global-signal regression as in resting-state work: with g the row mean of ``y`` (T, P), each
    column is replaced by its residual after least squares on [1, g]. A prediction that is the
    same time course in every region becomes ~0.

    Parameters
    ----------
    y : np.ndarray
        (T, P) region series.

    Returns
    -------
    np.ndarray
        (T, P) float64 residuals (column means are zero).
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"y must be a (T, P) array, got shape {y.shape}.")
    yc = y - y.mean(axis=0)
    g = yc.mean(axis=1)
    gg = float(g @ g)
    if gg <= EPS * EPS * max(len(g), 1):
        return yc
    return yc - np.outer(g, (g @ yc) / gg)


def global_share(y: np.ndarray) -> float:
    """Fraction of the total (column-demeaned) variance of ``y`` explained by its row mean.

    1.0 means every region carries the same time course (up to scale); NaN for a constant ``y``.
    """
    y = np.asarray(y, dtype=np.float64)
    yc = y - y.mean(axis=0)
    total = float((yc * yc).sum())
    if total <= EPS * EPS * yc.size:
        return float("nan")
    res = remove_global(y)
    return float(1.0 - (res * res).sum() / total)


def upper_triangle(m: np.ndarray) -> np.ndarray:
    """Strict upper triangle of a square matrix as a vector (P(P-1)/2 edges)."""
    iu = np.triu_indices(m.shape[0], k=1)
    return m[iu]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    if not np.isfinite(den) or den <= EPS * np.sqrt(len(a)):
        return float("nan")
    return float(np.clip((a * b).sum() / den, -1.0, 1.0))


def top_q_f1(f_pred: np.ndarray, f_true: np.ndarray, q: float) -> float:
    """F1 overlap of the strongest ``q`` fraction of edges (signed values, largest first).

    A = indices of the ``k = round(q * E)`` largest entries of ``f_pred``, B likewise for ``f_true``
    (E = number of edges), F1 = 2 |A ∩ B| / (|A| + |B|). Ties are broken by edge order (stable sort),
    so the result is deterministic. Edges undefined in either vector are dropped first.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}.")
    f_pred = np.asarray(f_pred, dtype=np.float64)
    f_true = np.asarray(f_true, dtype=np.float64)
    ok = np.isfinite(f_pred) & np.isfinite(f_true)
    if ok.sum() == 0:
        return float("nan")
    f_pred, f_true = f_pred[ok], f_true[ok]
    k = max(1, int(round(q * len(f_pred))))
    a = set(np.argsort(-f_pred, kind="stable")[:k].tolist())
    b = set(np.argsort(-f_true, kind="stable")[:k].tolist())
    return 2.0 * len(a & b) / (len(a) + len(b))


@dataclass
class ScanMetrics:
    """Metrics of one scan.

    Attributes
    ----------
    name : str
        Scan identifier, e.g. ``sub-07_run-01``.
    n_windows : int
        Number of time points T.
    region_r : np.ndarray
        (P,) per-region Pearson r (NaN where undefined).
    network_r : dict
        Readable Yeo-7 network name -> r of the network-averaged series (empty without an atlas).
    values : dict
        ``tcorr``, ``pixcorr``, ``connmse``, ``f1_25``, ``f1_50``, ``mse``, ``n_undefined``
        (regions with NaN r), and MODEL.md 6.2b: ``res_tcorr``, ``res_pixcorr`` (after
        :func:`remove_global` of prediction and truth), ``global_share`` and ``mean_fc`` of the
        prediction, ``true_global_share`` and ``true_mean_fc`` of the truth.
    """

    name: str
    n_windows: int
    region_r: np.ndarray
    network_r: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "n_windows": self.n_windows,
            "region_r": [_json_float(v) for v in self.region_r],
            "network_r": {k: _json_float(v) for k, v in self.network_r.items()},
            **{k: _json_float(v) for k, v in self.values.items()},
        }


def _json_float(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def network_series(y: np.ndarray, networks: Sequence[str],
                   order: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Average region series inside each network.

    Parameters
    ----------
    y : np.ndarray
        (T, P) region series.
    networks : sequence of str
        Network name of each of the P regions.
    order : sequence of str | None
        Networks to return, in this order; default: the order of first appearance. Networks with no
        region are skipped.

    Returns
    -------
    names : list of str
    series : np.ndarray
        (T, n_networks)
    """
    y = np.asarray(y, dtype=np.float64)
    networks = list(networks)
    if len(networks) != y.shape[1]:
        raise ValueError(f"{len(networks)} network labels for {y.shape[1]} regions.")
    if order is None:
        order = list(dict.fromkeys(networks))
    names, cols = [], []
    for net in order:
        idx = [i for i, n in enumerate(networks) if n == net]
        if idx:
            names.append(net)
            cols.append(y[:, idx].mean(axis=1))
    return names, np.stack(cols, axis=1) if cols else np.zeros((y.shape[0], 0))


def network_tcorr(pred: np.ndarray, true: np.ndarray, networks: Sequence[str],
                  order: Sequence[str] | None = None) -> dict[str, float]:
    """Tcorr of network-averaged series (paper Fig. 3): average regions per network, then correlate."""
    pred, true = _check_pair(pred, true)
    names, sp = network_series(pred, networks, order)
    _, st = network_series(true, networks, order)
    if not names:
        return {}
    r = columnwise_corr(sp, st)
    return dict(zip(names, r.tolist()))


def scan_metrics(pred: np.ndarray, true: np.ndarray, *, name: str = "scan",
                 networks: Sequence[str] | None = None,
                 network_order: Sequence[str] | None = None) -> ScanMetrics:
    """All MODEL.md 6.2 metrics of one scan.

    Parameters
    ----------
    pred, true : np.ndarray
        (T, P) predicted and measured (normalised) BOLD.
    name : str
        Scan identifier for reports.
    networks : sequence of str | None
        Network of each region for network-level Tcorr (e.g. ``load_atlas(P).networks``).
    network_order : sequence of str | None
        Order of networks in the output (default ``rtbold.atlas.NETWORK_ORDER`` when ``networks``
        is given).

    Returns
    -------
    ScanMetrics
    """
    pred, true = _check_pair(pred, true)
    r = tcorr(pred, true)
    values: dict[str, float] = {
        "tcorr": _nanmean(r),
        "mse": float(np.mean((pred - true) ** 2)),
        "n_undefined": float(np.isnan(r).sum()),
    }
    nan = float("nan")
    if pred.shape[1] >= 3:
        f_hat = upper_triangle(fc_matrix(pred))
        f = upper_triangle(fc_matrix(true))
        ok = np.isfinite(f_hat) & np.isfinite(f)
        values["pixcorr"] = _pearson(f_hat[ok], f[ok]) if ok.sum() >= 2 else nan
        values["connmse"] = float(np.mean((f_hat[ok] - f[ok]) ** 2)) if ok.any() else nan
        values["f1_25"] = top_q_f1(f_hat, f, 0.25)
        values["f1_50"] = top_q_f1(f_hat, f, 0.50)
        # MODEL.md 6.2b: each matrix loses its own global signal, then Tcorr and Pixcorr again
        res_pred, res_true = remove_global(pred), remove_global(true)
        values["res_tcorr"] = _nanmean(tcorr(res_pred, res_true))
        rf_hat = upper_triangle(fc_matrix(res_pred))
        rf = upper_triangle(fc_matrix(res_true))
        rok = np.isfinite(rf_hat) & np.isfinite(rf)
        values["res_pixcorr"] = _pearson(rf_hat[rok], rf[rok]) if rok.sum() >= 2 else nan
        values["global_share"] = global_share(pred)
        values["true_global_share"] = global_share(true)
        values["mean_fc"] = float(np.mean(f_hat[np.isfinite(f_hat)])) \
            if np.isfinite(f_hat).any() else nan
        values["true_mean_fc"] = float(np.mean(f[np.isfinite(f)])) if np.isfinite(f).any() else nan
    else:  # FC and global metrics need at least 3 regions (3 edges)
        values.update({k: nan for k in ("pixcorr", "connmse", "f1_25", "f1_50", "res_tcorr",
                                        "res_pixcorr", "global_share", "true_global_share",
                                        "mean_fc", "true_mean_fc")})
    net_r: dict[str, float] = {}
    if networks is not None:
        if network_order is None:
            from .atlas import NETWORK_ORDER

            network_order = [n for n in NETWORK_ORDER if n in set(networks)] + \
                [n for n in dict.fromkeys(networks) if n not in NETWORK_ORDER]
        net_r = network_tcorr(pred, true, networks, network_order)
    return ScanMetrics(name=name, n_windows=pred.shape[0], region_r=r, network_r=net_r,
                       values=values)


def aggregate(scans: Sequence[ScanMetrics]) -> dict[str, dict[str, float]]:
    """Mean and std over scans of every scalar metric (NaN-safe; population std, ddof=0).

    Returns
    -------
    dict
        ``{metric: {"mean": m, "std": s, "n": number of scans with a defined value}}``; also
        ``region_r`` (per-region mean over scans) and ``network_r`` (per network).
    """
    if not scans:
        raise ValueError("No scans to aggregate.")
    out: dict = {}
    keys = list(dict.fromkeys(k for s in scans for k in s.values))
    for k in keys:
        v = np.array([s.values.get(k, np.nan) for s in scans], dtype=float)
        out[k] = _mean_std(v)
    regions = np.stack([s.region_r for s in scans])
    with np.errstate(all="ignore"):
        out["region_r"] = [_json_float(v) for v in _nanmean0(regions)]
    nets = list(dict.fromkeys(n for s in scans for n in s.network_r))
    out["network_r"] = {n: _mean_std(np.array([s.network_r.get(n, np.nan) for s in scans]))
                        for n in nets}
    out["n_scans"] = len(scans)
    return out


def _nanmean(v: np.ndarray) -> float:
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def selection_score(summary: Mapping[str, float | None], criterion: str = "composite") -> float:
    """Model-selection score (higher is better) from a validation summary.

    Parameters
    ----------
    summary : mapping
        Mean validation metrics, e.g. ``{"tcorr": 0.5, "res_tcorr": 0.1, "pixcorr": 0.4}``.
    criterion : str
        A key of :data:`SELECTION_CRITERIA` (the mean of its metrics), or ``"mse"`` (minus the MSE).
        An undefined metric (None/NaN, e.g. Pixcorr of a constant prediction) counts as 0.

    Returns
    -------
    float
    """
    if criterion == "mse":
        v = summary.get("mse")
        return -float(v) if v is not None and np.isfinite(v) else -np.inf
    if criterion not in SELECTION_CRITERIA:
        raise ValueError(f"unknown selection criterion {criterion!r}; choose one of "
                         f"{sorted(SELECTION_CRITERIA) + ['mse']}.")
    vals = []
    for k in SELECTION_CRITERIA[criterion]:
        v = summary.get(k)
        vals.append(float(v) if v is not None and np.isfinite(v) else 0.0)
    return float(np.mean(vals))


def _nanmean0(a: np.ndarray) -> np.ndarray:
    finite = np.isfinite(a)
    cnt = finite.sum(axis=0)
    tot = np.where(finite, a, 0.0).sum(axis=0)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _mean_std(v: np.ndarray) -> dict[str, float]:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=0)), "n": int(v.size)}


def format_mean_std(agg: Mapping[str, Mapping], metric: str, digits: int = 3) -> str:
    """``"0.418 (0.036)"`` for one metric of :func:`aggregate`'s output; ``"n/a"`` if undefined."""
    entry = agg.get(metric)
    if not entry or entry.get("mean") is None:
        return "n/a"
    return f"{entry['mean']:.{digits}f} ({entry['std']:.{digits}f})"


def evaluate_predictions(preds: Sequence[np.ndarray], trues: Sequence[np.ndarray],
                         names: Sequence[str], *, networks: Sequence[str] | None = None
                         ) -> tuple[list[ScanMetrics], dict]:
    """Per-scan metrics and their aggregate for lists of (T_i, P) predictions and targets."""
    if not (len(preds) == len(trues) == len(names)):
        raise ValueError("preds, trues and names must have the same length.")
    per = [scan_metrics(p, t, name=n, networks=networks) for p, t, n in zip(preds, trues, names)]
    return per, aggregate(per)
