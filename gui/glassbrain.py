"""Glass brain: sagittal, coronal and axial outlines with one marker per region, coloured by value.

The outlines are nilearn's glass-brain schematics (``nilearn/plotting/glass_brain_files/*.json``:
Bezier and line segments), parsed once into ``QPainterPath`` objects and placed in MNI millimetres
with the affine transforms nilearn uses for its own glass-brain plots. Drawing a frame only
changes marker brushes; nothing is re-rendered with matplotlib.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from . import theme
from .history import FrameHistory
from .regions import RegionInfo, region_info

logger = logging.getLogger(__name__)

#: view -> (nilearn schematic, affine (a, b, c, d, e, f) as in matplotlib ``Affine2D.from_values``,
#: MNI axes drawn horizontally and vertically). The affines are nilearn's hand-fitted values.
VIEWS: dict[str, tuple[str, tuple[float, ...], tuple[int, int]]] = {
    "sagittal": ("side", (0.38, 0, 0, 0.38, -108, -70), (1, 2)),
    "coronal": ("back", (0.39, 0, 0, 0.39, -73, -73), (0, 2)),
    "axial": ("top", (0.36, 0, 0, 0.37, -71, -107), (0, 1)),
}


def _schematics_dir() -> Path:
    import nilearn.plotting  # only to find the installed data files; no plotting

    return Path(nilearn.plotting.__file__).resolve().parent / "glass_brain_files"


@lru_cache(maxsize=None)
def outline_path(view: str) -> QtGui.QPainterPath:
    """The brain outline of one view as a QPainterPath in MNI mm (parsed once, cached).

    Parameters
    ----------
    view : {"sagittal", "coronal", "axial"}
    """
    if view not in VIEWS:
        raise ValueError(f"Unknown glass-brain view {view!r}; expected one of {list(VIEWS)}.")
    name, (a, b, c, d, e, f), _ = VIEWS[view]
    fname = _schematics_dir() / f"brain_schematics_{name}.json"
    try:
        content = json.loads(fname.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RuntimeError(f"Cannot read the glass-brain outline {fname} shipped with nilearn "
                           f"({err}); reinstall nilearn.") from None

    def tf(pt):
        x, y = float(pt[0]), float(pt[1])
        return QtCore.QPointF(a * x + c * y + e, b * x + d * y + f)

    path = QtGui.QPainterPath()
    for group in content["paths"]:
        for item in group["items"]:
            pts = [tf(p) for p in item["pts"]]
            path.moveTo(pts[0])
            if item["type"] == "segment" or len(pts) == 2:
                path.lineTo(pts[-1])
            elif len(pts) == 4:
                path.cubicTo(pts[1], pts[2], pts[3])
            elif len(pts) == 3:
                path.quadTo(pts[1], pts[2])
            else:
                for p in pts[1:]:
                    path.lineTo(p)
    return path


def marker_positions(regions: RegionInfo) -> tuple[np.ndarray, np.ndarray]:
    """MNI positions of the markers and the region each marker belongs to.

    Bilateral regions (``display["mode"] == "bilateral_pair"``) get two markers at ±x.

    Returns
    -------
    xyz : np.ndarray (n_markers, 3)
    region : np.ndarray (n_markers,) of int
    """
    if regions.display is None:
        return np.zeros((0, 3)), np.zeros(0, int)
    xyz, reg = [], []
    for i, d in enumerate(regions.display):
        if d["mode"] == "bilateral_pair":
            x = abs(float(d["x"]))
            xyz += [(-x, d["y"], d["z"]), (x, d["y"], d["z"])]
            reg += [i, i]
        else:
            xyz.append((d["x"], d["y"], d["z"]))
            reg.append(i)
    return np.asarray(xyz, float), np.asarray(reg, int)


class GlassBrainView(QtWidgets.QWidget):
    """Three glass-brain projections with region markers coloured by the latest frame.

    Parameters
    ----------
    regions : RegionInfo | None
        DiFuMo-64 when None. Without display coordinates (DiFuMo-128/256) a note is shown.
    limit : float | None
        Fixed colour limits ±limit; None for adaptive limits (98th percentile of |value| over
        the last 30 frames).
    """

    def __init__(self, regions: RegionInfo | None = None, limit: float | None = 2.0,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.cmap = theme.diverging_cmap()
        self._lut = [pg.mkBrush(tuple(int(v) for v in c))
                     for c in self.cmap.getLookupTable(0.0, 1.0, 256, alpha=True)]
        self.values = np.array([])
        self.regions = regions or region_info()
        self.scatters: dict[str, pg.ScatterPlotItem] = {}
        self.viewboxes: dict[str, pg.ViewBox] = {}

        self.adaptive = QtWidgets.QCheckBox("Adaptive limits")
        self.limit_spin = QtWidgets.QDoubleSpinBox()
        self.limit_spin.setRange(0.1, 20.0)
        self.limit_spin.setSingleStep(0.5)
        self.limit_spin.setPrefix("± ")
        self.limit_spin.setValue(2.0 if limit is None else float(limit))
        self.adaptive.setChecked(limit is None)
        self.limit_spin.setEnabled(limit is not None)
        self.adaptive.toggled.connect(lambda on: self.limit_spin.setEnabled(not on))
        self.limit_spin.valueChanged.connect(lambda _: self._set_levels(self.current_limit()))
        self.frame_label = QtWidgets.QLabel("")
        self.frame_label.setStyleSheet(f"color: {theme.MUTED};")
        self.frame_label.setFixedWidth(90)  # text changes must not re-layout the window
        self.frame_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Colour limits"))
        bar.addWidget(self.limit_spin)
        bar.addWidget(self.adaptive)
        bar.addStretch(1)
        bar.addWidget(self.frame_label)

        self.layout_widget = pg.GraphicsLayoutWidget()
        self.note = QtWidgets.QLabel()
        self.note.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {theme.WARN}; font-size: 12pt;")
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.layout_widget)
        self.stack.addWidget(self.note)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.stack, 1)
        self._build_plots()
        self.configure(self.regions)

    def _build_plots(self) -> None:
        lw = self.layout_widget
        pen = pg.mkPen(theme.OUTLINE, width=1.2)
        for col, view in enumerate(VIEWS):
            lw.addLabel(view.capitalize(), row=0, col=col, color=theme.MUTED, size="10pt")
            vb = lw.addViewBox(row=1, col=col)
            vb.setAspectLocked(True)
            vb.setMouseEnabled(False, False)
            vb.setMenuEnabled(False)
            outline = QtWidgets.QGraphicsPathItem(outline_path(view))
            outline.setPen(pen)
            vb.addItem(outline)
            rect = outline_path(view).boundingRect()
            vb.setRange(rect.adjusted(-4, -4, 4, 4), padding=0)
            if view != "sagittal":  # neurological convention: left on the left
                for txt, x, anchor in (("L", rect.left(), (0, 1)), ("R", rect.right(), (1, 1))):
                    t = pg.TextItem(txt, color=theme.MUTED, anchor=anchor)
                    t.setPos(x, rect.top() - 2)
                    vb.addItem(t)
            sc = pg.ScatterPlotItem(size=11, pen=pg.mkPen("#0c0d10", width=0.8),
                                    hoverable=True, hoverPen=pg.mkPen("w", width=2.2),
                                    tip=self._tip)
            sc.setZValue(10)
            vb.addItem(sc)
            self.scatters[view] = sc
            self.viewboxes[view] = vb
        self.colorbar = pg.ColorBarItem(values=(-2, 2), colorMap=self.cmap, interactive=False,
                                        width=14, label="predicted BOLD (z)", colorMapMenu=False)
        lw.addItem(self.colorbar, row=1, col=len(VIEWS))
        for col, stretch in enumerate((10, 9, 9)):
            lw.ci.layout.setColumnStretchFactor(col, stretch)

    def configure(self, regions: RegionInfo) -> None:
        """Place the markers for ``regions`` (or show a note when there are no positions)."""
        self.regions = regions
        self.values = np.zeros(regions.n)
        xyz, self.marker_region = marker_positions(regions)
        self.marker_xyz = xyz
        if regions.display is None:
            self.note.setText(
                f"Glass brain not available for {regions.atlas_name} ({regions.n} regions): rtbold "
                "has display coordinates for DiFuMo-64 only. Traces and FC show every region.")
            self.stack.setCurrentWidget(self.note)
            for sc in self.scatters.values():
                sc.clear()
            return
        self.stack.setCurrentWidget(self.layout_widget)
        # Draw deeper markers first so that the nearer ones stay on top in each projection.
        for view, (_, _, (h, v)) in VIEWS.items():
            depth = 3 - h - v  # the axis the view projects away
            order = np.argsort(xyz[:, depth] * (1 if view != "coronal" else -1))
            self.scatters[view].setData(
                pos=xyz[order][:, [h, v]], data=self.marker_region[order],
                brush=[self._lut[128]] * len(order))
            self.scatters[view]._rt_order = order
        self._set_levels(self.current_limit())

    # --- values ---
    def current_limit(self, history: FrameHistory | None = None) -> float:
        if self.adaptive.isChecked() and history is not None and len(history):
            recent = history.last(30)["values"]
            finite = np.abs(recent[np.isfinite(recent)])
            if finite.size:
                return float(max(np.percentile(finite, 98), 1e-3))
        return float(self.limit_spin.value())

    def _set_levels(self, lim: float) -> None:
        self.colorbar.setLevels(low=-lim, high=lim)
        self._lim = lim

    def set_values(self, values: np.ndarray, limit: float | None = None) -> None:
        """Colour the markers by ``values`` (P,) with limits ±``limit``."""
        values = np.asarray(values, float)
        self.values = values
        if self.regions.display is None or self.marker_region.size == 0:
            return
        lim = self.current_limit() if limit is None else float(limit)
        if lim != getattr(self, "_lim", None):
            self._set_levels(lim)
        v = np.nan_to_num(values[self.marker_region], nan=0.0)
        idx = np.clip(((v + lim) / (2 * lim) * 255).round(), 0, 255).astype(int)
        for sc in self.scatters.values():
            sc.setBrush([self._lut[i] for i in idx[sc._rt_order]])

    def update_view(self, history: FrameHistory | None) -> None:
        """Colour the markers by the latest frame of ``history``."""
        if history is None or len(history) == 0 or history.n_regions != self.regions.n:
            return
        d = history.last(1)
        self.set_values(d["values"][-1], self.current_limit(history))
        self.frame_label.setText(f"TR {int(d['index'][-1])}")

    # --- hover ---
    def tooltip_text(self, region: int) -> str:
        """Tooltip for one region: name, network and current value."""
        r = int(region)
        val = self.values[r] if r < len(self.values) else np.nan
        mode = self.regions.display[r]["mode"] if self.regions.display else ""
        side = " (both hemispheres)" if mode == "bilateral_pair" else ""
        return (f"{self.regions.names[r]}{side}\n{self.regions.networks[r]}\n"
                f"value {val:+.2f}")

    def _tip(self, x: float, y: float, data) -> str:  # pyqtgraph's ScatterPlotItem tip hook
        return self.tooltip_text(int(data))
