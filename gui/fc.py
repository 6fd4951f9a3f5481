"""Sliding-window functional connectivity of the received frames, ordered by Yeo-7 network.

Two kinds: raw FC (Pearson r of the window's series) and FC after global-signal regression (GSR:
the across-region mean time course of the window is regressed out of every region's series, with
:func:`rtbold.metrics.remove_global`, before correlating). When one component common to all regions
dominates, as in predicted BOLD, raw FC is close to +1 everywhere; after GSR the network structure
shows. GSR makes the mean off-diagonal r slightly negative (about -1/(P-1)) by construction.
"""

from __future__ import annotations

import logging

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from rtbold.metrics import remove_global

from . import theme
from .history import FrameHistory
from .regions import RegionInfo, region_info

logger = logging.getLogger(__name__)


def window_fc(values: np.ndarray, gsr: bool = False) -> np.ndarray:
    """Pearson correlation between columns of ``values`` (W, P), raw or after global-signal
    regression.

    Parameters
    ----------
    values : np.ndarray (W, P)
    gsr : bool
        Regress the across-region mean time course (of the columns with finite values) out of
        every column first (:func:`rtbold.metrics.remove_global`).

    Returns
    -------
    np.ndarray (P, P)
        0 where a column is constant (or, after GSR, equal to the global signal) or has
        non-finite values; 1 on the diagonal. Display statistic only.
    """
    x = np.asarray(values, np.float64)
    p = x.shape[1]
    if x.shape[0] < 3:
        return np.eye(p)
    good = np.isfinite(x).all(axis=0)
    x = np.where(good, x, 0.0)
    if gsr and good.any():
        x[:, good] = remove_global(x[:, good])
    x = x - x.mean(axis=0)
    sd = np.sqrt((x ** 2).sum(axis=0))
    good &= sd > 1e-12
    xn = np.divide(x, sd, out=np.zeros_like(x), where=good)
    r = xn.T @ xn
    np.fill_diagonal(r, 1.0)
    return np.clip(r, -1.0, 1.0)


def network_summary(fc: np.ndarray, networks: list[str], present: list[str]) -> np.ndarray:
    """Mean r between (off-diagonal) and within networks (off-diagonal elements only).

    Returns
    -------
    np.ndarray (K, K)
        NaN for a one-region network's diagonal.
    """
    labels = np.array(networks)
    k = len(present)
    out = np.full((k, k), np.nan)
    masks = [labels == n for n in present]
    for a in range(k):
        for b in range(a, k):
            block = fc[np.ix_(masks[a], masks[b])]
            if a == b:
                m = masks[a].sum()
                if m > 1:
                    out[a, a] = (block.sum() - np.trace(block)) / (m * (m - 1))
            else:
                out[a, b] = out[b, a] = block.mean()
    return out


