"""Quality checks of the live input and output, and logging that does not flood.

* :class:`EpisodeLog` logs a condition once when it starts and once when it ends (NaN samples,
  flat channels, missing triggers), and rate-limits messages that repeat.
* :class:`ChannelQuality` looks at every second of the raw EEG (in µV, the channels the model
  uses): a channel whose peak-to-peak is below ``flat_uv`` is **flat**; one that sits on its
  extreme value for several samples is **clipped** (an amplifier or ADC at its rail); one beyond
  ``saturation_uv`` is **saturated**. Frames whose window overlaps such a second carry the flag.
* :class:`AmplitudeCheck` measures the RMS of the first seconds of EEG; far outside scalp-EEG
  values in µV it warns with the measured RMS and the unit assumed (volts read as microvolts is
  the usual cause), and the session's frames carry the flag ``"amplitude"``.
* :class:`OutputCheck` flags predictions that are not finite (``"nonfinite"``: not published,
  see :mod:`rtbold.stream.sink`) and predictions that stop varying over several TRs
  (``"constant"``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque

import numpy as np

logger = logging.getLogger(__name__)


class EpisodeLog:
    """Log a condition once per episode, and repeated messages at most once per ``every_s``.

    Parameters
    ----------
    log : logging.Logger
        Where to log.
    every_s : float
        Least time between two messages of the same key with :meth:`warning`.
    """

    def __init__(self, log: logging.Logger, every_s: float = 10.0) -> None:
        self.log = log
        self.every_s = float(every_s)
        self.active: dict[str, object] = {}
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def start(self, key: str, msg: str, *args, state: object = True) -> bool:
        """Warn when ``key`` starts (or its ``state`` changes); True when it logged."""
        if self.active.get(key, None) == state:
            return False
        self.active[key] = state
        self.log.warning(msg, *args)
        return True

    def end(self, key: str, msg: str, *args) -> bool:
        """Log (info) the end of ``key``'s episode; True when one was active."""
        if key not in self.active:
            return False
        del self.active[key]
        self.log.info(msg, *args)
        return True

    def allow(self, key: str) -> bool:
        """True at most once per ``every_s`` for ``key`` (for callers that log themselves)."""
        now = time.monotonic()
        if now - self._last.get(key, -math.inf) < self.every_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        return True

    def warning(self, key: str, msg: str, *args) -> bool:
        """Warn, at most once per ``every_s`` for ``key`` (the number left out is added)."""
        now = time.monotonic()
        if now - self._last.get(key, -math.inf) < self.every_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        n = self.suppressed.pop(key, 0)
        self.log.warning(msg + (f" ({n} similar messages left out)" if n else ""), *args)
        return True


class ChannelQuality:
    """Flat, clipped and saturated channels, per second of raw EEG.

    Parameters
    ----------
    ch_names : list of str
        Names of the columns given to :meth:`add`.
    sfreq : float
        Their rate.
    flat_uv : float
        Peak-to-peak (µV) below which a second of a channel is flat.
    clip_samples : int
        Samples at a channel's extreme value within a second that mean clipping.
    saturation_uv : float | None
        |value| (µV) at or beyond which a channel is saturated; None: not checked.
    """

    FLAGS = ("flat", "clipped", "saturated")

    def __init__(self, ch_names: list[str], sfreq: float, *, flat_uv: float = 0.5,
                 clip_samples: int = 5, saturation_uv: float | None = None) -> None:
        self.ch_names = list(ch_names)
        self.block = max(8, int(round(sfreq)))
        self.flat_uv = float(flat_uv)
        self.clip_samples = int(clip_samples)
        self.saturation_uv = saturation_uv
        self._buf = np.empty((self.block, len(self.ch_names)))
        self._times = np.empty(self.block)
        self._n = 0
        #: flag -> channels in the current episode (empty: none).
        self.current: dict[str, tuple[str, ...]] = {f: () for f in self.FLAGS}

    def add(self, x: np.ndarray, times: np.ndarray) -> list[tuple[str, float, float, tuple]]:
        """Feed (n, C) µV samples; returns ``(flag, t_start, t_stop, channels)`` per bad second."""
        out = []
        i = 0
        n = len(times)
        while i < n:
            take = min(self.block - self._n, n - i)
            self._buf[self._n:self._n + take] = x[i:i + take]
            self._times[self._n:self._n + take] = times[i:i + take]
            self._n += take
            i += take
            if self._n == self.block:
                out += self._check()
                self._n = 0
        return out

    def _check(self) -> list[tuple[str, float, float, tuple]]:
        finite = np.isfinite(self._buf).all(axis=0)  # NaN seconds are the NaN check's job
        b = np.where(finite, self._buf, 0.0)
        hi, lo = b.max(axis=0), b.min(axis=0)
        ptp = hi - lo
        flat = finite & (ptp < self.flat_uv)
        at_edge = (b == hi).sum(axis=0) + (b == lo).sum(axis=0)
        clipped = finite & ~flat & (at_edge >= self.clip_samples)
        bad = {"flat": flat, "clipped": clipped}
        if self.saturation_uv:
            bad["saturated"] = finite & (np.abs(b).max(axis=0) >= self.saturation_uv)
        t0, t1 = float(self._times[0]), float(self._times[-1])
        out = []
        for flag in self.FLAGS:
            mask = bad.get(flag)
            chans = tuple(c for c, m in zip(self.ch_names, mask) if m) if mask is not None else ()
            self.current[flag] = chans
            if chans:
                out.append((flag, t0, t1, chans))
        return out


