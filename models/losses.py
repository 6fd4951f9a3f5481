"""Training losses (MODEL.md sections 4.1 and 4.3).

``unebolt_loss`` combines the MSE with a temporal term (1 - Pearson r of each region over the batch,
which must hold consecutive TRs of one scan) and a spatial term (1 - Pearson r of each sample over
the regions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["EPS", "pearson", "unebolt_loss", "mse_loss", "get_loss", "LOSSES"]

#: Added to every correlation denominator.
EPS = 1e-8


def pearson(a: torch.Tensor, b: torch.Tensor, dim: int, eps: float = EPS) -> torch.Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``dim``: ``cov / (|a_c| |b_c| + eps)``."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    num = (a * b).sum(dim=dim)
    den = a.norm(dim=dim) * b.norm(dim=dim) + eps
    return num / den


def unebolt_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.8,
                 beta: float = 0.1) -> torch.Tensor:
    """UnEBOLT multi-objective loss.

    ``alpha * MSE + beta * mean_p(1 - r_time[p]) + (1 - alpha - beta) * mean_b(1 - r_space[b])``.

    Parameters
    ----------
    pred, target : Tensor, shape (B, P)
        Rows are consecutive TRs of one scan (the temporal term correlates over rows).
    alpha, beta : float
        Weights of the MSE and temporal terms; the spatial term gets ``1 - alpha - beta``.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"pred and target must both be (batch, regions); got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    if not (0.0 <= alpha and 0.0 <= beta and alpha + beta <= 1.0):
        raise ValueError(f"need alpha, beta >= 0 and alpha + beta <= 1; got {alpha}, {beta}")
    mse = F.mse_loss(pred, target)
    temporal = (1.0 - pearson(pred, target, dim=0)).mean()
    spatial = (1.0 - pearson(pred, target, dim=1)).mean()
    return alpha * mse + beta * temporal + (1.0 - alpha - beta) * spatial


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Plain MSE over all elements (NeuroBOLT's loss)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return F.mse_loss(pred, target)


LOSSES = {"unebolt": unebolt_loss, "mse": mse_loss}


def get_loss(name: str):
    """Loss function by name: ``"unebolt"`` or ``"mse"``."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {sorted(LOSSES)}") from None
