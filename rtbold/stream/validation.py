"""Live validation: running correlation of predicted and measured BOLD over the last N paired TRs.

:class:`RunningCorrelation` takes predictions and measured vectors by frame index, in any order
(a scanner's volume usually comes after its frame), pairs the prediction of frame ``i`` with the
measured vector of frame ``i + lag_trs``, and keeps Pearson's r per region and for the feedback
target over the ``window_trs`` most recent pairs. The headless line (``rtbold run``) and the
GUI's validation panel both use it.
"""

from __future__ import annotations

import bisect
import threading

import numpy as np


class RunningCorrelation:
    """Pearson r of predicted vs measured BOLD over the last ``window_trs`` paired TRs.

    Parameters
    ----------
    n_regions : int
        P, values per frame.
    window_trs : int
        Pairs (TRs with a prediction and its measured vector) in the window: the most recent by
        frame index.
    lag_trs : int
        Prediction of frame ``i`` is paired with the measured vector of frame ``i + lag_trs``
        (0 for models trained on windows ending at their volume).
    target_weights : array, shape (P,) | None
        The feedback target as weights over the regions
        (:attr:`rtbold.stream.outlets.FeedbackTarget.weights`); its predicted and measured
        values are ``weights @ values`` (NaN when a region it weighs has no measured value).
        None: no target column.
    min_pairs : int
        Fewest finite pairs for an r (NaN below).

    Notes
    -----
    Thread-safe: predictions and measured vectors may come from different threads (the
    engine's worker and acquisition). Sums of x, y, x², y² and xy per column are updated as pairs enter and leave the window
    (NaN pairs are left out per column), and summed afresh from the kept pairs every
    ``window_trs`` removals so rounding does not build up over a long session.
    """

    def __init__(self, n_regions: int, *, window_trs: int = 30, lag_trs: int = 0,
                 target_weights: np.ndarray | None = None, min_pairs: int = 3) -> None:
        if window_trs < 2:
            raise ValueError(f"window_trs must be >= 2, got {window_trs}.")
        if lag_trs < 0:
            raise ValueError(f"lag_trs must be >= 0, got {lag_trs}.")
        self.n_regions = int(n_regions)
        self.window_trs, self.lag_trs = int(window_trs), int(lag_trs)
        self.min_pairs = max(2, int(min_pairs))
        self.weights = None
        if target_weights is not None:
            self.weights = np.asarray(target_weights, dtype=np.float64).ravel()
            if self.weights.size != self.n_regions:
                raise ValueError(f"target_weights has {self.weights.size} values for "
                                 f"{self.n_regions} regions.")
        n_cols = self.n_regions + (self.weights is not None)
        self._pred: dict[int, np.ndarray] = {}
        self._meas: dict[int, np.ndarray] = {}
        self._keys: list[int] = []  # pair indices (prediction's frame) in the window, sorted
        self._pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._sums = np.zeros((6, n_cols))  # n, x, y, xx, yy, xy
        self._removals = 0
        self._newest = -1
        self.n_pairs = 0  # pairs made since the start
        self._lock = threading.RLock()

    @classmethod
    def for_engine(cls, engine) -> "RunningCorrelation":
        """For a started :class:`~rtbold.stream.engine.LiveEngine`: its regions, feedback
        target and ``[live.measured]`` ``window_trs`` / ``lag_trs``."""
        mc = engine.config.measured
        target = engine.feedback_target
        return cls(len(engine.roi_names), window_trs=mc.window_trs, lag_trs=mc.lag_trs,
                   target_weights=None if target is None else target.weights)

    # -- input --------------------------------------------------------------------------------
    def add_predicted(self, index: int, values) -> None:
        """The prediction of frame ``index`` (P,)."""
        v = self._columns(values)
        with self._lock:
            self._pred[int(index)] = v
            self._pair(int(index))

    def add_measured(self, index: int, values) -> None:
        """The measured vector of frame ``index`` (P,; NaN for regions without one)."""
        v = self._columns(values)
        with self._lock:
            self._meas[int(index)] = v
            self._pair(int(index) - self.lag_trs)

    # -- output -------------------------------------------------------------------------------
    @property
    def r(self) -> np.ndarray:
        """(P,) r per region over the window (NaN: fewer than ``min_pairs`` or no variance)."""
        return self._r()[:self.n_regions]

    @property
    def target_r(self) -> float:
        """r of the feedback target (NaN without target weights)."""
        return float(self._r()[-1]) if self.weights is not None else float("nan")

    @property
    def median_r(self) -> float:
        """Median of the regions' r (NaN regions left out; NaN when none has one)."""
        r = self.r
        return float(np.median(r[np.isfinite(r)])) if np.isfinite(r).any() else float("nan")

    def __len__(self) -> int:
        """Pairs in the window."""
        return len(self._keys)

    def summary(self) -> str:
        """One line: r of the feedback target, median r over regions, pairs in the window."""
        def fmt(r: float) -> str:
            return "n/a" if not np.isfinite(r) else f"{r:+.2f}"

        fb = f"r(fb)={fmt(self.target_r)} " if self.weights is not None else ""
        return f"{fb}r(median)={fmt(self.median_r)} over {len(self)} TRs"

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The window's pairs, oldest first: frame indices (k,), predicted and measured
        (k, P + 1 with a target, its column last)."""
        with self._lock:
            keys = list(self._keys)
            pairs = [self._pairs[k] for k in keys]
        n = self._sums.shape[1]
        if not keys:
            return np.zeros(0, int), np.zeros((0, n)), np.zeros((0, n))
        return (np.array(keys), np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))

    # -- internals ----------------------------------------------------------------------------
    def _columns(self, values) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size != self.n_regions:
            raise ValueError(f"{v.size} values for {self.n_regions} regions.")
        if self.weights is None:
            return v.copy()
        used = self.weights != 0
        target = self.weights[used] @ v[used]  # NaN when a weighted region is NaN
        return np.append(v, target)

    def _pair(self, i: int) -> None:
        if i not in self._pred or (i + self.lag_trs) not in self._meas or i in self._pairs:
            return
        if len(self._keys) == self.window_trs and i < self._keys[0]:
            self._forget(i)
            return  # older than every pair in a full window
        x, y = self._pred[i], self._meas[i + self.lag_trs]
        self._pairs[i] = (x, y)
        bisect.insort(self._keys, i)
        self._update(x, y, +1)
        self.n_pairs += 1
        if len(self._keys) > self.window_trs:
            old = self._keys.pop(0)
            self._update(*self._pairs.pop(old), -1)
            self._removals += 1
            if self._removals >= self.window_trs:
                self._resum()
        self._forget(i)

    def _forget(self, i: int) -> None:
        """Drop inputs that can no longer enter the window (bounded memory)."""
        self._newest = max(self._newest, i)
        keep_from = self._newest - 4 * self.window_trs - self.lag_trs
        for d, lag in ((self._pred, 0), (self._meas, self.lag_trs)):
            if len(d) > 8 * self.window_trs + self.lag_trs:
                for k in [k for k in d if k - lag < keep_from]:
                    del d[k]

    def _update(self, x: np.ndarray, y: np.ndarray, sign: int) -> None:
        ok = np.isfinite(x) & np.isfinite(y)
        x0, y0 = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
        self._sums += sign * np.stack([ok.astype(float), x0, y0, x0 * x0, y0 * y0, x0 * y0])

    def _resum(self) -> None:
        self._sums[:] = 0.0
        self._removals = 0
        for k in self._keys:
            self._update(*self._pairs[k], +1)

    def _r(self) -> np.ndarray:
        with self._lock:
            n, sx, sy, sxx, syy, sxy = self._sums.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = n * sxy - sx * sy
            vx, vy = n * sxx - sx * sx, n * syy - sy * sy
            r = cov / np.sqrt(vx * vy)
        scale = np.maximum(np.abs(n * sxx), np.abs(n * syy))
        bad = (n < self.min_pairs) | (vx <= 1e-12 * scale) | (vy <= 1e-12 * scale)
        return np.where(bad, np.nan, np.clip(r, -1.0, 1.0))


__all__ = ["RunningCorrelation"]
