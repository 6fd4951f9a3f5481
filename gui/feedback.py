"""Participant-facing neurofeedback display: a large thermometer with target and baseline lines.

The gauge can be detached into its own top-level window (to put on a second screen, full screen
with F11 or a double click); closing that window puts the gauge back into the panel.
"""

from __future__ import annotations

import logging

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from . import theme
from .history import FrameHistory

logger = logging.getLogger(__name__)


class FeedbackGauge(QtWidgets.QWidget):
    """A vertical bar from the baseline to the current feedback value.

    Parameters
    ----------
    vmin, vmax : float
        Range of the scale (z units).
    target, baseline : float
        Where the target and baseline lines are drawn.
    """

    def __init__(self, vmin: float = -3.0, vmax: float = 3.0, target: float = 1.5,
                 baseline: float = 0.0, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.vmin, self.vmax = float(vmin), float(vmax)
        self.target, self.baseline = float(target), float(baseline)
        self.value: float | None = None
        self.show_numbers = True
        self.setMinimumSize(120, 200)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding,
                           QtWidgets.QSizePolicy.Policy.Expanding)

    def set_value(self, value: float | None) -> None:
        """Show ``value`` (None or NaN: no feedback available)."""
        self.value = None if value is None or not np.isfinite(value) else float(value)
        self.update()

    def _y(self, v: float, top: float, height: float) -> float:
        frac = (np.clip(v, self.vmin, self.vmax) - self.vmin) / (self.vmax - self.vmin)
        return top + height * (1.0 - frac)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt name)
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), QtGui.QColor(theme.BACKGROUND))
        big = max(14, int(min(w, h) * 0.09))
        top, bottom = h * 0.06, h * (0.80 if self.show_numbers else 0.94)
        height = bottom - top
        bw = min(w * 0.36, height * 0.45)
        left = (w - bw) / 2
        tube = QtCore.QRectF(left, top, bw, height)
        p.setPen(QtGui.QPen(QtGui.QColor("#4a505c"), 2))
        p.setBrush(QtGui.QColor("#22252d"))
        p.drawRoundedRect(tube, 8, 8)
        y_base = self._y(self.baseline, top, height)
        y_target = self._y(self.target, top, height)
        if self.value is not None:
            y_val = self._y(self.value, top, height)
            reached = (self.value >= self.target) if self.target >= self.baseline \
                else (self.value <= self.target)
            color = QtGui.QColor(theme.OK if reached else "#4f9be8")
            bar = QtCore.QRectF(left + 6, min(y_val, y_base), bw - 12, abs(y_base - y_val))
            p.setPen(QtCore.Qt.PenStyle.NoPen)
            p.setBrush(color)
            p.drawRoundedRect(bar, 5, 5)
        right_middle = QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
        font = p.font()
        font.setPointSizeF(min(14.0, max(8.0, big * 0.4)))
        p.setFont(font)
        solid, dash = QtCore.Qt.PenStyle.SolidLine, QtCore.Qt.PenStyle.DashLine
        for yv, label, col, style in ((y_target, "target", theme.WARN, solid),
                                      (y_base, "baseline", theme.MUTED, dash)):
            p.setPen(QtGui.QPen(QtGui.QColor(col), 3, style))
            p.drawLine(QtCore.QPointF(left - 18, yv), QtCore.QPointF(left + bw + 18, yv))
            if self.show_numbers:  # labels left of the tube, right-aligned, so they never clip
                p.drawText(QtCore.QRectF(0, yv - big, left - 22, 2 * big),
                           right_middle,
                           label)
        if self.show_numbers:
            font.setPointSizeF(big)
            font.setBold(True)
            p.setFont(font)
            p.setPen(QtGui.QColor(theme.FOREGROUND))
            text = "—" if self.value is None else f"{self.value:+.2f}"
            p.drawText(QtCore.QRectF(0, bottom + 4, w, h - bottom - 4),
                       QtCore.Qt.AlignmentFlag.AlignCenter, text)
        p.end()


