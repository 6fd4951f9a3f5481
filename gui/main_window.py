"""The rtbold main window: connect panel, glass brain, traces, FC, feedback and status."""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from PyQt6 import QtCore, QtGui, QtWidgets

from . import theme
from .bridge import DrawLoop, EngineBridge
from .connect import ConnectPanel
from .fc import FCView
from .feedback import FeedbackView
from .glassbrain import GlassBrainView
from .history import FrameHistory
from .regions import RegionInfo, region_info
from .settings import SessionSettings, load_settings, save_settings
from .status import ErrorBanner, StatusView
from .traces import TracesView
from .validation import ValidationView

logger = logging.getLogger(__name__)

#: ``factory(settings, *, on_frame, on_status, on_error) -> engine`` where the engine has
#: ``start()``, ``stop()`` and (after ``start``) ``roi_names`` and ``networks``.
EngineFactory = Callable[..., Any]


class MainWindow(QtWidgets.QMainWindow):
    """Live display of predicted BOLD frames.

    Parameters
    ----------
    engine_factory : callable | None
        ``engine_factory(settings, on_frame=..., on_status=..., on_error=...)`` returning an
        object with ``start()`` and ``stop()`` (a :class:`rtbold.stream.engine.LiveEngine`).
        Called when the user presses Start; None: Start only reports that no engine is set.
    settings : SessionSettings | None
        Initial choices; read from ``settings_path`` when None.
    settings_path : path | None
        TOML file that keeps the last choices (user config dir when None).
    roi_names, networks : sequence of str | None
        Regions to display before the first frame (DiFuMo-64 when None).
    fps : float
        Redraw rate.
    discover : bool
        Look for LSL streams when the window opens.
    """

    engine_started = QtCore.pyqtSignal(bool)

    def __init__(self, engine_factory: EngineFactory | None = None, *,
                 settings: SessionSettings | None = None,
                 settings_path: str | Path | None = None,
                 roi_names: Sequence[str] | None = None, networks: Sequence[str] | None = None,
                 fps: float = 30.0, discover: bool = True) -> None:
        super().__init__()
        theme.configure_pyqtgraph()
        self.setWindowTitle("rtbold — live EEG to fMRI")
        self.setStyleSheet(theme.APP_STYLESHEET)
        self.resize(1600, 1000)
        self.engine_factory = engine_factory
        self.engine: Any = None
        self.settings_path = settings_path
        self.settings = settings if settings is not None else load_settings(settings_path)
        s = self.settings
        self.regions = region_info(roi_names, networks)

        self.bridge = EngineBridge(self)
        self.bridge.reset(self.regions.n)
        self.bridge.error.connect(self.show_error)
        self.bridge.frame_ready.connect(self._check_regions)

        self.glass = GlassBrainView(self.regions, mode=s.color_mode, limit=s.color_limit,
                                    subtract_mean=s.subtract_mean)
        self.traces = TracesView(self.regions, n_trs=s.trace_window)
        self.fc = FCView(self.regions, window=s.fc_window, gsr=s.fc_gsr)
        self.validation = ValidationView(self.regions)
        self.bridge.frame_ready.connect(self.validation.add_frame)
        self.bridge.measured_ready.connect(self.validation.add_measured)
        self.feedback = FeedbackView(target=s.feedback_target, baseline=s.feedback_baseline)
        self.status_view = StatusView()
        self.connect_panel = ConnectPanel(s)
        self.banner = ErrorBanner()

        bottom = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        bottom.addWidget(_titled("Region traces", self.traces))
        bottom.addWidget(_titled("Sliding-window FC", self.fc))
        bottom.setStretchFactor(0, 1)
        bottom.setStretchFactor(1, 1)
        bottom.setSizes([520, 520])
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(_titled("Glass brain", self.glass))
        split.addWidget(bottom)
        split.setSizes([360, 600])
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.banner)
        lay.addWidget(split, 1)
        self.setCentralWidget(central)

        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        area = QtCore.Qt.DockWidgetArea
        for key, title, widget, where in (
                ("connect", "Connect", self.connect_panel, area.LeftDockWidgetArea),
                ("status", "Status", self.status_view, area.LeftDockWidgetArea),
                ("feedback", "Feedback", self.feedback, area.RightDockWidgetArea),
                # a dock under the feedback, not a third column beside the traces and FC: the
                # window must fit a 1920-px screen
                ("validation", "Predicted vs measured", self.validation,
                 area.RightDockWidgetArea)):
            dock = QtWidgets.QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(widget)
            self.addDockWidget(where, dock)
            self.docks[key] = dock
        self.resizeDocks([self.docks["connect"], self.docks["feedback"]], [340, 230],
                         QtCore.Qt.Orientation.Horizontal)
        self._build_menu()
        # pyqtgraph views paint their whole background: marking them opaque spares Qt from
        # repainting the (style-sheet drawn) parents underneath on every redraw.
        import pyqtgraph as pg

        for gv in self.findChildren(pg.GraphicsView):
            gv.viewport().setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
            # Axes, colour bars and brain outlines rarely change but are costly to draw (text,
            # Bezier curves): keep them as pixmaps so a redraw only blits them.
            for item in gv.scene().items():
                # Not the traces' time and r axes: they change with every frame, and their
                # labels reach beyond the axis' bounding rect, which a cache would clip.
                if item in (self.traces.plot.getAxis("right"), self.traces.plot.getAxis("bottom")):
                    continue
                if isinstance(item, (pg.AxisItem, QtWidgets.QGraphicsPathItem)):
                    item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)

        self.status_view.calibrate_requested.connect(self.request_calibration)
        self.connect_panel.start_requested.connect(self.start)
        self.connect_panel.stop_requested.connect(self.stop)
        self.engine_started.connect(self._on_engine_started)
        self.draw_loop = DrawLoop(self.bridge, self.draw, fps=fps, parent=self)
        self.draw_loop.start()
        if discover:
            QtCore.QTimer.singleShot(0, self.connect_panel.refresh)

    def _build_menu(self) -> None:
        view = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        act = QtGui.QAction("Feedback in its own window", self)
        act.setShortcut("Ctrl+F")
        act.triggered.connect(self.feedback.toggle_detached)
        view.addAction(act)

    # --- regions and drawing ---
    @property
    def history(self) -> FrameHistory | None:
        return self.bridge.history

    def configure_regions(self, roi_names: Sequence[str] | None,
                          networks: Sequence[str] | None = None,
                          n_regions: int | None = None) -> RegionInfo:
        """Set up every view for these regions (called when an engine reports its ROIs)."""
        regions = region_info(roi_names, networks, n_regions)
        if roi_names is None and n_regions is not None and regions.n != n_regions:
            names = [f"ROI {i + 1}" for i in range(n_regions)]
            regions = region_info(names, networks)
        self.regions = regions
        for view in (self.glass, self.traces, self.fc):
            view.configure(regions)
        self._configure_validation()
        if self.bridge.history is None or self.bridge.history.n_regions != regions.n:
            self.bridge.reset(regions.n)
        return regions

    def _check_regions(self, frame: Any) -> None:
        # Frames of another size than expected (e.g. a 128-region bundle): re-configure once.
        n = len(getattr(frame, "values", ()))
        if n and n != self.regions.n:
            logger.info("Frames have %d regions, display had %d: reconfiguring.", n,
                        self.regions.n)
            names = getattr(self.engine, "roi_names", None)
            nets = getattr(self.engine, "networks", None)
            if names is not None and len(names) == n:
                self.configure_regions(names, nets)
            else:
                self.configure_regions(None, None, n_regions=n)

    def _configure_validation(self) -> None:
        """The validation panel for the current regions, with the engine's feedback target and
        ``[live.measured]`` window and lag when it has them."""
        target = getattr(self.engine, "feedback_target", None)
        mc = getattr(getattr(self.engine, "config", None), "measured", None)
        if target is not None and len(target.weights) != self.regions.n:
            target = None
        self.validation.configure(self.regions, target,
                                  window_trs=getattr(mc, "window_trs", None),
                                  lag_trs=getattr(mc, "lag_trs", None))

    def draw(self, history: FrameHistory | None, status: Any) -> None:
        """Redraw every view from the latest state (called by the draw loop)."""
        for view in (self.glass, self.traces, self.fc, self.feedback, self.validation):
            try:
                view.update_view(history)
            except Exception as err:  # noqa: BLE001 - a view bug must not stop the others
                logger.exception("Drawing %s failed", type(view).__name__)
                self.show_error(f"{type(view).__name__} could not draw: {err}")
        self.traces.set_measured(str(getattr(status, "measured", "") or ""),
                                 getattr(status, "measured_regions", None))
        self.status_view.update_view(history, status)

    def draw_now(self) -> bool:
        """Draw immediately if anything changed (tests and benchmarks)."""
        return self.draw_loop.tick()

    def show_error(self, message: str) -> None:
        """Show an error in the banner and the status error list (and the log)."""
        logger.error("%s", message)
        self.banner.show_error(message)
        self.status_view.add_error(message)

    # --- engine lifecycle ---
    def current_settings(self) -> SessionSettings:
        """Connect-panel choices plus the views' settings."""
        s = self.connect_panel.settings(self.settings)
        return dataclasses.replace(
            s, trace_window=self.traces.n_trs, fc_window=self.fc.window,
            feedback_target=self.feedback.target_spin.value(),
            feedback_baseline=self.feedback.baseline_spin.value(),
            color_mode=self.glass.mode, color_limit=self.glass.limit_spin.value(),
            subtract_mean=self.glass.subtract_mean.isChecked(), fc_gsr=self.fc.gsr)

    def save_settings(self) -> Path | None:
        try:
            self.settings = self.current_settings()
            return save_settings(self.settings, self.settings_path)
        except OSError as err:
            logger.warning("Could not save GUI settings: %s", err)
            return None

    def start(self, settings: SessionSettings | None = None) -> None:
        """Create the engine with the current choices and start it in the background."""
        if self.engine is not None:
            return
        self.settings = settings or self.current_settings()
        self.save_settings()
        if self.engine_factory is None:
            self.show_error("No live engine available: start the GUI with `rtbold gui` (or pass "
                            "engine_factory to MainWindow / run_window).")
            return
        try:
            self.engine = self.engine_factory(self.settings, **self.bridge.callbacks())
        except Exception as err:  # noqa: BLE001 - configuration errors are shown, app keeps running
            logger.debug("engine creation failed", exc_info=True)
            self.show_error(f"Cannot start: {err}")
            return
        if hasattr(self.engine, "on_measured"):  # volumes that come after their frame
            self.engine.on_measured = self.bridge.on_measured
        self.connect_panel.set_running(True)
        self.banner.hide()
        engine = self.engine

        def run() -> None:
            try:
                engine.start()
                self.engine_started.emit(True)
            except Exception as err:  # noqa: BLE001
                logger.debug("engine start failed", exc_info=True)
                self.bridge.on_error(f"Cannot start: {err}")
                self.engine_started.emit(False)

        threading.Thread(target=run, daemon=True, name="rtbold-gui-engine-start").start()

    def _on_engine_started(self, ok: bool) -> None:
        if not ok:
            self.engine = None
            self.connect_panel.set_running(False)
            return
        names = getattr(self.engine, "roi_names", None)
        if names is not None and len(names) and list(names) != self.regions.names:
            self.configure_regions(list(names), getattr(self.engine, "networks", None))
        else:
            self._configure_validation()  # the engine's feedback target and settings

    def request_calibration(self) -> str:
        """Ask the running engine for an in-session calibration (the status panel's button);
        what it answers is shown as the status message."""
        engine = self.engine
        if engine is None or not hasattr(engine, "request_calibration"):
            answer = "no engine running"
        else:
            answer = engine.request_calibration()
        self.status_view.fields["message"].setText(answer)
        return answer

    def stop(self, wait: bool = False) -> None:
        """Stop the engine (in the background unless ``wait``)."""
        engine, self.engine = self.engine, None
        self.connect_panel.set_running(False)
        if engine is None:
            return

        def run() -> None:
            try:
                engine.stop()
            except Exception as err:  # noqa: BLE001
                self.bridge.on_error(f"Error while stopping: {err}")

        if wait:
            run()
        else:
            threading.Thread(target=run, daemon=True, name="rtbold-gui-engine-stop").start()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.draw_loop.stop()
        self.save_settings()
        self.stop(wait=True)
        if self.feedback.detached:
            self.feedback.toggle_detached()
        super().closeEvent(event)


def _titled(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QWidget:
    box = QtWidgets.QGroupBox(title)
    lay = QtWidgets.QVBoxLayout(box)
    lay.setContentsMargins(2, 6, 2, 2)
    lay.addWidget(widget)
    return box
