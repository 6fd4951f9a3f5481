"""Colours, colour maps and pyqtgraph settings shared by the rtbold views (dark theme)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtGui

#: Window and plot background, foreground (axes, labels) and a muted grey for outlines.
BACKGROUND = "#15171c"
PANEL = "#1d2027"
FOREGROUND = "#d8dbe2"
MUTED = "#7d8391"
OUTLINE = "#8a909c"
ERROR = "#e05555"
OK = "#59c27a"
WARN = "#e0b040"

#: One colour per readable Yeo-7 network (Yeo's hues, lightened to read on a dark background).
NETWORK_COLORS: dict[str, str] = {
    "Visual": "#b25fd6",
    "Somatomotor": "#5a9fd6",
    "Dorsal attention": "#3fb54a",
    "Salience/ventral attention": "#e06df5",
    "Limbic": "#d6eb9a",
    "Frontoparietal control": "#f0a03a",
    "Default": "#e2586a",
    "Subcortical/other": "#a0a4ab",
}

#: Short network labels for crowded axes.
NETWORK_SHORT: dict[str, str] = {
    "Visual": "VIS",
    "Somatomotor": "SMN",
    "Dorsal attention": "DAN",
    "Salience/ventral attention": "VAN",
    "Limbic": "LIM",
    "Frontoparietal control": "FPN",
    "Default": "DMN",
    "Subcortical/other": "SUB",
}

# RdBu (ColorBrewer), reversed so that positive is red. The centre is a light grey rather than
# white so that values near zero still read as "neutral" and stay visible on the dark background.
_RDBU_R = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#e4e4e4",
           "#fddbc7", "#f4a582", "#d6604d", "#b2182b"]


def network_color(network: str) -> str:
    """Colour of a readable network name (grey for unknown names)."""
    return NETWORK_COLORS.get(network, NETWORK_COLORS["Subcortical/other"])


def diverging_cmap() -> pg.ColorMap:
    """Blue-grey-red diverging colour map (ColorBrewer RdBu reversed)."""
    pos = np.linspace(0.0, 1.0, len(_RDBU_R))
    colors = [QtGui.QColor(c) for c in _RDBU_R]
    return pg.ColorMap(pos, [(c.red(), c.green(), c.blue(), 255) for c in colors], name="RdBu_r")


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options for the dark theme (idempotent)."""
    pg.setConfigOptions(background=BACKGROUND, foreground=FOREGROUND, antialias=True)


APP_STYLESHEET = f"""
QWidget {{ background-color: {BACKGROUND}; color: {FOREGROUND}; font-size: 10pt; }}
QDockWidget::title {{ background: {PANEL}; padding: 4px; font-weight: bold; }}
QGroupBox {{ border: 1px solid #30343d; border-radius: 4px; margin-top: 14px; padding-top: 4px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; color: {MUTED}; }}
QPushButton {{ background: #2a2e37; border: 1px solid #3b404b; border-radius: 3px;
    padding: 4px 10px; }}
QPushButton:hover {{ background: #343946; }}
QPushButton:disabled {{ color: #5d626d; }}
QLineEdit, QComboBox, QSpinBox, QDoubleSpinBox, QTableWidget, QListWidget {{
    background: #22252d; border: 1px solid #3b404b; border-radius: 3px; padding: 2px; }}
QHeaderView::section {{ background: {PANEL}; color: {MUTED}; border: none; padding: 3px; }}
QCheckBox::indicator {{ width: 13px; height: 13px; border: 1px solid #6a707c;
    border-radius: 2px; background: #22252d; }}
QCheckBox::indicator:checked {{ background: #4f9be8; border-color: #4f9be8; }}
QToolTip {{ background: #262a33; color: {FOREGROUND}; border: 1px solid #4a505c; }}
"""
