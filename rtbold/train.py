"""Offline training: ``rtbold train CONFIG`` and ``rtbold finetune BUNDLE DATA``.

The recipe is MODEL.md section 5 (NeuroBOLT code defaults, also used for UnEBOLT): AdamW with
layer-wise lr decay parameter groups, a per-iteration linear warm-up then cosine schedule, 20 epochs.

UnEBOLT's loss has a temporal-correlation term computed over the batch axis, so a UnEBOLT batch must
be a run of consecutive TRs of one scan: :class:`ChunkBatchSampler` cuts each scan's training
windows into chunks of ``batch_size`` consecutive windows, shuffles the *order of the chunks* every
epoch and never mixes scans inside a chunk (MODEL.md 4.3). The same sampler serves NeuroBOLT (its MSE
loss does not care), which keeps one code path.

Model selection (documented choice): the epoch with the highest validation Tcorr (mean over
validation scans of the mean per-region r) is kept, because Tcorr is the headline metric the
models are compared on; ``train.select_on = "mse"`` restores NeuroBOLT's lowest-val-MSE rule.

Runs are resumable: after every epoch ``OUT/checkpoint/`` holds the weights (safetensors), the
optimizer state (``torch.save`` of tensors and plain numbers only, reloaded with
``weights_only=True``) and a JSON state; ``--resume`` continues from the next epoch. A JSON-lines log
of every epoch is appended to ``OUT/train_log.jsonl``. The best model ends as a bundle
``OUT/bundle.safetensors`` (see :func:`rtbold.models.save_bundle`).

Several GPUs (or CPU processes): launch with ``torchrun --nproc_per_node N -m rtbold.cli train
CONFIG``. With ``WORLD_SIZE > 1`` the model is wrapped in DistributedDataParallel (NCCL on CUDA,
gloo on CPU) and the chunk sampler deals each rank an equal share of the shuffled chunks. Rank 0
writes every file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError, from_dict, load_toml, to_dict

logger = logging.getLogger(__name__)

BUNDLE_NAME = "bundle.safetensors"
CHECKPOINT_DIR = "checkpoint"
LOG_NAME = "train_log.jsonl"
SIM_DERIVATIVES = Path("derivatives") / "rtbold-sim"


# ----------------------------------------------------------------------------- configuration
@dataclass
class DataConfig:
    """``[data]``: where the recordings are and how to turn them into windows and targets."""

    root: Path | None = None
    layout: str = field(default="auto", metadata={"choices": ("auto", "bids", "neurobolt")})
    marker: str = "R149"
    n_regions: int = field(default=64, metadata={"choices": (64, 128, 256)})
    #: Train on these regions only (exact DiFuMo names); default all ``n_regions``.
    roi_names: list[str] | None = None
    #: Model input channels in order; default the 26 NeuroBOLT channels (rtbold.montage).
    channels: list[str] | None = None
    missing_channels: str = field(default="refuse",
                                  metadata={"choices": ("refuse", "interpolate", "zero")})
    #: EEG high-pass (Hz) before windowing; NeuroBOLT uses 0.5 cross-subject, none intra-scan.
    highpass: float | None = field(default=None, metadata={"range": (0.0, 20.0)})


@dataclass
class ModelConfig:
    """``[model]``: which network and its size; ``overrides`` go to ``create_model``."""

    name: str = field(default="unebolt", metadata={"choices": ("unebolt", "neurobolt")})
    size: str = field(default="base", metadata={"choices": ("base", "small", "tiny")})
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSection:
    """``[train]``: protocol, optimisation and run control."""

    protocol: str = field(default="cross_subject",
                          metadata={"choices": ("cross_subject", "intra_scan")})
    epochs: int = field(default=20, metadata={"range": (1, 10_000)})
    batch_size: int = field(default=64, metadata={"range": (2, 4096)})
    lr: float = field(default=3e-4, metadata={"range": (0.0, 1.0)})
    min_lr: float = field(default=1e-6, metadata={"range": (0.0, 1.0)})
    warmup_epochs: float = field(default=5.0, metadata={"range": (0.0, 10_000.0)})
    weight_decay: float = field(default=0.05, metadata={"range": (0.0, 10.0)})
    layer_decay: float = field(default=0.65, metadata={"range": (1e-3, 1.0)})
    #: ``unebolt`` = alpha MSE + beta temporal + (1 - alpha - beta) spatial; ``mse`` = NeuroBOLT.
    loss: str = field(default="auto", metadata={"choices": ("auto", "unebolt", "mse")})
    alpha: float = field(default=0.8, metadata={"range": (0.0, 1.0)})
    beta: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    select_on: str = field(default="tcorr", metadata={"choices": ("tcorr", "mse")})
    seed: int = field(default=12345, metadata={"range": (0, 2**31 - 1)})
    split_seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    split_ratios: list[int] = field(default_factory=lambda: [3, 1, 1])
    gap_s: float = field(default=20.0, metadata={"range": (0.0, 600.0)})
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda")})
    bf16: bool = False
    labram_weights: Path | None = None
    #: Quick runs: keep at most this many (first) windows of every scan.
    max_windows_per_scan: int | None = field(default=None, metadata={"range": (2, None)})
    #: Shift chunk boundaries by a random offset every epoch (more distinct batches).
    chunk_jitter: bool = True
    eval_batch_size: int = field(default=64, metadata={"range": (1, 4096)})
    num_workers: int = field(default=0, metadata={"range": (0, 64)})
    grad_clip: float | None = field(default=None, metadata={"range": (0.0, None)})
    progress: bool = True


@dataclass
class OutputConfig:
    """``[output]``: run folder."""

    dir: Path = Path("runs/train")
    #: Storage precision of the bundle's weights: float16 halves the file (packaged demo model);
    #: the model runs in float32 either way.
    bundle_dtype: str = field(default="float32", metadata={"choices": ("float32", "float16")})


@dataclass
class TrainConfig:
    """A full training run (``rtbold train CONFIG``)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSection = field(default_factory=TrainSection)
    output: OutputConfig = field(default_factory=OutputConfig)


