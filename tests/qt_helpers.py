"""Shared helpers for offscreen Qt tests."""

import numpy as np
from PyQt6 import QtCore, QtGui


def region_stats(img: QtGui.QImage, widget, window) -> tuple[float, int]:
    """Luminance std and number of distinct colours of ``widget``'s area in a ``window`` grab.

    A blank plot area is one flat colour (std < 1, <= 2 colours); drawn content is not.
    """
    top_left = widget.mapTo(window, QtCore.QPoint(0, 0))
    sub = img.copy(top_left.x(), top_left.y(), widget.width(), widget.height())
    sub = sub.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    ptr = sub.constBits()
    ptr.setsize(sub.sizeInBytes())
    arr = np.frombuffer(ptr, np.uint8).reshape(sub.height(), sub.bytesPerLine() // 4, 4)
    rgb = arr[:, : sub.width(), :3].reshape(-1, 3)
    n_colors = len(np.unique(rgb.view([("", np.uint8)] * 3)))
    luminance = rgb.astype(float) @ [0.299, 0.587, 0.114]
    return float(luminance.std()), n_colors


def start_live_window(qtbot, tmp_path, source, runner):
    """A main window whose Start button made a real LiveEngine reading ``source`` (loopback
    LSL) with ``runner``; ``source`` is started once the engine holds its model. Returns the
    window; stop it with ``win.stop(wait=True)``."""
    from rtbold.gui.main_window import MainWindow
    from rtbold.stream.engine import LiveEngine

    from live_helpers import live_config

    made = {}

    def factory(settings, **callbacks):
        assert settings.record and settings.session_dir == ""
        made["engine"] = LiveEngine(live_config(source, tmp_path), runner=runner, **callbacks)
        return made["engine"]

    win = MainWindow(factory, settings_path=tmp_path / "gui.toml", discover=False)
    qtbot.addWidget(win)
    win.show()
    win.connect_panel.start_button.click()
    qtbot.waitUntil(lambda: "engine" in made and made["engine"].runner is not None, timeout=20000)
    source.start()
    return win


def shown_window(qtbot, tmp_path):
    """A MainWindow without an engine, shown offscreen (settings in ``tmp_path``); stop its
    draw loop when done (``win.draw_loop.stop()``)."""
    from rtbold.gui.main_window import MainWindow

    win = MainWindow(settings_path=tmp_path / "gui-session.toml", discover=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win
