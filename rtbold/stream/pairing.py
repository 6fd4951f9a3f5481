"""Pairing measured-BOLD vectors with predicted frames, whether they come before or after them.

A scanner's real-time export delivers a volume's region values seconds after its volume marker
(reconstruction, export, masker), so usually after the frame of that TR was predicted and
emitted. :class:`MeasuredPairing` keeps the vectors that came and the frames made recently, and
pairs each vector with the frame of its TR once, whichever of the two comes first:

* **on time**: the vector is in when the frame is made; :meth:`~MeasuredPairing.claim` returns it
  and the frame carries it (``Frame.measured``).
* **late**: the vector comes after its frame; :meth:`~MeasuredPairing.add` hands it to
  ``on_late(index, t, values)`` (the engine's :meth:`FrameSink.measured
  <rtbold.stream.sink.FrameSink.measured>`: recorded in ``measured.tsv`` with the frame's index
  and time, shown by the GUI, counted by the validation).
* **dropped**, never silently: ``on_dropped(stamp, reason, detail)`` with reason ``"late"``
  (stamped more than ``max_delay_s`` of stream time before the newest frame) or ``"unpaired"``
  (no frame for it: its TR was skipped or came before the first frame, or its frame already has
  a vector).

The pairing rule is one: the frame whose tick ``t`` satisfies
``t - TR + 1 % TR < stamp <= t + 1 % TR`` takes the vector (the latest such vector when several
came before the frame). The 1 % of a TR on both ends absorbs the microseconds by which the clock
corrections of the marker and measured streams differ: the previous volume, stamped about
``t - TR``, stays the previous frame's even when this frame's own volume is not in yet. Ticks are handled
in time order by one worker, so once a frame at or after a stamp was made, a vector waiting for
an earlier frame will never get one.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)

#: Share of a TR by which a stamp may follow its tick (stamps of the same volume).
_TOL = 0.01


class MeasuredPairing:
    """Measured-BOLD vectors by stream time, paired once with the frame of their TR.

    Parameters
    ----------
    tr : float
        Repetition time (s).
    max_delay_s : float
        A vector stamped more than this (stream time) before the newest frame is not paired but
        reported as ``"late"``.
    on_late : callable(index, t, values) | None
        Called (outside the lock, from the thread that called :meth:`add`) with a vector that
        came after its frame.
    on_dropped : callable(stamp, reason, detail) | None
        Called with a vector that is not paired (``reason`` ``"late"`` or ``"unpaired"``).
    maxlen : int
        Most vectors kept (the newest); those older than ``max_delay_s`` plus two TRs before
        the newest frame are forgotten anyway.
    """

    def __init__(self, tr: float, *, max_delay_s: float = 10.0,
                 on_late: Callable[[int, float, np.ndarray], None] | None = None,
                 on_dropped: Callable[[float, str, str], None] | None = None,
                 maxlen: int = 8192) -> None:
        self.tr = float(tr)
        self.max_delay_s = float(max_delay_s)
        self.on_late, self.on_dropped = on_late, on_dropped
        self.maxlen = int(maxlen)
        # sorted by stamp: [stamp, values, frame index or None while waiting]
        self._stamps: list[float] = []
        self._items: list[list] = []
        # recent frames: index -> [t, paired?]
        self._frames: OrderedDict[int, list] = OrderedDict()
        self._newest_t: float | None = None
        self._lock = threading.Lock()
        #: "on_time", "late" (paired after the frame), "too_late", "unpaired".
        self.counts = {"on_time": 0, "late": 0, "too_late": 0, "unpaired": 0}

    def __len__(self) -> int:
        return len(self._items)

    # -- acquisition side ---------------------------------------------------------------------
    def add(self, times: np.ndarray, values: np.ndarray) -> None:
        """Add vectors (any order); one whose frame was already made is paired late now."""
        late, dropped = [], []
        with self._lock:
            for t, v in zip(np.asarray(times, dtype=float), values):
                stamp, vec = float(t), np.array(v, dtype=np.float32, copy=True)
                newest = self._newest_t
                if newest is not None and newest - stamp > self.max_delay_s:
                    self.counts["too_late"] += 1
                    dropped.append((stamp, "late", f"stamped {newest - stamp:.1f} s before the "
                                    f"newest frame (more than live.measured.max_delay_s = "
                                    f"{self.max_delay_s:g} s)"))
                    continue
                item = self._insert(stamp, vec)
                if newest is None or stamp > newest + _TOL * self.tr:
                    continue  # its frame is still to come: claim() takes it
                index = self._frame_for(stamp)
                if index is None:
                    item[2] = -1
                    self.counts["unpaired"] += 1
                    dropped.append((stamp, "unpaired", "no frame for its TR (skipped, or before "
                                    "the first frame)"))
                elif self._frames[index][1]:
                    item[2] = -1
                    self.counts["unpaired"] += 1
                    dropped.append((stamp, "unpaired", f"frame {index} already has a measured "
                                    "vector"))
                else:
                    item[2] = index
                    self._frames[index][1] = True
                    self.counts["late"] += 1
                    late.append((index, self._frames[index][0], vec))
        self._emit(late, dropped)

    # -- worker side --------------------------------------------------------------------------
    def claim(self, index: int, t: float) -> np.ndarray | None:
        """The vector of the frame ``index`` at tick time ``t`` when it is already in (None
        otherwise; it is then paired late when it comes). Vectors that can no longer be paired
        are reported as ``"unpaired"``."""
        dropped = []
        with self._lock:
            hi, latest = self._latest_in_tr(t)
            found = None
            if latest is not None and self._items[latest][2] is None:
                found = self._items[latest]
                found[2] = index
                self.counts["on_time"] += 1
            for item in self._items[:hi]:  # waiting for a frame at or before this one: never
                if item[2] is None:
                    item[2] = -1
                    self.counts["unpaired"] += 1
                    dropped.append((item[0], "unpaired", "no frame for its TR (skipped, before "
                                    f"the first frame, or frame {index} took a later one)"))
            self._frames[int(index)] = [float(t), found is not None]
            self._newest_t = t if self._newest_t is None else max(self._newest_t, t)
            # Frames older than the delay bound can take no more vectors.
            while self._frames:
                first = next(iter(self._frames.values()))
                if self._newest_t - first[0] <= self.max_delay_s + self.tr:
                    break
                self._frames.popitem(last=False)
            # Vectors decided and older than any frame that could still take one: forgotten.
            old = bisect.bisect_left(self._stamps,
                                     self._newest_t - self.max_delay_s - 2 * self.tr)
            if old:
                del self._stamps[:old], self._items[:old]
        self._emit([], dropped)
        return None if found is None else found[1]

    def at(self, t: float) -> np.ndarray | None:
        """The latest vector stamped in the TR up to ``t`` (the pairing rule), or None; a
        look-up only (nothing is paired)."""
        with self._lock:
            latest = self._latest_in_tr(t)[1]
            return None if latest is None else self._items[latest][1]

    # -- helpers ------------------------------------------------------------------------------
    def _latest_in_tr(self, t: float) -> tuple[int, int | None]:
        """``(hi, i)``: ``hi`` vectors are stamped up to the tick ``t`` (+1 % TR); ``i`` is the
        latest of them when it lies in the tick's TR (the pairing rule), else None."""
        hi = bisect.bisect_right(self._stamps, t + _TOL * self.tr)
        latest = hi - 1 if hi and self._stamps[hi - 1] > t - (1 - _TOL) * self.tr else None
        return hi, latest

    def _insert(self, stamp: float, vec: np.ndarray) -> list:
        pos = bisect.bisect_right(self._stamps, stamp)
        item = [stamp, vec, None]
        self._stamps.insert(pos, stamp)
        self._items.insert(pos, item)
        if len(self._items) > self.maxlen:  # the oldest goes
            del self._stamps[0], self._items[0]
        return item

    def _frame_for(self, stamp: float) -> int | None:
        """The earliest recent frame with ``stamp - 1 % TR <= t < stamp + TR - 1 % TR``."""
        best = None
        for index, (t, _) in self._frames.items():
            if stamp - _TOL * self.tr <= t < stamp + (1 - _TOL) * self.tr and (
                    best is None or t < self._frames[best][0]):
                best = index
        return best

    def _emit(self, late: list, dropped: list) -> None:
        for index, t, vec in late:
            if self.on_late is not None:
                self.on_late(index, t, vec)
        for stamp, reason, detail in dropped:
            if self.on_dropped is not None:
                self.on_dropped(stamp, reason, detail)


__all__ = ["MeasuredPairing"]
