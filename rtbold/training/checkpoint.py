"""The run folder and its resumable checkpoint.

Runs are resumable: after every epoch ``OUT/checkpoint/`` holds the weights (safetensors), the
optimizer state (``torch.save`` of tensors and plain numbers only, reloaded with
``weights_only=True``) and a JSON state; ``--resume`` continues from the next epoch. A JSON-lines log
of every epoch is appended to ``OUT/train_log.jsonl``. The best model ends as a bundle
``OUT/bundle.safetensors`` (see :func:`rtbold.models.save_bundle`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..config import to_dict
from .metadata import json_default

BUNDLE_NAME = "bundle.safetensors"
CHECKPOINT_DIR = "checkpoint"
LOG_NAME = "train_log.jsonl"
BEST_NAME = "best.safetensors"


def load_checkpoint(ckpt: Path, model, optimizer, device) -> dict:
    """Load weights and optimizer state from ``ckpt`` (in place); return the saved state
    (``epoch`` last finished, ``iteration``, ``best``, ``history``)."""
    import torch
    from safetensors.torch import load_file

    state_path = ckpt / "state.json"
    if not state_path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint in {ckpt} (missing state.json); "
                                "start without --resume.")
    state = json.loads(state_path.read_text())
    model.load_state_dict(load_file(str(ckpt / "model.safetensors"), device=str(device)))
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device,
                                         weights_only=True))
    state.setdefault("history", [])
    return state


def prepare_run_folder(out: Path, ckpt: Path, cfg, *, resume: bool) -> None:
    """Create the run and checkpoint folders, write ``config.json``; a fresh run drops the old
    log (rank 0 only)."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=1))
    if not resume:
        (out / LOG_NAME).unlink(missing_ok=True)


def append_log(out: Path, record: dict) -> None:
    """Append one epoch's record to ``OUT/train_log.jsonl``."""
    with open(out / LOG_NAME, "a", encoding="utf-8") as fid:
        fid.write(json.dumps(record) + "\n")


def save_checkpoint(ckpt: Path, model, optimizer, *, epoch: int, iteration: int, best: dict,
                    history: list[dict], improved: bool) -> None:
    """Write weights, optimizer state and JSON state; ``best.safetensors`` when ``improved``."""
    import torch
    from safetensors.torch import save_file

    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state_dict, str(ckpt / "model.safetensors.tmp"))
    if improved:
        shutil.copyfile(ckpt / "model.safetensors.tmp", ckpt / BEST_NAME)
    torch.save(optimizer.state_dict(), ckpt / "optimizer.pt.tmp")
    (ckpt / "state.json.tmp").write_text(json.dumps(
        {"epoch": epoch, "iteration": iteration, "best": best, "history": history},
        default=json_default))
    # rename last, state.json after the files it describes: a crash leaves a usable set
    os.replace(ckpt / "model.safetensors.tmp", ckpt / "model.safetensors")
    os.replace(ckpt / "optimizer.pt.tmp", ckpt / "optimizer.pt")
    os.replace(ckpt / "state.json.tmp", ckpt / "state.json")


def save_best(ckpt: Path, model) -> None:
    """Write ``model``'s weights as the best so far (e.g. the data-initialised model)."""
    from safetensors.torch import save_file

    ckpt.mkdir(parents=True, exist_ok=True)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state_dict, str(ckpt / (BEST_NAME + ".tmp")))
    os.replace(ckpt / (BEST_NAME + ".tmp"), ckpt / BEST_NAME)


def load_best(ckpt: Path, model, device) -> bool:
    """Load ``best.safetensors`` into ``model`` when it exists; return whether it did."""
    from safetensors.torch import load_file

    best_file = ckpt / BEST_NAME
    if not best_file.is_file():
        return False
    model.load_state_dict(load_file(str(best_file), device=str(device)))
    return True
