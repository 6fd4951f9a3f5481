"""Offline training: ``rtbold train CONFIG`` and ``rtbold finetune BUNDLE DATA``.

One job per module:

- :mod:`~rtbold.training.config`: the training TOML (``[data]``, ``[model]``, ``[train]``,
  ``[output]``), its checks and the loader;
- :mod:`~rtbold.training.sampling`: batches of consecutive TRs of one scan;
- :mod:`~rtbold.training.schedule`: AdamW parameter groups and the lr schedule;
- :mod:`~rtbold.training.data`: scans, train/val/test splits, grouping by scan;
- :mod:`~rtbold.training.distributed`: torchrun / DDP set-up;
- :mod:`~rtbold.training.predict`: model outputs, validation metrics, bf16 autocast;
- :mod:`~rtbold.training.ridge`: the closed-form ridge fit (ridge model, band-power branch
  initialisation, evaluation baseline);
- :mod:`~rtbold.training.checkpoint`: the resumable run folder;
- :mod:`~rtbold.training.metadata`: what a bundle says about itself;
- :mod:`~rtbold.training.loop`: :func:`train`;
- :mod:`~rtbold.training.cli`: the ``train`` and ``finetune`` subcommands.
"""

from .checkpoint import BUNDLE_NAME, CHECKPOINT_DIR, LOG_NAME
from .config import (DataConfig, ModelConfig, OutputConfig, TrainConfig, TrainSection,
                     deep_update, load_train_config, resolve_layer_decay, resolve_loss,
                     validate_config)
from .data import (DataSplit, default_channels, load_scans, make_split, networks_for, per_scan,
                   resolve_roi_names, scan_id, targets_of)
from .distributed import Dist, init_distributed, weights_digest
from .loop import TrainResult, augment, progress_bar, train
from .metadata import build_metadata, json_default
from .predict import (VALIDATION_METRICS, autocast, bf16_available, cpu_supports_bf16,
                      predict_items, validate)
from .ridge import fit_ridge, item_features, subsample_items
from .sampling import ChunkBatchSampler, contiguous_runs, runs_by_scan
from .schedule import lr_schedule, param_groups

__all__ = ["BUNDLE_NAME", "CHECKPOINT_DIR", "LOG_NAME", "DataConfig", "ModelConfig",
           "OutputConfig", "TrainConfig", "TrainSection", "deep_update", "load_train_config",
           "resolve_loss", "validate_config", "DataSplit", "default_channels", "load_scans",
           "make_split", "networks_for", "per_scan", "resolve_roi_names", "scan_id", "targets_of",
           "Dist", "init_distributed", "weights_digest", "TrainResult", "train", "build_metadata",
           "json_default", "autocast", "predict_items", "validate",
           "ChunkBatchSampler", "contiguous_runs", "runs_by_scan", "lr_schedule", "param_groups",
           "resolve_layer_decay", "augment", "progress_bar", "VALIDATION_METRICS",
           "bf16_available", "cpu_supports_bf16", "fit_ridge", "item_features",
           "subsample_items"]
