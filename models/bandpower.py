"""Channel-resolved log band power in torch: the ridge model and UnEBOLT's band-power branch.

Resting-state EEG-fMRI work regresses BOLD on lagged band power of every channel. The mean-pooled
embeddings of NeuroBOLT/UnEBOLT lose *which* channel carried the power, and on unseen subjects
they end up predicting one global time course for every region. This module keeps the channels
apart:

- :class:`BandPowerFeatures`: log10 band power per (2-s segment, channel, band) of the 16-s
  window, the exact twin of :func:`rtbold.models.baselines.band_power_features`, standardised with
  training-set statistics stored as buffers (so a bundle carries them and live use needs no
  per-scan statistics).
- :class:`RidgeBOLT`: ``[model] name = "ridge"``: those features and a linear readout, fitted in
  closed form by :class:`~rtbold.models.baselines.RidgeBandPower` and stored as a bundle like any
  model, so it is evaluated and run live through the same code (a fast CPU option).
- :class:`BandPowerBranch`: UnEBOLT's channel-resolved branch (``bandpower_branch = true``): the
  same linear readout (initialised from the ridge fit on the training data) plus a small MLP shared
  by all channels on each channel's (segment x band) power, read out per region. Its MLP readout
  starts at zero, so an initialised model starts as the ridge and training moves it from there.

**Session normalisation** (``bandpower.session_norm``): log band power differs between subjects
and caps (channel gains, impedances, individual alpha), and standardising each recording's
features with its own statistics helps unseen subjects most (on the benchmark: held-out Pixcorr
0.41 -> 0.51 for ridge). A live session cannot know its whole-recording statistics, so they are
*causal*: for the k-th window of a recording, the mean and SD over windows 1..k, shrunk towards the
training statistics with the weight of ``session_prior_windows`` windows
(:func:`causal_feature_stats` offline, :class:`SessionNormaliser` live; the same formula). The
model then takes these statistics as an input (``feature_stats``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .baselines import BANDS

__all__ = ["BandPowerConfig", "BandPowerFeatures", "BandPowerBranch", "RidgeConfig", "RidgeBOLT",
           "SessionNormaliser", "causal_feature_stats", "copy_ridge", "session_features"]


def _default_bands() -> list[list[float]]:
    return [list(v) for v in BANDS.values()]


@dataclass
class BandPowerConfig:
    """Feature layout: ``n_segments`` sub-windows of a window of ``n_samples`` at ``sfreq``."""

    sfreq: float = 200.0
    n_samples: int = 3200
    n_segments: int = 8
    bands: list[list[float]] = field(default_factory=_default_bands)
    #: standardise each recording's features with its own causal running statistics
    session_norm: bool = False
    #: weight (in windows) of the training statistics in the running estimate
    session_prior_windows: float = 10.0

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def segment(self) -> int:
        return self.n_samples // self.n_segments


class BandPowerFeatures(nn.Module):
    """(B, C, n_samples) -> standardised log band power (B, n_segments, C, n_bands).

    Same definition as :func:`~rtbold.models.baselines.band_power_features` (Hann taper per
    segment, mean periodogram bin in each band, ``log10(power + 1e-12)``); ``mean`` and ``scale``
    buffers (one per feature, in that function's (segment, channel, band) order) are set from
    training data by :meth:`set_standardisation`. With ``cfg.session_norm`` the log power is
    first standardised with the recording's running statistics (``stats``, see
    :func:`causal_feature_stats`; without them, with the training prior ``prior_mean`` /
    ``prior_scale`` as at the start of a session), then with ``mean`` / ``scale``.
    """

    def __init__(self, cfg: BandPowerConfig, n_channels: int) -> None:
        super().__init__()
        if cfg.n_samples % cfg.n_segments:
            raise ValueError(f"window of {cfg.n_samples} samples is not divisible into "
                             f"{cfg.n_segments} segments")
        self.cfg = cfg
        self.n_channels = int(n_channels)
        seg = cfg.segment
        freqs = np.fft.rfftfreq(seg, 1.0 / cfg.sfreq)
        cols = []
        for lo, hi in cfg.bands:
            m = (freqs >= lo) & (freqs < hi)
            if not m.any():
                raise ValueError(f"band {lo}-{hi} Hz has no FFT bin with {seg}-sample segments")
            cols.append(m / m.sum())
        self.register_buffer("taper", torch.from_numpy(np.hanning(seg)).float())
        self.register_buffer("band_matrix", torch.from_numpy(np.stack(cols, 1)).float())
        n_feat = cfg.n_segments * self.n_channels * cfg.n_bands
        self.register_buffer("mean", torch.zeros(n_feat))
        self.register_buffer("scale", torch.ones(n_feat))
        if cfg.session_norm:
            self.register_buffer("prior_mean", torch.zeros(n_feat))
            self.register_buffer("prior_scale", torch.ones(n_feat))

    @property
    def n_features(self) -> int:
        return int(self.mean.numel())

    def set_standardisation(self, mean: np.ndarray, scale: np.ndarray, *,
                            prior: bool = False) -> None:
        """Store per-feature mean and scale (e.g. ``RidgeBandPower.mean_`` / ``scale_``);
        ``prior=True`` sets the session normaliser's training prior instead."""
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32).reshape(-1)
        scale = torch.as_tensor(np.asarray(scale), dtype=torch.float32).reshape(-1)
        if mean.numel() != self.n_features or scale.numel() != self.n_features:
            raise ValueError(f"standardisation has {mean.numel()} values, the features "
                             f"{self.n_features}")
        if not (torch.isfinite(mean).all() and (scale > 0).all()):
            raise ValueError("standardisation must be finite with positive scales")
        if prior and not self.cfg.session_norm:
            raise ValueError("this model has no session normalisation (bandpower.session_norm)")
        (self.prior_mean if prior else self.mean).copy_(mean)
        (self.prior_scale if prior else self.scale).copy_(scale)

    def session_normaliser(self) -> SessionNormaliser | None:
        """A fresh live normaliser with this model's prior, or None without session_norm."""
        if not self.cfg.session_norm:
            return None
        return SessionNormaliser(self.prior_mean.numpy(), self.prior_scale.numpy(),
                                 self.cfg.session_prior_windows)

    def log_power(self, x: torch.Tensor) -> torch.Tensor:
        """Raw log10 band power (B, n_segments, C, n_bands), not standardised."""
        cfg = self.cfg
        b, c, n = x.shape
        if n != cfg.n_samples or c != self.n_channels:
            raise ValueError(f"expected input (batch, {self.n_channels}, {cfg.n_samples}), got "
                             f"{tuple(x.shape)}")
        # float32 whatever the autocast: the FFT of a bf16 signal loses the low-power bands
        xs = x.float().reshape(b, c, cfg.n_segments, cfg.segment)
        xs = xs - xs.mean(dim=-1, keepdim=True)
        power = torch.fft.rfft(xs * self.taper, dim=-1).abs().square()      # (B, C, S, F)
        bp = power @ self.band_matrix                                        # (B, C, S, nb)
        return torch.log10(bp + 1e-12).transpose(1, 2)                       # (B, S, C, nb)

    def forward(self, x: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
        return self.standardise(self.log_power(x).flatten(1), stats)

    def standardise(self, raw: torch.Tensor,
                    stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Raw log power (B, n_features), e.g. cached, -> the model's features
        (B, n_segments, C, n_bands): session statistics first (with ``session_norm``), then the
        stored ``mean`` / ``scale``."""
        flat = raw.float()
        if self.cfg.session_norm:
            m, s = stats if stats is not None else (self.prior_mean, self.prior_scale)
            flat = (flat - m.to(flat)) / s.to(flat)
        flat = (flat - self.mean) / self.scale
        return flat.reshape(len(flat), self.cfg.n_segments, self.n_channels, self.cfg.n_bands)


def causal_feature_stats(F: np.ndarray, prior_mean: np.ndarray, prior_scale: np.ndarray,
                         prior_windows: float) -> tuple[np.ndarray, np.ndarray]:
    """Running mean and SD of a recording's feature vectors, shrunk towards a prior.

    For window k (0-based, time order) with n0 = ``prior_windows``::

        mean_k = (n0 * mu0 + sum_{j<=k} f_j) / (n0 + k + 1)
        var_k  = (n0 * (sd0^2 + mu0^2) + sum_{j<=k} f_j^2) / (n0 + k + 1) - mean_k^2

    Parameters
    ----------
    F : array, shape (T, n_features)
        Raw log band power of the recording's windows in time order.
    prior_mean, prior_scale : array, shape (n_features,)
        Training statistics (mu0, sd0).
    prior_windows : float
        Their weight n0, in windows.

    Returns
    -------
    mean, scale : arrays, shape (T, n_features)
    """
    F = np.asarray(F, dtype=np.float64)
    mu0 = np.asarray(prior_mean, dtype=np.float64)
    sd0 = np.asarray(prior_scale, dtype=np.float64)
    k = np.arange(1, len(F) + 1, dtype=np.float64)[:, None]
    mean = (prior_windows * mu0 + np.cumsum(F, axis=0)) / (prior_windows + k)
    m2 = (prior_windows * (sd0 ** 2 + mu0 ** 2) + np.cumsum(F ** 2, axis=0)) / (prior_windows + k)
    return mean, np.sqrt(np.maximum(m2 - mean ** 2, _MIN_VAR))


#: Floor of the running variance (log10 power units squared).
_MIN_VAR = 1e-6


class SessionNormaliser:
    """Live twin of :func:`causal_feature_stats`: call :meth:`update` once per window, in order.

    Parameters
    ----------
    prior_mean, prior_scale : array, shape (n_features,)
    prior_windows : float
    """

    def __init__(self, prior_mean: np.ndarray, prior_scale: np.ndarray,
                 prior_windows: float) -> None:
        self.mu0 = np.asarray(prior_mean, dtype=np.float64).reshape(-1)
        self.sd0 = np.asarray(prior_scale, dtype=np.float64).reshape(-1)
        self.n0 = float(prior_windows)
        self.reset()

    def reset(self) -> None:
        """Forget the session (a new recording or participant)."""
        self.n = 0
        self.s1 = np.zeros_like(self.mu0)
        self.s2 = np.zeros_like(self.mu0)

    def update(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add one window's raw log band power (n_features,); return ``(mean, scale)``."""
        f = np.asarray(f, dtype=np.float64).reshape(-1)
        if f.shape != self.mu0.shape:
            raise ValueError(f"feature vector of {f.size} values, the normaliser has "
                             f"{self.mu0.size}")
        self.n += 1
        self.s1 += f
        self.s2 += f * f
        return self.stats()

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, scale)`` of the windows so far (the prior before the first)."""
        if self.n == 0:
            return self.mu0.copy(), self.sd0.copy()
        mean = (self.n0 * self.mu0 + self.s1) / (self.n0 + self.n)
        m2 = (self.n0 * (self.sd0 ** 2 + self.mu0 ** 2) + self.s2) / (self.n0 + self.n)
        return mean, np.sqrt(np.maximum(m2 - mean ** 2, _MIN_VAR))


def session_features(model: nn.Module) -> BandPowerFeatures | None:
    """The model's band-power features module when it uses session normalisation, else None.

    Such a model takes ``feature_stats=(mean, scale)`` (tensors (B, n_features)) in ``forward``:
    compute them with :func:`causal_feature_stats` (offline) or ``features.session_normaliser()``
    (live) from ``features.log_power(x)``.
    """
    for name in ("features", "bandpower"):
        part = getattr(model, name, None)
        feats = part if isinstance(part, BandPowerFeatures) else getattr(part, "features", None)
        if isinstance(feats, BandPowerFeatures):
            return feats if feats.cfg.session_norm else None
    return None


@dataclass
class RidgeConfig:
    """``[model] name = "ridge"``: ridge on lagged log band power (no encoder)."""

    bandpower: BandPowerConfig = field(default_factory=BandPowerConfig)
    #: Penalty chosen by cross-validation at fit time (recorded; not used by ``forward``).
    alpha: float | None = None

    @property
    def n_samples(self) -> int:
        return self.bandpower.n_samples


def check_channels(ch_names: Sequence[str], n_rois: int) -> list[str]:
    """Upper-cased channel names of a model input, refusing empty or duplicate names and
    ``n_rois < 1`` (every rtbold model checks its constructor arguments with this)."""
    if int(n_rois) < 1:
        raise ValueError(f"n_rois must be >= 1, got {n_rois}")
    names = [str(c).strip().upper() for c in ch_names]
    if not names:
        raise ValueError("ch_names is empty: the model needs at least one EEG channel")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise ValueError(f"duplicate channel names (case-insensitive): {dupes}")
    return names


class RidgeBOLT(nn.Module):
    """Ridge regression on lagged log band power as a torch module: (B, C, n) -> (B, n_rois).

    Built untrained (zero readout) by the registry; :meth:`load_estimator` copies a fitted
    :class:`~rtbold.models.baselines.RidgeBandPower` into it.
    """

    model_name = "ridge"

    def __init__(self, cfg: RidgeConfig, n_rois: int, ch_names: Sequence[str]) -> None:
        super().__init__()
        self.cfg = cfg
        self.ch_names = check_channels(ch_names, n_rois)
        self.n_rois = int(n_rois)
        self.size = "custom"
        self.features = BandPowerFeatures(cfg.bandpower, len(self.ch_names))
        self.readout = nn.Linear(self.features.n_features, self.n_rois)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)

    @property
    def n_samples(self) -> int:
        return self.cfg.n_samples

    def load_estimator(self, est) -> RidgeBOLT:
        """Copy a fitted ``RidgeBandPower`` (standardisation, coefficients, intercept) in."""
        copy_ridge(est, self.features, self.readout)
        self.cfg.alpha = float(est.alpha_)
        return self

    def forward(self, x: torch.Tensor,
                feature_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        return self.readout(self.features(x, feature_stats).flatten(1))


def copy_ridge(est, features: BandPowerFeatures, readout: nn.Linear) -> None:
    """Put a fitted ``RidgeBandPower`` into ``features`` (standardisation) and ``readout``."""
    if not hasattr(est, "coef_"):
        raise RuntimeError("the ridge estimator is not fitted")
    if est.coef_.shape != (features.n_features, readout.out_features):
        raise ValueError(f"ridge coefficients {est.coef_.shape} do not fit the model's "
                         f"({features.n_features}, {readout.out_features})")
    features.set_standardisation(est.mean_, est.scale_)
    with torch.no_grad():
        readout.weight.copy_(torch.as_tensor(est.coef_.T, dtype=torch.float32))
        readout.bias.copy_(torch.as_tensor(est.intercept_, dtype=torch.float32))


class BandPowerBranch(nn.Module):
    """UnEBOLT's channel-resolved branch: linear readout + channel-shared MLP readout.

    ``y = W f + b + V [m(f_1, c); ...; m(f_C, c)]`` with ``f`` the standardised features (all
    channels, segments, bands), ``f_c`` channel c's (segment x band) vector, ``m`` a two-layer MLP
    shared by all channels (width ``hidden``) and ``V`` a per-region readout that starts at zero.
    With ``context``, ``m`` also sees ``c``, the mean of ``f_c`` over channels: the brain state
    that every channel shares (e.g. vigilance, which scales how strongly band power follows
    regional activity), so the MLP can learn state-dependent coupling, which a linear readout
    cannot (README "Models", ablations).

    Parameters
    ----------
    cfg : BandPowerConfig
    n_channels, n_rois : int
    hidden : int
        Width of the channel-shared MLP; 0 leaves only the linear readout.
    dropout : float
        Dropout on the MLP's output.
    context : bool
        Give the MLP the across-channel mean features beside each channel's own.
    """

    def __init__(self, cfg: BandPowerConfig, n_channels: int, n_rois: int, hidden: int = 16,
                 dropout: float = 0.1, context: bool = False) -> None:
        super().__init__()
        self.features = BandPowerFeatures(cfg, n_channels)
        self.linear = nn.Linear(self.features.n_features, n_rois)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.hidden = int(hidden)
        self.context = bool(context)
        if self.hidden > 0:
            per_channel = cfg.n_segments * cfg.n_bands * (2 if self.context else 1)
            self.mlp = nn.Sequential(nn.Linear(per_channel, hidden), nn.GELU(),
                                     nn.Linear(hidden, hidden), nn.GELU())
            self.drop = nn.Dropout(dropout)
            self.mlp_readout = nn.Linear(n_channels * hidden, n_rois)
            nn.init.zeros_(self.mlp_readout.weight)
            nn.init.zeros_(self.mlp_readout.bias)
        else:
            self.mlp = self.drop = self.mlp_readout = None

    def forward(self, x: torch.Tensor,
                feature_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        return self.head(self.features(x, feature_stats))

    def head(self, f: torch.Tensor) -> torch.Tensor:
        """Readouts of standardised features ``f`` (B, S, C, nb) -> (B, n_rois)."""
        y = self.linear(f.flatten(1))
        if self.mlp is not None:
            per_ch = f.permute(0, 2, 1, 3).flatten(2)                        # (B, C, S * nb)
            if self.context:
                per_ch = torch.cat([per_ch, per_ch.mean(1, keepdim=True).expand_as(per_ch)], -1)
            z = self.drop(self.mlp(per_ch))                                  # (B, C, hidden)
            y = y + self.mlp_readout(z.flatten(1))
        return y
