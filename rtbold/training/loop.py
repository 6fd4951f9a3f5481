"""The training loop: ``train(cfg)`` runs one training (or fine-tuning) job.

The recipe is MODEL.md section 5 (NeuroBOLT code defaults, also used for UnEBOLT): AdamW with
layer-wise lr decay parameter groups, a per-iteration linear warm-up then cosine schedule, 20 epochs
(:mod:`rtbold.training.schedule`). Batches come from :class:`~rtbold.training.sampling.ChunkBatchSampler`.
After every epoch the model is validated, the best epoch is selected (``train.select_on``, see
:mod:`rtbold.training.config`) and the checkpoint is written (:mod:`rtbold.training.checkpoint`); the
best model ends as ``OUT/bundle.safetensors`` with the metadata of
:func:`rtbold.training.metadata.build_metadata`.

The steps: :func:`_setup` (device, model, data, optimizer, loader), :func:`_train_epoch`,
:func:`_select` (validation and model selection), :func:`_end_epoch` (log and checkpoint) and
:func:`_finish` (DDP digest check, test metrics, bundle).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import (BUNDLE_NAME, CHECKPOINT_DIR, append_log, load_best, load_checkpoint,
                         prepare_run_folder, save_checkpoint)
from .config import TrainConfig, resolve_loss, validate_config
from .data import DataSplit, default_channels, load_scans, make_split, networks_for, \
    resolve_roi_names
from .distributed import Dist, init_distributed, weights_digest
from .metadata import build_metadata, json_default, meta_dict
from .predict import autocast, validate
from .sampling import ChunkBatchSampler, runs_by_scan
from .schedule import lr_schedule, param_groups

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    bundle: Path | None
    best_epoch: int
    best: dict
    history: list[dict]
    model: Any = None
    digest: str = ""


@dataclass
class _Run:
    """Everything :func:`_setup` prepares for the epochs."""

    cfg: TrainConfig
    dist: Dist
    device: Any
    bf16: bool
    out: Path
    ckpt: Path
    model: Any
    net: Any  # the model, or its DistributedDataParallel wrapper
    optimizer: Any
    sampler: ChunkBatchSampler
    loader: Any
    loss_fn: Any
    total: int
    warmup: int
    split: DataSplit
    ch_names: list[str]
    roi_names: list[str]
    networks: list[str]
    tr: float
    meta_init: dict


def _set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _build_model(cfg: TrainConfig, ch_names: Sequence[str], roi_names: Sequence[str]):
    from rtbold.models import create_model

    return create_model(cfg.model.name, size=cfg.model.size, n_rois=len(roi_names),
                        ch_names=list(ch_names), **cfg.model.overrides)


def _loss_fn(cfg: TrainConfig):
    import torch

    if resolve_loss(cfg) == "unebolt":
        from rtbold.models import unebolt_loss

        a, b = cfg.train.alpha, cfg.train.beta
        return lambda pred, y: unebolt_loss(pred, y, alpha=a, beta=b)
    return lambda pred, y: torch.mean((pred - y) ** 2)


def _select_device(pref: str):
    try:
        from rtbold.models import select_device
    except ImportError:  # pragma: no cover - models package always provides it
        import torch

        return torch.device("cuda" if pref != "cpu" and torch.cuda.is_available() else "cpu")
    return select_device(pref)


def train(cfg: TrainConfig, *, resume: bool = False, init_bundle: str | Path | None = None
          ) -> TrainResult:
    """Run one training (or fine-tuning) job described by ``cfg``.

    Parameters
    ----------
    cfg : TrainConfig
    resume : bool
        Continue from ``cfg.output.dir / "checkpoint"`` (its epoch count and optimizer state).
    init_bundle : path | None
        Start from this bundle's weights (fine-tuning); channels and regions come from the bundle.

    Returns
    -------
    TrainResult
    """
    import torch

    run = _setup(cfg, init_bundle)
    dist = run.dist
    start_epoch, iteration = 0, 0
    best = {"epoch": -1, "score": -math.inf}
    history: list[dict] = []
    if resume:
        state = load_checkpoint(run.ckpt, run.model, run.optimizer, run.device)
        start_epoch, iteration = state["epoch"] + 1, state["iteration"]
        best = state["best"]
        history = state["history"]
        logger.info("Resuming %s at epoch %d", run.out, start_epoch)
    elif dist.main and (run.ckpt / "state.json").exists():
        logger.warning("%s already holds a checkpoint; it will be overwritten (use --resume to "
                       "continue it).", run.ckpt)
    if dist.main:
        prepare_run_folder(run.out, run.ckpt, cfg, resume=resume)

    show = cfg.train.progress and dist.main
    for epoch in range(start_epoch, cfg.train.epochs):
        run.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        bar = _progress(run.loader, show, f"epoch {epoch + 1}/{cfg.train.epochs}")
        losses, iteration = _train_epoch(run, epoch, iteration, bar, show, history)
        val, improved, best = _select(run, epoch, best)
        record = {"epoch": epoch + 1, "iteration": iteration,
                  "train_loss": float(np.mean(losses)) if losses else None,
                  "lr": lr_schedule(max(iteration - 1, 0), run.total, run.warmup, cfg.train.lr,
                                    cfg.train.min_lr),
                  "val": val, "best": improved, "seconds": round(time.perf_counter() - t0, 2)}
        history.append(record)
        if show:
            bar.close()
        if dist.main:
            _end_epoch(run, epoch, iteration, record, best, history, improved)
        if dist.enabled:
            torch.distributed.barrier()

    bundle_path, digest = _finish(run, best, history)
    return TrainResult(bundle=bundle_path, best_epoch=best["epoch"] + 1, best=best,
                       history=history, model=run.model, digest=digest)


def _setup(cfg: TrainConfig, init_bundle: str | Path | None) -> _Run:
    """Device, seed, model (new or from a bundle), data split, optimizer, DDP wrapper, loader."""
    import torch

    validate_config(cfg)
    dist = init_distributed(cfg.train.device)
    device = _select_device(cfg.train.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if cfg.train.bf16 and device.type != "cuda":
        logger.warning("train.bf16 ignored: autocast to bfloat16 is used on CUDA only (device %s).",
                       device)
    bf16 = cfg.train.bf16 and device.type == "cuda"
    _set_seed(cfg.train.seed + dist.rank)
    out = Path(cfg.output.dir)

    model, ch_names, roi_names, meta_init = _initial_model(cfg, init_bundle)

    scans = load_scans(cfg.data, ch_names, roi_names, cfg.train.max_windows_per_scan)
    split = make_split(scans, cfg.train.protocol, split_seed=cfg.train.split_seed,
                       ratios=cfg.train.split_ratios, gap_s=cfg.train.gap_s)
    tr = float(np.median([s.tr for s in scans]))
    networks = networks_for(roi_names, cfg.data.n_regions)

    model.to(device)
    groups = param_groups(model, cfg.train.weight_decay, cfg.train.layer_decay)
    for g in groups:
        g.setdefault("lr_scale", 1.0)
    optimizer = torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.999), eps=1e-8)
    net = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.type == "cuda" else None)

    from torch.utils.data import DataLoader

    from ..datasets import WindowDataset

    train_items = split.items["train"]
    train_ds = WindowDataset(split.scans, train_items)
    sampler = ChunkBatchSampler(runs_by_scan(train_items), cfg.train.batch_size, shuffle=True,
                                jitter=cfg.train.chunk_jitter, seed=cfg.train.seed,
                                rank=dist.rank, world_size=dist.world_size)
    iters_per_epoch = len(sampler)
    if iters_per_epoch == 0:
        raise ValueError(f"No training batch: every scan has fewer than train.batch_size = "
                         f"{cfg.train.batch_size} consecutive training windows"
                         f"{' per rank' if dist.enabled else ''}. Lower the batch size or add data.")
    loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=cfg.train.num_workers,
                        pin_memory=device.type == "cuda")
    return _Run(cfg=cfg, dist=dist, device=device, bf16=bf16, out=out, ckpt=out / CHECKPOINT_DIR,
                model=model, net=net, optimizer=optimizer, sampler=sampler, loader=loader,
                loss_fn=_loss_fn(cfg), total=cfg.train.epochs * iters_per_epoch,
                warmup=int(round(cfg.train.warmup_epochs * iters_per_epoch)), split=split,
                ch_names=ch_names, roi_names=roi_names, networks=networks, tr=tr,
                meta_init=meta_init)


def _initial_model(cfg: TrainConfig, init_bundle: str | Path | None):
    """``(model, ch_names, roi_names, bundle metadata)``: a new model (optionally with LaBraM
    weights), or the bundle's model for fine-tuning (``cfg`` takes the bundle's model, regions and
    EEG high-pass)."""
    if init_bundle is None:
        ch_names = list(cfg.data.channels) if cfg.data.channels else default_channels()
        roi_names = resolve_roi_names(cfg.data)
        model = _build_model(cfg, ch_names, roi_names)
        if cfg.train.labram_weights is not None:
            from rtbold.models import load_labram_weights

            missing, unexpected = load_labram_weights(model, cfg.train.labram_weights)
            logger.info("LaBraM weights from %s: %d missing, %d unexpected keys",
                        cfg.train.labram_weights, len(missing), len(unexpected))
        return model, ch_names, roi_names, {}

    from rtbold.models import load_bundle

    model, bmeta = load_bundle(init_bundle, device="cpu")
    meta_init = meta_dict(bmeta)
    ch_names = list(meta_init.get("ch_names") or meta_init.get("channels"))
    roi_names = list(meta_init.get("roi_names"))
    cfg.model.name = meta_init.get("model_name", cfg.model.name)
    cfg.model.size = meta_init.get("model_size", cfg.model.size)
    if len(roi_names) in (64, 128, 256):
        cfg.data.n_regions = len(roi_names)
    # the EEG must be filtered as it was for the bundle (the live path applies the same)
    hp = meta_init.get("eeg_highpass_hz")
    if cfg.data.highpass is None and hp is not None:
        cfg.data.highpass = hp
    elif cfg.data.highpass != hp:
        logger.warning("data.highpass = %s differs from the bundle's EEG high-pass (%s); the "
                       "fine-tuned bundle records %s.", cfg.data.highpass, hp,
                       cfg.data.highpass)
    logger.info("Fine-tuning from %s (%d channels, %d regions)", init_bundle, len(ch_names),
                len(roi_names))
    return model, ch_names, roi_names, meta_init


def _train_epoch(run: _Run, epoch: int, iteration: int, bar, show: bool,
                 history: list[dict]) -> tuple[list[float], int]:
    """One pass over the training chunks (``bar`` wraps the loader, its sampler already set to
    ``epoch``); returns the batch losses and the new iteration count."""
    import torch

    cfg = run.cfg
    run.net.train()
    losses: list[float] = []
    for x, y in bar:
        lr = lr_schedule(iteration, run.total, run.warmup, cfg.train.lr, cfg.train.min_lr)
        for g in run.optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"]
        x = x.to(run.device, non_blocking=True)
        y = y.to(run.device, non_blocking=True)
        with autocast(run.device, run.bf16):
            pred = run.net(x)
        loss = run.loss_fn(pred.float(), y)
        if not torch.isfinite(loss):
            raise RuntimeError(f"Training loss became {loss.item()} at epoch {epoch + 1}, "
                               f"iteration {iteration}; lower train.lr or check the data.")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.train.grad_clip)
        run.optimizer.step()
        iteration += 1
        losses.append(loss.item())
        if show:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{lr:.2e}",
                            val_r=_fmt(history[-1]["val"]["tcorr"]) if history else "-")
    return losses, iteration


def _select(run: _Run, epoch: int, best: dict) -> tuple[dict, bool, dict]:
    """Validate and apply the selection rule; returns ``(val, improved, best)``."""
    cfg = run.cfg
    val, _ = validate(run.model, run.split, "val", device=run.device,
                      batch_size=cfg.train.eval_batch_size, bf16=run.bf16, networks=run.networks)
    score = (val["tcorr"] if val["tcorr"] is not None else -math.inf) \
        if cfg.train.select_on == "tcorr" else -val["mse"]
    improved = best["epoch"] < 0 or score > best["score"]  # the first epoch always counts
    if improved:
        best = {"epoch": epoch, "score": score, "val": val}
    return val, improved, best


def _end_epoch(run: _Run, epoch: int, iteration: int, record: dict, best: dict,
               history: list[dict], improved: bool) -> None:
    """Rank 0: log the epoch and write the checkpoint."""
    val = record["val"]
    logger.info("epoch %d: loss %.4f  val mse %.4f  val Tcorr %s%s", epoch + 1,
                record["train_loss"] or float("nan"), val["mse"], _fmt(val["tcorr"]),
                "  (best)" if improved else "")
    append_log(run.out, record)
    save_checkpoint(run.ckpt, run.model, run.optimizer, epoch=epoch, iteration=iteration,
                    best=best, history=history, improved=improved)


def _finish(run: _Run, best: dict, history: list[dict]) -> tuple[Path | None, str]:
    """Check DDP ranks agree, then (rank 0) reload the best weights, score the test part and write
    the bundle and ``summary.json``. Returns ``(bundle path or None, weights digest)``."""
    import torch

    cfg, dist = run.cfg, run.dist
    model = run.model
    digest = weights_digest(model)
    ddp_info = None
    if dist.enabled:
        digests: list = [None] * dist.world_size
        torch.distributed.all_gather_object(digests, digest)
        ddp_info = {"world_size": dist.world_size, "weight_digests": digests}
        if len(set(digests)) != 1:
            raise RuntimeError(f"DDP ranks ended with different weights: {digests}")

    bundle_path = None
    if dist.main:
        load_best(run.ckpt, model, run.device)
        test = None
        test_scans: list = []
        if run.split.items["test"]:
            test, test_scans = validate(model, run.split, "test", device=run.device,
                                        batch_size=cfg.train.eval_batch_size, bf16=run.bf16,
                                        networks=run.networks)
        metadata = build_metadata(cfg, run.split, ch_names=run.ch_names, roi_names=run.roi_names,
                                  tr=run.tr, best=best, test=test, test_scans=test_scans,
                                  history=history, init_meta=run.meta_init, ddp=ddp_info)
        from rtbold.models import save_bundle

        bundle_path = run.out / BUNDLE_NAME
        save_bundle(bundle_path, model.cpu(), metadata,
                    storage_dtype=None if cfg.output.bundle_dtype == "float32"
                    else cfg.output.bundle_dtype)
        (run.out / "summary.json").write_text(json.dumps(
            {"bundle": str(bundle_path), "best_epoch": best["epoch"] + 1, "best": best,
             "test": test, "ddp": ddp_info, "digest": digest}, indent=1, default=json_default))
        logger.info("Best epoch %d; bundle written to %s", best["epoch"] + 1, bundle_path)
    if dist.enabled:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return bundle_path, digest


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _progress(it, show: bool, desc: str):
    if not show:
        return _Quiet(it)
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False, dynamic_ncols=True)


class _Quiet:
    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return iter(self.it)

    def set_postfix(self, **_):
        pass

    def close(self):
        pass

