"""Model outputs for dataset items and the per-scan validation metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import DataSplit, per_scan, scan_id, targets_of


def predict_items(model, scans: list, items: Sequence[tuple[int, int]], *, device,
                  batch_size: int = 64, bf16: bool = False, session=None) -> np.ndarray:
    """Model outputs (N, P) for dataset items, in the order given.

    A model with session normalisation (:func:`rtbold.models.session_features`) gets each
    window's causal session statistics, from ``session`` (a
    :class:`~rtbold.training.ridge.SessionTable` covering the items) or computed here from every
    valid window of the items' scans with the model's prior.
    """
    import torch
    from torch.utils.data import DataLoader

    from rtbold.models import session_features

    from ..datasets import WindowDataset
    from .ridge import SessionWindowDataset, session_table

    feats = session_features(model)
    if feats is not None:
        table = session if session is not None else session_table(scans, items, feats)
        ds = SessionWindowDataset(scans, list(items), table)
    else:
        ds = WindowDataset(scans, list(items))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    outs = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in loader:
            x, kwargs = model_inputs(batch, device)
            with autocast(device, bf16):
                y = model(x, **kwargs)
            outs.append(y.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0), np.float32)


def model_inputs(batch, device) -> tuple:
    """``(x, forward kwargs)`` of a loader batch: ``(x, y)`` or ``(x, mean, scale, y)`` (windows
    with session statistics)."""
    x = batch[0].to(device, non_blocking=True)
    if len(batch) == 4:
        return x, {"feature_stats": (batch[1].to(device), batch[2].to(device))}
    return x, {}


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), checked at run time:
    elsewhere bf16 autocast is emulated and slower than float32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch without oneDNN
        return False


def bf16_available(device) -> bool:
    """bfloat16 autocast is worth using on ``device``: CUDA, or a CPU with native bf16."""
    kind = getattr(device, "type", str(device))
    return kind == "cuda" or (kind == "cpu" and cpu_supports_bf16())


def autocast(device, bf16: bool):
    """bfloat16 autocast on ``device`` (CUDA or CPU) when asked, else a no-op context."""
    import contextlib

    import torch

    kind = getattr(device, "type", str(device))
    if bf16 and kind in ("cuda", "cpu"):
        return torch.autocast(kind, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def validate(model, split: DataSplit, part: str, *, device, batch_size: int, bf16: bool,
             networks: Sequence[str] | None = None, session=None) -> tuple[dict, list]:
    """Per-scan metrics on one part; returns (summary dict, list of ScanMetrics)."""
    from ..metrics import aggregate, scan_metrics

    items = split.items[part]
    pred = predict_items(model, split.scans, items, device=device, batch_size=batch_size,
                         bf16=bf16, session=session)
    true = targets_of(split.scans, items)
    scans = [scan_metrics(p, t, name=scan_id(split.scans[s]), networks=networks)
             for s, (p, t) in sorted(per_scan(items, pred, true).items()) if len(p) >= 3]
    agg = aggregate(scans) if scans else {}
    summary = {"mse": float(np.mean((pred - true) ** 2))}
    for key in VALIDATION_METRICS:
        summary[key] = (agg.get(key) or {}).get("mean")
    summary["n_windows"] = len(items)
    return summary, scans


#: Mean metrics of every validation summary (training log, selection, bundle metadata).
VALIDATION_METRICS = ("tcorr", "pixcorr", "res_tcorr", "res_pixcorr", "global_share")
