"""Connect panel: discover LSL streams, choose EEG and trigger streams, bundle, session folder."""

from __future__ import annotations

import logging
import threading
from typing import Any

from PyQt6 import QtCore, QtWidgets

from . import theme
from .settings import SessionSettings

logger = logging.getLogger(__name__)

_NONE = "(none)"
COLUMNS = ("name", "type", "rate", "channels", "source id", "host")


def stream_dict(info: Any) -> dict[str, Any]:
    """Plain description of a ``pylsl.StreamInfo`` (safe to pass between threads)."""
    return {"name": info.name(), "type": info.type(), "sfreq": float(info.nominal_srate()),
            "n_channels": int(info.channel_count()), "source_id": info.source_id(),
            "hostname": info.hostname(), "uid": info.uid()}


class StreamDiscovery(QtCore.QObject):
    """Resolve LSL streams in a background thread; results arrive as a queued signal.

    Signals
    -------
    found(list)
        List of :func:`stream_dict` dictionaries.
    failed(str)
    """

    found = QtCore.pyqtSignal(list)
    failed = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def refresh(self, wait_time: float = 1.0) -> bool:
        """Start a discovery unless one is running; returns whether one was started."""
        if self.busy:
            return False
        self._thread = threading.Thread(target=self._run, args=(wait_time,), daemon=True,
                                        name="rtbold-gui-lsl-discovery")
        self._thread.start()
        return True

    def _run(self, wait_time: float) -> None:
        try:
            import pylsl  # LSLAPICFG must be set before this first LSL call (CLI/conftest do it)

            infos = pylsl.resolve_streams(wait_time)
            streams = sorted((stream_dict(i) for i in infos),
                             key=lambda d: (d["type"].lower() != "eeg", d["name"], d["source_id"]))
            self.found.emit(streams)
        except Exception as err:  # noqa: BLE001 - must reach the user, not end silently
            logger.debug("LSL discovery failed", exc_info=True)
            self.failed.emit(f"LSL stream discovery failed: {type(err).__name__}: {err}")


