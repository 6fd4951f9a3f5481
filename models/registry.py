"""Named model variants and sizes: ``create_model("unebolt", size="small", n_rois=64, ch_names=...)``.

Sizes:

- ``base``: the paper sizes (LaBraM-base encoder, 12 blocks; spectral transformer, 4 layers).
  Only this size (and ``small``, whose blocks are a prefix of base's) can take LaBraM-base weights.
- ``small``: same widths as base (so LaBraM-base weights load into its first blocks), 4 LaBraM blocks
  and 2 spectral layers; meant for CPU inference, one window in a few tens of ms on 2 threads.
- ``tiny``: width 100, one block per encoder; for tests and smoke runs.

Every size keeps the model's input contract: (B, C, 3200) float32 EEG in µV / 100.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, fields, is_dataclass, replace
from typing import Any

from torch import nn

from .bandpower import BandPowerConfig, RidgeBOLT, RidgeConfig
from .labram import LaBraMConfig
from .neurobolt import NeuroBOLT, NeuroBOLTConfig
from .spectral import SpectralConfig
from .unebolt import UnEBOLT, UnEBOLTConfig

__all__ = ["create_model", "list_models", "list_sizes", "build_config", "config_to_dict", "SIZES"]

_MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "neurobolt": (NeuroBOLT, NeuroBOLTConfig),
    "unebolt": (UnEBOLT, UnEBOLTConfig),
    "ridge": (RidgeBOLT, RidgeConfig),
}

#: Named variants: a registered model with preset options. A variant's bundle stores the base
#: model's name and the full config, so it is rebuilt without the variant table.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # UnEBOLT with the channel-resolved log band-power branch, session-normalised, whose
    # channel-shared MLP also sees the across-channel state (models/bandpower.py)
    "unebolt_bp": ("unebolt", {"bandpower_branch": True, "bandpower": {"session_norm": True},
                               "bandpower_hidden": 32, "bandpower_context": True}),
    # ridge with the same session-normalised features (the fair baseline of unebolt_bp)
    "ridge_sn": ("ridge", {"bandpower": {"session_norm": True}}),
}

#: Size presets: overrides of the config defaults (which are the paper's "base" sizes).
SIZES: dict[str, dict[str, Any]] = {
    "base": {},
    "small": {
        "labram": {"depth": 4},
        "spectral": {"depth": 2},
    },
    "tiny": {
        "labram": {"out_chans": 4, "norm_groups": 2, "depth": 1, "num_heads": 4, "mlp_ratio": 2.0},
        "spectral": {"embed_dim": 100, "depth": 1, "num_heads": 4, "ff_mult": 2},
        "rre_bottleneck": 32,
    },
}

_NESTED = {"labram": LaBraMConfig, "spectral": SpectralConfig, "bandpower": BandPowerConfig}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model` (models and named variants)."""
    return sorted(_MODELS) + sorted(VARIANTS)


def list_sizes() -> list[str]:
    """Size presets accepted by :func:`create_model`."""
    return list(SIZES)


def _apply(cfg: Any, overrides: dict[str, Any], where: str) -> Any:
    """Return a copy of dataclass ``cfg`` with ``overrides`` applied (nested dicts merge)."""
    names = {f.name for f in fields(cfg)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown {where} option(s) {unknown}; valid: {sorted(names)}")
    changes = {}
    for key, value in overrides.items():
        current = getattr(cfg, key)
        if is_dataclass(current):
            if is_dataclass(value):
                value = asdict(value)
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{key} must be a dict of options, got {type(value).__name__}")
            value = _apply(current, value, f"{where}.{key}")
        changes[key] = value
    return replace(cfg, **changes)


def resolve_name(name: str) -> tuple[str, dict[str, Any]]:
    """``(registered model name, variant options)`` for a model or variant name."""
    key = name.lower()
    if key in VARIANTS:
        base, opts = VARIANTS[key]
        return base, copy.deepcopy(opts)
    if key not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    return key, {}


def build_config(name: str, size: str = "base", **overrides: Any) -> Any:
    """The config for model ``name`` at preset ``size`` with ``overrides`` applied.

    Nested options are given as dicts: ``labram={"depth": 6}``, ``spectral={"depth": 2}``.
    Options a model does not have (e.g. UnEBOLT options for NeuroBOLT) raise ``ValueError``.
    """
    key, variant = resolve_name(name)
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; available: {list_sizes()}")
    cfg_cls = _MODELS[key][1]
    cfg = cfg_cls()
    preset = {k: v for k, v in SIZES[size].items()
              if k in {f.name for f in fields(cfg_cls)}}
    cfg = _apply(cfg, copy.deepcopy(preset), key)
    cfg = _apply(cfg, variant, key)
    return _apply(cfg, overrides, key)


def config_to_dict(cfg: NeuroBOLTConfig) -> dict[str, Any]:
    """A JSON-able dict of every option; ``build_config(name, size, **d)`` rebuilds ``cfg``."""
    return asdict(cfg)


def create_model(name: str, *, size: str = "base", n_rois: int, ch_names: Sequence[str],
                 **overrides: Any) -> nn.Module:
    """Build a model by name.

    Parameters
    ----------
    name : str
        ``"unebolt"``, ``"neurobolt"``, ``"ridge"`` or a variant such as ``"unebolt_bp"``
        (see :func:`list_models`).
    size : str
        ``"base"`` (paper sizes), ``"small"`` or ``"tiny"``.
    n_rois : int
        Number of predicted regions.
    ch_names : sequence of str
        EEG channel names (10-20) in the order of the input rows.
    **overrides
        Config options (see :class:`~rtbold.models.unebolt.UnEBOLTConfig`); nested encoder options
        as dicts, e.g. ``labram={"drop_path_rate": 0.0}``.

    Returns
    -------
    torch.nn.Module
        ``forward(x)`` maps (B, C, 3200) float32 (µV / 100) to (B, n_rois). The module has
        attributes ``model_name``, ``size``, ``cfg``, ``n_rois``, ``ch_names``.
    """
    cfg = build_config(name, size, **overrides)
    model_cls = _MODELS[resolve_name(name)[0]][0]
    model = model_cls(cfg, n_rois, ch_names)
    model.size = size
    return model
