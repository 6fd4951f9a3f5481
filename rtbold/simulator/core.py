"""Generate one simultaneous EEG-fMRI scan: latent drive, EEG envelopes, mixing, sensor noise.

Design reference: shared/design/SIMULATOR.md. In short, for region r with BOLD y_r:

1. ``u_hat_r``: neural drive, Wiener-deconvolved from y_r with the subject's HRF (semi-synthetic)
   or drawn with the group FC and a 1/f spectrum (synthetic; then y = HRF * u + noise).
2. ``u_eeg_r = sqrt(v_r) u_hat_r + sqrt(1 - v_r) z_r + innovation``: what the EEG sees. ``z`` is
   neural activity that does not reach the BOLD (a multivariate phase-randomised surrogate of
   ``u_hat``: same spectra and cross-region correlations, independent of y); ``v_r`` falls with
   the region's depth under the scalp; the innovation (0.15-1 Hz) is filtered out by the HRF.
3. Source envelopes ``log A_{b,s}(t) = kappa g(t) sum_r W_{b,s,r} u_eeg_r(t - lag_{b,r}) +
   state_{b,s}(t) + eps_{b,s}(t)`` with literature-signed W, vigilance ``V(t)`` (minus the global
   drive) scaling the coupling (g = 1 + state_coupling tanh V), posterior alpha (+) and slow
   bands (-), and envelope noise eps. Gamma is phase-amplitude coupled to alpha.
4. Band carriers times envelopes plus a 1/f background per source, mixed to 26 electrodes by a
   smooth distance kernel, average reference; then sensor 1/f + white noise, line noise, residual
   ballistocardiogram, blinks, movement bursts and per-channel gains.

The ceiling ``corr(y_r, HRF_r * u_eeg_r)`` is an upper bound on what the EEG carries about
region r: it ignores envelope noise, mixing and sensor noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt, sosfiltfilt

from ..atlas import load_atlas, load_group_fc
from ..montage import load_montage
from .bold import BoldSource, load_bold_source, select_scans, synthetic_latent
from .config import SimulatorConfig
from .geometry import BAND_NAMES, BANDS, load_geometry, region_prior_matrix
from .hrf import HRF_LENGTH_S, convolve, hrf_kernels, wiener_deconvolve
from .projection import RegionProjection, zscore_series

logger = logging.getLogger(__name__)

DT = 0.1  #: latent grid step (s)
MAX_INTERNAL_SFREQ = 500.0
MIN_SCALP_DISTANCE_MM = 15.0  #: no source is closer to an electrode than this  #: neural signals are generated at <= this rate, then upsampled
_SALT = {"subject": 1, "scan": 2, "source": 3, "block": 4, "sensor": 5}


def _rng(cfg: SimulatorConfig, what: str, *idx: int) -> np.random.Generator:
    """Independent stream per (seed, purpose, indices): results do not depend on call order."""
    return np.random.default_rng([cfg.seed, _SALT[what], *idx])


def _zscore(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    ref = x if mask is None else x[mask]
    sd = ref.std(0)
    return (x - ref.mean(0)) / np.where(sd > 0, sd, 1.0)


def _corr_cols(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a ** 2).sum(0) * (b ** 2).sum(0))
    return (a * b).sum(0) / np.where(den > 0, den, np.inf)


def internal_rate(sfreq: float) -> tuple[float, int]:
    """Rate for the neural signals and the integer upsampling factor to ``sfreq``."""
    up = max(1, int(np.ceil(sfreq / MAX_INTERNAL_SFREQ - 1e-9)))
    return sfreq / up, up


@dataclass(frozen=True)
class SubjectParams:
    """What stays fixed for one simulated subject."""

    index: int
    hrf_peaks: np.ndarray      # (64,) s
    iaf: float                 # individual alpha frequency (Hz)
    aperiodic: float           # 1/f exponent of the source background
    amplitude: float           # overall EEG amplitude factor
    visibility: np.ndarray     # (64,) fraction of the drive variance the EEG sees
    source_pos: np.ndarray     # (S, 3) m
    band_amp: np.ndarray       # (5, S) carrier amplitudes (relative)
    posterior: np.ndarray      # (S,) 0..1 posterior weight of each source
    weights: np.ndarray        # (5, S, 64) coupling W (before kappa)
    lags: np.ndarray           # (5, 64) latent-grid samples
    mixing: np.ndarray         # (26, S) average-referenced lead field
    gains: np.ndarray          # (26,) channel gains
    heart_rate: float          # beats/min


@lru_cache(maxsize=4)
def _source_candidates() -> tuple[np.ndarray, np.ndarray]:
    """Marker positions of cortical regions (m) and their region index."""
    geo = load_geometry()
    atlas = load_atlas(64)
    pts, owner = [], []
    for r, p in enumerate(geo.region_points):
        if atlas.non_neural[r] or geo.region_depth_mm[r] > 45.0:
            continue
        pts.extend(p)
        owner.extend([r] * len(p))
    return np.array(pts), np.array(owner)


def _farthest_points(points: np.ndarray, k: int) -> np.ndarray:
    """Deterministic farthest-point sampling (start: the most posterior point)."""
    k = min(k, len(points))
    chosen = [int(np.argmin(points[:, 1]))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return np.array(chosen)


def subject_params(cfg: SimulatorConfig, subject: int) -> SubjectParams:
    """Draw one subject's HRFs, alpha frequency, sources, coupling and sensor gains."""
    rng = _rng(cfg, "subject", subject)
    geo = load_geometry()
    atlas = load_atlas(64)
    peak = rng.uniform(cfg.hrf_peak_min, cfg.hrf_peak_max)
    peaks = np.clip(peak + cfg.hrf_region_jitter_s * rng.standard_normal(64),
                    cfg.hrf_peak_min - 1.0, cfg.hrf_peak_max + 1.0)
    iaf = float(np.clip(cfg.iaf_mean + cfg.iaf_sd * rng.standard_normal(), 7.5, 12.5))
    aperiodic = float(cfg.aperiodic_exponent + 0.15 * rng.standard_normal())
    amplitude = float(np.exp(0.2 * rng.standard_normal()))

    # visibility: deeper regions are seen less by scalp EEG; CSF/sinus components least
    vis = cfg.visibility * np.exp(-(geo.region_depth_mm - 10.0) / cfg.depth_scale_mm)
    vis = np.where(atlas.non_neural, 0.5 * vis, vis)
    vis = np.clip(vis, cfg.visibility_floor, 0.98)

    cand, _ = _source_candidates()
    pos = cand[_farthest_points(cand, cfg.n_sources)]
    pos = pos + 0.004 * rng.standard_normal(pos.shape)
    rel = pos - geo.centre
    posterior = 1.0 / (1.0 + np.exp(rel[:, 1] / 0.02))            # y < 0 is posterior
    frontal_mid = np.exp(-((rel[:, 1] - 0.05) ** 2 + rel[:, 0] ** 2) / (2 * 0.03 ** 2))
    central = np.exp(-(rel[:, 1] + 0.01) ** 2 / (2 * 0.025 ** 2))
    band_amp = np.stack([
        np.full(len(pos), 1.0),                  # delta
        0.6 + 1.0 * frontal_mid,                 # theta: frontal midline
        0.4 + 2.6 * posterior,                   # alpha: posterior (eyes closed rest)
        0.45 + 0.35 * central,                   # beta: rolandic
        np.full(len(pos), 0.12),                 # gamma
    ]) * np.exp(0.15 * rng.standard_normal((5, len(pos))))

    # coupling: literature sign/size x proximity of the source to the region x subject jitter
    prior = region_prior_matrix()                                  # (5, 64)
    d = np.stack([np.min(np.linalg.norm(pos[:, None, :] - p[None], axis=2), axis=1)
                  for p in geo.region_points], axis=1)             # (S, 64) m
    prox = np.exp(-(d * 1000.0) ** 2 / (2 * cfg.coupling_width_mm ** 2))
    thal = atlas.index("Thalamus")
    weights = prior[:, None, :] * prox[None]
    weights[BAND_NAMES.index("alpha"), :, thal] = prior[BAND_NAMES.index("alpha"), thal] * posterior
    jitter = rng.uniform(1 - cfg.coupling_jitter, 1 + cfg.coupling_jitter, weights.shape)
    weights = weights * jitter
    fc = load_group_fc()
    sd = np.sqrt(np.einsum("bsr,rq,bsq->bs", weights, fc, weights))
    weights = weights * (cfg.coupling_logsd / max(sd.max(), 1e-12))  # strongest source = logsd
    lags = np.round(rng.uniform(0.0, cfg.max_lag_s, (5, 64)) / DT).astype(int)

    # volume conduction: smooth decay with source-electrode distance, then average reference
    de = np.linalg.norm(geo.electrodes[:, None, :] - pos[None], axis=2) * 1000.0
    de = np.sqrt(de ** 2 + MIN_SCALP_DISTANCE_MM ** 2)  # CSF, skull and scalp in between
    lead = 1.0 / (1.0 + (de / cfg.conduction_width_mm) ** 2) ** 1.5
    lead = lead - lead.mean(0, keepdims=True)
    gains = np.exp(cfg.channel_gain_sd * rng.standard_normal(26))
    heart = float(np.clip(65 + 8 * rng.standard_normal(), 45, 95))
    return SubjectParams(subject, peaks, iaf, aperiodic, amplitude, vis, pos, band_amp, posterior,
                         weights, lags, lead, gains, heart)


