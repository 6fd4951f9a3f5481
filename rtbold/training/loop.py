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
                         prepare_run_folder, save_best, save_checkpoint)
from .config import TrainConfig, resolve_layer_decay, resolve_loss, validate_config
from .data import DataSplit, default_channels, load_scans, make_split, networks_for, \
    resolve_roi_names
from .distributed import Dist, init_distributed, weights_digest
from .metadata import build_metadata, json_default
from .predict import autocast, bf16_available, model_inputs, validate
from .pretrain import pretrain_bandpower
from .ridge import SessionWindowDataset, fit_ridge, fit_session_ridge, session_table
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
    split: DataSplit
    ch_names: list[str]
    roi_names: list[str]
    networks: list[str]
    tr: float
    meta_init: Any  # BundleMeta of a fine-tuned bundle, else None
    # None for the closed-form ridge model (no epochs)
    optimizer: Any = None
    sampler: ChunkBatchSampler | None = None
    loader: Any = None
    loss_fn: Any = None
    total: int = 0
    warmup: int = 0
    #: the model was initialised from data (ridge): its state competes in model selection
    init_candidate: bool = False
    ridge_alpha: float | None = None
    #: session statistics of every scan (models with session-normalised band power)
    session: Any = None
    #: validation records of the band-power pre-training (``train.bandpower_pretrain_epochs``)
    pretrain_history: list | None = None


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

    if cfg.model.name in ("ridge", "ridge_sn"):
        return _train_ridge(cfg, init_bundle)
    run = _setup(cfg, init_bundle, resume=resume)
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
    if run.init_candidate and not resume:
        best, history = _score_initial(run, best)

    show = cfg.train.progress and dist.main
    for epoch in range(start_epoch, cfg.train.epochs):
        run.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        bar = progress_bar(run.loader, show, f"epoch {epoch + 1}/{cfg.train.epochs}")
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


