"""Qt GUI of rtbold: live display of predicted BOLD (glass brain, traces, FC, feedback, status).

The GUI only draws what the live engine sends (:class:`rtbold.stream.frames.Frame`); the display
statistics it computes (running correlation, sliding-window FC) are for viewing only.

Use :func:`rtbold.gui.cli.run_window` to open the window with an engine factory, or
:class:`rtbold.gui.main_window.MainWindow` to embed it. Importing this package does not import Qt.
"""

__all__ = ["run_window", "MainWindow", "EngineBridge"]


def __getattr__(name: str):
    # Lazy: `rtbold --help` must not pay for (or require a display for) Qt.
    if name == "run_window":
        from .cli import run_window

        return run_window
    if name == "MainWindow":
        from .main_window import MainWindow

        return MainWindow
    if name == "EngineBridge":
        from .bridge import EngineBridge

        return EngineBridge
    raise AttributeError(f"module 'rtbold.gui' has no attribute {name!r}")
