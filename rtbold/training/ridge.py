"""Closed-form ridge on the training windows: the ``ridge`` model, the initialisation of
UnEBOLT's band-power branch, and the ridge baseline of ``rtbold evaluate --baselines``.

One fit for all three: log band power of every training window
(:func:`rtbold.models.band_power_features`, computed in chunks so the windows are never all in
memory), then :meth:`rtbold.models.RidgeBandPower.fit_features` with cross-validation folds that
hold out whole scans (the penalty is chosen for unseen recordings).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

#: Windows per chunk when computing features (26 x 3200 float32 x 256 = 85 MB).
FEATURE_CHUNK = 256


def subsample_items(items: Sequence[tuple[int, int]], n_max: int | None) -> list[tuple[int, int]]:
    """At most ``n_max`` of ``items``, evenly spaced in their sorted (scan, time) order."""
    items = sorted(items)
    if n_max is None or len(items) <= n_max:
        return items
    idx = np.linspace(0, len(items) - 1, n_max).round().astype(int)
    return [items[i] for i in idx]


def item_features(scans: list, items: Sequence[tuple[int, int]], *, sfreq: float = 200.0,
                  n_segments: int = 8, progress: bool = False) -> np.ndarray:
    """Log band-power features (N, n_features) of dataset items, in the order given."""
    from rtbold.models import band_power_features

    from .loop import progress_bar

    out = []
    starts = range(0, len(items), FEATURE_CHUNK)
    for i in progress_bar(starts, progress, "band power"):
        chunk = items[i:i + FEATURE_CHUNK]
        X = np.stack([scans[s].window(k) for s, k in chunk]).astype(np.float32)
        out.append(band_power_features(X, sfreq, n_segments))
    return np.concatenate(out) if out else np.zeros((0, 0))


def fit_ridge(scans: list, items: Sequence[tuple[int, int]], *, max_windows: int | None = None,
              progress: bool = False):
    """A :class:`~rtbold.models.RidgeBandPower` fitted on ``items`` (CV folds by scan).

    Parameters
    ----------
    scans : list of PreparedScan
    items : sequence of (scan index, volume index)
        The training windows.
    max_windows : int | None
        Use at most this many, evenly spaced (default all).
    progress : bool
        Show a progress bar while the features are computed.
    """
    from rtbold.models import RidgeBandPower

    items = subsample_items(items, max_windows)
    F = item_features(scans, items, progress=progress)
    Y = np.stack([scans[s].targets[k] for s, k in items]).astype(np.float64)
    groups = np.array([s for s, _ in items])
    est = RidgeBandPower().fit_features(F, Y, groups=groups)
    logger.info("Ridge on %d windows of %d scans: alpha = %g", len(items),
                len(set(groups.tolist())), est.alpha_)
    return est


class SessionTable:
    """Causal session statistics (:func:`rtbold.models.causal_feature_stats`) of every valid
    window of some scans, looked up by (scan, volume).

    The statistics of a window use all valid windows of its scan up to and including it, as the
    live :class:`~rtbold.models.SessionNormaliser` does when the session starts with the scan.

    Parameters
    ----------
    raw : dict
        scan index -> (valid volume indices in time order, raw log band power (T, n)).
    prior_mean, prior_scale : arrays (n,)
    prior_windows : float
    """

    def __init__(self, raw: dict[int, tuple[np.ndarray, np.ndarray]], prior_mean: np.ndarray,
                 prior_scale: np.ndarray, prior_windows: float) -> None:
        from rtbold.models import causal_feature_stats

        self.row: dict[tuple[int, int], int] = {}
        means, scales, feats = [], [], []
        n = 0
        for s in sorted(raw):
            vols, F = raw[s]
            m, sd = causal_feature_stats(F, prior_mean, prior_scale, prior_windows)
            means.append(m.astype(np.float32))
            scales.append(sd.astype(np.float32))
            feats.append(F.astype(np.float32))
            self.row.update({(s, int(k)): n + j for j, k in enumerate(vols)})
            n += len(vols)
        width = len(prior_mean)
        self.mean = np.concatenate(means) if means else np.zeros((0, width), np.float32)
        self.scale = np.concatenate(scales) if scales else np.zeros((0, width), np.float32)
        self.raw = np.concatenate(feats) if feats else np.zeros((0, width), np.float32)

    def rows(self, items: Sequence[tuple[int, int]]) -> np.ndarray:
        return np.array([self.row[(s, int(k))] for s, k in items], dtype=int)

    def normalised(self, items: Sequence[tuple[int, int]]) -> np.ndarray:
        """Session-normalised features of ``items`` (what the ridge is fitted on)."""
        r = self.rows(items)
        return (self.raw[r] - self.mean[r]) / self.scale[r]


def raw_scan_features(scans: list, scan_ids: Sequence[int], *, progress: bool = False
                      ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Raw log band power of every valid window of the given scans, in time order."""
    out = {}
    items = [(s, int(k)) for s in sorted(set(scan_ids)) for k in np.flatnonzero(scans[s].valid)]
    F = item_features(scans, items, progress=progress)
    pos = 0
    for s in sorted(set(scan_ids)):
        vols = np.flatnonzero(scans[s].valid)
        out[s] = (vols, F[pos:pos + len(vols)])
        pos += len(vols)
    return out