def _setup_data(cfg: TrainConfig, init_bundle: str | Path | None):
    """Seed, device, model (new or from a bundle) and the data split; shared by every model."""
    import torch

    validate_config(cfg)
    dist = init_distributed(cfg.train.device)
    device = _select_device(cfg.train.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    bf16 = cfg.train.bf16 and bf16_available(device)
    if cfg.train.bf16 and not bf16:
        logger.warning("train.bf16 ignored: %s has no native bfloat16 (CUDA, or a CPU with "
                       "AVX-512 BF16 / AMX); training in float32.", device)
    _set_seed(cfg.train.seed + dist.rank)
    model, ch_names, roi_names, meta_init = _initial_model(cfg, init_bundle)
    scans = load_scans(cfg.data, ch_names, roi_names, cfg.train.max_windows_per_scan)
    split = make_split(scans, cfg.train.protocol, split_seed=cfg.train.split_seed,
                       ratios=cfg.train.split_ratios, gap_s=cfg.train.gap_s)
    tr = float(np.median([s.tr for s in scans]))
    out = Path(cfg.output.dir)
    return _Run(cfg=cfg, dist=dist, device=device, bf16=bf16, out=out, ckpt=out / CHECKPOINT_DIR,
                model=model, net=model, split=split, ch_names=ch_names, roi_names=roi_names,
                networks=networks_for(roi_names, cfg.data.n_regions), tr=tr, meta_init=meta_init)


def _setup(cfg: TrainConfig, init_bundle: str | Path | None, *, resume: bool = False) -> _Run:
    """:func:`_setup_data`, then the ridge initialisation, optimizer, DDP wrapper and loader."""
    import torch

    from rtbold.models import session_features

    run = _setup_data(cfg, init_bundle)
    model, dist, device, split = run.model, run.dist, run.device, run.split
    lr_scales = {}
    branch = getattr(model, "bandpower", None)
    data_init = branch is not None and init_bundle is None and not resume
    if cfg.train.epochs == 0 and not (data_init and cfg.train.ridge_init):
        raise ValueError(f"train.epochs = 0 keeps the data-initialised model, but {cfg.model.name!r} "
                         "has none here (it needs the band-power branch, e.g. unebolt_bp, with "
                         "train.ridge_init = true, and neither an init bundle nor --resume): set "
                         "train.epochs >= 1.")
    if data_init:
        _init_bandpower(run, branch.features, branch.linear)
        if cfg.train.bandpower_pretrain_epochs:
            # every rank runs the same seeded pre-training, so DDP starts from equal weights
            run.pretrain_history = pretrain_bandpower(
                branch, run.split, run.session, epochs=cfg.train.bandpower_pretrain_epochs,
                lr=cfg.train.bandpower_pretrain_lr,
                linear_lr_scale=cfg.train.ridge_readout_lr_scale,
                weight_decay=cfg.train.weight_decay, batch_size=cfg.train.batch_size,
                select_on=cfg.train.select_on, seed=cfg.train.seed, device=device,
                progress=cfg.train.progress and dist.main)
    if branch is not None:
        lr_scales["bandpower.linear."] = cfg.train.ridge_readout_lr_scale
    feats = session_features(model)
    if feats is not None and run.session is None:  # resumed or fine-tuned: the stored prior
        run.session = session_table(split.scans, _all_items(split), feats,
                                    progress=cfg.train.progress and dist.main)
    model.to(device)
    groups = param_groups(model, cfg.train.weight_decay, resolve_layer_decay(cfg), lr_scales)
    for g in groups:
        g.setdefault("lr_scale", 1.0)
    run.optimizer = torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.999), eps=1e-8)
    if dist.enabled:
        run.net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.type == "cuda" else None)

    from torch.utils.data import DataLoader

    from ..datasets import WindowDataset

    train_items = split.items["train"]
    train_ds = (WindowDataset(split.scans, train_items) if run.session is None
                else SessionWindowDataset(split.scans, train_items, run.session))
    run.sampler = ChunkBatchSampler(runs_by_scan(train_items), cfg.train.batch_size, shuffle=True,
                                    jitter=cfg.train.chunk_jitter, seed=cfg.train.seed,
                                    rank=dist.rank, world_size=dist.world_size)
    iters_per_epoch = len(run.sampler)
    if iters_per_epoch == 0:
        raise ValueError(f"No training batch: every scan has fewer than train.batch_size = "
                         f"{cfg.train.batch_size} consecutive training windows"
                         f"{' per rank' if dist.enabled else ''}. Lower the batch size or add data.")
    run.loader = DataLoader(train_ds, batch_sampler=run.sampler,
                            num_workers=cfg.train.num_workers, pin_memory=device.type == "cuda")
    run.loss_fn = _loss_fn(cfg)
    run.total = cfg.train.epochs * iters_per_epoch
    run.warmup = int(round(cfg.train.warmup_epochs * iters_per_epoch))
    return run


def _all_items(split: DataSplit) -> list[tuple[int, int]]:
    return [it for part in ("train", "val", "test") for it in split.items[part]]


def _fit_bandpower(run: _Run, features):
    """The ridge fitted on the training windows (session-normalised when ``features`` are;
    then also their training prior and the session table of every scan)."""
    cfg = run.cfg
    show = cfg.train.progress and run.dist.main
    if not features.cfg.session_norm:
        return fit_ridge(run.split.scans, run.split.items["train"],
                         max_windows=cfg.train.ridge_max_windows, progress=show)
    est, prior_mean, prior_scale, table = fit_session_ridge(
        run.split.scans, run.split.items["train"], [s for s, _ in _all_items(run.split)],
        features.cfg.session_prior_windows, max_windows=cfg.train.ridge_max_windows,
        progress=show)
    features.set_standardisation(prior_mean, prior_scale, prior=True)
    run.session = table
    return est