@dataclass
class ScanResult:
    """One simulated scan in memory.

    Attributes
    ----------
    eeg : np.ndarray | None
        (26, n_times) float32, microvolts, average reference plus sensor noise.
    sfreq : float
    ch_names : list of str
        The montage's upper-case NeuroBOLT names.
    volume_samples, volume_onsets : np.ndarray
        (T,) sample index and time (s from sample 0) of each fMRI volume marker.
    bold : np.ndarray
        (T, P) region series written to the TSV (the real series in semi-synthetic mode; with a
        :class:`~rtbold.simulator.projection.RegionProjection`, the P = 128 or 256 series derived
        from them, ``extras["projection"]``).
    tr : float
    roi_names : list of str
        The P region names.
    ceiling : np.ndarray
        (P,) corr(bold, HRF * u_eeg): an upper bound on the EEG-explainable correlation (at
        P = 128 or 256, with HRF * u_eeg projected like the targets).
    explainable : np.ndarray
        (T, P) HRF * u_eeg at the volumes (the best BOLD the EEG could explain).
    deconv_fit : np.ndarray
        (64,) corr(bold, HRF * u_hat) of the 64 generating regions: how well the deconvolved
        drive re-creates the BOLD.
    oracle_r : np.ndarray
        (P,) held-out R of a ridge from the true source log-envelopes (last 30 % of the scan;
        NaN for scans under 100 volumes).
    latent_times, latent : np.ndarray
        (n_f,), (n_f, 64) float32: u_eeg of the 64 generating regions on the 10 Hz grid, same
        clock as the EEG.
    vigilance : np.ndarray
        (n_f,) the state variable.
    subject : SubjectParams
    source_scan : str
        The real scan (semi-synthetic) or "synthetic".
    """

    eeg: np.ndarray | None
    sfreq: float
    ch_names: list[str]
    volume_samples: np.ndarray
    volume_onsets: np.ndarray
    bold: np.ndarray
    tr: float
    roi_names: list[str]
    ceiling: np.ndarray
    explainable: np.ndarray
    deconv_fit: np.ndarray
    oracle_r: np.ndarray
    latent_times: np.ndarray
    latent: np.ndarray
    vigilance: np.ndarray
    subject: SubjectParams
    source_scan: str
    n_times: int = 0
    extras: dict = field(default_factory=dict)


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], tau_s: float) -> np.ndarray:
    """Unit-variance, stationary AR(1) noise along axis 0 on the latent grid."""
    from scipy.signal import lfilter

    phi = np.exp(-DT / tau_s)
    w = rng.standard_normal(shape)
    w[1:] *= np.sqrt(1 - phi ** 2)
    out, _ = lfilter([1.0], [1.0, -phi], w[1:], axis=0, zi=phi * w[:1])
    return np.concatenate([w[:1], out], axis=0)


