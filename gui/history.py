"""Frame history kept on the GUI side: the last frames, in arrival order, for the views to draw.

Frames are appended as they arrive (every TR, or faster during a replay); views read contiguous
slices of the most recent rows. Nothing here processes signals: it only stores what the engine sent.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np


class FrameHistory:
    """Bounded history of predicted (and measured) frames.

    Parameters
    ----------
    n_regions : int
        P, the number of values per frame.
    capacity : int
        How many recent frames to keep (the longest window any view asks for).
    n_latency : int
        How many recent frames' latency dictionaries to keep for the p50/p99 figures.

    Notes
    -----
    Rows are stored in a buffer twice the capacity; when it fills, the last ``capacity`` rows are
    copied to the front. Appending is O(P) amortised and :meth:`last` returns a view, not a copy.
    """

    def __init__(self, n_regions: int, capacity: int = 600, n_latency: int = 50) -> None:
        if n_regions < 1:
            raise ValueError(f"n_regions must be >= 1, got {n_regions}.")
        self.n_regions = int(n_regions)
        self.capacity = int(max(capacity, 2))
        size = 2 * self.capacity
        self._values = np.full((size, self.n_regions), np.nan, np.float32)
        self._measured = np.full((size, self.n_regions), np.nan, np.float32)
        self._feedback = np.full(size, np.nan, np.float64)
        self._index = np.zeros(size, np.int64)
        self._t = np.zeros(size, np.float64)
        self._n = 0  # rows in use in the buffer
        self.n_total = 0  # frames appended since the last clear
        self.n_flagged = 0
        self.has_measured = False
        self.latency: deque[dict[str, float]] = deque(maxlen=n_latency)
        self.last_frame: Any = None
        self.version = 0  # bumps on every append, so views can tell whether to redraw
        #: measured vectors that came before their frame reached the GUI (index -> values)
        self._early_measured: dict[int, np.ndarray] = {}
        self.n_late_measured = 0

    def clear(self) -> None:
        """Forget every frame (new session)."""
        self.__init__(self.n_regions, self.capacity, self.latency.maxlen or 50)

    def append(self, frame: Any) -> None:
        """Store one frame (an object with ``index``, ``t``, ``values``, ``feedback``, ``flags``,
        ``latency`` and ``measured`` attributes, as :class:`rtbold.stream.frames.Frame`)."""
        values = np.asarray(frame.values, dtype=np.float32).ravel()
        if values.shape[0] != self.n_regions:
            raise ValueError(f"Frame {getattr(frame, 'index', '?')} has {values.shape[0]} values; "
                             f"the display is set up for {self.n_regions} regions.")
        if self._n == self._values.shape[0]:
            keep = self.capacity
            for arr in (self._values, self._measured, self._feedback, self._index, self._t):
                arr[:keep] = arr[self._n - keep:self._n]
            self._n = keep
        i = self._n
        self._values[i] = values
        measured = getattr(frame, "measured", None)
        if measured is None:
            measured = self._early_measured.pop(int(getattr(frame, "index", -1)), None)
        if measured is not None:
            self._measured[i] = np.asarray(measured, dtype=np.float32).ravel()
            self.has_measured = True
        else:
            self._measured[i] = np.nan
        fb = getattr(frame, "feedback", None)
        self._feedback[i] = np.nan if fb is None else float(fb)
        self._index[i] = int(getattr(frame, "index", self.n_total))
        self._t[i] = float(getattr(frame, "t", np.nan))
        self._n += 1
        self.n_total += 1
        if getattr(frame, "flags", ()):
            self.n_flagged += 1
        lat = getattr(frame, "latency", None)
        if lat:
            self.latency.append(dict(lat))
        self.last_frame = frame
        self.version += 1

    def set_measured(self, index: int, values) -> bool:
        """Fill the measured slot of the frame ``index`` with a vector that came after it
        (:meth:`rtbold.stream.sink.FrameSink.measured`); kept for the frame when it is not
        shown yet. Returns whether a shown frame was filled."""
        values = np.asarray(values, dtype=np.float32).ravel()
        if values.shape[0] != self.n_regions:
            raise ValueError(f"Measured BOLD of frame {index} has {values.shape[0]} values; the "
                             f"display is set up for {self.n_regions} regions.")
        rows = np.flatnonzero(self._index[:self._n] == int(index))
        self.n_late_measured += 1
        if not rows.size:
            newest = self._index[self._n - 1] if self._n else -1
            if int(index) > newest:  # its frame is on its way (queued signal): keep for it
                self._early_measured[int(index)] = values
                while len(self._early_measured) > 64:
                    del self._early_measured[min(self._early_measured)]
            return False
        self._measured[rows[-1]] = values
        self.has_measured = True
        self.version += 1
        return True

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def last(self, n: int) -> dict[str, np.ndarray]:
        """The last ``n`` frames (fewer if fewer arrived), oldest first, as views.

        Returns
        -------
        dict
            ``values`` (k, P), ``measured`` (k, P; NaN where absent), ``feedback`` (k,),
            ``index`` (k,), ``t`` (k,).
        """
        k = min(int(n), len(self))
        sl = slice(self._n - k, self._n)
        return {"values": self._values[sl], "measured": self._measured[sl],
                "feedback": self._feedback[sl], "index": self._index[sl], "t": self._t[sl]}

    def latency_stats(self) -> dict[str, tuple[float, float]]:
        """Per-stage (p50, p99) in seconds over the kept latency dictionaries."""
        stages: dict[str, list[float]] = {}
        for lat in self.latency:
            for stage, sec in lat.items():
                if sec is not None and np.isfinite(sec):
                    stages.setdefault(stage, []).append(float(sec))
        return {s: (float(np.percentile(v, 50)), float(np.percentile(v, 99)))
                for s, v in stages.items()}
