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


def param_groups(model, weight_decay: float, layer_decay: float,
                 lr_scales: dict[str, float] | None = None) -> list[dict]:
    """Layer-wise lr decay groups (MODEL.md 5) from :func:`rtbold.models.optim.param_groups`.

    ``lr_scales`` maps a parameter-name prefix (e.g. ``"bandpower.linear."``) to an extra lr
    factor; matching parameters move to groups of their own.
    """
    from rtbold.models.optim import param_groups as _groups

    out = []
    for g in _groups(model, weight_decay=weight_decay, layer_decay=layer_decay):
        names = g.pop("param_names", None) or [""] * len(g["params"])
        rest = dict(g, params=[p for p, n in zip(g["params"], names)
                               if not _prefix(n, lr_scales)])
        for prefix, scale in (lr_scales or {}).items():
            mine = [p for p, n in zip(g["params"], names) if _prefix(n, lr_scales) == prefix]
            if mine:
                out.append(dict(g, params=mine, lr_scale=g.get("lr_scale", 1.0) * scale))
        if rest["params"]:
            out.append(rest)
    return out


def _prefix(name: str, lr_scales: dict[str, float] | None) -> str | None:
    return next((p for p in (lr_scales or {}) if name.startswith(p)), None)