def _init_bandpower(run: _Run, features, readout) -> None:
    """Fit the ridge on the training windows; set the feature standardisation and, with
    ``train.ridge_init``, the linear readout (the initial model then is the ridge)."""
    from rtbold.models.bandpower import copy_ridge

    est = _fit_bandpower(run, features)
    run.ridge_alpha = est.alpha_
    if run.cfg.train.ridge_init:
        copy_ridge(est, features, readout)
        run.init_candidate = True
    else:
        features.set_standardisation(est.mean_, est.scale_)


def _score_initial(run: _Run, best: dict) -> tuple[dict, list[dict]]:
    """Validate the data-initialised model before any epoch; it is the first selection candidate
    (``best_epoch`` 0), so training can only be kept where it beats its own starting point."""
    t0 = time.perf_counter()
    val, _, best = _select(run, -1, best)
    note = f"initial model: ridge fit (alpha {run.ridge_alpha:g})"
    if run.pretrain_history:
        kept = max(run.pretrain_history, key=lambda r: r["val"]["score"])["epoch"]
        note += (f", band-power branch pre-trained {len(run.pretrain_history) - 1} epochs "
                 f"(kept: epoch {kept})")
    record = {"epoch": 0, "iteration": 0, "train_loss": None, "lr": 0.0, "val": val,
              "best": True, "seconds": round(time.perf_counter() - t0, 2), "note": note,
              "pretrain": run.pretrain_history}
    if run.dist.main:
        logger.info("initial model: val Tcorr %s  res. Tcorr %s  Pixcorr %s",
                    _fmt(val["tcorr"]), _fmt(val["res_tcorr"]), _fmt(val["pixcorr"]))
        append_log(run.out, record)
        save_best(run.ckpt, run.model)
    return best, [record]


def _train_ridge(cfg: TrainConfig, init_bundle: str | Path | None) -> TrainResult:
    """``[model] name = "ridge"``: one closed-form fit on the training windows, then the same
    validation, test metrics, bundle and ``summary.json`` as a trained network."""

    if init_bundle is not None:
        raise ValueError("a ridge bundle is refitted, not fine-tuned: run `rtbold train` with "
                         "[model] name = \"ridge\" on the new data instead.")
    run = _setup_data(cfg, None)
    if run.dist.main:
        prepare_run_folder(run.out, run.ckpt, cfg, resume=False)
    t0 = time.perf_counter()
    est = _fit_bandpower(run, run.model.features)
    run.model.load_estimator(est)
    run.ridge_alpha = est.alpha_
    val, _, best = _select(run, -1, {"epoch": -1, "score": -math.inf})
    record = {"epoch": 0, "iteration": 0, "train_loss": None, "lr": 0.0, "val": val,
              "best": True, "seconds": round(time.perf_counter() - t0, 2),
              "note": f"closed-form ridge fit (alpha {est.alpha_:g}, CV folds by scan)"}
    if run.dist.main:
        append_log(run.out, record)
    bundle_path, digest = _finish(run, best, [record], reload_best=False)
    return TrainResult(bundle=bundle_path, best_epoch=0, best=best, history=[record],
                       model=run.model, digest=digest)


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
        return model, ch_names, roi_names, None

    from rtbold.models import load_bundle

    model, bmeta = load_bundle(init_bundle, device="cpu")
    ch_names, roi_names = list(bmeta.ch_names), list(bmeta.roi_names)
    cfg.model.name, cfg.model.size = bmeta.model_name, bmeta.model_size
    if len(roi_names) in (64, 128, 256):
        cfg.data.n_regions = len(roi_names)
    # the EEG must be filtered as it was for the bundle (the live path applies the same)
    hp = bmeta.eeg_highpass_hz
    if cfg.data.highpass is None and hp is not None:
        cfg.data.highpass = hp
    elif cfg.data.highpass != hp:
        logger.warning("data.highpass = %s differs from the bundle's EEG high-pass (%s); the "
                       "fine-tuned bundle records %s.", cfg.data.highpass, hp,
                       cfg.data.highpass)
    logger.info("Fine-tuning from %s (%d channels, %d regions)", init_bundle, len(ch_names),
                len(roi_names))
    return model, ch_names, roi_names, bmeta


