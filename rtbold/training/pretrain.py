"""Pre-training of UnEBOLT's band-power branch on cached features (``train.bandpower_pretrain_epochs``).

The branch's MLP needs many more passes over the data than the encoders get in a CPU budget
(on the benchmark it keeps improving up to ~8 epochs at lr 1e-3), but its input, the log band power
of every window, is computed once for the ridge fit anyway. So before the end-to-end epochs the
branch alone is trained on those cached features: MSE loss, chunks of consecutive windows as in
the main loop, the ridge-initialised linear readout at ``ridge_readout_lr_scale``. Each epoch is
validated on the validation scans (the branch alone) and the best state by ``train.select_on``,
the ridge start included, is kept. The rest of the model is untouched, so the end-to-end epochs start from
the ridge plus the trained MLP.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from .ridge import SessionTable, raw_scan_features
from .sampling import ChunkBatchSampler, runs_by_scan
from .schedule import lr_schedule

logger = logging.getLogger(__name__)


class _CachedFeatures:
    """Raw log band power and session statistics of dataset items, by (scan, volume)."""

    def __init__(self, scans: list, items: Sequence[tuple[int, int]], table: SessionTable | None):
        if table is None:  # no session normalisation: raw features only
            raw = raw_scan_features(scans, sorted({s for s, _ in items}))
            prior = next(iter(raw.values()))[1][0]
            table = SessionTable(raw, np.zeros_like(prior), np.ones_like(prior), 1.0)
            self.session = False
        else:
            self.session = True
        self.table = table

    def batch(self, items: Sequence[tuple[int, int]], device):
        """``(raw, stats)`` tensors of ``items``; stats None without session normalisation."""
        import torch

        r = self.table.rows(items)
        raw = torch.from_numpy(self.table.raw[r]).to(device)
        if not self.session:
            return raw, None
        return raw, (torch.from_numpy(self.table.mean[r]).to(device),
                     torch.from_numpy(self.table.scale[r]).to(device))


def pretrain_bandpower(branch, split, table: SessionTable | None, *, epochs: int, lr: float,
                       linear_lr_scale: float, weight_decay: float, batch_size: int,
                       select_on: str, seed: int, device, progress: bool = False) -> list[dict]:
    """Train ``branch`` (a :class:`~rtbold.models.bandpower.BandPowerBranch`) alone on cached
    features of ``split``'s training windows; keep its best validated state.

    Parameters
    ----------
    branch : BandPowerBranch
        With its features' standardisation (and ridge readout) already set.
    split : DataSplit
    table : SessionTable | None
        Session statistics of every training and validation window (session-normalised models),
        or None (raw features are computed here).
    epochs : int
    lr : float
        Peak learning rate (cosine schedule to ``lr / 100``, no warm-up: the branch starts from a
        fitted ridge).
    linear_lr_scale : float
        lr scale of the linear readout (0 keeps the ridge).
    weight_decay : float
        AdamW weight decay of the MLP weights (none on the linear readout, biases and norms).
    batch_size : int
        Consecutive windows of one scan per batch.
    select_on : str
        Criterion of :func:`rtbold.metrics.selection_score` on the validation scans.
    seed : int
    device : torch.device
    progress : bool

    Returns
    -------
    list of dict
        One record per epoch (0 = the start), with the validation metrics and ``best``.
    """
    import torch

    from ..metrics import evaluate_predictions, selection_score
    from .data import per_scan, targets_of
    from .loop import progress_bar

    train_items, val_items = list(split.items["train"]), list(split.items["val"])
    cache = _CachedFeatures(split.scans, train_items + val_items, table)
    branch.to(device)
    y_train = torch.from_numpy(targets_of(split.scans, train_items)).to(device)
    y_val = targets_of(split.scans, val_items)

    def validate() -> dict:
        branch.eval()
        preds = []
        with torch.no_grad():
            for i in range(0, len(val_items), 1024):
                raw, stats = cache.batch(val_items[i:i + 1024], device)
                preds.append(branch.head(branch.features.standardise(raw, stats)).cpu().numpy())
        groups = per_scan(val_items, np.concatenate(preds), y_val)
        _, agg = evaluate_predictions([p for p, _ in groups.values()],
                                      [t for _, t in groups.values()],
                                      [str(s) for s in groups])
        val = {k: agg[k]["mean"] for k in ("tcorr", "res_tcorr", "pixcorr", "mse")}
        val["score"] = selection_score(val, select_on)
        return val

    linear = list(branch.linear.parameters())
    others = [p for n, p in branch.named_parameters()
              if not n.startswith(("linear.", "features."))]
    decay = [p for p in others if p.ndim >= 2]
    no_decay = [p for p in others if p.ndim < 2]
    opt = torch.optim.AdamW([
        {"params": linear, "lr_scale": linear_lr_scale, "weight_decay": 0.0},
        {"params": decay, "lr_scale": 1.0, "weight_decay": weight_decay},
        {"params": no_decay, "lr_scale": 1.0, "weight_decay": 0.0}], lr=lr)
    sampler = ChunkBatchSampler(runs_by_scan(train_items), batch_size, shuffle=True, jitter=True,
                                seed=seed)
    total = epochs * len(sampler)
    best_state = {k: v.detach().clone() for k, v in branch.state_dict().items()}
    val = validate()
    history = [{"epoch": 0, "val": val, "best": True}]
    best_score = val["score"] if math.isfinite(val["score"]) else -math.inf
    logger.info("band-power pre-training, start (ridge): val Tcorr %.4f res. Tcorr %.4f "
                "Pixcorr %.4f", val["tcorr"], val["res_tcorr"], val["pixcorr"])
    it = 0
    for epoch in progress_bar(range(epochs), progress, "band-power pre-training"):
        sampler.set_epoch(epoch)
        branch.train()
        losses = []
        for chunk in sampler:
            for g in opt.param_groups:
                g["lr"] = lr_schedule(it, total, 0, lr, lr / 100) * g["lr_scale"]
            items = [train_items[i] for i in chunk]
            raw, stats = cache.batch(items, device)
            pred = branch.head(branch.features.standardise(raw, stats))
            loss = torch.nn.functional.mse_loss(pred, y_train[chunk])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            it += 1
        val = validate()
        improved = val["score"] > best_score
        if improved:
            best_score = val["score"]
            best_state = {k: v.detach().clone() for k, v in branch.state_dict().items()}
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val": val,
                        "best": improved})
        logger.info("band-power pre-training, epoch %d: loss %.4f  val Tcorr %.4f  res. Tcorr "
                    "%.4f  Pixcorr %.4f%s", epoch + 1, np.mean(losses), val["tcorr"],
                    val["res_tcorr"], val["pixcorr"], "  (best)" if improved else "")
    branch.load_state_dict(best_state)
    return history
