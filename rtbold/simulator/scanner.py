"""In-scanner mode: the gradient artefact, the ECG and the ballistocardiogram of a 3 T scanner.

Opt-in (``[simulate.scanner] enabled = true``, ``rtbold simulate --in-scanner``); the default
output of the simulator does not change. The clean EEG is the simulator's usual output at the
amplifier rate; this module adds, block by block so a 20-min recording at 5 kHz never sits in
memory:

* **gradient artefact** (GA): the time derivative of the imaging gradients, as a BrainAmp MR
  records it through its 1-kHz anti-alias filter. Every excitation ("shot", ``slices /
  multiband`` per volume, evenly spread over the TR less ``silent_s``) has a slice-select pair of
  ramps and a crusher (z), an EPI read-out at 800 Hz (x), phase-encode blips (y) and a damped
  25-Hz vibration of the leads. Each channel sees the three axes with weights from its position
  (loop areas grow away from the reference at FCz), scaled so the peak-to-peak amplitude spans
  ``ga_min_uv`` to ``ga_max_uv`` over the channels (the ECG lead gets the most). Per volume the
  artefact starts a fraction of a sample after its trigger (``ga_jitter_samples``, uniform: 0 is
  a sync box, 0.5 none) and each channel-axis weight drifts slowly (``ga_drift``, SD of a
  ~100-s random process, as from head movement).
* **ECG** (channel ``ECG``, type ECG): P-QRS-T with a T wave inflated by the magnetohydrodynamic
  effect (``ecg_t_ratio`` x the R wave), baseline wander and noise; beats from the subject's
  heart rate with heart-rate variability (``hrv``, AR(1) RR changes) and respiratory sinus
  arrhythmia (``rsa`` at 0.25 Hz).
* **ballistocardiogram** (BCG): three smooth waveforms (1-8 Hz) starting ``bcg_delay_s`` after
  each R-peak and lasting ~0.7 s, mixed with spatially smooth channel weights that grow towards
  lateral and temporal electrodes; median channel peak-to-peak ``bcg_uv``; per beat the amplitude
  (``bcg_amp_sd``), the mixture of the waveforms (``bcg_shape_sd``), its onset (``bcg_jitter_s``,
  as the pulse transit time varies), a 1 % random time scale and a time warp with the RR
  interval (shorter beats, faster artefact: RR^-1/4) change the shape.
* **triggers**: one marker per volume (``R128`` by default in this mode), ``dropped_triggers``
  of them left out and ``doubled_triggers`` doubled 2-50 ms later.

Literature values (SCANNER.md: Allen et al. 1998, 2000; Niazy et al. 2005; Mullinger & Bowtell
2011): GA up to several mV (10-100 x the EEG), BCG 50-200 µV at 3 T, larger laterally, from
~0.2 s after the R-peak for 0.5-0.7 s, most energy at 1-10 Hz.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from .geometry import load_geometry

#: Name of the simulated ECG channel.
ECG_NAME = "ECG"
_SALT = 6  # random streams of this mode (the default mode uses 1-5)
_ECG_POS = np.array([0.0, -0.06, -0.25])  # the ECG electrode on the back, relative to the centre
_REF_POS = np.array([0.0, 0.02, 0.09])  # FCz, the usual reference of MR caps
_VIB_HZ, _VIB_TAU_S, _VIB_REL = 25.0, 0.02, 0.15
_RO_HZ = 800.0


@dataclass(frozen=True)
class ScannerConfig:
    """Knobs of the in-scanner mode (``[simulate.scanner]``); defaults from SCANNER.md."""

    enabled: bool = False
    #: Slices per volume and multiband factor: slices / multiband excitations per TR.
    slices: int = field(default=60, metadata={"range": (1, 512)})
    multiband: int = field(default=3, metadata={"range": (1, 16)})
    #: Gradient-free time at the end of each TR (s) (0: slices spread over the whole TR).
    silent_s: float = field(default=0.0, metadata={"range": (0.0, 10.0)})
    #: Peak-to-peak gradient artefact (µV) on the least and the most exposed EEG channel.
    ga_min_uv: float = field(default=500.0, metadata={"range": (0.0, 1e5)})
    ga_max_uv: float = field(default=5000.0, metadata={"range": (0.0, 1e5)})
    #: Per-volume onset jitter (samples, uniform within +-): 0 = sync box, 0.5 = none.
    ga_jitter_samples: float = field(default=0.1, metadata={"range": (0.0, 5.0)})
    #: Slow drift of each channel's artefact weights (SD, relative), as from head movement.
    ga_drift: float = field(default=0.05, metadata={"range": (0.0, 1.0)})
    #: ECG R-wave amplitude (µV) and the inflated T wave relative to it.
    ecg_uv: float = field(default=800.0, metadata={"range": (0.0, 1e5)})
    ecg_t_ratio: float = field(default=1.2, metadata={"range": (0.0, 5.0)})
    #: Heart-rate variability: SD of the relative RR change (AR(1)) and the respiratory sinus
    #: arrhythmia amplitude (relative, 0.25 Hz).
    hrv: float = field(default=0.04, metadata={"range": (0.0, 0.5)})
    rsa: float = field(default=0.03, metadata={"range": (0.0, 0.5)})
    #: Median channel peak-to-peak of the BCG (µV), its start after the R-peak (s), and the
    #: beat-to-beat SD of its amplitude and of its shape (relative).
    bcg_uv: float = field(default=100.0, metadata={"range": (0.0, 5000.0)})
    bcg_delay_s: float = field(default=0.2, metadata={"range": (0.0, 0.5)})
    bcg_amp_sd: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    bcg_shape_sd: float = field(default=0.15, metadata={"range": (0.0, 1.0)})
    #: SD of the BCG onset after the R-peak, beat to beat (s; pulse transit time).
    bcg_jitter_s: float = field(default=0.003, metadata={"range": (0.0, 0.1)})
    #: Volume triggers left out, and doubled (an extra marker 2-50 ms later), per scan.
    dropped_triggers: int = field(default=0, metadata={"range": (0, 1000)})
    doubled_triggers: int = field(default=0, metadata={"range": (0, 1000)})


def _gauss(t: np.ndarray, c: float, s: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - c) / s) ** 2)


def _dgauss(t: np.ndarray, c: float, s: float) -> np.ndarray:
    """Derivative-of-Gaussian pulse (a ramp of a gradient, as its derivative), peak 1."""
    u = (t - c) / s
    return -u * np.exp(0.5 - 0.5 * u ** 2)


def shot_waveform(tau: np.ndarray, shot_s: float) -> np.ndarray:
    """(3, n) dG/dt of one excitation (x read-out, y phase encoding, z slice select) at ``tau``
    seconds from its start, in arbitrary units; zero outside [0, shot_s)."""
    tau = np.asarray(tau, dtype=np.float64)
    out = np.zeros((3, tau.size))
    on = (tau >= 0) & (tau < shot_s)
    t = tau[on]
    ms = 1e-3
    # z: slice-select trapezoid (ramps up and down), refocusing lobe, crusher at the end.
    z = (_gauss(t, 0.5 * ms, 0.2 * ms) - _gauss(t, 3.0 * ms, 0.2 * ms)
         - 0.5 * _gauss(t, 3.3 * ms, 0.2 * ms) + 0.5 * _gauss(t, 4.4 * ms, 0.2 * ms)
         + 1.5 * _gauss(t, shot_s - 6 * ms, 0.3 * ms) - 1.5 * _gauss(t, shot_s - 3 * ms, 0.3 * ms))
    # x: prephaser, then the EPI read-out (a bipolar trapezoid train: ~sinusoidal dG/dt).
    r0 = 6.0 * ms
    r1 = r0 + min(0.5 * shot_s, 0.045)
    edge = np.clip((t - r0) / (1 * ms), 0, 1) * np.clip((r1 - t) / (1 * ms), 0, 1)
    window = 0.5 - 0.5 * np.cos(np.pi * edge)
    x = 1.2 * window * np.sin(2 * np.pi * _RO_HZ * (t - r0)) - 0.8 * _dgauss(t, r0 - ms, 0.3 * ms)
    # y: phase-encode blips at every echo (their train, band-limited) and the prephaser.
    y = 0.3 * window * np.sin(2 * np.pi * 2 * _RO_HZ * (t - r0) + 0.7) \
        + 0.6 * _dgauss(t, r0 - 1.5 * ms, 0.3 * ms)
    # Lead vibration after the crusher-heavy start of the shot: a damped 25-Hz swing.
    vib = _VIB_REL * np.exp(-t / _VIB_TAU_S) * np.sin(2 * np.pi * _VIB_HZ * t)
    out[:, on] = np.stack([x + vib, y + 0.5 * vib, z + vib])
    return out


@dataclass
class ScannerTruth:
    """What the in-scanner mode put in (written to ``derivatives/`` as ground truth)."""

    volume_samples: np.ndarray  # (T,) true volume onsets (samples)
    marker_samples: np.ndarray  # markers as written (dropped left out, doubled added)
    dropped: np.ndarray  # volume indices whose trigger is missing
    doubled: np.ndarray  # volume indices whose trigger is doubled
    jitter_samples: np.ndarray  # (T,) onset of the artefact after its trigger
    r_peaks: np.ndarray  # (B,) R-peak times (s from sample 0)
    bcg_scale: np.ndarray  # (B,) beat amplitude factors
    ga_ptp_uv: np.ndarray  # (C + 1,) peak-to-peak gradient artefact per channel (ECG last)
    bcg_ptp_uv: np.ndarray  # (C,) peak-to-peak mean BCG per channel


class ScannerArtifacts:
    """The artefacts of one scan, generated for any block of samples.

    Parameters
    ----------
    cfg : ScannerConfig
    sfreq : float
        Amplifier rate (Hz).
    n_times : int
        Samples in the recording.
    volume_samples : array (T,)
        Sample of each volume's trigger.
    tr : float
        Repetition time (s).
    heart_rate : float
        The subject's heart rate (beats/min).
    seed : sequence of int
        Seeds the random stream (the simulator's seed, subject and scan).
    """

    def __init__(self, cfg: ScannerConfig, sfreq: float, n_times: int,
                 volume_samples: np.ndarray, tr: float, heart_rate: float, seed) -> None:
        self.cfg, self.sfreq, self.n_times, self.tr = cfg, float(sfreq), int(n_times), float(tr)
        self.volume_samples = np.asarray(volume_samples, dtype=np.int64)
        rng = np.random.default_rng([*seed, _SALT])
        geo = load_geometry()
        n_ch = geo.electrodes.shape[0]
        T = len(self.volume_samples)
        duration = self.n_times / self.sfreq
        self.n_shots = max(1, cfg.slices // cfg.multiband)
        self.shot_s = (self.tr - cfg.silent_s) / self.n_shots

        # --- gradient artefact: per-channel axis weights from the position, then scaled -----
        rel = np.vstack([geo.electrodes - geo.centre, _ECG_POS])  # (C + 1, 3), ECG last
        arm = rel - _REF_POS
        w = np.stack([arm[:, 1] * rel[:, 2] + 0.3 * arm[:, 0],  # x gradient
                      arm[:, 0] * rel[:, 2] + 0.3 * arm[:, 1],  # y
                      arm[:, 0] ** 2 + arm[:, 1] ** 2 + 0.2 * np.abs(arm[:, 2])], 1)  # z
        w = w / np.abs(w).max(0) * np.exp(0.2 * rng.standard_normal(w.shape))
        unit = self._volume_unit(w, 0.0)  # (C + 1, L) one volume at unit scale
        ptp = np.ptp(unit, axis=1)
        reach = np.linalg.norm(arm, axis=1)
        q = (reach - reach[:-1].min()) / max(np.ptp(reach[:-1]), 1e-9)
        target = cfg.ga_min_uv + (cfg.ga_max_uv - cfg.ga_min_uv) * np.clip(q, 0, None)
        target[-1] = 1.5 * cfg.ga_max_uv  # the ECG lead runs the longest loop
        self.ga_weights = w * (target / np.where(ptp > 0, ptp, 1.0))[:, None]
        self.ga_ptp = target
        self.jitter = rng.uniform(-cfg.ga_jitter_samples, cfg.ga_jitter_samples, T)
        # Drift: a smooth (~100 s) unit-SD process per channel and axis, sampled per volume.
        phi = np.exp(-self.tr / 100.0)
        drift = lfilter([np.sqrt(1 - phi ** 2)], [1, -phi],
                        rng.standard_normal((T, w.shape[0], 3)), axis=0)
        self.drift = 1.0 + cfg.ga_drift * drift  # (T, C + 1, 3)

        # --- triggers ------------------------------------------------------------------------
        pool = np.arange(3, max(3, T - 2))
        n_drop = min(cfg.dropped_triggers, len(pool))
        self.dropped = np.sort(rng.choice(pool, n_drop, replace=False)) if n_drop else \
            np.zeros(0, dtype=np.int64)
        rest = np.setdiff1d(pool, self.dropped)
        n_dbl = min(cfg.doubled_triggers, len(rest))
        self.doubled = np.sort(rng.choice(rest, n_dbl, replace=False)) if n_dbl else \
            np.zeros(0, dtype=np.int64)
        keep = np.setdiff1d(np.arange(T), self.dropped)
        extra = self.volume_samples[self.doubled] + np.round(
            rng.uniform(0.002, 0.05, len(self.doubled)) * self.sfreq).astype(np.int64)
        self.marker_samples = np.sort(np.concatenate([self.volume_samples[keep], extra]))

        # --- heart: beats with HRV and RSA ---------------------------------------------------
        rr0 = 60.0 / heart_rate
        n_beats = int(duration / rr0 * 1.5) + 10
        ar = lfilter([np.sqrt(1 - 0.7 ** 2)], [1, -0.7], rng.standard_normal(n_beats))
        resp_phase = rng.uniform(0, 2 * np.pi)
        beats, t = [], -rng.uniform(0, rr0)
        for i in range(n_beats):
            rr = rr0 * (1 + cfg.hrv * ar[i] + cfg.rsa * np.sin(2 * np.pi * 0.25 * t + resp_phase))
            t += max(rr, 0.3)
            if t > duration + 1.0:
                break
            beats.append(t)
        self.r_peaks = np.array(beats)
        rr = np.diff(np.r_[self.r_peaks[0] - rr0, self.r_peaks])
        self.rr_rel = rr / rr0
        nb = len(self.r_peaks)
        self.bcg_scale = np.exp(cfg.bcg_amp_sd * rng.standard_normal(nb))
        self.bcg_mix = 1.0 + cfg.bcg_shape_sd * rng.standard_normal((nb, 3))
        self.bcg_onset = cfg.bcg_delay_s + cfg.bcg_jitter_s * rng.standard_normal(nb)
        self.t_scale = np.exp(0.01 * rng.standard_normal(nb))
        # BCG channel weights: smooth over the head, larger laterally and temporally.
        r = rel[:-1] / np.abs(rel[:-1]).max(0)
        lateral = 0.6 + np.abs(r[:, 0]) + 0.3 * np.clip(-r[:, 2], 0, None)
        coef = rng.standard_normal((3, 3))
        bw = lateral[:, None] * (r @ coef + 0.35 * rng.standard_normal((n_ch, 3)))
        mean_wave = self._bcg_waves(np.arange(int(0.8 * self.sfreq)) / self.sfreq,
                                    np.ones(3), 1.0)
        ptp_unit = np.ptp(bw @ mean_wave, axis=1)
        self.bcg_weights = bw * (cfg.bcg_uv / max(np.median(ptp_unit), 1e-12))
        self.bcg_ptp = np.ptp(self.bcg_weights @ mean_wave, axis=1)
        self.ecg_t_amp = cfg.ecg_t_ratio * np.exp(0.15 * rng.standard_normal(nb))
        self._ecg_noise_seed = rng.integers(2**31)
        self._wander_phase = rng.uniform(0, 2 * np.pi, 2)

    # -- waveforms ----------------------------------------------------------------------------
    def _volume_unit(self, w: np.ndarray, jitter: float) -> np.ndarray:
        L = int(round(self.tr * self.sfreq))
        tau = (np.arange(L) - jitter) / self.sfreq
        return w @ self._axes(tau)

    def _axes(self, tau: np.ndarray) -> np.ndarray:
        """(3, n) gradient waveform at ``tau`` seconds from the volume start."""
        shot = np.floor(tau / self.shot_s)
        inside = (shot >= 0) & (shot < self.n_shots)
        out = np.zeros((3, tau.size))
        if inside.any():
            out[:, inside] = shot_waveform(tau[inside] - shot[inside] * self.shot_s, self.shot_s)
        return out

    @staticmethod
    def _bcg_waves(u: np.ndarray, mix: np.ndarray, warp: float) -> np.ndarray:
        """(3, n) the three BCG waveforms at ``u`` s after their onset (zero before it)."""
        u = np.asarray(u) * warp
        on = (u >= 0) & (u < 0.75)
        v = u[on]
        taper = np.sin(np.pi * v / 0.75) ** 0.5
        waves = np.zeros((3, u.size))
        waves[0, on] = mix[0] * np.sin(2 * np.pi * 2.5 * v) * _gauss(v, 0.22, 0.12)
        waves[1, on] = mix[1] * np.sin(2 * np.pi * 5.0 * v + 1.0) * _gauss(v, 0.15, 0.08)
        waves[2, on] = mix[2] * (_gauss(v, 0.35, 0.1) - 0.5 * _gauss(v, 0.55, 0.1)) * taper
        return waves

    # -- blocks ---------------------------------------------------------------------------------
    def block(self, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples [i0, i1): gradient artefact (C + 1, m) with the ECG lead last, BCG (C, m),
        and the clean ECG (m,)."""
        m = i1 - i0
        n = np.arange(i0, i1)
        ga = np.zeros((self.ga_weights.shape[0], m))
        vs = self.volume_samples
        L = int(round(self.tr * self.sfreq))
        first = max(0, int(np.searchsorted(vs, i0 - L - 2, side="left")))
        for v in range(first, len(vs)):
            if vs[v] >= i1 + 2:
                break
            lo, hi = max(i0, vs[v] - 2), min(i1, vs[v] + L + 2)
            if hi <= lo:
                continue
            tau = (np.arange(lo, hi) - vs[v] - self.jitter[v]) / self.sfreq
            axes = self._axes(tau)
            ga[:, lo - i0:hi - i0] += (self.ga_weights * self.drift[v]) @ axes
        t = n / self.sfreq
        bcg = np.zeros((self.bcg_weights.shape[0], m))
        ecg = np.zeros(m)
        lo_b = int(np.searchsorted(self.r_peaks, t[0] - 1.2))
        hi_b = int(np.searchsorted(self.r_peaks, t[-1] + 0.5))
        for b in range(lo_b, hi_b):
            r = self.r_peaks[b]
            u = t - r
            near = (u > -0.4) & (u < 1.2)
            if not near.any():
                continue
            un = u[near]
            warp = self.t_scale[b] / self.rr_rel[b] ** 0.25
            waves = self._bcg_waves(un - self.bcg_onset[b], self.bcg_mix[b], warp)
            bcg[:, near] += self.bcg_scale[b] * (self.bcg_weights @ waves)
            ecg[near] += self._beat_ecg(un, b)
        rng = np.random.default_rng([self._ecg_noise_seed, i0])
        ecg *= self.cfg.ecg_uv
        ecg += 40.0 * np.sin(2 * np.pi * 0.3 * t + self._wander_phase[0]) \
            + 25.0 * np.sin(2 * np.pi * 0.11 * t + self._wander_phase[1]) \
            + 8.0 * rng.standard_normal(m)
        return ga, bcg, ecg

    def _beat_ecg(self, u: np.ndarray, b: int) -> np.ndarray:
        """One heartbeat's ECG (R wave = 1) at ``u`` s from its R-peak."""
        return (0.12 * _gauss(u, -0.16, 0.025) - 0.12 * _gauss(u, -0.025, 0.008)
                + _gauss(u, 0.0, 0.009) - 0.25 * _gauss(u, 0.03, 0.01)
                + self.ecg_t_amp[b] * _gauss(u, 0.28 * self.rr_rel[b] ** 0.5, 0.06))

    def truth(self) -> ScannerTruth:
        return ScannerTruth(self.volume_samples, self.marker_samples, self.dropped, self.doubled,
                            self.jitter, self.r_peaks, self.bcg_scale, self.ga_ptp,
                            self.bcg_ptp)


__all__ = ["ECG_NAME", "ScannerArtifacts", "ScannerConfig", "ScannerTruth", "shot_waveform"]
