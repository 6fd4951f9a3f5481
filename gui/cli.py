"""``rtbold gui``: open the live display window, and :func:`run_window` for other commands."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)


def make_engine_factory(config_path: str | Path | None = None) -> Callable[..., Any]:
    """Engine factory building a :class:`rtbold.stream.engine.LiveEngine` from a ``[live]``
    TOML config (defaults when None) overridden by the choices made in the window.

    Returns
    -------
    callable
        ``factory(settings, *, on_frame, on_status, on_error) -> LiveEngine``.
    """
    def factory(settings, *, on_frame=None, on_status=None, on_error=None):
        from rtbold.stream.config import load_live_config
        from rtbold.stream.engine import LiveEngine

        cfg = load_live_config(config_path)
        if settings.bundle:
            cfg.bundle = Path(settings.bundle)
        if settings.session_dir:
            cfg.session_dir = Path(settings.session_dir)
        if settings.eeg_stream or settings.eeg_source_id:
            cfg.stream = dataclasses.replace(cfg.stream, name=settings.eeg_stream or None,
                                             source_id=settings.eeg_source_id or None)
        if settings.trigger_stream or settings.trigger_source_id:
            cfg.trigger = dataclasses.replace(cfg.trigger, source="markers",
                                              name=settings.trigger_stream or None,
                                              source_id=settings.trigger_source_id or None)
        cfg.output = dataclasses.replace(cfg.output, record=bool(settings.record))
        cfg.check()
        return LiveEngine(cfg, on_frame=on_frame, on_status=on_status, on_error=on_error)

    return factory


def run_window(engine_factory: Callable[..., Any] | None = None, *, settings=None,
               settings_path: str | Path | None = None, bundle: str | Path | None = None,
               autostart: bool = False, roi_names: Sequence[str] | None = None,
               networks: Sequence[str] | None = None, discover: bool = True,
               exec_loop: bool = True, argv: Sequence[str] | None = None):
    """Open the main window and run the Qt event loop until it is closed.

    Parameters
    ----------
    engine_factory : callable | None
        ``engine_factory(settings, *, on_frame, on_status, on_error)`` returning an engine with
        ``start()``/``stop()`` (and ``roi_names``/``networks``). ``rtbold demo`` passes one that
        builds a LiveEngine on a simulated stream. None: :func:`make_engine_factory` defaults.
    settings : SessionSettings | None
        Initial choices; the last session's (user config dir) when None.
    settings_path : path | None
        Where the choices are kept.
    bundle : path | None
        Model bundle (overrides the remembered one).
    autostart : bool
        Press Start as soon as the window is shown.
    roi_names, networks : sequence | None
        Regions shown before the engine reports its own.
    discover : bool
        Look for LSL streams when the window opens.
    exec_loop : bool
        Run the event loop (False returns the window right away, for tests and embedding).

    Returns
    -------
    int | MainWindow
        The application's exit code, or the window when ``exec_loop`` is False.
    """
    from PyQt6 import QtWidgets

    from .main_window import MainWindow
    from .settings import load_settings

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setApplicationName("rtbold")
    if settings is None:
        settings = load_settings(settings_path)
    if bundle is not None:
        settings = dataclasses.replace(settings, bundle=str(bundle))
    win = MainWindow(engine_factory if engine_factory is not None else make_engine_factory(),
                     settings=settings, settings_path=settings_path, roi_names=roi_names,
                     networks=networks, discover=discover)
    win.show()
    if autostart:
        from PyQt6 import QtCore

        QtCore.QTimer.singleShot(0, win.start)
    if not exec_loop:
        return win
    return int(app.exec())


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``rtbold gui``."""
    p = subparsers.add_parser(
        "gui", help="open the live display window",
        description="Open the rtbold window: choose the EEG and trigger LSL streams and a model "
                    "bundle, then watch predicted BOLD live (glass brain, region traces, "
                    "sliding-window FC, neurofeedback gauge, latency).")
    p.add_argument("--bundle", type=Path, default=None, metavar="PATH",
                   help="model bundle to use (overrides the one remembered from last time)")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="live-session TOML ([live] table, e.g. configs/live.toml) for everything "
                        "the window does not set")
    p.add_argument("--settings", type=Path, default=None, metavar="FILE",
                   help="where the window keeps its last choices (default: user config folder)")
    p.add_argument("--start", action="store_true", help="press Start when the window opens")
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    if args.bundle is not None and not args.bundle.exists():
        raise FileNotFoundError(f"Bundle {args.bundle} does not exist; pass an existing bundle "
                                "with --bundle or choose one in the window.")
    if args.config is not None:
        from rtbold.stream.config import load_live_config

        load_live_config(args.config)  # fail now, with the key path, not after Start
    return run_window(make_engine_factory(args.config), settings_path=args.settings,
                      bundle=args.bundle, autostart=args.start)