def validate_config(cfg: TrainConfig, where: str = "config") -> TrainConfig:
    """Cross-field checks :func:`rtbold.config.from_dict` cannot express; errors name the key."""
    t = cfg.train
    if t.alpha + t.beta > 1.0 + 1e-9:
        raise ConfigError(f"{where}.train.alpha + {where}.train.beta = {t.alpha + t.beta} exceeds 1; "
                          "the spatial weight is 1 - alpha - beta.")
    if t.min_lr > t.lr:
        raise ConfigError(f"{where}.train.min_lr ({t.min_lr}) is larger than train.lr ({t.lr}).")
    loss = resolve_loss(cfg)
    if loss == "unebolt" and t.batch_size < 32:
        raise ConfigError(f"{where}.train.batch_size = {t.batch_size}: the UnEBOLT loss correlates "
                          "over consecutive TRs in a batch and needs batch_size >= 32.")
    if len(t.split_ratios) != 3 or min(t.split_ratios) < 0 or sum(t.split_ratios) <= 0:
        raise ConfigError(f"{where}.train.split_ratios must be 3 non-negative numbers "
                          f"(train, val, test), got {t.split_ratios}.")
    if t.bf16 and t.device == "cpu":
        raise ConfigError(f"{where}.train.bf16 = true needs a CUDA device (train.device is 'cpu').")
    if t.labram_weights is not None and not Path(t.labram_weights).is_file():
        raise ConfigError(f"{where}.train.labram_weights: {t.labram_weights} does not exist.")
    return cfg


def resolve_loss(cfg: TrainConfig) -> str:
    if cfg.train.loss != "auto":
        return cfg.train.loss
    return "unebolt" if cfg.model.name == "unebolt" else "mse"