class FCView(QtWidgets.QWidget):
    """P x P correlation over the last W frames (network order) and the network summary.

    Parameters
    ----------
    regions : RegionInfo | None
        DiFuMo-64 when None.
    window : int
        W, frames in the sliding window (default 30 TRs).
    gsr : bool
        Show FC after global-signal regression instead of raw FC (both matrices follow).
    """

    def __init__(self, regions: RegionInfo | None = None, window: int = 30, gsr: bool = False,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.cmap = theme.diverging_cmap()
        self.fc = np.zeros((0, 0))
        self.summary = np.zeros((0, 0))
        self.window_spin = QtWidgets.QSpinBox()
        self.window_spin.setRange(5, 600)
        self.window_spin.setValue(int(window))
        self.window_spin.setSuffix(" TR")
        self.window_spin.setToolTip("Sliding window length W for the correlation.")
        self.kind_combo = QtWidgets.QComboBox()
        self.kind_combo.addItem("Raw FC", False)
        self.kind_combo.addItem("After GSR", True)
        self.kind_combo.setToolTip(
            "After GSR: the across-region mean time course of the window is regressed out of "
            "every region before correlating, so network structure shows even when one global "
            "component dominates (the mean r is then slightly negative by construction).")
        self.kind_combo.setCurrentIndex(1 if gsr else 0)
        self.kind_combo.currentIndexChanged.connect(self._on_kind_changed)
        self._history: FrameHistory | None = None
        self.info = QtWidgets.QLabel("")
        self.info.setStyleSheet(f"color: {theme.MUTED};")
        self.info.setFixedWidth(260)  # text changes must not re-layout the window
        self.info.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Window"))
        bar.addWidget(self.window_spin)
        bar.addWidget(self.kind_combo)
        bar.addStretch(1)
        bar.addWidget(self.info)

        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setMinimumWidth(300)
        # Region FC large on top, network summary below: the panel is taller than wide.
        self.plot = self.glw.addPlot(row=0, col=0, title="Region FC")
        self.net_plot = self.glw.addPlot(row=1, col=0, title="Network FC")
        self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=self.cmap, interactive=False,
                                        width=12, label="r", colorMapMenu=False)
        self.glw.addItem(self.colorbar, row=0, col=1, rowspan=2)
        self.glw.ci.layout.setRowStretchFactor(0, 3)
        self.glw.ci.layout.setRowStretchFactor(1, 2)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.net_image = pg.ImageItem(axisOrder="row-major")
        lut = self.cmap.getLookupTable(0.0, 1.0, 256)
        for plot, img in ((self.plot, self.image), (self.net_plot, self.net_image)):
            img.setLookupTable(lut)
            img.setLevels((-1, 1))
            plot.addItem(img)
            plot.invertY(True)
            plot.setAspectLocked(True)
            plot.setMouseEnabled(False, False)
            plot.setMenuEnabled(False)
            plot.hideButtons()
        self.boundaries = pg.PlotCurveItem(pen=pg.mkPen("#0b0c0f", width=1.6), connect="pairs")
        self.boundaries.setZValue(5)
        self.plot.addItem(self.boundaries)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.glw, 1)
        self.regions = regions or region_info()
        self.configure(self.regions)
        self._on_kind_changed()

    @property
    def window(self) -> int:
        return int(self.window_spin.value())

    @property
    def gsr(self) -> bool:
        """True when the view shows FC after global-signal regression."""
        return bool(self.kind_combo.currentData())

    def _on_kind_changed(self, *_) -> None:
        kind = "Region FC after GSR" if self.gsr else "Region FC"
        self.plot.setTitle(kind)
        self.net_plot.setTitle("Network FC after GSR" if self.gsr else "Network FC")
        if self._history is not None:
            self.update_view(self._history)

    def configure(self, regions: RegionInfo) -> None:
        """Order, network boundaries and labels for ``regions``."""
        self.regions = regions
        self._history = None
        self.order = regions.order()
        self.present = regions.networks_present()
        nets = [regions.networks[i] for i in self.order]
        p = regions.n
        starts = [nets.index(n) for n in self.present]
        ends = starts[1:] + [p]
        xs, ys = [], []
        for s in starts[1:]:
            xs += [s, s, 0, p]
            ys += [0, p, s, s]
        self.boundaries.setData(np.array(xs, float), np.array(ys, float))
        ticks = [[((s + e) / 2, theme.NETWORK_SHORT.get(n, n)) for s, e, n in
                  zip(starts, ends, self.present)]]
        # The matrix is symmetric: network names on the left axis only (they would overlap below).
        self.plot.getAxis("left").setTicks(ticks)
        self.plot.getAxis("bottom").setTicks([[(s, "") for s in starts]])
        net_ticks = [[(k + 0.5, theme.NETWORK_SHORT.get(n, n)) for k, n in enumerate(self.present)]]
        self.net_plot.getAxis("left").setTicks(net_ticks)
        self.net_plot.getAxis("bottom").setTicks([[(k + 0.5, "") for k in
                                                   range(len(self.present))]])
        self.fc = np.eye(p)
        self.summary = np.full((len(self.present),) * 2, np.nan)
        self.image.setImage(self.fc, levels=(-1, 1), autoLevels=False)
        self.net_image.setImage(np.zeros_like(self.summary), levels=(-1, 1), autoLevels=False)
        self.plot.setRange(xRange=(0, p), yRange=(0, p), padding=0.02)
        k = len(self.present)
        self.net_plot.setRange(xRange=(0, k), yRange=(0, k), padding=0.02)

    def update_view(self, history: FrameHistory | None) -> None:
        """Recompute FC over the last W frames and redraw both images."""
        if history is None or history.n_regions != self.regions.n:
            return
        self._history = history
        d = history.last(self.window)
        n = d["values"].shape[0]
        if n < 3:
            self.info.setText(f"{n}/{self.window} TRs")
            return
        vals = d["values"][:, self.order]
        self.fc = window_fc(vals, gsr=self.gsr)
        nets = [self.regions.networks[i] for i in self.order]
        self.summary = network_summary(self.fc, nets, self.present)
        self.image.setImage(self.fc, levels=(-1, 1), autoLevels=False)
        self.net_image.setImage(np.nan_to_num(self.summary, nan=0.0), levels=(-1, 1),
                                autoLevels=False)
        off = ~np.eye(self.fc.shape[0], dtype=bool)
        text = f"TR {int(d['index'][0])}–{int(d['index'][-1])}  mean r {self.fc[off].mean():+.2f}"
        if self.gsr:  # how much the global component dominates the raw FC
            text += f" (raw {window_fc(vals)[off].mean():+.2f})"
        self.info.setText(text)
