"""What the user chose last (streams, bundle, session folder, view settings), kept between runs.

Stored as a small TOML file in the user's configuration folder (``QStandardPaths``
GenericConfigLocation / ``rtbold/gui-session.toml``), never in the repository.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PyQt6 import QtCore

from rtbold.config import ConfigError, from_dict, load_toml

logger = logging.getLogger(__name__)


@dataclass
class SessionSettings:
    """Choices made in the connect panel and the views."""

    eeg_stream: str = ""
    eeg_source_id: str = ""
    trigger_stream: str = ""
    trigger_source_id: str = ""
    bundle: str = ""
    session_dir: str = ""
    record: bool = True
    trace_window: int = field(default=100, metadata={"range": (10, 600)})
    fc_window: int = field(default=30, metadata={"range": (5, 600)})
    feedback_target: float = field(default=1.5, metadata={"range": (-10.0, 10.0)})
    feedback_baseline: float = field(default=0.0, metadata={"range": (-10.0, 10.0)})
    #: Glass-brain colour limits: "robust" (follow the predictions) or "fixed" (±color_limit).
    color_mode: str = field(default="robust", metadata={"choices": ("robust", "fixed")})
    color_limit: float = field(default=2.0, metadata={"range": (0.1, 20.0)})
    #: Glass brain shows each frame minus its across-region mean.
    subtract_mean: bool = False
    #: FC view after global-signal regression (instead of raw FC).
    fc_gsr: bool = False


def default_settings_path() -> Path:
    """``<user config dir>/rtbold/gui-session.toml``."""
    base = QtCore.QStandardPaths.writableLocation(
        QtCore.QStandardPaths.StandardLocation.GenericConfigLocation)
    if not base:
        base = str(Path.home() / ".config")
    return Path(base) / "rtbold" / "gui-session.toml"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def save_settings(settings: SessionSettings, path: str | Path | None = None) -> Path:
    """Write ``settings`` as TOML (creating the folder); returns the path."""
    path = Path(path) if path is not None else default_settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# rtbold GUI: last session choices (written by the GUI; safe to delete)", "[gui]"]
    for f in dataclasses.fields(settings):
        lines.append(f"{f.name} = {_toml_value(getattr(settings, f.name))}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a crash never leaves half a file
    return path


def load_settings(path: str | Path | None = None) -> SessionSettings:
    """Read the last choices; defaults when the file is missing, unreadable or from another
    version (logged, never fatal: the GUI must open)."""
    path = Path(path) if path is not None else default_settings_path()
    if not path.is_file():
        return SessionSettings()
    try:
        data = load_toml(path).get("gui", {})
        known = {f.name for f in dataclasses.fields(SessionSettings)}
        dropped = sorted(set(data) - known)
        if dropped:
            logger.info("Ignoring unknown GUI settings %s in %s.", dropped, path)
        return from_dict(SessionSettings, {k: v for k, v in data.items() if k in known},
                         f"{path}:gui")
    except ConfigError as err:
        logger.warning("GUI settings not loaded (%s); using defaults.", err)
        return SessionSettings()
