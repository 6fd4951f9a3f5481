"""Training configuration: the ``[data]``, ``[model]``, ``[train]`` and ``[output]`` tables of a
training TOML (``rtbold train CONFIG``), their cross-field checks and the loader.

Model selection (documented choice, ``train.select_on``): the epoch with the highest validation
Tcorr (mean over validation scans of the mean per-region r) is kept, because Tcorr is the headline
metric the models are compared on; ``train.select_on = "mse"`` restores NeuroBOLT's lowest-val-MSE
rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, from_dict, load_toml

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
        raw = deep_update(raw, overrides)
    cfg = from_dict(TrainConfig, raw, path.name)
    base = path.resolve().parent
    if cfg.data.root is not None and not cfg.data.root.is_absolute():
        cfg.data.root = base / cfg.data.root
    if not cfg.output.dir.is_absolute():
        cfg.output.dir = base / cfg.output.dir
    if cfg.train.labram_weights is not None and not cfg.train.labram_weights.is_absolute():
        cfg.train.labram_weights = base / cfg.train.labram_weights
    return validate_config(cfg, path.name)


def deep_update(base: dict, upd: dict) -> dict:
    """``base`` updated by ``upd``, nested tables merged key by key (a new dict)."""
    out = dict(base)
    for k, v in upd.items():
        out[k] = deep_update(out.get(k, {}), v) if isinstance(v, dict) and isinstance(
            out.get(k), dict) else v
    return out
