"""Haemodynamic response functions and regularised deconvolution."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from scipy.stats import gamma

#: Length of the HRF kernels (s); the double gamma is < 1e-3 of its peak after this.
HRF_LENGTH_S = 32.0


def double_gamma(t: np.ndarray, peak_s: float = 5.0, undershoot_ratio: float = 1 / 6) -> np.ndarray:
    """Double-gamma HRF (SPM shape 6/16) stretched in time so that its peak is at ``peak_s``.

    Normalised to unit sum so convolving with it keeps the scale of slow signals.
    """
    scale = peak_s / 5.0  # the SPM positive lobe (shape 6, scale 1) peaks at 5 s
    h = gamma.pdf(t / scale, 6) - undershoot_ratio * gamma.pdf(t / scale, 16)
    return h / h.sum()


def hrf_kernels(peaks_s: np.ndarray, dt: float, undershoot_ratio: float = 1 / 6) -> np.ndarray:
    """(L, P) kernels on a grid of step ``dt``, one column per region peak."""
    t = np.arange(0.0, HRF_LENGTH_S, dt)
    return np.stack([double_gamma(t, p, undershoot_ratio) for p in np.atleast_1d(peaks_s)], axis=1)


def convolve(u: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Causal convolution of each column of ``u`` (n, P) with its kernel column (L, P)."""
    return fftconvolve(u, kernels, axes=0)[: u.shape[0]]


def wiener_deconvolve(y: np.ndarray, kernels: np.ndarray, reg: float) -> np.ndarray:
    """Tikhonov/Wiener deconvolution of each column of ``y`` (n, P) by its kernel.

    ``U = conj(H) Y / (|H|^2 + reg * max|H|^2)``; the BOLD constrains only slow components, so
    the estimate is smooth. Circular: pad ``y`` (e.g. by reflection) before calling.
    """
    n = y.shape[0]
    nfft = int(2 ** np.ceil(np.log2(n + kernels.shape[0])))
    Y = np.fft.rfft(y, nfft, axis=0)
    H = np.fft.rfft(kernels, nfft, axis=0)
    power = np.abs(H) ** 2
    U = np.conj(H) * Y / (power + reg * power.max(axis=0, keepdims=True))
    return np.fft.irfft(U, nfft, axis=0)[:n]