def load_train_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a training TOML (tables ``[data]``, ``[model]``, ``[train]``, ``[output]``).

    Relative ``data.root``, ``output.dir`` and ``train.labram_weights`` are resolved against the
    config file's folder so a config can travel with its data.
    """
    path = Path(path)
    raw = load_toml(path)
    if overrides:
        raw = _deep_update(raw, overrides)
    cfg = from_dict(TrainConfig, raw, path.name)
    base = path.resolve().parent
    if cfg.data.root is not None and not cfg.data.root.is_absolute():
        cfg.data.root = base / cfg.data.root
    if not cfg.output.dir.is_absolute():
        cfg.output.dir = base / cfg.output.dir
    if cfg.train.labram_weights is not None and not cfg.train.labram_weights.is_absolute():
        cfg.train.labram_weights = base / cfg.train.labram_weights
    return validate_config(cfg, path.name)


def _deep_update(base: dict, upd: dict) -> dict:
    out = dict(base)
    for k, v in upd.items():
        out[k] = _deep_update(out.get(k, {}), v) if isinstance(v, dict) and isinstance(
            out.get(k), dict) else v
    return out


# ----------------------------------------------------------------------------- sampling
class ChunkBatchSampler:
    """Batches of consecutive windows of one scan, chunk order shuffled every epoch.

    Parameters
    ----------
    runs : list of sequences of int
        Dataset indices of each scan's training windows in time order. A scan whose windows have
        holes (e.g. invalid volumes) may be given as several runs; a chunk never spans two runs.
    batch_size : int
        Windows per chunk (= per batch). Remainders shorter than a chunk are dropped.
    shuffle : bool
        Shuffle chunk order each epoch (seeded by ``seed + epoch``: identical on every rank).
    jitter : bool
        Start each run's chunking at a random offset in ``[0, len(run) % batch_size]`` every
        epoch (the windows left over by the chunking move around; no chunk is lost).
    rank, world_size : int
        For distributed training: every rank takes the same number of chunks from a shared
        permutation (surplus chunks are dropped so the ranks step together).
    """

    def __init__(self, runs: Sequence[Sequence[int]], batch_size: int, *, shuffle: bool = True,
                 jitter: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}.")
        self.runs = [list(r) for r in runs]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.jitter = jitter
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _chunks(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks = []
        for run in self.runs:
            # the offset moves chunk boundaries within the run's leftover (len % batch_size), so
            # jitter varies the batches without ever costing a chunk
            off = int(rng.integers(0, len(run) % self.batch_size + 1)) if self.jitter else 0
            for s in range(off, len(run) - self.batch_size + 1, self.batch_size):
                chunks.append(run[s: s + self.batch_size])
        if self.shuffle:
            order = rng.permutation(len(chunks))
            chunks = [chunks[i] for i in order]
        n = (len(chunks) // self.world_size) * self.world_size
        return chunks[self.rank:n:self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._chunks())

    def __len__(self) -> int:
        return len(self._chunks())


def contiguous_runs(volume_indices: Sequence[int]) -> list[list[int]]:
    """Split sorted volume indices into runs of consecutive values: [1,2,3,7,8] -> [[1,2,3],[7,8]]."""
    runs: list[list[int]] = []
    for k in volume_indices:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(int(k))
        else:
            runs.append([int(k)])
    return runs


# ----------------------------------------------------------------------------- schedule
def lr_schedule(iteration: int, total: int, warmup: int, peak: float, min_lr: float) -> float:
    """MODEL.md 5: linear warm-up from 0 over ``warmup`` iterations (a linspace ending at the peak),
    then cosine from ``peak`` to ``min_lr`` (delegates to :func:`rtbold.models.optim.lr_at`)."""
    from rtbold.models.optim import lr_at

    total = max(total, 1)
    return lr_at(min(iteration, total), base_lr=peak, min_lr=min_lr,
                 warmup_steps=min(warmup, total), total_steps=total)


def _param_groups(model, weight_decay: float, layer_decay: float) -> list[dict]:
    """Layer-wise lr decay groups (MODEL.md 5) from :func:`rtbold.models.optim.param_groups`."""
    from rtbold.models.optim import param_groups

    groups = param_groups(model, weight_decay=weight_decay, layer_decay=layer_decay)
    for g in groups:  # names are for logging only; keep the optimizer state plain
        g.pop("param_names", None)
    return groups


# ----------------------------------------------------------------------------- data
@dataclass
class DataSplit:
    """Prepared scans and, per part, which (scan, volume) items belong to it."""

    scans: list  # list[PreparedScan]
    items: dict[str, list[tuple[int, int]]]
    assignment: dict[str, list[str]]  # part -> scan ids (cross-subject) or all scan ids
    protocol: str

    def scan_ids(self, part: str) -> list[int]:
        return sorted({s for s, _ in self.items[part]})

    def summary(self) -> dict:
        out: dict[str, Any] = {"protocol": self.protocol}
        for part, items in self.items.items():
            ids = sorted({s for s, _ in items})
            out[part] = {
                "scans": [scan_id(self.scans[i]) for i in ids],
                "subjects": sorted({self.scans[i].spec.subject for i in ids}),
                "n_windows": len(items),
            }
        return out


def scan_id(scan) -> str:
    """Identifier of a prepared scan: ``<subject>_<scan>`` (``ScanSpec.name``)."""
    return scan.spec.name


def default_channels() -> list[str]:
    from .montage import load_montage

    return list(load_montage().ch_names)


def resolve_roi_names(data: DataConfig) -> list[str]:
    from .atlas import load_atlas

    atlas = load_atlas(data.n_regions)
    if not data.roi_names:
        return list(atlas.roi_names)
    return [atlas.roi_names[atlas.index(n)] for n in data.roi_names]


def load_scans(data: DataConfig, ch_names: Sequence[str], roi_names: Sequence[str],
               max_windows: int | None = None) -> list:
    """Discover and prepare every scan under ``data.root``."""
    from .datasets import discover_scans, prepare_scan

    if data.root is None:
        raise ConfigError("data.root is not set: give the dataset folder in [data] root = '...'.")
    root = Path(data.root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root {root} is not a folder.")
    specs = discover_scans(root, data.layout)
    if not specs:
        raise ValueError(f"No scans found under {root} (layout {data.layout!r}).")
    scans = []
    for spec in specs:
        sc = prepare_scan(spec, list(ch_names), marker=data.marker, policy=data.missing_channels,
                          roi_names=list(roi_names), highpass=data.highpass)
        if max_windows is not None:
            valid = np.flatnonzero(sc.valid)
            sc.valid = sc.valid.copy()
            sc.valid[valid[max_windows:]] = False
        scans.append(sc)
    logger.info("Prepared %d scans from %s", len(scans), root)
    return scans


def make_split(scans: list, protocol: str, *, split_seed: int = 0,
               ratios: Sequence[int] = (3, 1, 1), gap_s: float = 20.0,
               assignment: dict[str, list[str]] | None = None) -> DataSplit:
    """Assign windows to train/val/test (MODEL.md 1.7).

    ``cross_subject``: subjects grouped 3:1:1 by :func:`rtbold.datasets.cross_subject_split`
    (or by a stored ``assignment`` of scan ids, e.g. from a bundle). ``intra_scan``: each scan's
    valid windows split chronologically 8:1:1 with guard gaps by
    :func:`rtbold.datasets.intra_scan_split`.
    """
    from .datasets import cross_subject_split, intra_scan_split

    items: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "test": []}
    if protocol == "cross_subject":
        if assignment is None:
            subjects = sorted({s.spec.subject for s in scans})
            if len(subjects) < 3:
                raise ValueError(f"The cross-subject protocol needs at least 3 subjects; the data "
                                 f"has {len(subjects)} ({subjects}). Use train.protocol = "
                                 "'intra_scan' or add subjects.")
            parts = cross_subject_split(subjects, ratios=tuple(ratios), seed=split_seed)
            by_subject = {sub: part for part, subs in parts.items() for sub in subs}
            assignment = {p: [scan_id(s) for s in scans if by_subject.get(s.spec.subject) == p]
                          for p in ("train", "val", "test")}
        where = {sid: part for part, sids in assignment.items() for sid in sids}
        for i, sc in enumerate(scans):
            part = where.get(scan_id(sc))
            if part in items:
                items[part].extend((i, int(k)) for k in np.flatnonzero(sc.valid))
    elif protocol == "intra_scan":
        for i, sc in enumerate(scans):
            valid = np.flatnonzero(sc.valid)
            idx = intra_scan_split(len(valid), sc.tr, gap_s=gap_s)
            for part in items:
                items[part].extend((i, int(valid[j])) for j in np.asarray(idx[part], dtype=int))
        assignment = {p: [scan_id(s) for s in scans] for p in ("train", "val", "test")}
    else:
        raise ValueError(f"Unknown protocol {protocol!r}; expected cross_subject or intra_scan.")
    for part in ("train", "val"):
        if not items[part]:
            raise ValueError(f"The {protocol} split left no {part} windows; add scans or windows.")
    return DataSplit(scans=scans, items=items, assignment=assignment, protocol=protocol)


def _runs_by_scan(items: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Dataset positions of ``items`` grouped into per-scan runs of consecutive volumes."""
    by_scan: dict[int, list[tuple[int, int]]] = {}
    for pos, (s, k) in enumerate(items):
        by_scan.setdefault(s, []).append((k, pos))
    runs = []
    for s in sorted(by_scan):
        pairs = sorted(by_scan[s])
        vols = [k for k, _ in pairs]
        pos_of = dict(pairs)
        runs.extend([[pos_of[k] for k in run] for run in contiguous_runs(vols)])
    return runs


