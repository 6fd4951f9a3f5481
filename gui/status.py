"""Engine status, per-stage latency figures and the error list shown in the window."""

from __future__ import annotations

import html
import logging
import time
from typing import Any

import numpy as np
from PyQt6 import QtCore, QtWidgets

from . import theme
from .history import FrameHistory

logger = logging.getLogger(__name__)

#: Latency stages in pipeline order (others are listed after these).
STAGES = ("window_ready", "inference_start", "inference_end", "published", "recorded")


class ErrorBanner(QtWidgets.QFrame):
    """A red banner with the latest error; hidden until there is one."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(f"QFrame {{ background: #4a1e22; border: 1px solid {theme.ERROR};"
                           " border-radius: 3px; } QLabel { background: transparent; }")
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QtWidgets.QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.hide()

    def show_error(self, message: str) -> None:
        self.label.setText(message)
        self.show()


def measured_html(status: Any, n_regions: int | None = None) -> str:
    """The engine's measured-BOLD note, coloured: red when no region is compared, amber when
    fewer than the model's ``n_regions`` are ("—" when there is no measured stream)."""
    note = str(getattr(status, "measured", "") or "")
    if not note:
        return "—"
    common = getattr(status, "measured_regions", None)
    color = (theme.ERROR if not common else
             theme.WARN if n_regions is not None and common < n_regions else theme.FOREGROUND)
    return f"<span style='color:{color}'>{html.escape(note)}</span>"


