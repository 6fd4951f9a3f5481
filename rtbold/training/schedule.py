"""Optimisation recipe (MODEL.md section 5, NeuroBOLT code defaults, also used for UnEBOLT): AdamW
with layer-wise lr decay parameter groups, a per-iteration linear warm-up then cosine schedule."""

from __future__ import annotations


def lr_schedule(iteration: int, total: int, warmup: int, peak: float, min_lr: float) -> float:
    """MODEL.md 5: linear warm-up from 0 over ``warmup`` iterations (a linspace ending at the peak),
    then cosine from ``peak`` to ``min_lr`` (delegates to :func:`rtbold.models.optim.lr_at`)."""
    from rtbold.models.optim import lr_at

    total = max(total, 1)
    return lr_at(min(iteration, total), base_lr=peak, min_lr=min_lr,
                 warmup_steps=min(warmup, total), total_steps=total)


def param_groups(model, weight_decay: float, layer_decay: float) -> list[dict]:
    """Layer-wise lr decay groups (MODEL.md 5) from :func:`rtbold.models.optim.param_groups`."""
    from rtbold.models.optim import param_groups as _groups

    groups = _groups(model, weight_decay=weight_decay, layer_decay=layer_decay)
    for g in groups:  # names are for logging only; keep the optimizer state plain
        g.pop("param_names", None)
    return groups
