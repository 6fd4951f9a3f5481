"""Loading LSL (liblsl) settings before the first LSL call of a process.

liblsl reads its configuration once per process, from the file named by ``LSLAPICFG``. rtbold ships
``configs/lsl-local.cfg`` (discovery restricted to this machine) for tests, CI and the demo; a lab
passes its own file with ``--lsl-config`` or keeps LSL's defaults.
"""

from __future__ import annotations

import logging
import os
from importlib.resources import files
from pathlib import Path

logger = logging.getLogger(__name__)


def loopback_config_path() -> Path:
    """Path of the packaged loopback-only LSL configuration."""
    return Path(str(files("rtbold.data").joinpath("lsl-local.cfg")))


def apply_lsl_config(path: str | os.PathLike | None) -> Path | None:
    """Point liblsl at a configuration file; call before any LSL stream is created or resolved.

    Parameters
    ----------
    path : path-like | None
        An ``lsl_api.cfg`` file, or ``"loopback"`` for the packaged loopback settings. None keeps
        whatever ``LSLAPICFG`` already says (LSL's defaults when unset).
    """
    if path is None:
        return None
    cfg = loopback_config_path() if str(path) == "loopback" else Path(path)
    if not cfg.is_file():
        raise FileNotFoundError(f"LSL configuration file {cfg} does not exist; pass an existing "
                                "lsl_api.cfg with --lsl-config.")
    os.environ["LSLAPICFG"] = str(cfg.resolve())
    logger.info("LSL configuration: %s", cfg)
    return cfg