class ConnectPanel(QtWidgets.QWidget):
    """Stream table, stream choices, bundle and session folder, record switch, start/stop.

    Signals
    -------
    start_requested(object)
        A :class:`~rtbold.gui.settings.SessionSettings` with the current choices.
    stop_requested()
    """

    start_requested = QtCore.pyqtSignal(object)
    stop_requested = QtCore.pyqtSignal()

    def __init__(self, settings: SessionSettings | None = None, wait_time: float = 1.0,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.wait_time = float(wait_time)
        self.streams: list[dict[str, Any]] = []
        self.discovery = StreamDiscovery(self)
        self.discovery.found.connect(self._on_found)
        self.discovery.failed.connect(self._on_failed)

        self.refresh_button = QtWidgets.QPushButton("Find streams")
        self.refresh_button.setToolTip("Look for LSL streams (runs in the background).")
        self.refresh_button.clicked.connect(self.refresh)
        self.discovery_label = QtWidgets.QLabel("")
        self.discovery_label.setStyleSheet(f"color: {theme.MUTED};")
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(110)
        self.table.cellDoubleClicked.connect(self._use_row_as_eeg)

        self.eeg_combo = QtWidgets.QComboBox()
        self.trigger_combo = QtWidgets.QComboBox()
        self.bundle_edit = QtWidgets.QLineEdit()
        self.bundle_edit.setPlaceholderText("model bundle (.rtbold / folder)")
        bundle_btn = QtWidgets.QPushButton("…")
        bundle_btn.setToolTip("Choose a model bundle file")
        bundle_btn.clicked.connect(self.browse_bundle)
        self.session_edit = QtWidgets.QLineEdit()
        self.session_edit.setPlaceholderText("folder for the recordings of this session")
        session_btn = QtWidgets.QPushButton("…")
        session_btn.clicked.connect(self.browse_session)
        self.record_check = QtWidgets.QCheckBox("Record")
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setStyleSheet(f"QPushButton {{ color: {theme.OK}; font-weight: bold; }}")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.start_button.clicked.connect(self._start)
        self.stop_button.clicked.connect(self.stop_requested.emit)

        form = QtWidgets.QFormLayout()
        form.addRow("EEG stream", self.eeg_combo)
        form.addRow("Trigger stream", self.trigger_combo)
        form.addRow("Bundle", _row(self.bundle_edit, bundle_btn))
        form.addRow("Session folder", _row(self.session_edit, session_btn))
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.record_check)
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.refresh_button)
        top.addWidget(self.discovery_label, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(form)
        lay.addLayout(buttons)
        self.apply_settings(settings or SessionSettings())

    # --- discovery ---
    def refresh(self) -> None:
        """Look for LSL streams without blocking the window."""
        if self.discovery.refresh(self.wait_time):
            self.refresh_button.setEnabled(False)
            self.discovery_label.setText("searching…")

    def _on_failed(self, message: str) -> None:
        self.refresh_button.setEnabled(True)
        self.discovery_label.setText(f"<span style='color:{theme.ERROR}'>{message}</span>")

    def _on_found(self, streams: list) -> None:
        self.refresh_button.setEnabled(True)
        self.streams = streams
        self.discovery_label.setText(f"{len(streams)} stream(s)")
        self.table.setRowCount(len(streams))
        for r, s in enumerate(streams):
            for c, text in enumerate((s["name"], s["type"], f"{s['sfreq']:g} Hz" if s["sfreq"]
                                      else "irregular", str(s["n_channels"]), s["source_id"],
                                      s["hostname"])):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        eeg = self._key(self.eeg_combo) or (self._chosen.eeg_stream, self._chosen.eeg_source_id)
        trig = self._key(self.trigger_combo) or (self._chosen.trigger_stream,
                                                 self._chosen.trigger_source_id)
        self._fill(self.eeg_combo, [s for s in streams if s["sfreq"] > 0], eeg, allow_none=False)
        self._fill(self.trigger_combo, [s for s in streams if s["sfreq"] == 0 or
                                        s["type"].lower() in ("markers", "trigger")], trig,
                   allow_none=True)

    @staticmethod
    def _label(s: dict) -> str:
        return (f"{s['name']}  [{s['type']}, {s['n_channels']} ch, {s['sfreq']:g} Hz, "
                f"{s['source_id']}]")

    def _fill(self, combo: QtWidgets.QComboBox, streams: list, keep: tuple | None,
              allow_none: bool) -> None:
        combo.clear()
        if allow_none:
            combo.addItem(_NONE, ("", ""))
        for s in streams:
            combo.addItem(self._label(s), (s["name"], s["source_id"]))
        if keep and keep[0]:
            for i in range(combo.count()):
                if combo.itemData(i) == tuple(keep):
                    combo.setCurrentIndex(i)
                    return
            # The remembered stream is not there now: keep it visible as a choice, marked.
            combo.addItem(f"{keep[0]}  [{keep[1]}] (not found)", tuple(keep))
            combo.setCurrentIndex(combo.count() - 1)

    @staticmethod
    def _key(combo: QtWidgets.QComboBox) -> tuple[str, str] | None:
        data = combo.currentData()
        return tuple(data) if data else None

    def _use_row_as_eeg(self, row: int, _col: int) -> None:
        s = self.streams[row]
        for i in range(self.eeg_combo.count()):
            if self.eeg_combo.itemData(i) == (s["name"], s["source_id"]):
                self.eeg_combo.setCurrentIndex(i)

    # --- files ---
    def browse_bundle(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Choose a model bundle", self.bundle_edit.text(),
            "rtbold bundles (*.rtbold *.safetensors *.zip);;All files (*)")
        if path:
            self.bundle_edit.setText(path)

    def browse_session(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Choose the session folder", self.session_edit.text())
        if path:
            self.session_edit.setText(path)

    # --- settings ---
    def apply_settings(self, s: SessionSettings) -> None:
        """Show the choices in ``s`` (streams are matched when discovery finds them)."""
        self._chosen = s
        for combo, name, sid, none in ((self.eeg_combo, s.eeg_stream, s.eeg_source_id, False),
                                       (self.trigger_combo, s.trigger_stream,
                                        s.trigger_source_id, True)):
            self._fill(combo, [], (name, sid), allow_none=none)
        self.bundle_edit.setText(s.bundle)
        self.session_edit.setText(s.session_dir)
        self.record_check.setChecked(bool(s.record))

    def settings(self, base: SessionSettings | None = None) -> SessionSettings:
        """The current choices (view settings taken from ``base``)."""
        import dataclasses

        base = base or self._chosen
        eeg = self._key(self.eeg_combo) or ("", "")
        trig = self._key(self.trigger_combo) or ("", "")
        return dataclasses.replace(base, eeg_stream=eeg[0], eeg_source_id=eeg[1],
                                   trigger_stream=trig[0], trigger_source_id=trig[1],
                                   bundle=self.bundle_edit.text().strip(),
                                   session_dir=self.session_edit.text().strip(),
                                   record=self.record_check.isChecked())

    def _start(self) -> None:
        self.start_requested.emit(self.settings())

    def set_running(self, running: bool) -> None:
        """Enable Stop while running, Start and the choices otherwise."""
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in (self.eeg_combo, self.trigger_combo, self.bundle_edit, self.session_edit,
                  self.record_check):
            w.setEnabled(not running)


def _row(*widgets: QtWidgets.QWidget) -> QtWidgets.QWidget:
    w = QtWidgets.QWidget()
    lay = QtWidgets.QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    for x in widgets:
        lay.addWidget(x, 1 if isinstance(x, QtWidgets.QLineEdit) else 0)
    return w
