"""``rtbold train CONFIG`` and ``rtbold finetune BUNDLE DATA``."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import from_dict
from .config import TrainConfig, deep_update, load_train_config, validate_config
from .loop import train

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
        raw = deep_update({"output": {"dir": str(Path("runs/finetune").resolve())},
                            "train": {"warmup_epochs": 1.0, "lr": 1e-4}}, overrides)
        cfg = validate_config(from_dict(TrainConfig, raw, "finetune"), "finetune")
    res = train(cfg, resume=args.resume, init_bundle=args.bundle)
    if res.bundle is not None:
        print(f"best epoch {res.best_epoch}; bundle: {res.bundle}")
    return 0
