"""Causal R-peak detection on an ECG stream (inside the scanner, after gradient correction).

The ECG in the bore is distorted: the magnetohydrodynamic effect inflates the T wave, which can
outgrow the R wave. :class:`RPeakDetector` therefore looks at the QRS band only: a causal
Butterworth band-pass (10-40 Hz) removes the slow T wave and the baseline, its square smoothed
over 10 ms is the QRS energy, and a beat is the largest energy within +-50 ms that exceeds an
adaptive threshold (a share of the median of the last 8 beats' energy) outside a 0.3-s
refractory period. A candidate in the first 60 % of an RR interval must reach the full level
(a T wave that passes the filter is smaller than the QRS). The threshold halves every second
without a beat, so a wrong start (gradient residue while the templates fill) recovers.

A beat is confirmed 50 ms after its peak: it is never needed earlier, since the BCG epoch starts
later than that (``ArtifactConfig.bcg_start_s``). Everything is computed sample by sample with
carried filter state, so chunks of any size give the same beats. ``mne.preprocessing.
find_ecg_events`` does the offline job (it filters forwards and backwards, and looks at the whole
recording for its threshold); ``benchmarks/bench_artifacts.py`` compares the two.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.signal import butter, lfilter, sosfilt, sosfilt_zi

__all__ = ["RPeakDetector"]


class RPeakDetector:
    """Stream R-peaks from one ECG channel (see the module notes).

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz).
    band : (float, float)
        QRS band-pass (Hz).
    lookahead_s : float
        A peak must be the largest within this much on either side; it is confirmed this long
        after it.
    refractory_s : float
        No beat within this of the previous one.
    init_s : float
        Seconds of ECG that set the first threshold.
    threshold : float
        Share of the beat level a peak must reach.
    """

    def __init__(self, sfreq: float, *, band: tuple[float, float] = (10.0, 40.0),
                 smooth_s: float = 0.01, lookahead_s: float = 0.05,
                 refractory_s: float = 0.3, init_s: float = 2.0,
                 threshold: float = 0.3) -> None:
        self.sfreq = float(sfreq)
        hi = min(band[1], 0.45 * self.sfreq)
        self._sos = butter(2, (band[0], hi), "bandpass", fs=self.sfreq, output="sos")
        self._alpha = 1.0 - math.exp(-1.0 / (smooth_s * self.sfreq))
        self.k = max(1, int(round(lookahead_s * self.sfreq)))
        self.lookahead_s = self.k / self.sfreq
        self.refractory_s = float(refractory_s)
        self.init_s = float(init_s)
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        """Start again (after a gap in the stream)."""
        self._zi: np.ndarray | None = None
        self._ezi = np.zeros(1)
        self._e = np.zeros(0)  # energy from the first sample not yet examined, minus k
        self._t = np.zeros(0)
        self._left = 0  # samples in the buffer before the first one not yet examined
        self._t0: float | None = None
        self._init_max = 0.0
        self._level: float | None = None
        self._level_t = -math.inf
        self._heights: deque[float] = deque(maxlen=8)
        self._rr: deque[float] = deque(maxlen=8)
        self.last_r: float | None = None
        self.n_beats = 0

    @property
    def rr_s(self) -> float | None:
        """Median of the last 8 RR intervals (s), None before two beats."""
        return float(np.median(self._rr)) if self._rr else None

    @property
    def heart_rate_bpm(self) -> float | None:
        rr = self.rr_s
        return None if rr is None else 60.0 / rr

    def process(self, ecg: np.ndarray, times: np.ndarray) -> list[tuple[float, float | None]]:
        """Feed ECG samples (µV) and their times.

        Returns the beats confirmed now: ``(R-peak time, median RR of the last 8 beats up to
        it or None)``.
        """
        ecg = np.asarray(ecg, dtype=np.float64)
        if ecg.size == 0:
            return []
        if self._zi is None:
            self._zi = sosfilt_zi(self._sos) * ecg[0]
            self._t0 = float(times[0])
        y, self._zi = sosfilt(self._sos, ecg, zi=self._zi)
        e, self._ezi = lfilter([self._alpha], [1.0, self._alpha - 1.0], y * y, zi=self._ezi)
        buf = np.concatenate([self._e, e])
        tbuf = np.concatenate([self._t, np.asarray(times, dtype=np.float64)])
        k = self.k
        stop = len(buf) - k  # examine positions whose lookahead has arrived
        peaks: list[tuple[float, float | None]] = []
        if stop > self._left:
            m = maximum_filter1d(buf, size=2 * k + 1, mode="nearest")
            pos = np.arange(self._left, stop)
            cand = pos[(buf[pos] >= m[pos]) & (buf[pos] > 0)]
            for p in cand:
                if self._accept(float(buf[p]), float(tbuf[p])):
                    peaks.append((float(tbuf[p]), self.rr_s))
            keep_from = max(0, stop - k)
            self._e, self._t = buf[keep_from:], tbuf[keep_from:]
            self._left = stop - keep_from
        else:
            self._e, self._t = buf, tbuf
        return peaks

    def _accept(self, h: float, t: float) -> bool:
        if self._level is None:  # the first seconds set the level
            if t - self._t0 < self.init_s:
                self._init_max = max(self._init_max, h)
                return False
            self._level, self._level_t = self._init_max, t
        last = self.last_r
        if last is not None and t - last < self.refractory_s:
            return False
        ref = max(last if last is not None else -math.inf, self._level_t)
        level = self._level * 0.5 ** max(0.0, t - ref - 2.0)  # halves every s without a beat
        rr = self.rr_s
        need = level if (rr is not None and last is not None and t - last < 0.6 * rr) \
            else self.threshold * level
        if h < need:
            return False
        if last is not None:
            self._rr.append(t - last)
        self._heights.append(h)
        self._level, self._level_t = float(np.median(self._heights)), t
        self.last_r = t
        self.n_beats += 1
        return True