class AmplitudeCheck:
    """Is the EEG plausibly in microvolts? Measured once on the first ``check_s`` seconds.

    Parameters
    ----------
    sfreq : float
        Rate of what :meth:`add` receives.
    unit : str
        The unit assumed (for the message), e.g. ``"µV (unit field '0' read as V)"``.
    check_s : float
        Seconds of EEG measured.
    range_uv : (float, float)
        Plausible median channel RMS (µV) of scalp EEG, MR artefacts included.
    """

    def __init__(self, sfreq: float, unit: str, *, check_s: float = 4.0,
                 range_uv: tuple[float, float] = (0.5, 50_000.0)) -> None:
        self.n_needed = int(check_s * sfreq)
        self.check_s = float(check_s)
        self.unit = unit
        self.range_uv = (float(range_uv[0]), float(range_uv[1]))
        self._parts: list[np.ndarray] = []
        self._n = 0
        self.rms_uv: float | None = None
        self.problem: str | None = None

    @property
    def done(self) -> bool:
        return self.rms_uv is not None

    def add(self, data: np.ndarray) -> str | None:
        """Feed (C, n) µV samples of the model's channels; returns the problem once, if any."""
        if self.done or data.shape[1] == 0:
            return None
        self._parts.append(np.array(data[:, :self.n_needed - self._n], dtype=np.float64))
        self._n += self._parts[-1].shape[1]
        if self._n < self.n_needed:
            return None
        x = np.concatenate(self._parts, axis=1)
        self._parts = []
        rms = np.sqrt(np.mean((x - x.mean(axis=1, keepdims=True)) ** 2, axis=1))
        rms = rms[rms > 0]
        self.rms_uv = float(np.median(rms)) if rms.size else 0.0
        lo, hi = self.range_uv
        if lo <= self.rms_uv <= hi:
            return None
        hint = ""
        for unit, factor in (("V", 1e6), ("mV", 1e3), ("uV", 1.0), ("nV", 1e-3)):
            if lo <= self.rms_uv * factor <= hi:
                hint = (f"; if the values are in {unit} set live.stream.units = '{unit}' "
                        f"(RMS would be {self.rms_uv * factor:.3g} µV)")
                break
        self.problem = (f"EEG amplitude implausible: median channel RMS {self.rms_uv:.3g} µV over "
                        f"the first {self.check_s:g} s, "
                        f"reading the values as {self.unit}; scalp EEG lies within "
                        f"{lo:g}-{hi:g} µV{hint}. Frames are flagged 'amplitude'.")
        return self.problem


class OutputCheck:
    """Flags of a prediction: ``"nonfinite"`` and ``"constant"`` (unchanged over ``n_trs``).

    Parameters
    ----------
    n_trs : int
        Consecutive frames whose values all stay within ``atol`` of each other that make a
        frame ``"constant"`` (0 switches the check off).
    atol : float
        Largest change (normalised units) that counts as no change.
    """

    def __init__(self, n_trs: int = 5, atol: float = 1e-6) -> None:
        self.n_trs, self.atol = int(n_trs), float(atol)
        self._recent: deque[np.ndarray] = deque(maxlen=max(self.n_trs, 1))
        self.log = EpisodeLog(logger)

    def flags(self, values: np.ndarray) -> tuple[str, ...]:
        if not np.isfinite(values).all():
            self.log.start("nonfinite", "The model gives non-finite predictions (NaN/inf): "
                           "frames flagged 'nonfinite', not published (logged once until they "
                           "stop). Check the bundle's weights and the EEG input.")
            return ("nonfinite",)
        self.log.end("nonfinite", "Predictions are finite again.")
        if self.n_trs < 2:
            return ()
        self._recent.append(np.asarray(values, dtype=np.float64))
        if len(self._recent) < self.n_trs:
            return ()
        ref = self._recent[0]
        if all(np.max(np.abs(v - ref)) <= self.atol for v in self._recent):
            self.log.start("constant", "Predictions have not changed over %d TRs: frames "
                           "flagged 'constant' (wrong EEG units or a flat input?).", self.n_trs)
            return ("constant",)
        self.log.end("constant", "Predictions vary again.")
        return ()
