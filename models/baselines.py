"""Non-deep baselines with a ``fit(X, Y) / predict(X)`` interface.

- :class:`RidgeBandPower`: the classic EEG-fMRI regression. Log band power (delta, theta, alpha,
  beta, gamma) of every channel in consecutive sub-windows of the 16-s window, so that the
  regression sees power at several lags spanning the haemodynamic response; features standardised;
  ridge regression whose penalty is chosen by time-blocked cross-validation on the training data.
- :class:`MeanPredictor`: each region's training mean (the floor any model must beat).

Inputs are the model's windows: ``X`` (N, C, n_samples) EEG in µV / 100, ``Y`` (N, P).
numpy only.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["BANDS", "band_power_features", "RidgeBandPower", "MeanPredictor"]

logger = logging.getLogger(__name__)

#: Frequency bands (Hz), half-open [lo, hi).
BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 12.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}


def _check_xy(X: np.ndarray, Y: np.ndarray | None = None) -> None:
    if np.ndim(X) != 3:
        raise ValueError(f"X must be (n_windows, n_channels, n_samples), got shape {np.shape(X)}")
    if Y is not None:
        if np.ndim(Y) != 2:
            raise ValueError(f"Y must be (n_windows, n_regions), got shape {np.shape(Y)}")
        if len(Y) != len(X):
            raise ValueError(f"X has {len(X)} windows but Y has {len(Y)} rows")


def band_power_features(X: np.ndarray, sfreq: float = 200.0, n_segments: int = 8,
                        bands: dict[str, tuple[float, float]] = BANDS,
                        chunk: int = 256) -> np.ndarray:
    """Log band power per sub-window, channel and band.

    Parameters
    ----------
    X : array, shape (N, C, L)
        Windows; L must be divisible by ``n_segments``.
    sfreq : float
        Sampling rate (Hz).
    n_segments : int
        Consecutive sub-windows per window (8 x 2 s for a 16-s window).
    bands : dict
        Name -> (low, high) Hz.
    chunk : int
        Windows processed at once (bounds memory).

    Returns
    -------
    array, shape (N, n_segments * C * n_bands)
        Ordered (segment, channel, band), segment 0 = oldest; ``log10(power + 1e-12)``.
    """
    _check_xy(X)
    n, c, length = X.shape
    if length % n_segments:
        raise ValueError(f"window of {length} samples is not divisible into {n_segments} segments")
    seg = length // n_segments
    freqs = np.fft.rfftfreq(seg, 1.0 / sfreq)
    masks = []
    for name, (lo, hi) in bands.items():
        m = (freqs >= lo) & (freqs < hi)
        if not m.any():
            raise ValueError(f"band {name} ({lo}-{hi} Hz) has no FFT bin with {seg}-sample segments")
        masks.append(m)
    taper = np.hanning(seg)
    # Average band power = mean of the periodogram bins in the band (Hann-tapered).
    band_matrix = np.stack([m / m.sum() for m in masks], axis=1)          # (F, n_bands)
    out = np.empty((n, n_segments, c, len(masks)), dtype=np.float64)
    for start in range(0, n, chunk):
        xs = np.asarray(X[start:start + chunk], dtype=np.float64)
        xs = xs.reshape(len(xs), c, n_segments, seg)
        xs = xs - xs.mean(axis=-1, keepdims=True)
        power = np.abs(np.fft.rfft(xs * taper, axis=-1)) ** 2             # (n, C, S, F)
        bp = power @ band_matrix                                           # (n, C, S, n_bands)
        out[start:start + chunk] = np.log10(bp + 1e-12).transpose(0, 2, 1, 3)
    return out.reshape(n, -1)


def _ridge_path(X: np.ndarray, Y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge coefficients for every alpha (X, Y centred): (n_alphas, n_features, n_targets)."""
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    uty = u.T @ Y                                                          # (k, P)
    d = s[None, :] / (s[None, :] ** 2 + alphas[:, None])                   # (n_alphas, k)
    return np.einsum("fk,ak,kp->afp", vt.T, d, uty)


