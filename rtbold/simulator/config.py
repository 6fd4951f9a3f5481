"""Knobs of the EEG-fMRI simulator (TOML section ``[simulate]``).

Every knob is documented in ``configs/simulate.toml``; the ranges below are what
:func:`rtbold.config.from_dict` enforces. Build a config with :func:`simulator_config`
(validates) rather than calling the dataclass directly when values come from users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, from_dict, load_config
from .scanner import ScannerConfig


@dataclass(frozen=True)
class SimulatorConfig:
    """All knobs of ``rtbold simulate``; defaults are the published benchmark settings."""

    # --- dataset shape -------------------------------------------------------------------
    mode: str = field(default="semi", metadata={"choices": ("semi", "synthetic")})
    n_subjects: int = field(default=4, metadata={"range": (1, 200)})
    #: Index of the first simulated subject: subjects offset .. offset + n_subjects - 1 are made
    #: (each subject's parameters and real BOLD scan depend on its index and the seed), so a
    #: held-out subject can be made alone, e.g. the demo recording.
    subject_offset: int = field(default=0, metadata={"range": (0, 10_000)})
    scans_per_subject: int = field(default=1, metadata={"range": (1, 20)})
    n_volumes: int = field(default=575, metadata={"range": (10, 5000)})
    tr: float = field(default=2.1, metadata={"range": (0.5, 5.0)})
    sfreq: float = field(default=250.0, metadata={"range": (100.0, 20000.0)})
    seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    bold_from: str = ""
    #: Which of the source's real scans drive the simulation, as 0-based indices and ranges
    #: ("0-16", "17-22", "0,3,5-7"); "" = all. Keep training and held-out datasets on disjoint
    #: sets so that no real fMRI scan of a held-out subject was ever seen in training.
    bold_scans: str = ""
    lead_s: float = field(default=20.0, metadata={"range": (0.0, 300.0)})
    tail_s: float = field(default=2.0, metadata={"range": (0.0, 60.0)})
    marker: str = "R149"
    # --- target resolution (opt-in; 64 = the real series themselves) ------------------------
    #: Regions of the written BOLD targets. 128 and 256 are derived from the 64-region series
    #: through the DiFuMo maps (:mod:`rtbold.simulator.projection`); the EEG is the same as at 64.
    n_regions: int = field(default=64, metadata={"choices": (64, 128, 256)})
    #: The DiFuMo-64 probabilistic maps (4-D NIfTI), for n_regions 128 or 256.
    source_maps: str = ""
    #: The DiFuMo-128 maps (4-D) or the DiFuMo-256 label image (3-D), for n_regions 128 or 256.
    target_maps: str = ""
    #: Smoothing (FWHM, mm) of the back-projected image before a label image's parcel means.
    target_smoothing_mm: float = field(default=6.0, metadata={"range": (0.0, 20.0)})
    # --- haemodynamics ---------------------------------------------------------------------
    hrf_peak_min: float = field(default=4.0, metadata={"range": (2.0, 10.0)})
    hrf_peak_max: float = field(default=7.0, metadata={"range": (2.0, 10.0)})
    hrf_region_jitter_s: float = field(default=0.5, metadata={"range": (0.0, 3.0)})
    hrf_undershoot_ratio: float = field(default=1 / 6, metadata={"range": (0.0, 1.0)})
    deconv_reg: float = field(default=0.02, metadata={"range": (1e-5, 10.0)})
    # --- what of the BOLD drive the EEG can see ---------------------------------------------
    visibility: float = field(default=0.8, metadata={"range": (0.0, 1.0)})
    depth_scale_mm: float = field(default=45.0, metadata={"range": (1.0, 1000.0)})
    sensory_bonus: float = field(default=0.3, metadata={"range": (0.0, 3.0)})
    visibility_floor: float = field(default=0.2, metadata={"range": (0.0, 1.0)})
    innovation_sd: float = field(default=0.3, metadata={"range": (0.0, 5.0)})
    # --- sources and coupling ---------------------------------------------------------------
    n_sources: int = field(default=32, metadata={"range": (4, 96)})
    coupling: float = field(default=1.0, metadata={"range": (0.0, 10.0)})
    coupling_logsd: float = field(default=0.7, metadata={"range": (0.0, 3.0)})
    coupling_jitter: float = field(default=0.3, metadata={"range": (0.0, 0.95)})
    coupling_width_mm: float = field(default=30.0, metadata={"range": (5.0, 200.0)})
    max_lag_s: float = field(default=1.0, metadata={"range": (0.0, 5.0)})
    envelope_noise: float = field(default=0.3, metadata={"range": (0.0, 3.0)})
    envelope_noise_tau_s: float = field(default=1.0, metadata={"range": (0.1, 30.0)})
    state_alpha: float = field(default=0.3, metadata={"range": (0.0, 2.0)})
    state_theta: float = field(default=0.2, metadata={"range": (0.0, 2.0)})
    state_coupling: float = field(default=0.3, metadata={"range": (0.0, 0.95)})
    pac: float = field(default=0.3, metadata={"range": (0.0, 1.0)})
    iaf_mean: float = field(default=10.0, metadata={"range": (7.0, 13.0)})
    iaf_sd: float = field(default=0.7, metadata={"range": (0.0, 2.0)})
    aperiodic_exponent: float = field(default=1.6, metadata={"range": (0.5, 3.0)})
    conduction_width_mm: float = field(default=35.0, metadata={"range": (5.0, 200.0)})
    # --- sensor level -------------------------------------------------------------------------
    eeg_rms_uv: float = field(default=20.0, metadata={"range": (1.0, 200.0)})
    snr: float = field(default=3.0, metadata={"range": (0.05, 1000.0)})
    line_freq: float = field(default=50.0, metadata={"choices": (0.0, 50.0, 60.0)})
    line_uv: float = field(default=2.0, metadata={"range": (0.0, 100.0)})
    bcg_uv: float = field(default=4.0, metadata={"range": (0.0, 100.0)})
    blink_rate: float = field(default=0.05, metadata={"range": (0.0, 2.0)})
    blink_uv: float = field(default=100.0, metadata={"range": (0.0, 1000.0)})
    movement_rate_per_min: float = field(default=0.3, metadata={"range": (0.0, 30.0)})
    movement_uv: float = field(default=150.0, metadata={"range": (0.0, 5000.0)})
    channel_gain_sd: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    # --- synthetic mode -------------------------------------------------------------------------
    bold_noise: float = field(default=0.3, metadata={"range": (0.0, 5.0)})
    synthetic_exponent: float = field(default=1.0, metadata={"range": (0.0, 3.0)})
    # --- engineering ------------------------------------------------------------------------------
    block_s: float = field(default=10.0, metadata={"range": (1.0, 600.0)})
    # --- in-scanner mode (opt-in; rtbold.simulator.scanner) -----------------------------------
    scanner: ScannerConfig = field(default_factory=ScannerConfig)

    def __post_init__(self) -> None:
        if self.hrf_peak_min > self.hrf_peak_max:
            raise ConfigError(f"simulate.hrf_peak_min ({self.hrf_peak_min}) must not exceed "
                              f"simulate.hrf_peak_max ({self.hrf_peak_max}).")
        if self.n_regions != 64 and not (self.source_maps and self.target_maps):
            raise ConfigError(
                f"simulate.n_regions = {self.n_regions} derives the targets from the real "
                "DiFuMo-64 series through the atlas maps: give simulate.source_maps (the DiFuMo-64 "
                "4-D maps) and simulate.target_maps (the DiFuMo-128 4-D maps or the DiFuMo-256 3-D "
                "label image), e.g. --source-maps difumo64_2mm_maps.nii.gz --target-maps "
                "difumo128_2mm_maps.nii.gz. rtbold neither ships nor downloads the maps.")
        if self.n_regions == 64 and (self.source_maps or self.target_maps):
            raise ConfigError("simulate.source_maps / target_maps are used only with "
                              "simulate.n_regions = 128 or 256; remove them or set n_regions.")
        if self.scanner.enabled and self.sfreq < 1000.0:
            raise ConfigError(f"simulate.sfreq = {self.sfreq:g} Hz: the in-scanner mode needs the "
                              "amplifier rate of an MR amplifier (>= 1000 Hz, 5000 Hz usually) "
                              "for the gradient artefact.")
        if not re.fullmatch(r"[SR]\s*\d{1,3}", self.marker):
            raise ConfigError(f"simulate.marker: {self.marker!r} is not a BrainVision marker like "
                              "'R149' or 'S1' (S = Stimulus, R = Response, then 1-999).")


def simulator_config(data: dict[str, Any] | None = None, where: str = "simulate",
                     **overrides: Any) -> SimulatorConfig:
    """Validated :class:`SimulatorConfig` from a mapping plus keyword overrides."""
    merged = dict(data or {})
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(SimulatorConfig, merged, where)


def load_simulator_config(path: str | Path | None = None, **overrides: Any) -> SimulatorConfig:
    """Read ``[simulate]`` from a TOML file (defaults when ``path`` is None), then apply overrides."""
    cfg = SimulatorConfig() if path is None else load_config(path, SimulatorConfig, "simulate")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return cfg
    from ..config import to_dict

    base = to_dict(cfg)
    if isinstance(overrides.get("scanner"), dict):  # scanner knobs on top of the file's
        overrides["scanner"] = {**base["scanner"], **overrides["scanner"]}
    base.update(overrides)
    return from_dict(SimulatorConfig, base, "simulate (command line)")


def with_overrides(cfg: SimulatorConfig, **kw: Any) -> SimulatorConfig:
    """Copy of ``cfg`` with fields replaced (validated)."""
    from ..config import to_dict

    base = to_dict(cfg)
    base.update(kw)
    return from_dict(SimulatorConfig, base, "simulate")


def knobs_dict(cfg: SimulatorConfig) -> dict[str, Any]:
    """The knobs as written to ``knobs.json``; the in-scanner table only when that mode is on
    (so the default output stays byte for byte what it was)."""
    from ..config import to_dict

    out = to_dict(cfg)
    if not cfg.scanner.enabled:
        out.pop("scanner")
    return out


def in_scanner_config(data: dict[str, Any] | None = None, **overrides: Any) -> SimulatorConfig:
    """Config of the in-scanner mode: 5 kHz and ``R128`` markers unless given otherwise.

    ``data`` is a ``[simulate]`` table (its ``scanner`` table included); ``overrides`` are
    top-level knobs, and ``scanner=dict(...)`` knobs of the scanner table.
    """
    merged = {"sfreq": 5000.0, "marker": "R128", **(data or {})}
    scanner = {**merged.get("scanner", {}), **overrides.pop("scanner", {}), "enabled": True}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    merged["scanner"] = scanner
    return from_dict(SimulatorConfig, merged, "simulate")


__all__ = ["ScannerConfig", "SimulatorConfig", "simulator_config", "load_simulator_config",
           "with_overrides", "knobs_dict", "in_scanner_config"]
