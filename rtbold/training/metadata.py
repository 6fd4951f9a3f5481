"""What a bundle says about itself (ARCHITECTURE.md invariant 4) and JSON helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..config import to_dict
from .config import TrainConfig, resolve_loss
from .data import DataSplit


def json_default(o):
    """``json.dumps`` default: numpy scalars and arrays, paths; non-finite floats become null."""
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(type(o).__name__)


def build_metadata(cfg: TrainConfig, split: DataSplit, *, ch_names, roi_names, tr: float, best,
                   test, test_scans, history, init_meta=None,
                   ddp: dict | None = None) -> dict:
    """Everything a bundle must say about itself (ARCHITECTURE.md invariant 4)."""
    from .. import __version__
    from ..metrics import aggregate
    from ..preprocessing import EEG_SCALE, SFREQ, TARGET_CUTOFF_HZ, TARGET_FILTER_ORDER, WINDOW_S
    from ..simulator import SIM_DERIVATIVES
    from rtbold.models.registry import resolve_name

    root = Path(cfg.data.root) if cfg.data.root else None
    notes = []
    if root is not None and (root / SIM_DERIVATIVES).is_dir():
        notes.append("trained on semi-synthetic data (rtbold simulator output under "
                     f"{SIM_DERIVATIVES}); accuracy on real EEG-fMRI is not established by it")
        projection = root / SIM_DERIVATIVES / "projection.json"
        if projection.is_file():  # targets derived at another resolution (an approximation)
            method = json.loads(projection.read_text(encoding="utf-8")).get("Method", "")
            notes.append(f"its {cfg.data.n_regions}-region targets are derived from DiFuMo-64 "
                         f"series: {method}")
    if init_meta is not None:  # the BundleMeta of the fine-tuned bundle
        notes.append(f"fine-tuned from a bundle trained on "
                     f"{init_meta.training.get('data_root', 'unknown data')}")
    if cfg.train.max_windows_per_scan:
        notes.append(f"quick run: at most {cfg.train.max_windows_per_scan} windows per scan")
    test_agg = aggregate(test_scans) if test_scans else None
    summary = split.summary()
    return {
        # the registered model; a variant (e.g. unebolt_bp) is recorded as such beside it
        "model_name": resolve_name(cfg.model.name)[0],
        "model_variant": cfg.model.name,
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
        "atlas": (init_meta.atlas if init_meta is not None else None)
        or f"DiFuMo{cfg.data.n_regions}",
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