# ----------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (gloo on CPU, NCCL on CUDA)."""
    import torch
    import torch.distributed as tdist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_pref != "cpu" and torch.cuda.is_available()
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return Dist(rank=rank, world_size=world, local_rank=local)


def _weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- prediction
def predict_items(model, scans: list, items: Sequence[tuple[int, int]], *, device,
                  batch_size: int = 64, bf16: bool = False) -> np.ndarray:
    """Model outputs (N, P) for dataset items, in the order given."""
    import torch
    from torch.utils.data import DataLoader

    from .datasets import WindowDataset

    ds = WindowDataset(scans, list(items))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    outs = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            with _autocast(device, bf16):
                y = model(x)
            outs.append(y.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0), np.float32)


def targets_of(scans: list, items: Sequence[tuple[int, int]]) -> np.ndarray:
    return np.stack([scans[s].targets[k] for s, k in items]).astype(np.float32)


def per_scan(items: Sequence[tuple[int, int]], *arrays: np.ndarray
             ) -> dict[int, tuple[np.ndarray, ...]]:
    """Group rows of arrays aligned with ``items`` by scan, each in time order."""
    groups: dict[int, list[int]] = {}
    for row, (s, _) in enumerate(items):
        groups.setdefault(s, []).append(row)
    out = {}
    for s, rows in groups.items():
        rows = sorted(rows, key=lambda r: items[r][1])
        out[s] = tuple(a[rows] for a in arrays)
    return out


