"""Volume triggers: regular, doubled, missed, lost, from marker times that arrive in order.

The scanner sends one trigger per volume, one TR apart. :class:`VolumeTriggers` reads the marker
times as they come and turns them into :class:`TriggerEvent` s, in time order:

``first``
    the first marker (or the first after the triggers were lost): a volume, and the start of a
    sequence whose TR is measured from the next regular spacing;
``volume``
    a marker one TR (within ``tolerance_s``) after the previous volume; ``regular`` says whether
    the volume before it was bounded by two real markers one TR apart (only such volumes may go
    into a gradient template);
``doubled``
    a marker closer than one TR to the previous volume: ignored;
``inferred``
    no marker came one TR after the previous volume: a missed trigger, placed one TR after it
    (at most ``max_missed`` in a row);
``lost``
    more triggers missed in a row than that: the scanner is taken to have stopped at ``t``;
``restart``
    a marker at a spacing that is no whole number of TRs: a new sequence starts there.

The events depend only on the marker times and on how far the caller says the markers are
complete (:meth:`advance`), never on when they arrive, so a stream and a file give the same
events. The live engine, the offline reader and the gradient correction all use this one class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TriggerEvent", "VolumeTriggers"]


@dataclass(frozen=True)
class TriggerEvent:
    """One classified volume trigger (times in the caller's clock, seconds)."""

    t: float
    kind: str  # first | volume | doubled | inferred | lost | restart
    regular: bool = False

    @property
    def starts_volume(self) -> bool:
        """True for the events that begin a volume (a frame and a gradient epoch)."""
        return self.kind in ("first", "volume", "inferred", "restart")


class VolumeTriggers:
    """Classify volume-marker times (see the module notes).

    Parameters
    ----------
    tr : float
        Expected repetition time (s): the bundle's or the fMRI series'. The sequence's own TR is
        measured from the first spacing within 25 % of it.
    tolerance_s : float
        A spacing within this of the TR is regular.
    max_missed : int
        Missed triggers in a row that are inferred before the triggers count as lost.
    """

    def __init__(self, tr: float, tolerance_s: float = 0.002, max_missed: int = 1) -> None:
        if not tr > 0:
            raise ValueError(f"The TR must be positive to classify volume triggers, got {tr!r}.")
        self.tr_hint = float(tr)
        self.tol = float(tolerance_s)
        self.max_missed = int(max_missed)
        #: The sequence's TR (s) once measured, else None.
        self.tr: float | None = None
        self.prev: float | None = None  # last volume start (real or inferred)
        self._prev_real = False
        self._n_missed = 0
        self._lost = False
        self.n_markers = 0
        self.counts = {k: 0 for k in ("first", "volume", "doubled", "inferred", "lost",
                                      "restart")}

    # -- queries ------------------------------------------------------------------------------
    @property
    def lost(self) -> bool:
        """True after the triggers were lost (until the next marker)."""
        return self._lost

    def safe_until(self) -> float:
        """No event can come before this time, whatever markers arrive later."""
        if self.prev is None or self._lost:
            return -math.inf
        if self.tr is None:
            return self.prev + 0.5 * self.tr_hint  # nearer is doubled
        return self.prev + self.tr - self.tol

    # -- input ----------------------------------------------------------------------------------
    def add(self, times) -> list[TriggerEvent]:
        """Classify new marker times (in order; every marker before them was given)."""
        out: list[TriggerEvent] = []
        for t in times:
            t = float(t)
            if self.prev is not None and t < self.prev - self.tol:
                continue  # before the current volume: a marker that arrived out of order
            self.n_markers += 1
            out += self.advance(t)
            ev = self._classify(t)
            self.counts[ev.kind] += 1
            out.append(ev)
        return out

    def advance(self, horizon: float) -> list[TriggerEvent]:
        """Every marker up to ``horizon`` was given: place the triggers missed before it."""
        out = []
        while (self.prev is not None and self.tr is not None and not self._lost
               and self.prev + self.tr + self.tol < horizon):
            if self._n_missed < self.max_missed:
                self._n_missed += 1
                self.prev += self.tr
                self._prev_real = False
                out.append(TriggerEvent(self.prev, "inferred"))
            else:
                self._lost = True
                out.append(TriggerEvent(self.prev + self.tr, "lost"))
        for ev in out:
            self.counts[ev.kind] += 1
        return out

    def finish(self) -> list[TriggerEvent]:
        """The marker stream has ended (a whole recording): the scanner stopped one TR after the
        last volume, so no missed trigger is placed after it (its template would be subtracted
        from EEG without artefact)."""
        if self.prev is None or self._lost:
            return []
        self._lost = True
        self.counts["lost"] += 1
        return [TriggerEvent(self.prev + (self.tr or self.tr_hint), "lost")]

    def _classify(self, t: float) -> TriggerEvent:
        prev, tr, tol = self.prev, self.tr, self.tol
        if prev is None:
            return self._start(t, "first")
        d = t - prev
        if self._lost:
            # The scanner may have gone on without triggers, or a new sequence starts.
            m = round(d / tr) if tr else 0
            if tr and m >= 1 and abs(d - m * tr) <= m * tol:
                return self._volume(t, regular=False)
            return self._start(t, "restart")
        if tr is None:
            if d < 0.5 * self.tr_hint:
                return TriggerEvent(t, "doubled")
            if abs(d - self.tr_hint) <= 0.25 * self.tr_hint:
                self.tr = d
                return self._volume(t, regular=self._prev_real)
            return self._start(t, "restart")
        if d < tr - tol:
            return TriggerEvent(t, "doubled")
        if d <= tr + tol:
            return self._volume(t, regular=self._prev_real)
        return self._start(t, "restart")  # only reachable with max_missed = 0

    def _start(self, t: float, kind: str) -> TriggerEvent:
        self.prev, self._prev_real = t, True
        self._n_missed, self._lost = 0, False
        if kind == "restart":
            self.tr = None
        return TriggerEvent(t, kind)

    def _volume(self, t: float, regular: bool) -> TriggerEvent:
        self.prev, self._prev_real = t, True
        self._n_missed, self._lost = 0, False
        return TriggerEvent(t, "volume", regular=regular)