class StatusView(QtWidgets.QWidget):
    """Connection state, rates, buffer fill, latency p50/p99 over the last 50 TRs, errors."""

    #: The user pressed "Calibrate now".
    calibrate_requested = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields: dict[str, QtWidgets.QLabel] = {}
        form = QtWidgets.QFormLayout()
        form.setLabelAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        for key, label in (("connected", "Connection"), ("stream", "Stream"),
                           ("rate", "Effective rate"), ("lost", "Lost samples"),
                           ("last_tick", "Last tick"), ("frames", "Frames"),
                           ("streams", "Inlets"), ("clock", "TR clock"),
                           ("bad", "Channel flags"), ("artifacts", "MR artefacts"),
                           ("waiting", "No TR because"), ("measured", "Measured BOLD"),
                           ("calibration", "Calibration"), ("device", "Device"), ("bundle", "Bundle"), ("message", "Message")):
            w = QtWidgets.QLabel("—")
            w.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            w.setWordWrap(key in ("bundle", "message", "waiting", "streams", "bad", "measured",
                                  "artifacts", "calibration"))
            self.fields[key] = w
            form.addRow(label, w)
        # In-session calibration on the measured BOLD, in a separate process (issue 11).
        self.calibrate_button = QtWidgets.QPushButton("Calibrate now")
        self.calibrate_button.setToolTip(
            "Fine-tune the model on this participant's paired EEG and measured BOLD in a "
            "separate process; it is swapped in only if it predicts the last minutes better")
        self.calibrate_button.setEnabled(False)
        self.calibrate_button.clicked.connect(self.calibrate_requested)
        form.addRow("", self.calibrate_button)
        self.buffer = QtWidgets.QProgressBar()
        self.buffer.setRange(0, 100)
        self.buffer.setFormat("%p%")
        form.insertRow(4, "Buffer fill", self.buffer)

        self.latency = QtWidgets.QTableWidget(0, 3)
        self.latency.setHorizontalHeaderLabels(["stage", "p50 ms", "p99 ms"])
        self.latency.verticalHeader().hide()
        self.latency.horizontalHeader().setSectionResizeMode(
            QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.latency.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.latency.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.latency.setMaximumHeight(180)
        self.latency.verticalHeader().setDefaultSectionSize(22)

        self.errors = QtWidgets.QListWidget()
        self.errors.setMaximumHeight(110)
        self.errors.setStyleSheet(f"color: {theme.ERROR};")
        clear = QtWidgets.QPushButton("Clear errors")
        clear.clicked.connect(self.errors.clear)

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(form)
        lay.addWidget(QtWidgets.QLabel("Latency since tick (last 50 TRs)"))
        lay.addWidget(self.latency)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Errors"))
        row.addStretch(1)
        row.addWidget(clear)
        lay.addLayout(row)
        lay.addWidget(self.errors)
        lay.addStretch(1)
        self._last_error, self._repeats = "", 0
        self.set_status(None)

    def add_error(self, message: str) -> None:
        """Append an error (with the wall-clock time) to the list; a repeat of the last error
        updates its count instead of flooding the list."""
        stamp = time.strftime('%H:%M:%S')
        if self.errors.count() and self._last_error == message:
            self._repeats += 1
            self.errors.item(self.errors.count() - 1).setText(
                f"{stamp}  {message}  (×{self._repeats})")
            return
        self._last_error, self._repeats = message, 1
        self.errors.addItem(f"{stamp}  {message}")
        self.errors.scrollToBottom()

    def set_status(self, status: Any, n_regions: int | None = None) -> None:
        """Show an :class:`~rtbold.stream.frames.EngineStatus` (None: not running) for a model
        of ``n_regions`` regions."""
        f = self.fields
        if status is None:
            f["connected"].setText(f"<span style='color:{theme.MUTED}'>● not running</span>")
            for k in ("stream", "rate", "lost", "last_tick", "frames", "streams", "clock", "bad",
                      "artifacts", "waiting", "measured", "calibration", "device", "bundle",
                      "message"):
                f[k].setText("—")
            self.buffer.setValue(0)
            self.calibrate_button.setEnabled(False)
            return
        ok = bool(getattr(status, "connected", False))
        color = theme.OK if ok else theme.ERROR
        f["connected"].setText(f"<span style='color:{color}'>● "
                               f"{'connected' if ok else 'disconnected'}</span>")
        f["stream"].setText(str(getattr(status, "stream_name", "") or "—"))
        sf = getattr(status, "effective_sfreq", None)
        f["rate"].setText("—" if sf is None or not np.isfinite(sf) else f"{sf:.2f} Hz")
        lost = int(getattr(status, "lost_samples", 0) or 0)
        f["lost"].setText(f"<span style='color:{theme.ERROR if lost else theme.FOREGROUND}'>"
                          f"{lost}</span>")
        fill = getattr(status, "buffer_fill", 0.0) or 0.0
        self.buffer.setValue(int(round(100 * float(fill))))
        tick = getattr(status, "last_tick", None)
        f["last_tick"].setText("—" if tick is None else f"{tick:.3f} s (stream time)")
        f["frames"].setText(f"{getattr(status, 'n_frames', 0)} "
                            f"({getattr(status, 'n_skipped', 0)} skipped)")
        # what the engine says about each inlet, its clock and why no TR has come (issue 9)
        streams = getattr(status, "streams", None) or {}
        f["streams"].setText("<br>".join(
            f"{k}: <span style='color:{theme.OK if v.endswith('connected') else theme.ERROR}'>"
            f"{v}</span>" for k, v in streams.items()) or "—")
        n_rec = int(getattr(status, "n_reconnects", 0) or 0)
        clock = str(getattr(status, "clock", "") or "—")
        f["clock"].setText(clock + (f" · {n_rec} reconnection{'s' if n_rec != 1 else ''}"
                                    if n_rec else ""))
        bad = getattr(status, "bad_channels", None) or {}
        f["bad"].setText("; ".join(f"{flag}: {', '.join(chs)}" for flag, chs in bad.items())
                         or "none")
        # MR-artefact correction: templates filled, residual, heart rate, triggers (issue 10)
        f["artifacts"].setText(str(getattr(status, "artifacts", "") or "off"))
        waiting = str(getattr(status, "waiting_for", "") or "")
        f["waiting"].setText(f"<span style='color:{theme.ERROR}'>{waiting}</span>" if waiting
                             else "—")
        f["measured"].setText(measured_html(status, n_regions))
        calibration = str(getattr(status, "calibration", "") or "")
        f["calibration"].setText(calibration or "not available (needs measured BOLD and a "
                                                "recorded session)")
        self.calibrate_button.setEnabled(bool(calibration) and "calibrating" not in calibration)
        f["device"].setText(str(getattr(status, "device", "") or "—"))
        f["bundle"].setText(str(getattr(status, "bundle", "") or "—"))
        f["message"].setText(str(getattr(status, "message", "") or ""))

    def set_latency(self, history: FrameHistory | None) -> None:
        """Per-stage p50/p99 latency in ms over the history's kept frames."""
        stats = history.latency_stats() if history is not None else {}
        names = [s for s in STAGES if s in stats] + sorted(set(stats) - set(STAGES))
        if self.latency.rowCount() != len(names):
            self.latency.setRowCount(len(names))
        for r, name in enumerate(names):
            p50, p99 = stats[name]
            for c, text in enumerate((name, f"{1e3 * p50:.1f}", f"{1e3 * p99:.1f}")):
                item = self.latency.item(r, c)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    self.latency.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)

    def update_view(self, history: FrameHistory | None, status: Any = None) -> None:
        self.set_status(status, history.n_regions if history is not None else None)
        self.set_latency(history)
        if history is not None and history.last_frame is not None:
            flags = getattr(history.last_frame, "flags", ())
            if flags:
                self.fields["message"].setText(
                    f"<span style='color:{theme.WARN}'>last frame flagged: "
                    f"{', '.join(flags)}</span>")
