"""Hand-over from the live engine's worker threads to the Qt GUI thread.

:class:`rtbold.stream.engine.LiveEngine` calls ``on_frame``, ``on_status`` and ``on_error`` from
its own threads. :class:`EngineBridge` turns each call into a Qt signal; because the bridge lives in
the GUI thread, Qt queues those signals, so the engine never waits on the GUI and the slots run in
the GUI thread. The bridge stores every frame in a :class:`~rtbold.gui.history.FrameHistory`; the
views are drawn by a timer from the latest state (:class:`DrawLoop`), so frames that arrive faster
than the screen refreshes are kept in the history and simply not drawn one by one.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from PyQt6 import QtCore

from .history import FrameHistory

logger = logging.getLogger(__name__)


class EngineBridge(QtCore.QObject):
    """Thread-safe callbacks for a live engine, re-emitted as queued Qt signals.

    Signals
    -------
    frame_ready(object)
        A :class:`~rtbold.stream.frames.Frame`, delivered in the GUI thread.
    status_changed(object)
        An :class:`~rtbold.stream.frames.EngineStatus`.
    error(str)
        A message to show to the user.
    measured_ready(int, object)
        A measured-BOLD vector (frame index, values) that came after its frame; it fills that
        frame's slot in the history.

    Examples
    --------
    >>> bridge = EngineBridge()
    >>> engine = LiveEngine(config, **bridge.callbacks())  # doctest: +SKIP
    """

    frame_ready = QtCore.pyqtSignal(object)
    status_changed = QtCore.pyqtSignal(object)
    error = QtCore.pyqtSignal(str)
    measured_ready = QtCore.pyqtSignal(int, object)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.history: FrameHistory | None = None
        self.status: Any = None
        self.status_version = 0
        self.n_received = 0
        self.frame_ready.connect(self._store_frame)
        self.status_changed.connect(self._store_status)
        self.measured_ready.connect(self._store_measured)

    # --- called from engine worker threads: emit only, never touch widgets or the history ---
    def on_frame(self, frame: Any) -> None:
        """Engine callback (any thread)."""
        self.frame_ready.emit(frame)

    def on_measured(self, index: int, t: float, values: Any) -> None:
        """Engine callback (any thread): measured BOLD of the already emitted frame ``index``."""
        self.measured_ready.emit(int(index), values)

    def on_status(self, status: Any) -> None:
        """Engine callback (any thread)."""
        self.status_changed.emit(status)

    def on_error(self, err: Any) -> None:
        """Engine callback (any thread); exceptions are shown by their type and message."""
        msg = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        self.error.emit(msg)

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        """``on_frame``, ``on_status``, ``on_error`` keyword arguments for ``LiveEngine``."""
        return {"on_frame": self.on_frame, "on_status": self.on_status, "on_error": self.on_error}

    # --- GUI thread ---
    def reset(self, n_regions: int, capacity: int = 600) -> FrameHistory:
        """Start a new history for ``n_regions`` values per frame."""
        self.history = FrameHistory(n_regions, capacity)
        return self.history

    def _store_frame(self, frame: Any) -> None:
        self.n_received += 1
        n = len(getattr(frame, "values", ()))
        if self.history is None or self.history.n_regions != n:
            logger.info("First frame with %d regions: new display history.", n)
            cap = self.history.capacity if self.history is not None else 600
            self.reset(n, cap)
        try:
            self.history.append(frame)
        except (ValueError, TypeError) as err:  # a malformed frame must not stop the display
            self.error.emit(f"Frame not shown: {err}")

    def _store_measured(self, index: int, values: Any) -> None:
        if self.history is None:
            return
        try:
            self.history.set_measured(index, values)
        except ValueError as err:
            self.error.emit(f"Measured BOLD not shown: {err}")

    def _store_status(self, status: Any) -> None:
        self.status = status
        self.status_version += 1


class DrawLoop(QtCore.QObject):
    """Redraws views from the latest state at a fixed rate, only when something changed.

    Parameters
    ----------
    bridge : EngineBridge
        Source of the history and status.
    draw : callable
        ``draw(history, status)``; called in the GUI thread.
    fps : float
        Redraw rate (frames arriving faster are coalesced).
    """

    def __init__(self, bridge: EngineBridge, draw: Callable[[FrameHistory | None, Any], None],
                 fps: float = 30.0, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self._draw = draw
        self._seen = (-1, None)
        self.n_draws = 0
        self.draw_times: list[float] = []
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(max(1, int(round(1000.0 / fps))))
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def tick(self, force: bool = False) -> bool:
        """Draw if the history or status changed since the last draw; return whether it drew."""
        hist = self.bridge.history
        state = (hist.version if hist is not None else -1, self.bridge.status_version)
        if not force and state == self._seen:
            return False
        self._seen = state
        t0 = time.perf_counter()
        self._draw(hist, self.bridge.status)
        self.draw_times.append(time.perf_counter() - t0)
        if len(self.draw_times) > 1000:
            del self.draw_times[:500]
        self.n_draws += 1
        return True
