"""``rtbold calibrate SESSION_DIR``: calibrate a bundle on a recorded session (offline re-run of
the live calibration, with the same code and settings)."""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path

from ..config import ConfigError, load_toml
from .config import FINETUNE_KEYS, CalibrationConfig, load_calibration_config
from .finetune import calibrate_session

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="fine-tune a bundle on a recorded session's EEG and measured BOLD",
        description="Calibrate the model for the participant of a recorded session: fine-tune "
                    "on its paired (EEG window, measured BOLD) frames, hold out the last minutes, "
                    "and say whether the calibrated bundle predicts them better. Writes "
                    "SESSION_DIR/calibration/<time>/ (subject.safetensors, calibration.json, "
                    "calibration.png).")
    p.add_argument("session_dir", help="folder `rtbold run` recorded into (with measured.tsv)")
    p.add_argument("--bundle", default=None,
                   help="bundle to start from (default: the one the session ran)")
    p.add_argument("--config", default=None,
                   help="TOML with a [live.calibration] or [calibration] table")
    defaults = CalibrationConfig()
    for key in FINETUNE_KEYS:
        f = next(f for f in fields(CalibrationConfig) if f.name == key)
        choices = f.metadata.get("choices")
        kind = type(getattr(defaults, key)) if getattr(defaults, key) is not None else float
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None,
                       type=None if choices else kind, choices=choices,
                       help=f"[live.calibration] {key} (default {getattr(defaults, key)})")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=_cmd_calibrate)


def session_bundle(session_dir: str | Path) -> Path:
    """The bundle a recorded session ran (``session.json``), checked to exist."""
    from ..stream.config import resolve_bundle

    session_dir = Path(session_dir)
    meta_path = session_dir / "session.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{session_dir} holds no rtbold session (no session.json).")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    path = (meta.get("bundle") or {}).get("path")
    if not path:
        raise ValueError(f"{meta_path} does not name the bundle the session ran; pass --bundle.")
    bundle = resolve_bundle(path)
    if not bundle.is_file():
        raise FileNotFoundError(f"{meta_path} names the bundle {path}, which is not there (a "
                                "relative path is taken from the current folder); pass --bundle.")
    return bundle


def _cmd_calibrate(args) -> int:
    raw: dict = {}
    if args.config:
        doc = load_toml(args.config)
        raw = dict((doc.get("live") or {}).get("calibration") or doc.get("calibration") or {})
    for key in FINETUNE_KEYS:
        v = getattr(args, key)
        if v is not None:
            raw[key] = v
    cfg: CalibrationConfig = load_calibration_config(raw, args.config or "rtbold calibrate")
    bundle = Path(args.bundle) if args.bundle else session_bundle(args.session_dir)
    if not bundle.is_file():
        raise ConfigError(f"--bundle {bundle}: no such file.")
    res = calibrate_session(args.session_dir, bundle, cfg, out=args.out, progress=args.progress)
    print(res.line())
    verdict = "better on the held-out minutes" if res.accepted else \
        f"not better on the held-out minutes; keep {res.base_bundle}"
    print(f"subject bundle: {res.bundle} ({verdict})")
    print(f"report: {Path(res.folder) / 'calibration.json'}, {Path(res.folder) / 'calibration.png'}")
    return 0