def _autocast(device, bf16: bool):
    import contextlib

    import torch

    if bf16 and getattr(device, "type", str(device)) == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def validate(model, split: DataSplit, part: str, *, device, batch_size: int, bf16: bool,
             networks: Sequence[str] | None = None) -> tuple[dict, list]:
    """Per-scan metrics on one part; returns (summary dict, list of ScanMetrics)."""
    from .metrics import aggregate, scan_metrics

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


# ----------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """What :func:`train` returns."""

    bundle: Path | None
    best_epoch: int
    best: dict
    history: list[dict]
    model: Any = None
    digest: str = ""


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
    from safetensors.torch import load_file, save_file

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
    ckpt = out / CHECKPOINT_DIR

    meta_init: dict = {}
    if init_bundle is not None:
        from rtbold.models import load_bundle

        model, bmeta = load_bundle(init_bundle, device="cpu")
        meta_init = _meta_dict(bmeta)
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
    else:
        ch_names = list(cfg.data.channels) if cfg.data.channels else default_channels()
        roi_names = resolve_roi_names(cfg.data)
        model = _build_model(cfg, ch_names, roi_names)
        if cfg.train.labram_weights is not None:
            from rtbold.models import load_labram_weights

            missing, unexpected = load_labram_weights(model, cfg.train.labram_weights)
            logger.info("LaBraM weights from %s: %d missing, %d unexpected keys",
                        cfg.train.labram_weights, len(missing), len(unexpected))

    scans = load_scans(cfg.data, ch_names, roi_names, cfg.train.max_windows_per_scan)
    split = make_split(scans, cfg.train.protocol, split_seed=cfg.train.split_seed,
                       ratios=cfg.train.split_ratios, gap_s=cfg.train.gap_s)
    tr = float(np.median([s.tr for s in scans]))
    networks = _networks_for(roi_names, cfg.data.n_regions)

    model.to(device)
    groups = _param_groups(model, cfg.train.weight_decay, cfg.train.layer_decay)
    for g in groups:
        g.setdefault("lr_scale", 1.0)
    optimizer = torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.999), eps=1e-8)
    net = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.type == "cuda" else None)

    from torch.utils.data import DataLoader

    from .datasets import WindowDataset

    train_items = split.items["train"]
    train_ds = WindowDataset(split.scans, train_items)
    sampler = ChunkBatchSampler(_runs_by_scan(train_items), cfg.train.batch_size, shuffle=True,
                                jitter=cfg.train.chunk_jitter, seed=cfg.train.seed,
                                rank=dist.rank, world_size=dist.world_size)
    iters_per_epoch = len(sampler)
    if iters_per_epoch == 0:
        raise ValueError(f"No training batch: every scan has fewer than train.batch_size = "
                         f"{cfg.train.batch_size} consecutive training windows"
                         f"{' per rank' if dist.enabled else ''}. Lower the batch size or add data.")
    loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=cfg.train.num_workers,
                        pin_memory=device.type == "cuda")
    total = cfg.train.epochs * iters_per_epoch
    warmup = int(round(cfg.train.warmup_epochs * iters_per_epoch))
    loss_fn = _loss_fn(cfg)

    start_epoch, iteration = 0, 0
    best = {"epoch": -1, "score": -math.inf}
    history: list[dict] = []
    if resume:
        state_path = ckpt / "state.json"
        if not state_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint in {ckpt} (missing state.json); "
                                    "start without --resume.")
        state = json.loads(state_path.read_text())
        model.load_state_dict(load_file(str(ckpt / "model.safetensors"), device=str(device)))
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device,
                                             weights_only=True))
        start_epoch, iteration = state["epoch"] + 1, state["iteration"]
        best = state["best"]
        history = state.get("history", [])
        logger.info("Resuming %s at epoch %d", out, start_epoch)
    elif dist.main and (ckpt / "state.json").exists():
        logger.warning("%s already holds a checkpoint; it will be overwritten (use --resume to "
                       "continue it).", ckpt)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=1))
        if not resume:
            (out / LOG_NAME).unlink(missing_ok=True)

    show = cfg.train.progress and dist.main
    for epoch in range(start_epoch, cfg.train.epochs):
        sampler.set_epoch(epoch)
        net.train()
        t0 = time.perf_counter()
        losses = []
        bar = _progress(loader, show, f"epoch {epoch + 1}/{cfg.train.epochs}")
        for x, y in bar:
            lr = lr_schedule(iteration, total, warmup, cfg.train.lr, cfg.train.min_lr)
            for g in optimizer.param_groups:
                g["lr"] = lr * g["lr_scale"]
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            with _autocast(device, bf16):
                pred = net(x)
            loss = loss_fn(pred.float(), y)
            if not torch.isfinite(loss):
                raise RuntimeError(f"Training loss became {loss.item()} at epoch {epoch + 1}, "
                                   f"iteration {iteration}; lower train.lr or check the data.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()
            iteration += 1
            losses.append(loss.item())
            if show:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{lr:.2e}",
                                val_r=_fmt(history[-1]["val"]["tcorr"]) if history else "-")
        val, _ = validate(model, split, "val", device=device,
                          batch_size=cfg.train.eval_batch_size, bf16=bf16, networks=networks)
        score = (val["tcorr"] if val["tcorr"] is not None else -math.inf) \
            if cfg.train.select_on == "tcorr" else -val["mse"]
        improved = best["epoch"] < 0 or score > best["score"]  # the first epoch always counts
        if improved:
            best = {"epoch": epoch, "score": score, "val": val}
        record = {"epoch": epoch + 1, "iteration": iteration,
                  "train_loss": float(np.mean(losses)) if losses else None,
                  "lr": lr_schedule(max(iteration - 1, 0), total, warmup, cfg.train.lr,
                                    cfg.train.min_lr),
                  "val": val, "best": improved, "seconds": round(time.perf_counter() - t0, 2)}
        history.append(record)
        if show:
            bar.close()
        if dist.main:
            logger.info("epoch %d: loss %.4f  val mse %.4f  val Tcorr %s%s", epoch + 1,
                        record["train_loss"] or float("nan"), val["mse"], _fmt(val["tcorr"]),
                        "  (best)" if improved else "")
            with open(out / LOG_NAME, "a", encoding="utf-8") as fid:
                fid.write(json.dumps(record) + "\n")
            state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state_dict, str(ckpt / "model.safetensors.tmp"))
            if improved:
                shutil.copyfile(ckpt / "model.safetensors.tmp", ckpt / "best.safetensors")
            torch.save(optimizer.state_dict(), ckpt / "optimizer.pt.tmp")
            (ckpt / "state.json.tmp").write_text(json.dumps(
                {"epoch": epoch, "iteration": iteration, "best": best, "history": history},
                default=_json_default))
            # rename last, state.json after the files it describes: a crash leaves a usable set
            os.replace(ckpt / "model.safetensors.tmp", ckpt / "model.safetensors")
            os.replace(ckpt / "optimizer.pt.tmp", ckpt / "optimizer.pt")
            os.replace(ckpt / "state.json.tmp", ckpt / "state.json")
        if dist.enabled:
            torch.distributed.barrier()

    digest = _weights_digest(model)
    ddp_info = None
    if dist.enabled:
        digests: list = [None] * dist.world_size
        torch.distributed.all_gather_object(digests, digest)
        ddp_info = {"world_size": dist.world_size, "weight_digests": digests}
        if len(set(digests)) != 1:
            raise RuntimeError(f"DDP ranks ended with different weights: {digests}")

    bundle_path = None
    if dist.main:
        best_file = ckpt / "best.safetensors"
        if best_file.is_file():
            model.load_state_dict(load_file(str(best_file), device=str(device)))
        test = None
        test_scans: list = []
        if split.items["test"]:
            test, test_scans = validate(model, split, "test", device=device,
                                        batch_size=cfg.train.eval_batch_size, bf16=bf16,
                                        networks=networks)
        metadata = build_metadata(cfg, split, ch_names=ch_names, roi_names=roi_names, tr=tr,
                                  best=best, test=test, test_scans=test_scans,
                                  history=history, init_meta=meta_init, ddp=ddp_info)
        from rtbold.models import save_bundle

        bundle_path = out / BUNDLE_NAME
        save_bundle(bundle_path, model.cpu(), metadata,
                    storage_dtype=None if cfg.output.bundle_dtype == "float32"
                    else cfg.output.bundle_dtype)
        (out / "summary.json").write_text(json.dumps(
            {"bundle": str(bundle_path), "best_epoch": best["epoch"] + 1, "best": best,
             "test": test, "ddp": ddp_info, "digest": digest}, indent=1, default=_json_default))
        logger.info("Best epoch %d; bundle written to %s", best["epoch"] + 1, bundle_path)
    if dist.enabled:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return TrainResult(bundle=bundle_path, best_epoch=best["epoch"] + 1, best=best,
                       history=history, model=model, digest=digest)