class RidgeBandPower:
    """Ridge regression on lagged log band power.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows (Hz).
    n_segments : int
        Sub-windows per window (lags).
    bands : dict
        Frequency bands, name -> (low, high) Hz.
    alphas : array-like
        Candidate ridge penalties (on standardised features).
    n_folds : int
        Time-blocked CV folds: the windows, in the order given (time order), are cut into
        ``n_folds`` contiguous blocks; each block is held out once.

    Attributes
    ----------
    alpha_ : float
        Penalty chosen by CV (lowest mean validation MSE over folds and regions).
    cv_mse_ : array, shape (n_alphas,)
    coef_ : array, shape (n_features, P)
    intercept_ : array, shape (P,)
    """

    def __init__(self, sfreq: float = 200.0, n_segments: int = 8,
                 bands: dict[str, tuple[float, float]] | None = None,
                 alphas=None, n_folds: int = 5) -> None:
        self.sfreq = sfreq
        self.n_segments = n_segments
        self.bands = dict(bands or BANDS)
        self.alphas = np.asarray(alphas if alphas is not None else np.logspace(-1, 5, 13), float)
        self.n_folds = n_folds

    def _features(self, X: np.ndarray) -> np.ndarray:
        return band_power_features(X, self.sfreq, self.n_segments, self.bands)

    def fit(self, X: np.ndarray, Y: np.ndarray, groups: np.ndarray | None = None
            ) -> RidgeBandPower:
        """Fit on windows ``X`` (N, C, L) and targets ``Y`` (N, P); returns self.

        ``groups`` (N,), e.g. the scan of every window, makes the CV leave whole groups out
        (see :meth:`fit_features`).
        """
        _check_xy(X, Y)
        return self.fit_features(self._features(X), Y, groups)

    def fit_features(self, F: np.ndarray, Y: np.ndarray, groups: np.ndarray | None = None
                     ) -> RidgeBandPower:
        """Fit on precomputed :func:`band_power_features` ``F`` (N, n_features).

        Parameters
        ----------
        F : array, shape (N, n_features)
        Y : array, shape (N, P)
        groups : array, shape (N,) | None
            Group label of every row (e.g. scan or subject). When there are at least two groups,
            the CV folds hold out whole groups (split into ``n_folds`` sets of groups), so the
            penalty is chosen for data the fit has not seen, as in a cross-subject evaluation.
            Without groups the rows, in the order given (time order), are cut into contiguous
            blocks.
        """
        F = np.asarray(F, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        if F.ndim != 2 or Y.ndim != 2 or len(F) != len(Y):
            raise ValueError(f"F must be (N, n_features) and Y (N, P) with the same N; got "
                             f"{F.shape} and {Y.shape}")
        n = len(F)
        folds = self._folds(n, groups)
        if len(self.alphas) > 1 and len(folds) >= 2 and n >= 2 * len(folds):
            mse = np.zeros(len(self.alphas))
            for val in folds:
                train = np.setdiff1d(np.arange(n), val)
                mu, sd = F[train].mean(0), F[train].std(0) + 1e-12
                ym = Y[train].mean(0)
                coefs = _ridge_path((F[train] - mu) / sd, Y[train] - ym, self.alphas)
                pred = np.einsum("vf,afp->avp", (F[val] - mu) / sd, coefs) + ym
                mse += ((pred - Y[val][None]) ** 2).mean(axis=(1, 2)) / len(folds)
            self.cv_mse_ = mse
            self.alpha_ = float(self.alphas[int(np.argmin(mse))])
        else:
            self.cv_mse_ = np.full(len(self.alphas), np.nan)
            self.alpha_ = float(self.alphas[len(self.alphas) // 2])
        self.mean_, self.scale_ = F.mean(0), F.std(0) + 1e-12
        ym = Y.mean(0)
        self.coef_ = _ridge_path((F - self.mean_) / self.scale_, Y - ym,
                                 np.array([self.alpha_]))[0]
        self.intercept_ = ym
        logger.info("RidgeBandPower: %d windows, %d features, alpha=%g", n, F.shape[1], self.alpha_)
        return self

    def _folds(self, n: int, groups: np.ndarray | None) -> list[np.ndarray]:
        if self.n_folds <= 1:
            return []
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != n:
                raise ValueError(f"groups has {len(groups)} labels for {n} windows")
            labels = list(dict.fromkeys(groups.tolist()))
            if len(labels) >= 2:
                sets = np.array_split(np.arange(len(labels)), min(self.n_folds, len(labels)))
                return [np.flatnonzero(np.isin(groups, [labels[i] for i in s])) for s in sets]
        return np.array_split(np.arange(n), min(self.n_folds, n))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict (N, P) for windows ``X`` (N, C, L)."""
        if not hasattr(self, "coef_"):
            raise RuntimeError("RidgeBandPower is not fitted; call fit(X, Y) first")
        F = self._features(X)
        if F.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"X gives {F.shape[1]} features but the model was fitted with "
                             f"{self.coef_.shape[0]} (different channel count or window length)")
        return ((F - self.mean_) / self.scale_) @ self.coef_ + self.intercept_


class MeanPredictor:
    """Predicts each region's training mean for every window."""

    def fit(self, X: np.ndarray, Y: np.ndarray) -> MeanPredictor:
        """Store the column means of ``Y`` (N, P); ``X`` is only checked for length."""
        if np.ndim(Y) != 2 or len(Y) != len(X):
            raise ValueError(f"Y must be (n_windows, n_regions) matching X's {len(X)} windows; "
                             f"got {np.shape(Y)}")
        self.mean_ = np.asarray(Y, dtype=np.float64).mean(axis=0)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise RuntimeError("MeanPredictor is not fitted; call fit(X, Y) first")
        return np.tile(self.mean_, (len(X), 1))
