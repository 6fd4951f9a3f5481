"""Choice of the torch device."""

from __future__ import annotations

import logging

import torch

__all__ = ["select_device"]

logger = logging.getLogger(__name__)


def select_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve a device request.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    torch.device

    Raises
    ------
    RuntimeError
        If CUDA is requested but not available (or the index does not exist).
    ValueError
        If the string is not a device name.
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    if name == "auto":
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        logger.debug("device auto -> %s", chosen)
        return chosen
    try:
        chosen = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} requested but CUDA is not available (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda or 'none'}); use device 'cpu' or 'auto', or "
                f"install a CUDA build of torch")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                               f"CUDA device(s) exist")
    elif chosen.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'")
    return chosen
