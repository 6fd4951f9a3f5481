"""Glass brain: sagittal, coronal and axial outlines with one marker per region, coloured by value.

The outlines are nilearn's glass-brain schematics (``nilearn/plotting/glass_brain_files/*.json``:
Bezier and line segments), parsed once into ``QPainterPath`` objects and placed in MNI millimetres
with the affine transforms nilearn uses for its own glass-brain plots. Drawing a frame only
changes marker brushes; nothing is re-rendered with matplotlib.

Markers sit where each DiFuMo component's map mass is (:attr:`rtbold.atlas.Atlas.markers`, at 64,
128 and 256 components): bilateral components as a left/right pair at their hemisphere centres,
others once.

Colour limits (:func:`color_levels`). By default they follow the predictions: centred on the
frame's across-region mean, ± ``ROBUST_K`` times a running robust spread across regions (the median
over the last ``ROBUST_FRAMES`` frames of 1.4826 × the median absolute deviation across regions).
Predicted BOLD often has a large component common to all regions (the global signal); limits around
0, or percentiles of recent values, then colour every region alike and the spatial pattern is lost.
Centring on the frame's mean and scaling by the spread *across regions* shows which regions are
above or below the rest, while the colour bar still reads in predicted values. Fixed limits (±L
around 0) remain available, and "minus mean" shows the frame minus its across-region mean.
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


#: Robust limits: half-width in units of the robust across-region SD (±2 covers ~95 % of a
#: normal spread, i.e. about its 2nd..98th percentiles) ...
ROBUST_K = 2.0
#: ... estimated over this many recent frames (about a minute at TR 2.1 s).
ROBUST_FRAMES = 30
#: Limit modes of :class:`GlassBrainView` (``SessionSettings.color_mode``).
LIMIT_MODES = ("robust", "fixed")


def marker_positions(regions: RegionInfo) -> tuple[np.ndarray, np.ndarray]:
    """MNI positions of the markers and the region each marker belongs to.

    Bilateral regions (``marker.bilateral``) get two markers, at their hemisphere centres.

    Returns
    -------
    xyz : np.ndarray (n_markers, 3)
    region : np.ndarray (n_markers,) of int
    """
    if regions.display is None:
        return np.zeros((0, 3)), np.zeros(0, int)
    xyz, reg = [], []
    for i, marker in enumerate(regions.display):
        xyz += list(marker.points)
        reg += [i] * len(marker.points)
    return np.asarray(xyz, float), np.asarray(reg, int)


def robust_spread(frames: np.ndarray) -> float:
    """Running robust spread across regions of recent frames.

    Parameters
    ----------
    frames : np.ndarray (n_frames, P)

    Returns
    -------
    float
        Median over frames of 1.4826 × the median absolute deviation across regions (a robust SD
        of the spatial pattern, blind to any value common to all regions); NaN when no frame has
        two finite values.
    """
    x = np.atleast_2d(np.asarray(frames, np.float64))
    med = np.nanmedian(x, axis=1, keepdims=True) if x.size else x
    with np.errstate(invalid="ignore"):
        mad = 1.4826 * np.nanmedian(np.abs(x - med), axis=1)
    n_finite = np.isfinite(x).sum(axis=1)
    mad = mad[n_finite >= 2]
    return float(np.median(mad)) if mad.size else float("nan")


def display_values(frame: np.ndarray, subtract_mean: bool) -> np.ndarray:
    """The frame as drawn: as is, or minus its across-region mean (finite values only)."""
    v = np.asarray(frame, np.float64)
    if subtract_mean:
        finite = np.isfinite(v)
        v = v - (v[finite].mean() if finite.any() else 0.0)
    return v


def color_levels(frame: np.ndarray, recent: np.ndarray | None = None, mode: str = "robust",
                 limit: float = 2.0, subtract_mean: bool = False,
                 k: float = ROBUST_K) -> tuple[float, float]:
    """Colour limits (low, high) of one frame.

    Parameters
    ----------
    frame : np.ndarray (P,)
        The frame to draw (raw predictions).
    recent : np.ndarray (n, P) | None
        Recent frames for the running spread (``frame`` alone when None).
    mode : {"robust", "fixed"}
        ``"robust"``: the frame's across-region mean ± ``k`` × :func:`robust_spread` of ``recent``
        (the mean is 0 with ``subtract_mean``). ``"fixed"``: ±``limit`` around 0.
    limit : float
        Half-width of the fixed limits.
    subtract_mean : bool
        The values drawn are the frame minus its across-region mean.
    k : float
        Half-width of the robust limits in robust SDs.
    """
    if mode not in LIMIT_MODES:
        raise ValueError(f"Unknown colour-limit mode {mode!r}; expected one of {LIMIT_MODES}.")
    if mode == "fixed":
        return -float(limit), float(limit)
    v = display_values(frame, subtract_mean)
    finite = v[np.isfinite(v)]
    centre = float(finite.mean()) if finite.size else 0.0
    spread = robust_spread(frame if recent is None or len(recent) == 0 else recent)
    if not np.isfinite(spread) or spread <= 1e-6:
        spread = 1e-3 if np.isfinite(spread) else float(limit) / k
    return centre - k * spread, centre + k * spread


class GlassBrainView(QtWidgets.QWidget):
    """Three glass-brain projections with region markers coloured by the latest frame.

    Parameters
    ----------
    regions : RegionInfo | None
        DiFuMo-64 when None. Without positions (names that are not a DiFuMo table) a note is
        shown.
    mode : {"robust", "fixed"}
        Colour limits: following the predictions (default; see :func:`color_levels`) or fixed.
    limit : float
        Fixed limits ±``limit``.
    subtract_mean : bool
        Draw each frame minus its across-region mean.
    """

    def __init__(self, regions: RegionInfo | None = None, mode: str = "robust",
                 limit: float = 2.0, subtract_mean: bool = False,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        if mode not in LIMIT_MODES:
            raise ValueError(f"Unknown colour-limit mode {mode!r}; expected one of {LIMIT_MODES}.")
        self.cmap = theme.diverging_cmap()
        table = self.cmap.getLookupTable(0.0, 1.0, 256, alpha=True)
        self._lut = [pg.mkBrush(tuple(int(v) for v in c)) for c in table]
        self._lut_dim = [pg.mkBrush(*(int(v) for v in c[:3]), 50) for c in table]
        self.values = np.array([])
        self.levels = (-float(limit), float(limit))
        self.regions = regions or region_info()
        self.scatters: dict[str, pg.ScatterPlotItem] = {}
        self.viewboxes: dict[str, pg.ViewBox] = {}
        self._orders: dict[str, np.ndarray] = {}
        self._history: FrameHistory | None = None
        self._highlight: np.ndarray | None = None  # markers of the highlighted network
        self._size = 11

        self.mode_combo = QtWidgets.QComboBox()
        self.mode_combo.addItem("Robust", "robust")
        self.mode_combo.addItem("Fixed", "fixed")
        self.mode_combo.setToolTip(
            "Robust: the frame's across-region mean ± 2 robust SDs across regions (running over "
            f"the last {ROBUST_FRAMES} TRs), so the spatial pattern shows even when all regions "
            "share a large common signal. Fixed: ± the value on the right, around 0.")
        self.mode_combo.setCurrentIndex(LIMIT_MODES.index(mode))
        self.limit_spin = QtWidgets.QDoubleSpinBox()
        self.limit_spin.setRange(0.1, 20.0)
        self.limit_spin.setSingleStep(0.5)
        self.limit_spin.setPrefix("± ")
        self.limit_spin.setValue(float(limit))
        self.limit_spin.setEnabled(mode == "fixed")
        self.subtract_mean = QtWidgets.QCheckBox("Minus mean")
        self.subtract_mean.setToolTip("Draw each frame minus its across-region mean (the global "
                                      "component), so the bar reads in deviations from it.")
        self.subtract_mean.setChecked(bool(subtract_mean))
        self.network_combo = QtWidgets.QComboBox()
        self.network_combo.setToolTip("Highlight the regions of one network.")
        self.mode_combo.currentIndexChanged.connect(self._on_limits_changed)
        self.limit_spin.valueChanged.connect(self._on_limits_changed)
        self.subtract_mean.toggled.connect(self._on_limits_changed)
        self.network_combo.currentIndexChanged.connect(self._on_network_changed)
        self.frame_label = QtWidgets.QLabel("")
        self.frame_label.setStyleSheet(f"color: {theme.MUTED};")
        self.frame_label.setFixedWidth(90)  # text changes must not re-layout the window
        self.frame_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Colour limits"))
        bar.addWidget(self.mode_combo)
        bar.addWidget(self.limit_spin)
        bar.addWidget(self.subtract_mean)
        bar.addSpacing(12)
        bar.addWidget(self.network_combo)
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

    @property
    def mode(self) -> str:
        """The colour-limit mode, ``"robust"`` or ``"fixed"``."""
        return str(self.mode_combo.currentData())

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
        self.colorbar = pg.ColorBarItem(values=self.levels, colorMap=self.cmap, interactive=False,
                                        width=14, label="predicted BOLD (z)", colorMapMenu=False)
        self._label = "predicted BOLD (z)"
        lw.addItem(self.colorbar, row=1, col=len(VIEWS))
        for col, stretch in enumerate((10, 9, 9)):
            lw.ci.layout.setColumnStretchFactor(col, stretch)

    def configure(self, regions: RegionInfo) -> None:
        """Place the markers for ``regions`` (or show a note when there are no positions)."""
        self.regions = regions
        self.values = np.zeros(regions.n)
        self._history = None
        xyz, self.marker_region = marker_positions(regions)
        self.marker_xyz = xyz
        self.network_combo.blockSignals(True)
        self.network_combo.clear()
        self.network_combo.addItem("All networks", "")
        for net in regions.networks_present():
            self.network_combo.addItem(net, net)
        self.network_combo.blockSignals(False)
        if regions.display is None:
            self.note.setText(
                f"Glass brain not available for these {regions.n} regions: their names are not "
                "those of a DiFuMo table (64, 128 or 256 components), so rtbold has no positions "
                "for them. Traces and FC show every region.")
            self.stack.setCurrentWidget(self.note)
            for sc in self.scatters.values():
                sc.clear()
            return
        self.stack.setCurrentWidget(self.layout_widget)
        size = 11 if regions.n <= 64 else 9 if regions.n <= 128 else 7
        # Draw deeper markers first so that the nearer ones stay on top in each projection.
        for view, (_, _, (h, v)) in VIEWS.items():
            depth = 3 - h - v  # the axis the view projects away
            order = np.argsort(xyz[:, depth] * (1 if view != "coronal" else -1), kind="stable")
            self.scatters[view].setData(
                pos=xyz[order][:, [h, v]], data=self.marker_region[order], size=size,
                brush=[self._lut[128]] * len(order))
            self._orders[view] = order
        self._size = size
        self._on_network_changed()
        self._set_levels(self.levels)

    # --- values ---
    def current_levels(self, history: FrameHistory | None = None) -> tuple[float, float]:
        """Colour limits (low, high) for the latest frame of ``history`` (the shown frame when
        None)."""
        recent = None
        frame = self.values
        if history is not None and len(history) and history.n_regions == self.regions.n:
            recent = history.last(ROBUST_FRAMES)["values"]
            frame = recent[-1]
        return color_levels(frame, recent, self.mode, self.limit_spin.value(),
                            self.subtract_mean.isChecked())

    def _set_levels(self, levels: tuple[float, float]) -> None:
        self.levels = (float(levels[0]), float(levels[1]))
        self.colorbar.setLevels(low=self.levels[0], high=self.levels[1])
        label = "predicted BOLD − frame mean (z)" if self.subtract_mean.isChecked() \
            else "predicted BOLD (z)"
        if getattr(self, "_label", None) != label:
            self.colorbar.getAxis("left").setLabel(label)  # where ColorBarItem puts its label
            self._label = label

    def _on_limits_changed(self, *_) -> None:
        self.limit_spin.setEnabled(self.mode == "fixed")
        if self.values.size:
            self.set_values(self.values, self.current_levels(self._history))

    def _on_network_changed(self, *_) -> None:
        net = self.network_combo.currentData() or ""
        if self.marker_region.size == 0:
            self._highlight = None
            return
        nets = np.asarray(self.regions.networks, dtype=object)[self.marker_region]
        self._highlight = None if not net else nets == net
        for view, sc in self.scatters.items():
            if self._highlight is None:
                sc.setSize(self._size)
            else:
                hl = self._highlight[self._orders[view]]
                sc.setSize(np.where(hl, self._size + 2, self._size - 2))
        self.set_values(self.values, self.levels)

    def set_values(self, values: np.ndarray, levels: tuple[float, float] | None = None) -> None:
        """Colour the markers by ``values`` (P,), raw predictions, between ``levels`` (low,
        high); from the current settings and ``values`` alone when None."""
        values = np.asarray(values, float)
        self.values = values
        if self.regions.display is None or self.marker_region.size == 0 \
                or values.shape != (self.regions.n,):
            return
        levels = self.current_levels() if levels is None else levels
        if tuple(levels) != self.levels:
            self._set_levels(levels)
        idx = self.marker_color_index()
        hl = self._highlight
        for view, sc in self.scatters.items():
            order = self._orders[view]
            if hl is None:
                sc.setBrush([self._lut[i] for i in idx[order]])
            else:
                sc.setBrush([self._lut[i] if h else self._lut_dim[i]
                             for i, h in zip(idx[order], hl[order])])

    def marker_color_index(self) -> np.ndarray:
        """Colour-map index (0..255) of every marker for the shown values (for tests)."""
        low, high = self.levels
        shown = display_values(self.values, self.subtract_mean.isChecked())
        v = np.nan_to_num(shown[self.marker_region], nan=(low + high) / 2)
        return np.clip(((v - low) / max(high - low, 1e-12) * 255).round(), 0, 255).astype(int)

    def update_view(self, history: FrameHistory | None) -> None:
        """Colour the markers by the latest frame of ``history``."""
        if history is None or len(history) == 0 or history.n_regions != self.regions.n:
            return
        self._history = history
        d = history.last(1)
        self.set_values(d["values"][-1], self.current_levels(history))
        self.frame_label.setText(f"TR {int(d['index'][-1])}")

    # --- hover ---
    def tooltip_text(self, region: int) -> str:
        """Tooltip for one region: name, side, network, current value and the frame's mean."""
        r = int(region)
        val = self.values[r] if r < len(self.values) else np.nan
        side = f" ({self.regions.display[r].side})" if self.regions.display else ""
        finite = self.values[np.isfinite(self.values)]
        mean = finite.mean() if finite.size else np.nan
        return (f"{self.regions.names[r]}{side}\n{self.regions.networks[r]}\n"
                f"value {val:+.2f} (frame mean {mean:+.2f}, minus mean {val - mean:+.2f})")

    def _tip(self, x: float, y: float, data) -> str:  # pyqtgraph's ScatterPlotItem tip hook
        return self.tooltip_text(int(data))
