"""Load the official LaBraM-base pretrained weights into a model's LaBraM encoder (MODEL.md 2.7).

The official ``labram-base.pth`` is a torch pickle whose ``"model"`` entry is the state dict of the
pre-training wrapper; the encoder's tensors are the keys starting with ``student.``. Following
NeuroBOLT's recipe we keep only those, strip the prefix and load the rest non-strictly: the patch
encoder, CLS token, spatial and temporal tables and the transformer blocks get pretrained values;
``fc_norm``, heads and the spectral branch keep their fresh init; ``mask_token``, ``norm.*`` and
``lm_head.*`` are ignored. The file is read with ``torch.load(weights_only=True)`` (never a full
unpickle); a ``.safetensors`` file with the same key names works too.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

import torch
from torch import nn

from .labram import LaBraMEncoder

__all__ = ["load_labram_weights", "read_labram_checkpoint"]

logger = logging.getLogger(__name__)

_PREFIX = "student."


def read_labram_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The raw state dict of a LaBraM checkpoint (``ckpt["model"]``, else ``["module"]``, else all)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LaBraM checkpoint {path} does not exist; give the path to "
                                f"labram-base.pth (from the 935963004/LaBraM repository)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"cannot read LaBraM weights {path}: {err}") from err
    try:
        # Training checkpoints may carry an argparse.Namespace of run arguments; allow only that.
        allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
        with allow([argparse.Namespace]) if allow else contextlib.nullcontext():
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"cannot read LaBraM checkpoint {path} as a weights-only torch file ({err}). rtbold does "
            f"not unpickle arbitrary objects; re-save the state dict alone with torch.save or as "
            f".safetensors.") from err
    if isinstance(ckpt, dict):
        for key in ("model", "module"):
            if isinstance(ckpt.get(key), dict):
                return ckpt[key]
        return ckpt
    raise ValueError(f"LaBraM checkpoint {path} holds a {type(ckpt).__name__}, not a state dict")


def _encoder_of(model: nn.Module) -> tuple[LaBraMEncoder, str]:
    if isinstance(model, LaBraMEncoder):
        return model, ""
    enc = getattr(model, "labram", None)
    if isinstance(enc, LaBraMEncoder):
        return enc, "labram."
    raise TypeError(f"{type(model).__name__} has no LaBraM encoder to load weights into")


def load_labram_weights(model: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Load LaBraM-base pretrained weights into ``model``'s LaBraM encoder, in place.

    Parameters
    ----------
    model : nn.Module
        A NeuroBOLT/UnEBOLT model (its ``labram`` encoder is loaded) or a ``LaBraMEncoder``.
    path : path-like
        ``labram-base.pth`` (official layout, ``student.*`` keys) or a ``.safetensors`` copy.

    Returns
    -------
    missing : list of str
        Model parameters not in the checkpoint (model naming, e.g. ``labram.fc_norm.weight``,
        ``head.weight``, ``mss_module...``); they keep their initial values.
    unexpected : list of str
        Checkpoint encoder keys (prefix stripped) the model has no place for, e.g. ``mask_token``,
        ``norm.weight``, ``lm_head.weight``, or blocks beyond the model's depth.

    Raises
    ------
    ValueError
        If the file is unreadable, has no ``student.*`` keys, or a tensor's shape differs from the
        model's (e.g. the ``tiny`` size, whose width is not LaBraM-base's).
    """
    enc, prefix = _encoder_of(model)
    raw = read_labram_checkpoint(path)
    student = {k[len(_PREFIX):]: v for k, v in raw.items() if k.startswith(_PREFIX)}
    if not student:
        raise ValueError(f"{path} has no '{_PREFIX}*' keys: not a LaBraM pre-training checkpoint "
                         f"(found e.g. {list(raw)[:5]})")
    logger.debug("ignoring %d keys outside '%s' in %s", len(raw) - len(student), _PREFIX, path)
    own = enc.state_dict()
    load, unexpected, bad_shape = {}, [], []
    for key, value in student.items():
        if "relative_position_index" in key:
            continue
        if key not in own:
            unexpected.append(key)
        elif own[key].shape != value.shape:
            bad_shape.append(f"{key}: file {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            load[key] = value
    if bad_shape:
        raise ValueError(f"LaBraM weights in {path} do not fit this model ({len(bad_shape)} shape "
                         f"mismatches, e.g. {bad_shape[:3]}); use size 'base' or 'small'")
    enc.load_state_dict(load, strict=False)
    missing = [prefix + k for k in own if k not in load]
    if prefix:
        missing += [k for k in model.state_dict() if not k.startswith(prefix)]
    logger.info("loaded %d LaBraM tensors from %s; %d model tensors not in the file: %s; "
                "%d file tensors unused: %s", len(load), path, len(missing), _summarise(missing),
                len(unexpected), _summarise(unexpected))
    return missing, unexpected


def _summarise(keys: list[str], n: int = 8) -> str:
    roots = sorted({".".join(k.split(".")[:2]) if k.startswith("labram.") else k.split(".")[0]
                    for k in keys})
    return ", ".join(roots[:n]) + (" ..." if len(roots) > n else "")
