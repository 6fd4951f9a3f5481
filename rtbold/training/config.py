"""Training configuration: the ``[data]``, ``[model]``, ``[train]`` and ``[output]`` tables of a
training TOML (``rtbold train CONFIG``), their cross-field checks and the loader.

Model selection (documented choice, ``train.select_on``): the epoch with the highest validation
``composite`` score is kept, the mean of validation Tcorr, residual Tcorr and Pixcorr
(:data:`rtbold.metrics.SELECTION_CRITERIA`). Tcorr alone rewards a model that predicts the global
signal in every region (on resting-state data that scores above the EEG-explainable ceiling); the
residual Tcorr and Pixcorr of such a prediction are ~0, so the composite cannot be won that way.
``"tcorr"``, ``"res_tcorr"`` and NeuroBOLT's lowest-val-MSE rule (``"mse"``) remain available.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts.config import ArtifactConfig
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
    #: MR-artefact correction of raw in-scanner recordings (``[data.artifacts]``, the same
    #: settings and code as ``[live.artifacts]``); off by default.
    artifacts: ArtifactConfig = field(default_factory=ArtifactConfig)


@dataclass
class ModelConfig:
    """``[model]``: which network and its size; ``overrides`` go to ``create_model``."""

    #: ``unebolt`` (the paper's model), ``unebolt_bp`` (UnEBOLT with the channel-resolved,
    #: session-normalised band-power branch), ``neurobolt``, ``ridge`` (ridge on lagged log band
    #: power, fitted in closed form; no epochs) or ``ridge_sn`` (the same on session-normalised
    #: features).
    name: str = field(default="unebolt", metadata={"choices": ("unebolt", "unebolt_bp",
                                                              "neurobolt", "ridge", "ridge_sn")})
    size: str = field(default="base", metadata={"choices": ("base", "small", "tiny")})
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSection:
    """``[train]``: protocol, optimisation and run control."""

    protocol: str = field(default="cross_subject",
                          metadata={"choices": ("cross_subject", "intra_scan")})
    #: End-to-end epochs. 0 keeps the data-initialised model (the ridge fit plus the pre-trained
    #: band-power branch), which needs a model with the branch and ``ridge_init``.
    epochs: int = field(default=20, metadata={"range": (0, 10_000)})
    batch_size: int = field(default=64, metadata={"range": (2, 4096)})
    lr: float = field(default=3e-4, metadata={"range": (0.0, 1.0)})
    min_lr: float = field(default=1e-6, metadata={"range": (0.0, 1.0)})
    warmup_epochs: float = field(default=5.0, metadata={"range": (0.0, 10_000.0)})
    weight_decay: float = field(default=0.05, metadata={"range": (0.0, 10.0)})
    #: Layer-wise lr decay of the LaBraM branch; default (unset) 0.65 when ``labram_weights`` are
    #: loaded (MODEL.md 5) and 1.0 (none) for an encoder trained from scratch, where freezing the
    #: first layers only slows learning.
    layer_decay: float | None = field(default=None, metadata={"range": (1e-3, 1.0)})
    #: ``unebolt`` = alpha MSE + beta temporal + (1 - alpha - beta) spatial; ``mse`` = NeuroBOLT.
    loss: str = field(default="auto", metadata={"choices": ("auto", "unebolt", "mse")})
    alpha: float = field(default=0.8, metadata={"range": (0.0, 1.0)})
    beta: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    select_on: str = field(default="composite",
                           metadata={"choices": ("composite", "tcorr", "res_tcorr", "mse")})
    seed: int = field(default=12345, metadata={"range": (0, 2**31 - 1)})
    split_seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    split_ratios: list[int] = field(default_factory=lambda: [3, 1, 1])
    gap_s: float = field(default=20.0, metadata={"range": (0.0, 600.0)})
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda")})
    #: bfloat16 autocast: CUDA, or a CPU with native bf16 (AVX-512 BF16 / AMX); ignored with a
    #: warning elsewhere. The band-power features stay float32.
    bf16: bool = False
    #: A model with the band-power branch starts from the ridge fitted on the training windows
    #: (features standardised with their statistics); otherwise only the standardisation is set.
    ridge_init: bool = True
    #: lr scale of the branch's ridge-initialised linear readout (small: training refines the
    #: closed-form solution instead of overwriting it).
    ridge_readout_lr_scale: float = field(default=0.1, metadata={"range": (0.0, 10.0)})
    #: Epochs of training the band-power branch alone on its cached features before the
    #: end-to-end epochs (``rtbold.training.pretrain``; MSE loss, best validated state kept).
    bandpower_pretrain_epochs: int = field(default=0, metadata={"range": (0, 1000)})
    #: Peak learning rate of that pre-training.
    bandpower_pretrain_lr: float = field(default=1e-3, metadata={"range": (0.0, 1.0)})
    #: Ridge fit (``ridge`` model, ``ridge_init``): at most this many training windows, evenly
    #: spaced; default all.
    ridge_max_windows: int | None = field(default=None, metadata={"range": (10, None)})
    #: Augmentation of training windows: per-channel gain drawn log-normal with this SD (channel
    #: gains differ between subjects and caps), and the share of channels zeroed per window.
    augment_gain_sd: float = field(default=0.0, metadata={"range": (0.0, 2.0)})
    augment_channel_dropout: float = field(default=0.0, metadata={"range": (0.0, 0.9)})
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
    if t.labram_weights is not None and not Path(t.labram_weights).is_file():
        raise ConfigError(f"{where}.train.labram_weights: {t.labram_weights} does not exist.")
    return cfg


def resolve_loss(cfg: TrainConfig) -> str:
    if cfg.train.loss != "auto":
        return cfg.train.loss
    return "unebolt" if cfg.model.name.startswith("unebolt") else "mse"


def resolve_layer_decay(cfg: TrainConfig) -> float:
    """``train.layer_decay``, or its default: 0.65 with LaBraM weights, 1.0 from scratch."""
    if cfg.train.layer_decay is not None:
        return cfg.train.layer_decay
    return 0.65 if cfg.train.labram_weights is not None else 1.0


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
        cfg.data.root = (base / cfg.data.root).resolve()
    if not cfg.output.dir.is_absolute():
        cfg.output.dir = (base / cfg.output.dir).resolve()
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