def _networks_for(roi_names: Sequence[str], n_regions: int) -> list[str]:
    from .atlas import load_atlas

    for n in (n_regions, 64, 128, 256):
        atlas = load_atlas(n)
        try:
            return [atlas.networks[atlas.index(r)] for r in roi_names]
        except KeyError:
            continue
    return ["Subcortical/other"] * len(roi_names)


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


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(type(o).__name__)


def _meta_dict(meta) -> dict:
    if isinstance(meta, dict):
        return meta
    if dataclasses.is_dataclass(meta):
        d = dataclasses.asdict(meta)
        extra = d.pop("extra", None)
        if isinstance(extra, dict):
            d = {**extra, **d}
        return d
    return dict(vars(meta))


def build_metadata(cfg: TrainConfig, split: DataSplit, *, ch_names, roi_names, tr: float, best,
                   test, test_scans, history, init_meta: dict | None = None,
                   ddp: dict | None = None) -> dict:
    """Everything a bundle must say about itself (ARCHITECTURE.md invariant 4)."""
    from . import __version__
    from .metrics import aggregate
    from .preprocessing import EEG_SCALE, SFREQ, TARGET_CUTOFF_HZ, TARGET_FILTER_ORDER, WINDOW_S

    root = Path(cfg.data.root) if cfg.data.root else None
    notes = []
    if root is not None and (root / SIM_DERIVATIVES).is_dir():
        notes.append("trained on semi-synthetic data (rtbold simulator output under "
                     f"{SIM_DERIVATIVES}); accuracy on real EEG-fMRI is not established by it")
    if init_meta:
        notes.append(f"fine-tuned from a bundle trained on "
                     f"{(init_meta.get('training') or {}).get('data_root', 'unknown data')}")
    if cfg.train.max_windows_per_scan:
        notes.append(f"quick run: at most {cfg.train.max_windows_per_scan} windows per scan")
    test_agg = aggregate(test_scans) if test_scans else None
    summary = split.summary()
    return {
        "model_name": cfg.model.name,
        "model_size": cfg.model.size,
        "model_config": {"name": cfg.model.name, "size": cfg.model.size,
                         "overrides": cfg.model.overrides, "n_rois": len(roi_names),
                         "n_channels": len(ch_names)},
        "ch_names": list(ch_names),
        "sfreq": SFREQ,
        "window_s": WINDOW_S,
        "window_samples": int(WINDOW_S * SFREQ),
        "eeg_scale": EEG_SCALE,
        "eeg_highpass_hz": cfg.data.highpass,
        "tr": tr,
        "roi_names": list(roi_names),
        "atlas": (init_meta or {}).get("atlas") or f"DiFuMo{cfg.data.n_regions}",
        "marker": cfg.data.marker,
        "target_normalisation": {
            "method": "lowpass_robust_p95", "cutoff_hz": TARGET_CUTOFF_HZ,
            "order": TARGET_FILTER_ORDER, "per_scan": True,
            "description": "per scan and region: zero-phase Butterworth low-pass, minus the scan "
                           "mean, divided by the 95th percentile of |x - mean|; predictions are "
                           "in these units",
        },
        "training": {
            "data_root": str(root) if root else None,
            "layout": cfg.data.layout,
            "protocol": split.protocol,
            "split": summary,
            "assignment": split.assignment,
            "split_seed": cfg.train.split_seed,
            "split_ratios": list(cfg.train.split_ratios),
            "n_scans": len(split.scans),
            "n_subjects": len({s.spec.subject for s in split.scans}),
            "n_windows": {p: len(v) for p, v in split.items.items()},
            "epochs": len(history), "best_epoch": best["epoch"] + 1,
            "select_on": cfg.train.select_on,
            "loss": resolve_loss(cfg),
            "config": to_dict(cfg),
            "history": history,
            "labram_weights": str(cfg.train.labram_weights) if cfg.train.labram_weights else None,
            "ddp": ddp,
            "rtbold_version": __version__,
        },
        "metrics": {"val": best.get("val"), "test": test,
                    "test_aggregate": test_agg},
        "notes": "; ".join(notes),
        "rtbold_version": __version__,
    }


