"""Causal normalisation of measured region values, volume by volume, like the model's targets.

Offline, a target series is extracted with a linear detrend and a z-score over the whole scan
(``rtbold extract-regions``), then low-passed (5th-order Butterworth at 0.15 Hz, zero-phase),
demeaned and divided by the 95th percentile of its absolute values, all over the whole scan
(:func:`rtbold.preprocessing.preprocess_targets`). Online only the volumes so far are known, so
:class:`OnlineTargetNormaliser` does each step with what it has at volume ``k``:

1. linear detrend: the least-squares line through the volumes ``0..k`` (exact running sums),
   taken off volume ``k``. (The z-score of the extraction is a per-region affine map, which the
   last two steps absorb.)
2. low-pass (optional, off by default): the same Butterworth run causally (``sosfilt``, state
   started at the first value). It delays the series by about a TR (its group delay), which
   costs more agreement with the zero-phase offline filter than the smoothing gains
   (``benchmarks/bench_online_normalisation.py``).
3. demean by the mean of the values so far, and divide by the 95th percentile of their absolute
   deviations so far (+1e-8).

A published value is never revised. The first volumes rest on few values (the first two are 0
by construction): :attr:`OnlineTargetNormaliser.warming_up` says when fewer than ``warmup_volumes``
have come. By the end of a scan steps 1 and 3 use the same volumes as the offline statistics; the
difference left is that early volumes were normalised with early statistics.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from ..preprocessing import TARGET_CUTOFF_HZ, TARGET_FILTER_ORDER

__all__ = ["OnlineTargetNormaliser"]


class OnlineTargetNormaliser:
    """Causal per-region normalisation of region values (see the module notes).

    Parameters
    ----------
    n_regions : int
    tr : float
        Repetition time (s), for the low-pass.
    lowpass : bool
        Run the targets' Butterworth low-pass causally (adds about a TR of delay).
    warmup_volumes : int
        Volumes before which :attr:`warming_up` is True.
    """

    def __init__(self, n_regions: int, tr: float, *, lowpass: bool = False,
                 warmup_volumes: int = 20) -> None:
        if not tr > 0:
            raise ValueError(f"TR must be positive, got {tr!r}.")
        self.n_regions, self.tr = int(n_regions), float(tr)
        self.warmup_volumes = int(warmup_volumes)
        self._sos = None
        if lowpass:
            nyquist = 0.5 / self.tr
            if not 0 < TARGET_CUTOFF_HZ < nyquist:
                raise ValueError(f"The targets' low-pass at {TARGET_CUTOFF_HZ} Hz must lie below "
                                 f"the fMRI Nyquist frequency {nyquist:.3f} Hz (TR {tr} s).")
            self._sos = signal.butter(TARGET_FILTER_ORDER, TARGET_CUTOFF_HZ / nyquist,
                                      output="sos")
        self._zi: np.ndarray | None = None
        self.n = 0
        # running sums for the least-squares line x = a + b k over k = 0..n-1
        self._sx = np.zeros(self.n_regions)
        self._skx = np.zeros(self.n_regions)
        self._kept: list[np.ndarray] = []  # step-2 outputs so far (mean and percentile)
        self._last_x = np.zeros(self.n_regions)

    @property
    def warming_up(self) -> bool:
        """Fewer than ``warmup_volumes`` volumes so far: the statistics are still rough."""
        return self.n < self.warmup_volumes

    def update(self, values: np.ndarray) -> np.ndarray:
        """Normalise one volume's region values (P,); returns float64 (P,).

        A region that is NaN in this volume stays NaN and leaves its statistics unchanged for
        the detrend (its running sums take the last finite value instead).
        """
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size != self.n_regions:
            raise ValueError(f"Expected {self.n_regions} region values, got {x.size}.")
        nan = ~np.isfinite(x)
        if nan.any():
            x = np.where(nan, self._last_x, x)
        self._last_x = x
        k = self.n
        self.n += 1
        self._sx += x
        self._skx += k * x
        n = self.n
        if n >= 2:
            sk, skk = n * (n - 1) / 2.0, (n - 1) * n * (2 * n - 1) / 6.0
            den = n * skk - sk * sk
            slope = (n * self._skx - sk * self._sx) / den
            intercept = (self._sx - slope * sk) / n
            y = x - (intercept + slope * k)
        else:
            y = np.zeros_like(x)
        if self._sos is not None:
            if self._zi is None:
                self._zi = signal.sosfilt_zi(self._sos)[:, :, None] * y[None, None, :]
            y, self._zi = signal.sosfilt(self._sos, y[None, :], axis=0, zi=self._zi)
            y = y[0]
        self._kept.append(y)
        hist = np.asarray(self._kept)
        centred = hist - hist.mean(axis=0)
        scale = np.percentile(np.abs(centred), 95, axis=0) + 1e-8
        out = centred[-1] / scale
        out[nan] = np.nan
        return out
