"""Model outputs for dataset items and the per-scan validation metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import DataSplit, per_scan, scan_id, targets_of


def predict_items(model, scans: list, items: Sequence[tuple[int, int]], *, device,
                  batch_size: int = 64, bf16: bool = False) -> np.ndarray:
    """Model outputs (N, P) for dataset items, in the order given."""
    import torch
    from torch.utils.data import DataLoader

    from ..datasets import WindowDataset

    ds = WindowDataset(scans, list(items))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    outs = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            with autocast(device, bf16):
                y = model(x)
            outs.append(y.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0), np.float32)


def autocast(device, bf16: bool):
    """bfloat16 autocast on CUDA when asked, else a no-op context."""
    import contextlib

    import torch

    if bf16 and getattr(device, "type", str(device)) == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def validate(model, split: DataSplit, part: str, *, device, batch_size: int, bf16: bool,
             networks: Sequence[str] | None = None) -> tuple[dict, list]:
    """Per-scan metrics on one part; returns (summary dict, list of ScanMetrics)."""
    from ..metrics import aggregate, scan_metrics

    items = split.items[part]
    pred = predict_items(model, split.scans, items, device=device, batch_size=batch_size,
                         bf16=bf16)
    true = targets_of(split.scans, items)
    scans = [scan_metrics(p, t, name=scan_id(split.scans[s]), networks=networks)
             for s, (p, t) in sorted(per_scan(items, pred, true).items()) if len(p) >= 3]
    agg = aggregate(scans) if scans else {}
    return {
        "mse": float(np.mean((pred - true) ** 2)),
        "tcorr": (agg.get("tcorr") or {}).get("mean"),
        "pixcorr": (agg.get("pixcorr") or {}).get("mean"),
        "n_windows": len(items),
    }, scans
