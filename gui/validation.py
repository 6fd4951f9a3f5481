"""Live validation panel: predicted vs measured BOLD over the last N paired TRs.

A scatter of predicted (x) against measured (y) BOLD for the feedback target or a chosen region,
its running r, and the running r of every region as bars (coloured by network). The numbers come
from :class:`rtbold.stream.validation.RunningCorrelation`, the same as on the headless line;
measured volumes that came after their frame count as soon as they come.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtWidgets

from rtbold.stream.validation import RunningCorrelation

from . import theme
from .regions import RegionInfo, region_info

logger = logging.getLogger(__name__)

#: Combo entry of the feedback target (the regions follow it).
TARGET = "Feedback target"


class ValidationView(QtWidgets.QWidget):
    """Scatter and running r of predicted vs measured BOLD.

    Parameters
    ----------
    regions : RegionInfo | None
        The displayed regions (DiFuMo-64 when None).
    window_trs, lag_trs : int
        ``[live.measured]`` settings (:class:`RunningCorrelation`).
    target : rtbold.stream.outlets.FeedbackTarget | None
        The feedback value's regions and weights; None: the default ``network:Default`` where
        the regions have it.
    """

    def __init__(self, regions: RegionInfo | None = None, *, window_trs: int = 30,
                 lag_trs: int = 0, target=None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_trs, self.lag_trs = int(window_trs), int(lag_trs)
        self.regions = regions or region_info()
        self.target = target
        self.rc: RunningCorrelation | None = None
        self._drawn = (-1, "")
        self._version = 0

        self.combo = QtWidgets.QComboBox()
        self.combo.setToolTip("The feedback target or a region: its predicted vs measured BOLD.")
        self.r_label = QtWidgets.QLabel("")
        self.r_label.setStyleSheet(f"color: {theme.FOREGROUND};")
        self.median_label = QtWidgets.QLabel("")
        self.median_label.setStyleSheet(f"color: {theme.MUTED};")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.combo, 1)
        bar.addWidget(self.r_label)

        self.scatter_plot = pg.PlotWidget()
        self.scatter_plot.setMenuEnabled(False)
        self.scatter_plot.hideButtons()
        self.scatter_plot.setLabel("bottom", "predicted")
        self.scatter_plot.setLabel("left", "measured")
        self.scatter = pg.ScatterPlotItem(size=7, pen=None, brush=pg.mkBrush("#4f9be8"))
        self.scatter_plot.addItem(self.scatter)
        self.bars_plot = pg.PlotWidget()
        self.bars_plot.setMenuEnabled(False)
        self.bars_plot.hideButtons()
        self.bars_plot.setMouseEnabled(x=False, y=False)
        self.bars_plot.setYRange(-1, 1, padding=0.05)
        self.bars_plot.setLabel("left", "r")
        self.bars_plot.setLabel("bottom", "region")
        self.bars_plot.setToolTip("Running r of each region over the last paired TRs "
                                  "(colour: Yeo-7 network).")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.bars_plot.addItem(self.bars)

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.scatter_plot, 3)
        lay.addWidget(self.median_label)
        lay.addWidget(self.bars_plot, 2)
        # the draw loop redraws on new frames only: a new selection is drawn at once
        self.combo.currentTextChanged.connect(lambda _: self.update_view())
        self.configure(self.regions, target)

    # --- configuration ---
    def configure(self, regions: RegionInfo, target=None, *, window_trs: int | None = None,
                  lag_trs: int | None = None) -> None:
        """Start afresh for ``regions`` (and the engine's feedback target and settings)."""
        self.regions = regions
        if window_trs is not None:
            self.window_trs = int(window_trs)
        if lag_trs is not None:
            self.lag_trs = int(lag_trs)
        if target is None:
            from rtbold.stream.outlets import FeedbackTarget

            try:
                target = FeedbackTarget.parse("network:Default", regions.names)
            except ValueError:  # regions without networks: no target column
                target = None
        weights = None if target is None else np.asarray(target.weights)
        rc = self.rc
        if rc is not None and rc.n_regions == regions.n and rc.window_trs == self.window_trs \
                and rc.lag_trs == self.lag_trs and (
                    (rc.weights is None and weights is None) or (
                        rc.weights is not None and weights is not None
                        and np.array_equal(rc.weights, weights))):
            self.target = target  # the same numbers: the pairs so far are kept
            return
        self.target = target
        self.rc = RunningCorrelation(regions.n, window_trs=self.window_trs, lag_trs=self.lag_trs,
                                     target_weights=None if target is None else target.weights)
        current = self.combo.currentText()
        self.combo.blockSignals(True)
        self.combo.clear()
        if target is not None:
            self.combo.addItem(f"{TARGET} ({target.label})")
        self.combo.addItems(list(regions.names))
        idx = self.combo.findText(current)
        self.combo.setCurrentIndex(max(idx, 0))
        self.combo.blockSignals(False)
        colors = [theme.network_color(n) for n in regions.networks] if regions.networks else \
            [theme.OUTLINE] * regions.n
        self.bars.setOpts(x=np.arange(regions.n), height=np.zeros(regions.n), width=0.8,
                          brushes=[pg.mkBrush(c) for c in colors], pen=None)
        self.bars_plot.setXRange(-1, regions.n, padding=0)
        self._mark()

    # --- input (GUI thread, from the bridge's signals) ---
    def add_frame(self, frame: Any) -> None:
        values = getattr(frame, "values", None)
        if self.rc is None or values is None or len(values) != self.rc.n_regions:
            return
        self.rc.add_predicted(frame.index, values)
        if getattr(frame, "measured", None) is not None:
            self.rc.add_measured(frame.index, frame.measured)
        self._mark()

    def add_measured(self, index: int, values: Any) -> None:
        if self.rc is None or len(values) != self.rc.n_regions:
            return
        self.rc.add_measured(index, values)
        self._mark()

    def _mark(self) -> None:
        self._version += 1

    # --- drawing ---
    @property
    def column(self) -> int:
        """Column of the selection in :meth:`RunningCorrelation.pairs` (the target is last)."""
        text = self.combo.currentText()
        if text.startswith(TARGET):
            return self.regions.n
        try:
            return self.regions.names.index(text)
        except ValueError:
            return self.regions.n if self.target is not None else 0

    @property
    def selected_r(self) -> float:
        """Running r of the selection."""
        if self.rc is None:
            return float("nan")
        col = self.column
        return self.rc.target_r if col == self.regions.n else float(self.rc.r[col])

    def update_view(self, history: Any = None) -> None:
        """Redraw when frames, measured volumes or the selection changed."""
        state = (self._version, self.combo.currentText())
        if state == self._drawn or self.rc is None:
            return
        self._drawn = state
        _, pred, meas = self.rc.pairs()
        col = self.column
        if len(pred):
            x, y = pred[:, col], meas[:, col]
            ok = np.isfinite(x) & np.isfinite(y)
            self.scatter.setData(x[ok], y[ok])
        else:
            self.scatter.setData([], [])
        r = self.selected_r
        n = len(self.rc)
        self.r_label.setText("r = n/a" if not np.isfinite(r) else f"r = {r:+.2f}")
        self.r_label.setToolTip(f"Running r over the last {n} paired TRs (window "
                                f"{self.window_trs}, lag {self.lag_trs} TR).")
        med = self.rc.median_r
        self.median_label.setText(
            f"median over regions: {'n/a' if not np.isfinite(med) else f'{med:+.2f}'}"
            f" · {n} of {self.window_trs} TRs paired" if n else
            "no measured BOLD paired with the predictions yet")
        self.bars.setOpts(height=np.nan_to_num(self.rc.r, nan=0.0))