# ----------------------------------------------------------------------------- CLI
def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model from a TOML config",
                              description="Train UnEBOLT/NeuroBOLT offline (see configs/train_*.toml)."
                                          " For several GPUs: torchrun --nproc_per_node N -m "
                                          "rtbold.cli train CONFIG.")
    p.add_argument("config", help="training TOML with [data], [model], [train], [output]")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--out", default=None, help="override [output] dir")
    p.add_argument("--epochs", type=int, default=None, help="override [train] epochs")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=_cmd_train)

    f = subparsers.add_parser("finetune", help="fine-tune a model bundle on a dataset",
                              description="Continue training a bundle on another dataset; the "
                                          "bundle fixes channels, regions and model.")
    f.add_argument("bundle", help="model bundle to start from")
    f.add_argument("data", help="dataset root (BIDS or NeuroBOLT layout)")
    f.add_argument("--config", default=None, help="training TOML for the recipe (optional)")
    f.add_argument("--out", default=None, help="output folder (default runs/finetune)")
    f.add_argument("--epochs", type=int, default=None)
    f.add_argument("--lr", type=float, default=None)
    f.add_argument("--protocol", default=None, choices=("cross_subject", "intra_scan"))
    f.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    f.add_argument("--max-windows-per-scan", dest="max_windows_per_scan", type=int, default=None)
    f.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"))
    f.add_argument("--resume", action="store_true")
    f.set_defaults(func=_cmd_finetune)