def session_table(scans: list, items: Sequence[tuple[int, int]], features, *,
                  progress: bool = False) -> SessionTable:
    """Session statistics for the scans of ``items`` with a model's prior (``features``: its
    :class:`~rtbold.models.BandPowerFeatures`)."""
    raw = raw_scan_features(scans, [s for s, _ in items], progress=progress)
    return SessionTable(raw, features.prior_mean.cpu().numpy(), features.prior_scale.cpu().numpy(),
                        features.cfg.session_prior_windows)


def fit_session_ridge(scans: list, train_items: Sequence[tuple[int, int]], scan_ids: Sequence[int],
                      prior_windows: float, *, max_windows: int | None = None,
                      progress: bool = False):
    """Ridge on session-normalised features: ``(estimator, prior_mean, prior_scale, table)``.

    The prior is the raw feature mean and SD of the training windows; ``table`` covers every
    valid window of ``scan_ids`` (e.g. training and validation scans).
    """
    from rtbold.models import RidgeBandPower

    raw = raw_scan_features(scans, list(scan_ids), progress=progress)
    train = subsample_items(train_items, max_windows)
    rows = {s: dict(zip(v.tolist(), range(len(v)))) for s, (v, _) in raw.items()}
    F_train = np.stack([raw[s][1][rows[s][int(k)]] for s, k in train])
    prior_mean, prior_scale = F_train.mean(0), F_train.std(0) + 1e-6
    table = SessionTable(raw, prior_mean, prior_scale, prior_windows)
    Y = np.stack([scans[s].targets[k] for s, k in train]).astype(np.float64)
    est = RidgeBandPower().fit_features(table.normalised(train), Y,
                                        groups=np.array([s for s, _ in train]))
    logger.info("Session-normalised ridge on %d windows: alpha = %g", len(train), est.alpha_)
    return est, prior_mean, prior_scale, table


class SessionWindowDataset:
    """:class:`rtbold.datasets.WindowDataset` items with their session statistics:
    ``(x, mean, scale, y)``."""

    def __init__(self, scans: list, items: Sequence[tuple[int, int]], table: SessionTable):
        from ..datasets import WindowDataset

        self.windows = WindowDataset(scans, list(items))
        self.rows = table.rows(items)
        self.table = table

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int):
        import torch

        x, y = self.windows[index]
        r = self.rows[index]
        return x, torch.from_numpy(self.table.mean[r]), torch.from_numpy(self.table.scale[r]), y
