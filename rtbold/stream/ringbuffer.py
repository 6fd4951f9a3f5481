"""Preallocated ring buffer of preprocessed EEG (200 Hz, float32 µV) with a time per sample.

Every sample is written at two places, ``i`` and ``i + capacity``, of a buffer twice the
capacity long, so the last ``k <= capacity`` samples are always one contiguous slice: taking a
window never copies the whole buffer (ARCHITECTURE.md section 4: tick -> window ready <= 2 ms).
Windows come from :func:`rtbold.preprocessing.extract_window` on that view, the very function the
offline dataset uses, which is what makes live and offline windows equal.

Gaps (lost samples, reconnections, clock jumps), replaced NaN samples and bad channels (flat,
clipped, saturated) are kept as stream-time intervals per flag, so a window that overlaps one can
be flagged. :meth:`RingBuffer.bridge` fills the stretch of a gap by holding each channel's last
value, so frames resume right after a reconnection (flagged ``"gap"``) instead of waiting for a
whole clean window.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from ..preprocessing import SFREQ, WINDOW_SAMPLES, extract_window


class RingBuffer:
    """Ring buffer of ``capacity`` samples x ``n_channels``.

    Parameters
    ----------
    n_channels : int
        Channels (the model's channels, after mapping).
    capacity_s : float
        Seconds kept; must exceed the window (16 s) plus the filter delay (the engine uses 40 s).
    sfreq : float
        Sampling rate of what is written (200 Hz).
    """

    def __init__(self, n_channels: int, capacity_s: float = 24.0, sfreq: float = SFREQ,
                 window_samples: int = WINDOW_SAMPLES) -> None:
        self.n_channels = int(n_channels)
        self.sfreq = float(sfreq)
        self.window_samples = int(window_samples)
        self.capacity = int(round(capacity_s * sfreq))
        if self.capacity < self.window_samples + 1:
            raise ValueError(f"Ring buffer of {capacity_s} s cannot hold a "
                             f"{self.window_samples / sfreq:g} s window; raise buffer_s.")
        self._data = np.zeros((self.n_channels, 2 * self.capacity), dtype=np.float32)
        self._times = np.zeros(2 * self.capacity, dtype=np.float64)
        self._written = 0  # samples written since creation
        #: Held by writers and readers; writes and window extraction take well under 1 ms.
        self.lock = threading.Lock()
        #: Notified after every write (the worker waits on it for its window).
        self.cond = threading.Condition(self.lock)
        self._marks: dict[str, deque[tuple[float, float]]] = {}

    # -- writing (acquisition thread) --------------------------------------------------------
    def write(self, data: np.ndarray, times: np.ndarray) -> None:
        """Append samples ``data`` (n_channels, n) with their stream times (n,)."""
        n = data.shape[1]
        if n == 0:
            return
        cap = self.capacity
        if n > cap:  # only the newest capacity samples can be kept
            data, times, self._written = data[:, -cap:], times[-cap:], self._written + n - cap
            n = cap
        with self.cond:
            pos = self._written % cap
            first = min(n, cap - pos)
            for off in (0, cap):
                self._data[:, off + pos:off + pos + first] = data[:, :first]
                self._times[off + pos:off + pos + first] = times[:first]
                if first < n:
                    self._data[:, off:off + n - first] = data[:, first:]
                    self._times[off:off + n - first] = times[first:]
            self._written += n
            self.cond.notify_all()

    def mark(self, flag: str, t_start: float, t_stop: float) -> None:
        """Remember that windows overlapping these stream times get ``flag``."""
        with self.lock:
            spans = self._marks.setdefault(flag, deque(maxlen=256))
            if spans and spans[-1][1] >= t_start - 1.5 / self.sfreq:  # extend a running span
                spans[-1] = (spans[-1][0], max(spans[-1][1], float(t_stop)))
            else:
                spans.append((float(t_start), float(t_stop)))

    def mark_gap(self, t_start: float, t_stop: float) -> None:
        """Remember that samples between these stream times are missing or unreliable."""
        self.mark("gap", t_start, t_stop)

    def mark_nan(self, t_start: float, t_stop: float) -> None:
        """Remember that samples between these stream times were NaN and replaced."""
        self.mark("nan", t_start, t_stop)

    def bridge(self, t_next: float) -> int:
        """Hold the last sample of each channel on the 200 Hz grid up to just before ``t_next``.

        Used after a gap (the caller marks it): windows across it can be built and are flagged.
        At most ``capacity`` samples are written (older ones would be overwritten anyway).
        Returns the number of samples written.
        """
        last = self.latest_time()
        if last is None:
            return 0
        n = int(round((t_next - last) * self.sfreq)) - 1
        if n <= 0:
            return 0
        n = min(n, self.capacity)
        with self.lock:
            hold = self._data[:, (self._written - 1) % self.capacity].copy()
        times = t_next - np.arange(n, 0, -1) / self.sfreq
        self.write(np.repeat(hold[:, None], n, axis=1), times)
        return n

    # -- reading ----------------------------------------------------------------------------
    @property
    def n_available(self) -> int:
        """Samples currently held (at most ``capacity``)."""
        return min(self._written, self.capacity)

    @property
    def n_written(self) -> int:
        return self._written

    @property
    def fill(self) -> float:
        """Fraction of a full window held (0..1)."""
        return min(1.0, self.n_available / (self.window_samples + 1))

    def latest_time(self) -> float | None:
        """Stream time of the newest sample, None when empty."""
        if self._written == 0:
            return None
        return float(self._times[(self._written - 1) % self.capacity])

    def oldest_time(self) -> float | None:
        if self._written == 0:
            return None
        return float(self._times[(self._written - self.n_available) % self.capacity])

    def view(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous views (no copy) of the last ``n`` samples and their times.

        Hold :attr:`lock` while using the views: the acquisition thread overwrites old samples.
        """
        avail = self.n_available
        n = avail if n is None else min(int(n), avail)
        start = (self._written - n) % self.capacity
        return self._data[:, start:start + n], self._times[start:start + n]

    def covers(self, t_event: float) -> bool:
        """True when the newest sample has reached ``t_event`` (within half a sample)."""
        latest = self.latest_time()
        return latest is not None and latest >= t_event - 0.5 / self.sfreq

    def window(self, t_event: float) -> np.ndarray:
        """Model input for the volume at ``t_event`` (see :func:`extract_window`).

        Raises ValueError when the window is not (or no longer) in the buffer or spans a gap.
        """
        with self.lock:
            data, times = self.view()
            return extract_window(data, times, t_event, self.window_samples, self.sfreq)

    def flags(self, t_event: float) -> tuple[str, ...]:
        """Flags of the marks ("gap", "nan", "flat", ...) the window ending at ``t_event`` overlaps."""
        t0 = t_event - (self.window_samples + 1) / self.sfreq
        with self.lock:
            return tuple(flag for flag, spans in self._marks.items()
                         if any(a <= t_event and b >= t0 for a, b in spans))

    def reset(self) -> None:
        """Forget everything (new connection with a different clock)."""
        with self.cond:
            self._written = 0
            self._marks.clear()
