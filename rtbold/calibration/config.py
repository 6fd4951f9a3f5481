"""Calibration settings (``[live.calibration]``; ``rtbold calibrate`` options). No torch here:
the live configuration imports it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ConfigError, from_dict

__all__ = ["CalibrationConfig", "DEFAULT_LR", "FINETUNE_KEYS", "load_calibration_config"]

#: The settings of one calibration run (the others say when live calibrations start); each is
#: an option of ``rtbold calibrate`` (``--holdout-min`` for ``holdout_min``).
FINETUNE_KEYS = ("params", "holdout_min", "gap_s", "select_fraction", "epochs", "lr",
                 "batch_size", "anchor", "min_gain", "seed", "device", "threads")

#: Default learning rate of each parameter set.
DEFAULT_LR = {"heads": 2e-5, "last": 1e-5, "all": 5e-6}


@dataclass
class CalibrationConfig:
    """How to calibrate (``[live.calibration]`` of a live TOML; ``rtbold calibrate`` options)."""

    #: Live: start a calibration by itself once this many minutes of paired frames exist
    #: (0: only on request, the GUI's button or ``rtbold calibrate``).
    after_min: float = field(default=0.0, metadata={"range": (0.0, 600.0)})
    #: Live: calibrate again every this many further minutes of paired frames (0: once).
    every_min: float = field(default=0.0, metadata={"range": (0.0, 600.0)})
    #: What moves. ``readout`` (models with a linear band-power read-out: UnEBOLT-BP, ridge): a
    #: closed-form ridge of the model's residual on the read-out's inputs, shrunk towards the
    #: current read-out, penalty chosen on the selection part. ``heads`` (the region
    #: read-outs), ``last`` (also the adapter, fusion, band-power MLP and the last encoder
    #: blocks) or ``all``: gradient fine-tuning for ``epochs``.
    params: str = field(default="readout",
                        metadata={"choices": ("readout", "heads", "last", "all")})
    #: Minutes at the end of the paired frames held out for the verdict.
    holdout_min: float = field(default=2.0, metadata={"range": (0.5, 120.0)})
    #: Seconds left out between calibration and held-out frames (and before the selection part).
    gap_s: float = field(default=20.0, metadata={"range": (0.0, 600.0)})
    #: Share of the calibration frames (its end) that picks the epoch to keep.
    select_fraction: float = field(default=0.2, metadata={"range": (0.05, 0.5)})
    #: Gradient fine-tuning only (not ``readout``).
    epochs: int = field(default=10, metadata={"range": (1, 10_000)})
    #: Adam learning rate; None: 2e-5 (heads), 1e-5 (last), 5e-6 (all). The read-outs are wide
    #: (UnEBOLT-BP's band-power read-out has 1,040 inputs per region), so Adam's steps of about
    #: lr per weight add up: 1e-3 destroys the group model within an epoch.
    lr: float | None = field(default=None, metadata={"range": (0.0, 1.0)})
    batch_size: int = field(default=32, metadata={"range": (2, 4096)})
    #: Weight of the pull towards the starting weights (mean squared change per parameter).
    anchor: float = field(default=10.0, metadata={"range": (0.0, 1e6)})
    #: Accept only when held-out Tcorr rises by more than this.
    min_gain: float = field(default=0.0, metadata={"range": (-1.0, 1.0)})
    seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    #: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    device: str = field(default="cpu", metadata={"choices": ("auto", "cpu", "cuda")})
    #: Torch CPU threads of the calibration process (it must not starve acquisition).
    threads: int = field(default=1, metadata={"range": (1, 256)})

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR.get(self.params, 0.0)


def load_calibration_config(raw: dict | None, where: str = "calibration") -> CalibrationConfig:
    """A :class:`CalibrationConfig` from a TOML table (errors name ``where`` and the key)."""
    try:
        return from_dict(CalibrationConfig, raw or {}, where)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