def _cli_overrides(args) -> dict:
    o: dict = {}
    if getattr(args, "out", None):
        o.setdefault("output", {})["dir"] = str(Path(args.out).resolve())
    for key in ("epochs", "lr", "protocol", "device", "batch_size", "max_windows_per_scan"):
        v = getattr(args, key, None)
        if v is not None:
            o.setdefault("train", {})[key] = v
    return o


def _cmd_train(args) -> int:
    cfg = load_train_config(args.config, _cli_overrides(args))
    res = train(cfg, resume=args.resume)
    if res.bundle is not None:
        print(f"best epoch {res.best_epoch}: val {json.dumps(res.best.get('val'))}")
        print(f"bundle: {res.bundle}")
    return 0


def _cmd_finetune(args) -> int:
    overrides = _cli_overrides(args)
    overrides.setdefault("data", {})["root"] = str(Path(args.data).resolve())
    if args.config:
        cfg = load_train_config(args.config, overrides)
    else:
        # fine-tuning defaults: short warm-up, lr a third of the from-scratch peak
        raw = _deep_update({"output": {"dir": str(Path("runs/finetune").resolve())},
                            "train": {"warmup_epochs": 1.0, "lr": 1e-4}}, overrides)
        cfg = validate_config(from_dict(TrainConfig, raw, "finetune"), "finetune")
    res = train(cfg, resume=args.resume, init_bundle=args.bundle)
    if res.bundle is not None:
        print(f"best epoch {res.best_epoch}; bundle: {res.bundle}")
    return 0