def _train_epoch(run: _Run, epoch: int, iteration: int, bar, show: bool,
                 history: list[dict]) -> tuple[list[float], int]:
    """One pass over the training chunks (``bar`` wraps the loader, its sampler already set to
    ``epoch``); returns the batch losses and the new iteration count."""
    import torch

    cfg = run.cfg
    run.net.train()
    losses: list[float] = []
    for batch in bar:
        lr = lr_schedule(iteration, run.total, run.warmup, cfg.train.lr, cfg.train.min_lr)
        for g in run.optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"]
        x, kwargs = model_inputs(batch, run.device)
        x = augment(x, cfg.train.augment_gain_sd, cfg.train.augment_channel_dropout)
        y = batch[-1].to(run.device, non_blocking=True)
        with autocast(run.device, run.bf16):
            pred = run.net(x, **kwargs)
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


def augment(x, gain_sd: float, channel_dropout: float):
    """Training augmentation of a batch (B, C, n): a log-normal gain per window and channel
    (SD ``gain_sd``) and a share ``channel_dropout`` of channels zeroed per window."""
    import torch

    if gain_sd > 0:
        x = x * torch.exp(gain_sd * torch.randn(x.shape[0], x.shape[1], 1, device=x.device))
    if channel_dropout > 0:
        keep = torch.rand(x.shape[0], x.shape[1], 1, device=x.device) >= channel_dropout
        x = x * keep
    return x


def _select(run: _Run, epoch: int, best: dict) -> tuple[dict, bool, dict]:
    """Validate and apply the selection rule; returns ``(val, improved, best)``."""
    from ..metrics import selection_score

    cfg = run.cfg
    val, _ = validate(run.model, run.split, "val", device=run.device,
                      batch_size=cfg.train.eval_batch_size, bf16=run.bf16, networks=run.networks,
                      session=run.session)
    score = selection_score(val, cfg.train.select_on)
    val["score"] = score
    # the first candidate always counts, even with an undefined score
    improved = not math.isfinite(best["score"]) or score > best["score"]
    if improved:
        best = {"epoch": epoch, "score": score, "val": val}
    return val, improved, best


def _end_epoch(run: _Run, epoch: int, iteration: int, record: dict, best: dict,
               history: list[dict], improved: bool) -> None:
    """Rank 0: log the epoch and write the checkpoint."""
    val = record["val"]
    logger.info("epoch %d: loss %.4f  val mse %.4f  Tcorr %s  res. Tcorr %s  Pixcorr %s  "
                "score %s%s", epoch + 1, record["train_loss"] or float("nan"), val["mse"],
                _fmt(val["tcorr"]), _fmt(val["res_tcorr"]), _fmt(val["pixcorr"]),
                _fmt(val["score"]), "  (best)" if improved else "")
    append_log(run.out, record)
    save_checkpoint(run.ckpt, run.model, run.optimizer, epoch=epoch, iteration=iteration,
                    best=best, history=history, improved=improved)


def _finish(run: _Run, best: dict, history: list[dict], *, reload_best: bool = True
            ) -> tuple[Path | None, str]:
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
        if reload_best:
            load_best(run.ckpt, model, run.device)
        test = None
        test_scans: list = []
        if run.split.items["test"]:
            test, test_scans = validate(model, run.split, "test", device=run.device,
                                        batch_size=cfg.train.eval_batch_size, bf16=run.bf16,
                                        networks=run.networks, session=run.session)
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


def progress_bar(it, show: bool, desc: str):
    """``tqdm`` over ``it`` when ``show``, else a silent wrapper with the same methods."""
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

