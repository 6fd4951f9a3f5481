"""Region traces: predicted BOLD of chosen regions over the last N TRs, measured BOLD overlaid."""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from . import theme
from .history import FrameHistory
from .regions import RegionInfo, region_info

logger = logging.getLogger(__name__)

_DEFAULT = "One per network"
_ALL = "All regions"


def running_correlation(pred: np.ndarray, meas: np.ndarray, min_points: int = 3) -> np.ndarray:
    """Pearson r per column over the rows where both are finite (NaN where fewer than
    ``min_points`` rows or a constant column). Display statistic only.

    Parameters
    ----------
    pred, meas : np.ndarray
        (T, K) arrays.
    """
    pred = np.asarray(pred, np.float64)
    meas = np.asarray(meas, np.float64)
    ok = np.isfinite(pred) & np.isfinite(meas)
    n = ok.sum(axis=0)
    p = np.where(ok, pred, 0.0)
    m = np.where(ok, meas, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pm = p.sum(0) / n
        mm = m.sum(0) / n
        dp = np.where(ok, p - pm, 0.0)
        dm = np.where(ok, m - mm, 0.0)
        r = (dp * dm).sum(0) / np.sqrt((dp ** 2).sum(0) * (dm ** 2).sum(0))
    r[n < min_points] = np.nan
    return r


class TracesView(QtWidgets.QWidget):
    """Stacked traces of selected regions, one row per region, with running correlation.

    Parameters
    ----------
    regions : RegionInfo | None
        Regions to offer; DiFuMo-64 when None.
    n_trs : int
        How many recent TRs to show.
    spacing : float
        Vertical distance between traces, in the frames' (normalised) units.
    """

    selection_changed = QtCore.pyqtSignal(list)

    def __init__(self, regions: RegionInfo | None = None, n_trs: int = 100, spacing: float = 3.0,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.spacing = float(spacing)
        self.regions = regions or region_info()
        self.selected: list[int] = []
        self.curves: list[pg.PlotCurveItem] = []
        self.measured_curves: list[pg.PlotCurveItem] = []
        self.correlations = np.array([])
        self._labels: tuple = ()

        self.combo = QtWidgets.QComboBox()
        self.combo.setMinimumContentsLength(14)
        self.combo.setSizeAdjustPolicy(
            QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setToolTip("Which regions to draw: one per Yeo-7 network, all regions of one "
                              "network, or all regions.")
        self.window_spin = QtWidgets.QSpinBox()
        self.window_spin.setRange(10, 600)
        self.window_spin.setValue(int(n_trs))
        self.window_spin.setSuffix(" TR")
        self.window_spin.setToolTip("Number of recent TRs shown (also the running-correlation "
                                    "window).")
        self.corr_label = QtWidgets.QLabel("")
        self.corr_label.setStyleSheet(f"color: {theme.MUTED};")
        self.corr_label.setFixedWidth(130)  # text changes must not re-layout the window
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Regions"))
        bar.addWidget(self.combo, 1)
        bar.addWidget(QtWidgets.QLabel("Window"))
        bar.addWidget(self.window_spin)
        bar.addWidget(self.corr_label)

        # Why measured BOLD is missing or partial (a stream of other regions than the model's).
        self.measured_note = QtWidgets.QLabel("")
        self.measured_note.setWordWrap(True)
        self.measured_note.setStyleSheet(f"color: {theme.WARN};")
        self.measured_note.hide()
        self._measured = ("", None)

        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "TR")
        self.plot.setTitle("solid: predicted &nbsp;·&nbsp; dashed: measured",
                           color=theme.MUTED, size="9pt")
        self.plot.showAxis("right")
        self.plot.getAxis("left").setWidth(170)
        self.plot.getAxis("right").setWidth(62)
        self.plot.setToolTip("Predicted BOLD (solid) and measured BOLD (dashed) of each region; "
                             "r on the right is their correlation over the shown window.")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.measured_note)
        lay.addWidget(self.plot, 1)

        self.combo.currentTextChanged.connect(self._combo_changed)
        self.configure(self.regions)

    # --- configuration ---
    @property
    def n_trs(self) -> int:
        return int(self.window_spin.value())

    def configure(self, regions: RegionInfo) -> None:
        """Offer ``regions`` and select the default (one region per network)."""
        self.regions = regions
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems([_DEFAULT, *regions.networks_present(), _ALL])
        self.combo.blockSignals(False)
        self.select(regions.default_selection())

    def _combo_changed(self, text: str) -> None:
        if text == _DEFAULT:
            self.select(self.regions.default_selection())
        elif text == _ALL:  # grouped by network so that the colours form blocks
            self.select([int(i) for i in self.regions.order()])
        elif text:
            self.select([text])

    def select(self, items: Sequence[str | int]) -> None:
        """Show these regions: names, Yeo-7 network names (all their regions) or indices."""
        sel = self.regions.resolve(items)
        if not sel:
            raise ValueError("Select at least one region to draw.")
        self.selected = sel
        self.plot.clear()
        # One curve item per network (regions separated by breaks in the path), not per region:
        # with 64 traces the per-item cost of pyqtgraph, not the drawing, dominates the frame.
        self.groups: list[np.ndarray] = []
        self.curves, self.measured_curves = [], []
        for net in self.regions.networks_present():
            ks = np.array([k for k, i in enumerate(sel) if self.regions.networks[i] == net], int)
            if not ks.size:
                continue
            color = theme.network_color(net)
            # 1-pixel cosmetic pens: Qt's fast path (a 1.6 px pen is ~5x slower to draw).
            meas = pg.PlotCurveItem(pen=pg.mkPen(color, width=1,
                                                 style=QtCore.Qt.PenStyle.DashLine),
                                    skipFiniteCheck=True)
            meas.setOpacity(0.7)
            pred = pg.PlotCurveItem(pen=pg.mkPen(color, width=1), skipFiniteCheck=True)
            self.plot.addItem(meas)
            self.plot.addItem(pred)
            self.groups.append(ks)
            self.curves.append(pred)
            self.measured_curves.append(meas)
        n = len(sel)
        self.plot.setYRange(-(n - 1) * self.spacing - self.spacing * 0.7, self.spacing * 0.7,
                            padding=0)
        names = [(-k * self.spacing, self._fit_label(self.regions.names[i]))
                 for k, i in enumerate(sel)]
        step = max(1, n // 24)  # keep names readable when many regions are stacked
        self.plot.getAxis("left").setTicks([names[::step], []])
        self.correlations = np.full(n, np.nan)
        self._x = np.zeros(0)
        self._vals = np.zeros((0, n), np.float32)
        self._meas = np.zeros((0, n), np.float32)
        self._labels = ()
        self._label_pending = False
        self._label_time = 0.0
        self._set_corr_ticks(force=True)
        self._label_time = 0.0  # the first correlations are shown at once
        self.selection_changed.emit(list(sel))

    def _fit_label(self, name: str) -> str:
        """``name`` elided to the left axis's room: pyqtgraph drops a tick label wider than its
        axis rather than clip it (long DiFuMo-128/256 names would leave a trace unnamed)."""
        axis = self.plot.getAxis("left")
        font = axis.style.get("tickFont") or self.plot.font()
        room = axis.width() - max(0, axis.style["tickLength"]) - axis.style["tickTextOffset"][0] - 8
        return QtGui.QFontMetrics(font).elidedText(name, QtCore.Qt.TextElideMode.ElideRight,
                                                  int(room))

    def trace_data(self, k: int, measured: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) last drawn for the k-th selected region (y without the stacking offset)."""
        arr = self._meas if measured else self._vals
        return self._x.copy(), np.asarray(arr[:, k], float)

    def set_measured(self, note: str, regions: int | None) -> None:
        """Show the engine's measured-BOLD note when it compares fewer regions than the view has
        (``regions``: model regions with a measured series, None without a measured stream)."""
        if (note, regions) == self._measured:
            return
        self._measured = (note, regions)
        partial = bool(note) and regions is not None and regions < self.regions.n
        self.measured_note.setText(note if partial else "")
        self.measured_note.setStyleSheet(f"color: {theme.ERROR if not regions else theme.WARN};")
        self.measured_note.setVisible(partial)
        self._set_corr_ticks(force=True)

    # --- drawing ---
    def update_view(self, history: FrameHistory | None) -> None:
        """Draw the last N TRs of the selected regions from ``history``."""
        if history is None or len(history) == 0 or not self.selected:
            return
        if history.n_regions != self.regions.n:
            return
        d = history.last(self.n_trs)
        x = d["index"].astype(np.float64)
        t = len(x)
        sel = self.selected
        self._x = x
        self._vals = vals = d["values"][:, sel]
        self._meas = meas = d["measured"][:, sel]
        for ks, curve, mcurve in zip(self.groups, self.curves, self.measured_curves):
            xs = np.tile(x, len(ks))
            seg = np.ones(t * len(ks), bool)
            seg[t - 1::t] = False  # no line from the end of one region to the next
            y = (vals[:, ks] - ks * self.spacing).T.ravel()
            curve.setData(xs, y, connect=seg)
            if history.has_measured:
                ym = (meas[:, ks] - ks * self.spacing).T.ravel().astype(np.float64)
                fin = np.isfinite(ym)
                ym[~fin] = 0.0  # isolated points are moveTo only: nothing is drawn there
                mcurve.setData(xs, ym, connect=seg & fin & np.roll(fin, -1))
        if history.has_measured:
            self.correlations = running_correlation(vals, meas)
        else:
            self.correlations = np.full(len(sel), np.nan)
        if t:  # fill from the left until the window is full, then scroll
            x0 = max(x[0], x[-1] - self.n_trs + 1)
            self.plot.setXRange(x0, x0 + self.n_trs - 1, padding=0.01)
        self._set_corr_ticks()

    def _deferred_labels(self) -> None:
        self._label_pending = False
        self._label_time = 0.0
        self._set_corr_ticks(force=True)

    def _set_corr_ticks(self, force: bool = False) -> None:
        # At most twice a second: numbers changing faster cannot be read, and re-laying out the
        # axis labels is the costliest part of a redraw during a fast replay.
        now = time.monotonic()
        wait = 0.5 - (now - self._label_time)
        if not force and wait > 0:
            if not self._label_pending:  # show the latest values once the pause is over
                self._label_pending = True
                QtCore.QTimer.singleShot(int(wait * 1000) + 1, self._deferred_labels)
            return
        labels = tuple("" if not np.isfinite(r) else f"r={r:+.2f}" for r in self.correlations)
        if labels == self._labels and not force:
            return
        self._labels = labels
        self._label_time = now
        n = len(labels)
        step = max(1, n // 24)
        ticks = [(-k * self.spacing, lab) for k, lab in enumerate(labels)][::step]
        self.plot.getAxis("right").setTicks([ticks, []])
        finite = self.correlations[np.isfinite(self.correlations)]
        note, regions = self._measured
        if finite.size:
            text = f"mean r = {finite.mean():+.2f}"
        elif note and regions == 0:
            text = "measured: no match"
        else:
            text = "no measured BOLD"
        if note and regions is not None and 0 < regions < self.regions.n:
            text += f" ({regions}/{self.regions.n})"
        self.corr_label.setText(text)
        self.corr_label.setToolTip(note or "No measured-BOLD stream.")
