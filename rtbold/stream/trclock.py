"""TR clock: when each fMRI volume happens, in stream time.

Ticks come from a marker stream (scanner trigger over LSL, ``rtbold replay``'s ``<name>-markers``
or mne-lsl's ``<name>-annotations``), matched on the configured marker value, or from an internal
clock that ticks every TR of *stream* time once the ring buffer holds a full window. A configured
marker stream that cannot be found falls back to the internal clock with a visible warning, and
goes back to markers when the stream appears and sends its first volume marker.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..io.eeg import marker_matches

logger = logging.getLogger(__name__)

__all__ = ["Tick", "TRClock", "marker_matches"]


@dataclass
class Tick:
    """One volume: its stream time and when (wall, ``time.perf_counter``) the engine saw it."""

    index: int
    t: float
    source: str  # "marker" | "internal" | "inferred" (a missed trigger placed one TR on)
    wall: float


class TRClock:
    """Turn markers or stream progress into :class:`Tick` s.

    Parameters
    ----------
    tr : float
        Repetition time (s, stream time).
    mode : {"markers", "internal"}
        Where ticks come from.
    marker : str
        Marker value of a volume (see :func:`marker_matches`).
    """

    def __init__(self, tr: float, mode: str = "markers", marker: str = "R149") -> None:
        if not tr > 0:
            raise ValueError(f"TR must be positive, got {tr!r}.")
        self.tr = float(tr)
        self.mode = mode
        self.marker = marker
        self._count = 0
        self._next_t: float | None = None
        self.last_t: float | None = None
        self.fallback_reason: str | None = None

    def fall_back(self, reason: str) -> None:
        """Switch to the internal clock (marker stream absent); logs a warning."""
        self.mode = "internal"
        self.fallback_reason = reason
        logger.warning("TR clock: %s; ticking every %.3f s of stream time instead (internal "
                       "clock). Frames are not aligned to the scanner.", reason, self.tr)

    def use_markers(self) -> None:
        """Back to marker ticks (the marker stream appeared after a fall-back)."""
        self.mode = "markers"
        self.fallback_reason = None

    def _tick(self, t: float, source: str) -> Tick:
        tick = Tick(self._count, float(t), source, time.perf_counter())
        self._count += 1
        self.last_t = tick.t
        return tick

    def on_markers(self, markers: list[tuple[str, float]]) -> list[Tick]:
        """Ticks for the volume markers among ``(description, stream time)`` pairs."""
        if self.mode != "markers":
            return []
        return [self._tick(t, "marker") for desc, t in markers if marker_matches(desc, self.marker)]

    def on_volume(self, t: float, source: str = "marker") -> Tick:
        """A tick for a volume found by the trigger classification (``"marker"`` or, for a
        missed trigger placed one TR on, ``"inferred"``)."""
        return self._tick(t, source)

    def on_data(self, first_full_t: float | None, latest_t: float | None) -> list[Tick]:
        """Internal clock: ticks up to ``latest_t``, the first one at ``first_full_t``.

        ``first_full_t`` is the stream time of the first sample that ends a full window.
        """
        if self.mode != "internal" or first_full_t is None or latest_t is None:
            return []
        if self._next_t is None:
            self._next_t = first_full_t
        out = []
        while self._next_t <= latest_t + 1e-9:
            out.append(self._tick(self._next_t, "internal"))
            self._next_t += self.tr
        return out

    def restart_internal(self, at: float | None = None) -> None:
        """After a clock jump or a long gap: next tick at ``at`` (None: the next full window)."""
        self._next_t = at