def _powerlaw_noise(rng: np.random.Generator, n_ch: int, n: int, fs: float, exponent: float,
                    f_knee: float = 0.5) -> np.ndarray:
    """(n_ch, n) unit-RMS noise with a 1/f^exponent power spectrum, flat below ``f_knee``."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    shape = 1.0 / np.maximum(freqs, f_knee) ** (exponent / 2)
    shape[0] = 0.0
    x = np.empty((n_ch, n))
    for i in range(n_ch):  # row by row: keeps the FFT temporaries at one channel
        x[i] = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shape, n)
        x[i] /= x[i].std()
    return x


@lru_cache(maxsize=64)
def _band_filter(lo: float, hi: float, fs: float) -> tuple[np.ndarray, float]:
    sos = butter(2, [lo, hi], btype="bandpass", fs=fs, output="sos")
    imp = np.zeros(int(20 * fs))
    imp[0] = 1.0
    return sos, float(np.sqrt((sosfilt(sos, imp) ** 2).sum()))


class ScanSimulator:
    """Builds one scan; the EEG at the amplifier rate is produced block by block."""

    def __init__(self, cfg: SimulatorConfig, subject: int, scan: int,
                 source: BoldSource | None = None) -> None:
        self.cfg = cfg
        self.subject_index, self.scan_index = subject, scan
        self.params = subject_params(cfg, subject)
        self.atlas = load_atlas(64)
        self.f_int, self.up = internal_rate(cfg.sfreq)
        if cfg.mode == "semi":
            source = source if source is not None else select_scans(
                load_bold_source(cfg.bold_from or None, tr=cfg.tr), cfg.bold_scans)
            k = (subject * cfg.scans_per_subject + scan) % source.data.shape[0]
            if cfg.n_volumes > source.data.shape[1]:
                raise ValueError(
                    f"simulate.n_volumes = {cfg.n_volumes} but the BOLD series from "
                    f"{source.origin} has {source.data.shape[1]} volumes; lower n_volumes.")
            self.tr = source.tr
            self.source_scan = source.scans[k]
            self.bold = source.data[k, : cfg.n_volumes].copy()
        else:
            self.tr = cfg.tr
            self.source_scan = "synthetic"
            self.bold = None
        self._build_latent()
        self.n_int = int(round(self.duration * self.f_int))
        self.X: np.ndarray | None = None  # built on first use of blocks()

    # ---- latent drive -----------------------------------------------------------------------
    def _build_latent(self) -> None:
        cfg, p = self.cfg, self.params
        rng = _rng(cfg, "scan", self.subject_index, self.scan_index)
        T, tr = cfg.n_volumes, self.tr
        self.duration = cfg.lead_s + T * tr + cfg.tail_s
        t_start = -np.ceil(max(0.0, HRF_LENGTH_S - cfg.lead_s) + cfg.max_lag_s + 8.0)
        self.t_f = t_start + DT * np.arange(int(np.ceil((self.duration + 1.0 - t_start) / DT)))
        self.vol_t = cfg.lead_s + tr * np.arange(T)
        self.vol_idx = np.round((self.vol_t - self.t_f[0]) / DT).astype(int)
        kernels = hrf_kernels(p.hrf_peaks, DT, cfg.hrf_undershoot_ratio)
        scan_mask = (self.t_f >= cfg.lead_s) & (self.t_f < cfg.lead_s + T * tr)
        if cfg.mode == "semi":
            yz = _zscore(self.bold)
            npad = int(np.ceil((cfg.lead_s - t_start + 2 * HRF_LENGTH_S) / tr)) + 4
            y_ext = np.pad(yz, ((npad, npad), (0, 0)), mode="symmetric")
            t_ext = cfg.lead_s + tr * np.arange(-npad, T + npad)
            grid = np.arange(t_ext[0], t_ext[-1], DT)
            u_grid = wiener_deconvolve(CubicSpline(t_ext, y_ext)(grid), kernels, cfg.deconv_reg)
            u_hat = np.stack([np.interp(self.t_f, grid, u_grid[:, r]) for r in range(64)], 1)
        else:
            u_hat = synthetic_latent(len(self.t_f), DT, load_group_fc(), cfg.synthetic_exponent, rng)
            y = convolve(u_hat, kernels)[self.vol_idx]
            y = _zscore(y)
            self.bold = _zscore(y + cfg.bold_noise * rng.standard_normal(y.shape))
        u_hat = _zscore(u_hat, scan_mask)
        # EEG-visible activity that never reaches the BOLD: same spectra and cross-region
        # correlations as u_hat (shared random phases), independent of y
        n = len(self.t_f)
        spec = np.fft.rfft(u_hat, axis=0)
        phase = np.exp(2j * np.pi * rng.uniform(size=spec.shape[0]))
        phase[0] = 1.0
        z = _zscore(np.fft.irfft(spec * phase[:, None], n, axis=0), scan_mask)
        sos = butter(2, [0.15, 1.0], btype="bandpass", fs=1.0 / DT, output="sos")
        innov = _zscore(sosfiltfilt(sos, rng.standard_normal(u_hat.shape), axis=0))
        v = p.visibility
        u_eeg = np.sqrt(v) * u_hat + np.sqrt(1 - v) * z + cfg.innovation_sd * innov
        self.u_eeg = u_eeg
        self.explainable = convolve(u_eeg, kernels)[self.vol_idx]
        self.ceiling = _corr_cols(self.bold, self.explainable)
        self.deconv_fit = _corr_cols(self.bold, convolve(u_hat, kernels)[self.vol_idx])
        cortical = ~self.atlas.non_neural
        self.vigilance = _zscore(-u_eeg[:, cortical].mean(1), scan_mask)

        # source log-envelopes on the latent grid
        S = p.source_pos.shape[0]
        gain = 1.0 + cfg.state_coupling * np.tanh(self.vigilance)
        eps = _ar1(rng, (n, 5, S), cfg.envelope_noise_tau_s) * cfg.envelope_noise
        log_a = np.empty((n, 5, S))
        idx = np.arange(n)
        for b in range(5):
            shifted = np.stack([u_eeg[np.clip(idx - p.lags[b, r], 0, n - 1), r] for r in range(64)], 1)
            log_a[:, b] = cfg.coupling * gain[:, None] * (shifted @ p.weights[b].T)
        a, th, de = BAND_NAMES.index("alpha"), BAND_NAMES.index("theta"), BAND_NAMES.index("delta")
        log_a[:, a] += cfg.state_alpha * self.vigilance[:, None] * p.posterior[None]
        log_a[:, th] -= cfg.state_theta * self.vigilance[:, None]
        log_a[:, de] -= 0.5 * cfg.state_theta * self.vigilance[:, None]
        self.log_env = log_a + eps
        self.oracle_r = self._oracle()

    def _oracle(self, bold: np.ndarray | None = None) -> np.ndarray:
        """Noisy oracle: ridge from the true source log-envelopes (HRF-convolved) to the BOLD
        (``bold``, (T, P); default the 64-region series)."""
        T = self.cfg.n_volumes
        Y = self.bold if bold is None else bold
        if T < 100:
            return np.full(Y.shape[1], np.nan)
        n = self.log_env.shape[0]
        feats = self.log_env.reshape(n, -1)
        canon = hrf_kernels(np.array([5.0]), DT)[:, 0]
        X = fftconvolve(feats, canon[:, None], axes=0)[:n][self.vol_idx]
        n_train = int(0.7 * T)
        gap = int(np.ceil(20.0 / self.tr))
        Xtr, Xte = X[:n_train], X[n_train + gap:]
        mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-12
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
        Ytr, Yte = Y[:n_train], Y[n_train + gap:]
        lam = 0.1 * Xtr.shape[0]
        coef = np.linalg.solve(Xtr.T @ Xtr + lam * np.eye(X.shape[1]), Xtr.T @ (Ytr - Ytr.mean(0)))
        return _corr_cols(Yte, Xte @ coef)

    # ---- neural EEG at the internal rate -----------------------------------------------------
    def _build_neural(self) -> None:
        cfg, p = self.cfg, self.params
        fs = self.f_int
        n = int(round(self.duration * fs))
        self.n_int = n
        t = np.arange(n) / fs
        S = p.source_pos.shape[0]
        X = np.zeros((26, n))
        bands = [(lo, hi) for _, lo, hi in BANDS]
        bands[BAND_NAMES.index("alpha")] = (p.iaf - 2.0, p.iaf + 2.0)
        for s in range(S):
            rng = _rng(cfg, "source", self.subject_index, self.scan_index, s)
            sig = np.zeros(n)
            alpha_carrier = None
            for b, (lo, hi) in enumerate(bands):
                if hi >= 0.45 * fs:
                    continue
                sos, norm = _band_filter(lo, hi, fs)
                carrier = sosfilt(sos, rng.standard_normal(n)) / norm
                if b == BAND_NAMES.index("alpha"):
                    alpha_carrier = carrier
                if b == BAND_NAMES.index("gamma") and alpha_carrier is not None and cfg.pac > 0:
                    carrier = carrier * (1.0 + cfg.pac * np.tanh(alpha_carrier))
                env = np.exp(np.interp(t, self.t_f, self.log_env[:, b, s]))
                sig += p.band_amp[b, s] * env * carrier
            sig += 1.2 * _powerlaw_noise(rng, 1, n, fs, p.aperiodic)[0]
            X += p.mixing[:, s : s + 1] * sig
        rms = float(np.median(np.sqrt((X ** 2).mean(1))))
        X *= cfg.eeg_rms_uv * p.amplitude / rms
        self.neural_rms = cfg.eeg_rms_uv * p.amplitude
        X += self._sensor_low_rate(n, fs, t)
        X *= p.gains[:, None]
        self.X = X

    def _sensor_low_rate(self, n: int, fs: float, t: np.ndarray) -> np.ndarray:
        """Sensor 1/f noise, residual BCG, blinks and movement bursts at the internal rate."""
        cfg, p = self.cfg, self.params
        rng = _rng(cfg, "sensor", self.subject_index, self.scan_index)
        geo = load_geometry()
        noise_rms = self.neural_rms / cfg.snr
        out = np.sqrt(0.5) * noise_rms * _powerlaw_noise(rng, 26, n, fs, 1.0)
        rel = geo.electrodes - geo.centre
        if cfg.bcg_uv > 0:  # pulse-locked residual of the ballistocardiogram
            rr = 60.0 / p.heart_rate
            beats = np.cumsum(rr * (1 + 0.05 * rng.standard_normal(int(self.duration / rr) + 2)))
            beats = beats[beats < self.duration]
            train = np.zeros(n)
            train[np.minimum((beats * fs).astype(int), n - 1)] = 1 + 0.1 * rng.standard_normal(len(beats))
            tt = np.arange(int(0.7 * fs)) / fs
            tmpl = np.exp(-((tt - 0.22) / 0.04) ** 2) - 0.7 * np.exp(-((tt - 0.36) / 0.06) ** 2)
            wave = fftconvolve(train, tmpl)[:n]
            pattern = rel[:, 0] / np.abs(rel[:, 0]).max() + 0.3 * rng.standard_normal(26)
            out += cfg.bcg_uv * pattern[:, None] * wave[None]
        if cfg.blink_rate > 0 and cfg.blink_uv > 0:  # eye blinks, frontal-polar maximum
            eyes = np.array([[-0.032, 0.09, -0.035], [0.032, 0.09, -0.035]]) + [0, geo.centre[1], 0]
            de = np.min(np.linalg.norm(geo.electrodes[:, None] - eyes[None], axis=2), axis=1)
            w = np.exp(-(de - de.min()) / 0.03)
            times = np.cumsum(rng.exponential(1.0 / cfg.blink_rate, int(3 * self.duration * cfg.blink_rate) + 3))
            width = int(0.35 * fs)
            shape = np.hanning(width)
            for tb in times[times < self.duration - 0.5]:
                i0 = int(tb * fs)
                out[:, i0 : i0 + width] += (cfg.blink_uv * rng.uniform(0.7, 1.3) * w)[:, None] * shape
        if cfg.movement_rate_per_min > 0 and cfg.movement_uv > 0:  # rare head-movement bursts
            rate = cfg.movement_rate_per_min / 60.0
            times = np.cumsum(rng.exponential(1.0 / rate, int(3 * self.duration * rate) + 3))
            sos = butter(2, 3.0, fs=fs, output="sos")
            for tm in times[times < self.duration - 3.0]:
                m = int(rng.uniform(0.5, 3.0) * fs)
                i0 = int(tm * fs)
                burst = sosfilt(sos, rng.standard_normal((26, m)), axis=1)
                burst /= burst.std() + 1e-12
                out[:, i0 : i0 + m] += cfg.movement_uv * burst * np.hanning(m)[None]
        return out

    # ---- amplifier-rate output ----------------------------------------------------------------
    @property
    def n_times(self) -> int:
        return self.n_int * self.up

    @property
    def volume_samples(self) -> np.ndarray:
        return np.round(self.vol_t * self.cfg.sfreq).astype(int)

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield consecutive (26, m) float32 blocks in µV at the amplifier rate."""
        cfg = self.cfg
        if self.X is None:
            self._build_neural()
        step = max(1, int(round(cfg.block_s * self.f_int)))
        margin = 64
        noise_rms = self.neural_rms / cfg.snr
        white_sd = np.sqrt(0.5) * noise_rms * np.sqrt(cfg.sfreq / 250.0)
        rng0 = _rng(cfg, "sensor", self.subject_index, self.scan_index, 1)
        line_w = np.exp(0.5 * rng0.standard_normal(26)) * cfg.line_uv
        line_ph = rng0.uniform(0, 2 * np.pi, 26)
        for k, i0 in enumerate(range(0, self.n_int, step)):
            i1 = min(i0 + step, self.n_int)
            if self.up == 1:
                block = self.X[:, i0:i1].copy()
            else:
                s0, s1 = max(0, i0 - margin), min(self.n_int, i1 + margin)
                seg = resample_poly(self.X[:, s0:s1], self.up, 1, axis=1, padtype="line")
                block = seg[:, (i0 - s0) * self.up : (i1 - s0) * self.up]
            m = block.shape[1]
            rng = _rng(cfg, "block", self.subject_index, self.scan_index, k)
            block += white_sd * rng.standard_normal((26, m))
            if cfg.line_freq > 0 and cfg.line_uv > 0:
                tt = (i0 * self.up + np.arange(m)) / cfg.sfreq
                for h, amp in ((1, 1.0), (3, 0.3)):
                    f = h * cfg.line_freq
                    if f < 0.45 * cfg.sfreq:
                        block += (amp * line_w)[:, None] * np.sin(2 * np.pi * f * tt[None] + h * line_ph[:, None])
            yield block.astype(np.float32)

    def result(self, eeg: np.ndarray | None, projection: RegionProjection | None = None
               ) -> ScanResult:
        """The scan in memory; with ``projection``, its BOLD targets, explainable BOLD, ceiling
        and oracle at the projection's resolution (the EEG and the latent drive stay those of
        the 64 regions that generate them)."""
        vs = self.volume_samples
        bold, explainable, ceiling = self.bold, self.explainable, self.ceiling
        oracle, roi_names, extras = self.oracle_r, list(self.atlas.roi_names), {}
        if projection is not None:
            bold = zscore_series(projection.apply(self.bold))
            explainable = projection.apply(self.explainable)
            ceiling, oracle = _corr_cols(bold, explainable), self._oracle(bold)
            roi_names, extras = list(projection.roi_names), {"projection": projection}
        return ScanResult(
            eeg=eeg, sfreq=float(self.cfg.sfreq), ch_names=list(load_montage().ch_names),
            volume_samples=vs, volume_onsets=vs / self.cfg.sfreq, bold=bold, tr=self.tr,
            roi_names=roi_names, ceiling=ceiling, explainable=explainable,
            deconv_fit=self.deconv_fit, oracle_r=oracle,
            latent_times=self.t_f, latent=self.u_eeg.astype(np.float32),
            vigilance=self.vigilance.astype(np.float32), subject=self.params,
            source_scan=self.source_scan, n_times=self.n_times, extras=extras,
        )


def simulate_scan(config: SimulatorConfig | None = None, subject: int = 0, scan: int = 0, *,
                  source: BoldSource | None = None, keep_eeg: bool = True) -> ScanResult:
    """Simulate one scan in memory.

    Parameters
    ----------
    config : SimulatorConfig | None
        Knobs (defaults when None).
    subject, scan : int
        Zero-based indices; with the seed they fix every random draw.
    source : BoldSource | None
        Pre-loaded real series (semi-synthetic mode); loaded from ``config.bold_from`` if None.
    keep_eeg : bool
        If False, skip the amplifier-rate EEG (``eeg`` is None): latent, ceiling and BOLD only.

    Returns
    -------
    ScanResult
    """
    cfg = config if config is not None else SimulatorConfig()
    sim = ScanSimulator(cfg, subject, scan, source)
    eeg = np.concatenate(list(sim.blocks()), axis=1) if keep_eeg else None
    return sim.result(eeg)
