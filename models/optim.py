"""Optimiser parameter groups and learning-rate schedule of NeuroBOLT (MODEL.md section 5).

Layer-wise lr decay: the LaBraM encoder's embeddings and patch encoder get layer id 0, its block k
gets id k + 1, everything else (``time_embed``, ``fc_norm``, the spectral branch, heads, the UnEBOLT
modules) gets id ``depth + 1``; a group's lr is the scheduled lr times ``layer_decay ** (depth + 1 - id)``.
No weight decay for 1-D tensors, scalars, biases, ``cls_token``, ``pos_embed`` and ``time_embed``.
"""

from __future__ import annotations

import math

from torch import nn

__all__ = ["NO_DECAY_NAMES", "layer_id", "param_groups", "lr_at", "set_lr"]

#: Parameter names (last component) that are never weight-decayed.
NO_DECAY_NAMES = ("cls_token", "pos_embed", "time_embed")

_LAYER0 = ("cls_token", "mask_token", "pos_embed")


def _encoder_depth(model: nn.Module) -> int:
    enc = getattr(model, "labram", None)
    return len(enc.blocks) if enc is not None else 0


def layer_id(name: str, depth: int) -> int:
    """Layer id of parameter ``name`` (as in ``model.named_parameters()``) for an encoder of ``depth``."""
    if name.startswith("labram."):
        sub = name[len("labram."):]
        if sub in _LAYER0 or sub.startswith("patch_embed."):
            return 0
        if sub.startswith("blocks."):
            return int(sub.split(".")[1]) + 1
    return depth + 1


def param_groups(model: nn.Module, weight_decay: float = 0.05, layer_decay: float = 0.65
                 ) -> list[dict]:
    """Parameter groups for ``torch.optim.AdamW`` with layer-wise lr scales.

    Parameters
    ----------
    model : nn.Module
        A NeuroBOLT or UnEBOLT model (anything with a ``labram`` encoder; other models get one
        group pair with scale 1).
    weight_decay : float
        Decay of the decayed groups.
    layer_decay : float
        Per-layer lr factor; 1.0 disables layer-wise decay.

    Returns
    -------
    list of dict
        Each with ``params``, ``param_names``, ``weight_decay``, ``lr_scale`` and ``layer_id``;
        frozen parameters (``requires_grad=False``) are left out. Use :func:`set_lr` each step.
    """
    depth = _encoder_depth(model)
    top = depth + 1
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lid = layer_id(name, depth)
        leaf = name.rsplit(".", 1)[-1]
        no_decay = param.ndim <= 1 or name.endswith(".bias") or leaf in NO_DECAY_NAMES
        key = (lid, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [], "param_names": [], "layer_id": lid,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": layer_decay ** (top - lid),
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return [groups[k] for k in sorted(groups)]


def lr_at(step: int, *, base_lr: float = 3e-4, min_lr: float = 1e-6, warmup_steps: int,
          total_steps: int) -> float:
    """Learning rate at iteration ``step`` (0-based): linear warm-up from 0, then cosine.

    ``base_lr * step / (W - 1)`` for ``step < W`` (a linspace from 0 to base_lr over W steps),
    then ``min_lr + 0.5 (base_lr - min_lr)(1 + cos(pi (step - W) / (T - W)))``.
    """
    if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps > 0; "
                         f"got {warmup_steps}, {total_steps}")
    if step < warmup_steps:
        return base_lr * step / (warmup_steps - 1) if warmup_steps > 1 else 0.0
    if total_steps == warmup_steps:
        return min_lr
    frac = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * frac))


def set_lr(optimizer, lr: float) -> None:
    """Set every group's lr to ``lr * group['lr_scale']`` (scale 1 if the group has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