class _DetachedWindow(QtWidgets.QWidget):
    closed = QtCore.pyqtSignal()

    def __init__(self) -> None:
        super().__init__(None, QtCore.Qt.WindowType.Window)
        self.setWindowTitle("rtbold feedback")
        self.setStyleSheet(f"background-color: {theme.BACKGROUND};")
        self.resize(480, 800)
        QtGui.QShortcut(QtGui.QKeySequence("F11"), self, self.toggle_fullscreen)
        QtGui.QShortcut(QtGui.QKeySequence("Esc"), self, self.showNormal)

    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def mouseDoubleClickEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802
        self.toggle_fullscreen()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        self.closed.emit()
        super().closeEvent(event)


class FeedbackView(QtWidgets.QWidget):
    """Feedback panel: the gauge with target/baseline controls and a detach button."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, target: float = 1.5,
                 baseline: float = 0.0) -> None:
        super().__init__(parent)
        self.gauge = FeedbackGauge(target=target, baseline=baseline)
        self.target_spin = _spin(target, "Target")
        self.baseline_spin = _spin(baseline, "Baseline")
        self.target_spin.valueChanged.connect(self._limits_changed)
        self.baseline_spin.valueChanged.connect(self._limits_changed)
        self.detach_button = QtWidgets.QPushButton("Detach")
        self.detach_button.setToolTip("Show the gauge in its own window (participant screen); "
                                      "double click or F11 there for full screen.")
        self.detach_button.clicked.connect(self.toggle_detached)
        self.placeholder = QtWidgets.QLabel("Feedback shown in its own window.")
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet(f"color: {theme.MUTED};")
        self.placeholder.hide()
        form = QtWidgets.QHBoxLayout()
        form.addWidget(QtWidgets.QLabel("Target"))
        form.addWidget(self.target_spin)
        form.addWidget(QtWidgets.QLabel("Baseline"))
        form.addWidget(self.baseline_spin)
        form.addStretch(1)
        form.addWidget(self.detach_button)
        self._lay = QtWidgets.QVBoxLayout(self)
        self._lay.setContentsMargins(2, 2, 2, 2)
        self._lay.addLayout(form)
        self._lay.addWidget(self.gauge, 1)
        self._lay.addWidget(self.placeholder, 1)
        self.window: _DetachedWindow | None = None

    @property
    def detached(self) -> bool:
        return self.window is not None

    def _limits_changed(self) -> None:
        self.gauge.target = self.target_spin.value()
        self.gauge.baseline = self.baseline_spin.value()
        self.gauge.update()

    def toggle_detached(self) -> None:
        """Move the gauge into its own window, or back into the panel."""
        if self.window is None:
            self.window = _DetachedWindow()
            lay = QtWidgets.QVBoxLayout(self.window)
            lay.setContentsMargins(0, 0, 0, 0)
            self._lay.removeWidget(self.gauge)
            lay.addWidget(self.gauge)
            self.window.closed.connect(self._reattach)
            self.placeholder.show()
            self.detach_button.setText("Attach")
            self.window.show()
        else:
            self.window.close()  # emits closed -> _reattach

    def _reattach(self) -> None:
        if self.window is None:
            return
        win, self.window = self.window, None
        self.gauge.setParent(self)
        self._lay.insertWidget(1, self.gauge, 1)
        self.gauge.show()
        self.placeholder.hide()
        self.detach_button.setText("Detach")
        win.deleteLater()

    def update_view(self, history: FrameHistory | None) -> None:
        """Show the latest frame's feedback value."""
        if history is None or len(history) == 0:
            return
        self.gauge.set_value(float(history.last(1)["feedback"][-1]))


def _spin(value: float, what: str) -> QtWidgets.QDoubleSpinBox:
    s = QtWidgets.QDoubleSpinBox()
    s.setRange(-10.0, 10.0)
    s.setSingleStep(0.25)
    s.setValue(float(value))
    s.setToolTip(f"{what} line on the feedback scale (z units).")
    return s
