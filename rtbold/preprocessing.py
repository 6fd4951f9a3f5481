"""The one preprocessing path shared by the offline trainer and the live stream.

EEG: resampling to 200 Hz with a stateful polyphase FIR (:class:`StreamingResampler`), window
extraction with per-window demeaning and scaling (:func:`extract_window`). fMRI targets: low-pass
and robust scaling (:func:`preprocess_targets`). MODEL.md sections 1.3, 1.4 and 1.6 give the numbers.

Both paths call these functions on the same arrays, which is what makes a model trained offline
valid live (ARCHITECTURE.md section 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal

logger = logging.getLogger(__name__)

#: Model sampling rate (Hz), window length (s, samples) and EEG scale (µV / 100, LaBraM's unit).
SFREQ = 200.0
WINDOW_S = 16.0
WINDOW_SAMPLES = int(WINDOW_S * SFREQ)
EEG_SCALE = 100.0
#: Default target low-pass (Hz) and filter order (MODEL.md 1.6).
TARGET_CUTOFF_HZ = 0.15
TARGET_FILTER_ORDER = 5


def _rational_ratio(sfreq_in: float, sfreq_out: float) -> tuple[int, int]:
    """Up/down factors (L, M) with sfreq_in * L / M == sfreq_out."""
    ratio = Fraction(sfreq_out / sfreq_in).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    if abs(sfreq_in * up / down - sfreq_out) > 1e-6 * sfreq_out:
        raise ValueError(f"Cannot resample {sfreq_in} Hz to {sfreq_out} Hz with a rational factor "
                         "of denominator <= 1000; resample the recording to a nominal rate first.")
    return up, down


class StreamingResampler:
    """Resample multichannel EEG to 200 Hz chunk by chunk, with the same result as one call.

    A linear-phase low-pass FIR (Kaiser window, as :func:`scipy.signal.resample_poly` designs it)
    runs as a polyphase filter with state carried between calls, so feeding a recording in chunks
    of any size gives the output of a single call to within floating-point rounding. The filter's
    group delay is compensated: output sample ``j`` represents input time ``t0 + j / sfreq_out``,
    and :meth:`flush` emits the delayed tail at the end of a recording.

    Parameters
    ----------
    sfreq_in : float
        Amplifier (input) sampling rate in Hz.
    n_channels : int
        Number of channels in every chunk.
    sfreq_out : float
        Output rate, 200 Hz for the models.
    """

    def __init__(self, sfreq_in: float, n_channels: int, sfreq_out: float = SFREQ) -> None:
        if sfreq_in <= 0 or not np.isfinite(sfreq_in):
            raise ValueError(f"Sampling rate must be a positive number, got {sfreq_in!r}.")
        self.sfreq_in = float(sfreq_in)
        self.sfreq_out = float(sfreq_out)
        self.n_channels = int(n_channels)
        self.up, self.down = _rational_ratio(self.sfreq_in, self.sfreq_out)
        max_rate = max(self.up, self.down)
        # Half length on the upsampled grid, a multiple of `down` so the delay is whole output samples.
        half_len = self.down * int(np.ceil(10 * max_rate / self.down))
        if self.up == self.down == 1:
            self._taps = np.ones(1)
            half_len = 0
        else:
            self._taps = signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
            self._taps *= self.up
        self._delay_out = half_len // self.down  # output samples of group delay
        # Polyphase bank: phase p uses taps[p + up * m] applied to x[i0 - m].
        n_per_phase = int(np.ceil(len(self._taps) / self.up))
        padded = np.zeros(n_per_phase * self.up)
        padded[: len(self._taps)] = self._taps
        bank = padded.reshape(n_per_phase, self.up).T  # (up, n_per_phase): taps of x[i0 - m]
        self._bank_rev = np.ascontiguousarray(bank[:, ::-1])  # for windows in time order
        self._n_hist = n_per_phase
        # Input timestamps kept across calls: enough to interpolate times of delayed outputs.
        self._n_ts_hist = int(np.ceil(self._delay_out * self.down / self.up)) + self.down + 3
        self.reset()

    @property
    def delay_s(self) -> float:
        """Latency the filter adds (s): an input sample appears in the output this much later."""
        return self._delay_out / self.sfreq_out

    def reset(self) -> None:
        """Forget all past input (call after a gap in the stream)."""
        self._hist = np.zeros((self.n_channels, self._n_hist))
        self._hist_ts = np.zeros(0)
        self._ts_hist = np.zeros(0)
        self._n_in = 0  # input samples received since reset
        self._k = 0  # next output index (before delay compensation)
        self._last_j = np.zeros(0, dtype=int)

    def process(self, chunk: np.ndarray, timestamps: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Feed a chunk; return the output samples that became available and their times.

        Parameters
        ----------
        chunk : array, shape (n_channels, n)
            New input samples.
        timestamps : array, shape (n,) | None
            Times of the input samples (LSL stream time). None: consecutive at the nominal rate,
            starting at 0 for the first chunk after a reset.

        Returns
        -------
        out : array, shape (n_channels, m)
        out_times : array, shape (m,)
            The time each output sample represents (delay compensated, on the input clock).
        """
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[0] != self.n_channels:
            raise ValueError(f"Expected a chunk of shape ({self.n_channels}, n), got {chunk.shape}.")
        n = chunk.shape[1]
        if timestamps is None:
            timestamps = (self._n_in + np.arange(n)) / self.sfreq_in
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if timestamps.shape != (n,):
            raise ValueError(f"timestamps must have shape ({n},), got {timestamps.shape}.")
        if n == 0:
            return np.zeros((self.n_channels, 0)), np.zeros(0)
        self._ts_hist = np.concatenate([self._hist_ts, timestamps])
        x = np.concatenate([self._hist, chunk], axis=1)  # x[:, 0] is input index n_in - len(hist)
        first_idx = self._n_in - self._hist.shape[1]
        self._n_in += n
        out, out_idx = self._filter(x, first_idx)
        # Keep history for the next call.
        self._hist = x[:, -self._n_hist:]
        self._hist_ts = self._ts_hist[-self._n_ts_hist:]
        return self._compensate(out, out_idx)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Emit the delayed tail at the end of a recording (zero padding beyond its end)."""
        if self._delay_out == 0 or self._n_in == 0:
            return np.zeros((self.n_channels, 0)), np.zeros(0)
        # Enough zeros to compute every output sample whose time lies within the recording.
        n_pad = int(np.ceil(self._delay_out * self.down / self.up)) + 1
        last_ts = self._hist_ts[-1] if len(self._hist_ts) else 0.0
        pad_ts = last_ts + (1 + np.arange(n_pad)) / self.sfreq_in
        n_real = self._n_in
        out, times = self.process(np.zeros((self.n_channels, n_pad)), pad_ts)
        # Keep only samples that represent times inside the recording.
        n_out_total = int(np.floor((n_real - 1) * self.up / self.down)) + 1
        keep = self._last_j < n_out_total
        return out[:, keep], times[keep]

    def _filter(self, x: np.ndarray, first_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Compute every output k with k*down <= (n_in - 1)*up from the buffered input x.

        Outputs of one residue class k = r (mod up) share a filter phase and read input windows
        spaced ``down`` apart, so each class is one matrix product over a strided view of x
        (no copy of the windows).
        """
        last_in = self._n_in - 1
        k_stop = (last_in * self.up) // self.down + 1
        ks = np.arange(self._k, k_stop)
        self._k = k_stop
        out = np.empty((self.n_channels, len(ks)))
        if len(ks) == 0:
            return out, ks
        views = np.lib.stride_tricks.sliding_window_view(x, self._n_hist, axis=1)  # (C, s, taps)
        for r in range(min(self.up, len(ks))):
            k_r = ks[r::self.up]
            pos0 = int(k_r[0]) * self.down
            phase = pos0 % self.up
            # Window of output k covers inputs i0 - taps + 1 .. i0, i0 = k*down // up.
            s0 = pos0 // self.up - (self._n_hist - 1) - first_idx
            win = views[:, s0: s0 + self.down * (len(k_r) - 1) + 1: self.down, :]
            out[:, r::self.up] = win @ self._bank_rev[phase]
        return out, ks

    def _compensate(self, out: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop outputs that represent times before the first input; attach their times."""
        j = ks - self._delay_out  # output index in the delay-compensated series
        keep = j >= 0
        out, j = out[:, keep], j[keep]
        self._last_j = j
        # Time of output j: input position j*down/up, interpolated on the input timestamps.
        pos = j * self.down / self.up
        times = self._times_at(pos)
        return out, times

    def _times_at(self, pos: np.ndarray) -> np.ndarray:
        """Timestamps at fractional input positions (indices since reset)."""
        if len(pos) == 0:
            return np.zeros(0)
        ts = self._ts_hist
        first = self._n_in - len(ts)  # index of ts[0]
        rel = pos - first
        lo = np.clip(np.floor(rel).astype(int), 0, len(ts) - 1)
        hi = np.clip(lo + 1, 0, len(ts) - 1)
        frac = rel - np.floor(rel)
        inside = (rel >= 0) & (rel <= len(ts) - 1)
        dt = 1.0 / self.sfreq_in
        interp = ts[lo] + frac * np.where(hi > lo, ts[hi] - ts[lo], dt)
        # Outside the kept timestamps (only on unusual chunkings): extrapolate at the nominal rate.
        extrap = ts[-1] + (rel - (len(ts) - 1)) * dt
        before = ts[0] + rel * dt
        return np.where(inside, interp, np.where(rel < 0, before, extrap))


class EEGPreprocessor:
    """The streaming EEG chain of both paths: channel mapping, MR-artefact correction at the
    amplifier rate (optional), resampling to 200 Hz, high-pass.

    The optional high-pass (MODEL.md 1.2: 0.5 Hz in cross-subject training) is a causal
    Butterworth filter with carried state, so a live stream and an offline recording go through
    identical arithmetic. (NeuroBOLT used MNE's zero-phase FIR, which needs future samples and
    cannot run live; the difference is a phase shift below 1 Hz.)

    Parameters
    ----------
    sfreq_in : float
        Input rate (Hz).
    mapping : rtbold.channels.ChannelMapping | None
        Applied first; None keeps the channels as they are.
    n_channels : int | None
        Number of input channels when ``mapping`` is None.
    highpass_hz : float | None
        High-pass cut-off at 200 Hz, or None for none.
    corrector : rtbold.artifacts.MRCorrector | None
        Gradient and BCG correction of raw in-scanner EEG, on the mapped channels before
        resampling; it may hold samples back until their volume marker is known, so the output
        of a call can lag its input (:meth:`flush` releases the rest). Its volume markers are
        given to it directly (``corrector.add_markers``).
    """

    def __init__(self, sfreq_in: float, *, mapping=None, n_channels: int | None = None,
                 highpass_hz: float | None = None, highpass_order: int = 4,
                 corrector=None) -> None:
        self.mapping = mapping
        self.corrector = corrector
        n_out = len(mapping.target_names) if mapping is not None else n_channels
        if n_out is None:
            raise ValueError("Give either a channel mapping or n_channels.")
        self.n_channels = int(n_out)
        self.resampler = StreamingResampler(sfreq_in, self.n_channels)
        self.highpass_hz = highpass_hz
        self._sos = None
        if highpass_hz is not None:
            if not 0 < highpass_hz < SFREQ / 2:
                raise ValueError(f"High-pass cut-off {highpass_hz} Hz must lie in (0, {SFREQ / 2}).")
            self._sos = signal.butter(highpass_order, highpass_hz, "highpass", fs=SFREQ,
                                      output="sos")
        self.reset()

    @property
    def delay_s(self) -> float:
        return self.resampler.delay_s

    def reset(self) -> None:
        """Forget the past (after a gap, and after :meth:`flush`): fresh filter states; the
        artefact templates are kept."""
        self.resampler.reset()
        self._zi = None
        if self.corrector is not None:
            self.corrector.reset_stream()

    def process(self, chunk: np.ndarray, timestamps: np.ndarray | None = None,
                ecg: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw chunk (source channels, n) in µV -> (model channels, m) at 200 Hz, and times.

        ``ecg`` (n,) is the ECG of the same samples, for the BCG correction.
        """
        if self.mapping is not None:
            chunk = self.mapping.apply(np.asarray(chunk, dtype=np.float64))
        if self.corrector is not None:
            if timestamps is None:
                raise ValueError("MR-artefact correction needs the samples' timestamps.")
            chunk, timestamps = self.corrector.process(chunk, timestamps, ecg)
            if chunk.shape[1] == 0:
                return np.zeros((self.n_channels, 0)), np.zeros(0)
        return self._highpass(*self.resampler.process(chunk, timestamps))

    def release(self) -> tuple[np.ndarray, np.ndarray]:
        """Output of the samples the corrector held for a volume marker that has now come
        (:meth:`rtbold.artifacts.MRCorrector.release`); empty without a corrector."""
        if self.corrector is not None:
            x, t = self.corrector.release()
            if t.size:
                return self._highpass(*self.resampler.process(x, t))
        return np.zeros((self.n_channels, 0)), np.zeros(0)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Release what the chain holds (end of a recording, or before a gap)."""
        outs = []
        if self.corrector is not None:
            x, t = self.corrector.flush()
            if t.size:
                outs.append(self._highpass(*self.resampler.process(x, t)))
        outs.append(self._highpass(*self.resampler.flush()))
        if len(outs) == 1:
            return outs[0]
        return np.concatenate([o for o, _ in outs], axis=1), np.concatenate([t for _, t in outs])

    def _highpass(self, out: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._sos is None or out.shape[1] == 0:
            return out, times
        if self._zi is None:  # start from steady state at the first sample (no onset transient)
            self._zi = signal.sosfilt_zi(self._sos)[:, None, :] * out[None, :, :1]
        out, self._zi = signal.sosfilt(self._sos, out, axis=1, zi=self._zi)
        return out, times

    def run(self, data: np.ndarray, first_time: float = 0.0, ecg: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
        """A whole recording (offline path): process in blocks of 10 s, then flush.

        Blocks keep temporaries small for long high-rate recordings; the output is the same as
        for any other chunking. ``ecg`` (n,) is the recording's ECG for the BCG correction.
        """
        sfreq = self.resampler.sfreq_in
        block = int(10 * sfreq)
        outs, times = [], []
        for start in range(0, data.shape[1], block):
            stop = min(start + block, data.shape[1])
            o, t = self.process(data[:, start:stop], first_time + np.arange(start, stop) / sfreq,
                                None if ecg is None else ecg[start:stop])
            outs.append(o.astype(np.float32))
            times.append(t)
        o, t = self.flush()
        outs.append(o.astype(np.float32))
        times.append(t)
        return np.concatenate(outs, axis=1), np.concatenate(times)


def resample(data: np.ndarray, sfreq_in: float, *, sfreq_out: float = SFREQ,
             first_time: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Resample a whole recording with :class:`StreamingResampler` (one call plus flush).

    Returns the resampled data (n_channels, m) and the time of each output sample.
    """
    data = np.asarray(data)
    rs = StreamingResampler(sfreq_in, data.shape[0], sfreq_out)
    times_in = first_time + np.arange(data.shape[1]) / sfreq_in
    out1, t1 = rs.process(data, times_in)
    out2, t2 = rs.flush()
    return np.concatenate([out1, out2], axis=1), np.concatenate([t1, t2])


def window_end_index(times: np.ndarray, t_event: float) -> int:
    """Index of the sample nearest ``t_event`` in a sorted time axis."""
    i = int(np.searchsorted(times, t_event))
    if i > 0 and (i == len(times) or abs(times[i - 1] - t_event) <= abs(times[i] - t_event)):
        i -= 1
    return i


def extract_window(data: np.ndarray, times: np.ndarray, t_event: float,
                   n_samples: int = WINDOW_SAMPLES, sfreq: float = SFREQ) -> np.ndarray:
    """Model input for the fMRI volume at ``t_event``.

    Takes the ``n_samples + 1`` samples that end at the sample nearest ``t_event``, removes each
    channel's mean over all of them (MNE ``baseline=(None, None)``), drops the last sample and
    divides by :data:`EEG_SCALE` (MODEL.md 1.3-1.4).

    Parameters
    ----------
    data : array, shape (n_channels, n)
        EEG at 200 Hz in microvolts.
    times : array, shape (n,)
        Time of each sample (s), sorted.
    t_event : float
        Volume onset (s) on the same clock.

    Returns
    -------
    window : float32 array, shape (n_channels, n_samples)

    Raises
    ------
    ValueError
        When the window is not fully covered by ``data`` or the covered span has a gap.
    """
    if len(times) == 0:
        raise ValueError(f"No EEG samples to take the window for the volume at {t_event:.3f} s.")
    end = window_end_index(times, t_event)
    start = end - n_samples
    tol = 0.5 / sfreq
    if start < 0 or abs(times[end] - t_event) > tol:
        raise ValueError(
            f"The {n_samples / sfreq:g} s window before the volume at {t_event:.3f} s is not covered "
            f"by the EEG ({times[0]:.3f} to {times[-1]:.3f} s)."
        )
    span = times[end] - times[start]
    if abs(span - n_samples / sfreq) > n_samples * 0.01 / sfreq + tol:
        raise ValueError(f"The window before the volume at {t_event:.3f} s spans {span:.3f} s instead "
                         f"of {n_samples / sfreq:g} s: the EEG has a gap there.")
    seg = np.asarray(data[:, start:end + 1], dtype=np.float64)
    seg = seg - seg.mean(axis=1, keepdims=True)
    return (seg[:, :n_samples] / EEG_SCALE).astype(np.float32)


@dataclass(frozen=True)
class TargetStats:
    """Per-region statistics of the target normalisation (stored in model bundles)."""

    mean: np.ndarray  # (P,) mean of the low-passed series
    scale: np.ndarray  # (P,) 95th percentile of |x - mean| (+1e-8)
    cutoff_hz: float = TARGET_CUTOFF_HZ
    order: int = TARGET_FILTER_ORDER

    def to_dict(self) -> dict:
        return {"method": "lowpass_robust_p95", "cutoff_hz": self.cutoff_hz, "order": self.order,
                "mean": self.mean.tolist(), "scale": self.scale.tolist()}


def lowpass_targets(y: np.ndarray, tr: float, cutoff_hz: float = TARGET_CUTOFF_HZ,
                    order: int = TARGET_FILTER_ORDER) -> np.ndarray:
    """Zero-phase Butterworth low-pass of region series (T, P) sampled every ``tr`` seconds."""
    nyquist = 0.5 / tr
    if not 0 < cutoff_hz < nyquist:
        raise ValueError(f"Target low-pass at {cutoff_hz} Hz must lie below the fMRI Nyquist "
                         f"frequency {nyquist:.3f} Hz (TR {tr} s).")
    b, a = signal.butter(order, cutoff_hz / nyquist)
    padlen = 3 * max(len(a), len(b))
    if y.shape[0] <= padlen:
        raise ValueError(f"{y.shape[0]} fMRI volumes are too few to filter; need more than {padlen}.")
    return signal.filtfilt(b, a, y, axis=0)


def preprocess_targets(y: np.ndarray, tr: float, cutoff_hz: float = TARGET_CUTOFF_HZ
                       ) -> tuple[np.ndarray, TargetStats]:
    """Low-pass, demean and divide by the 95th percentile of |x| (per region, whole scan).

    Parameters
    ----------
    y : array, shape (T, P)
        Region time series of one scan.
    tr : float
        Repetition time (s).

    Returns
    -------
    y_norm : float32 array, shape (T, P)
    stats : TargetStats
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"Region series must be 2-D (volumes, regions), got shape {y.shape}.")
    if not np.all(np.isfinite(y)):
        bad = np.unique(np.nonzero(~np.isfinite(y))[1])
        raise ValueError(f"Region series contain NaN or infinite values in column(s) {bad.tolist()}.")
    yf = lowpass_targets(y, tr, cutoff_hz)
    mean = yf.mean(axis=0)
    yc = yf - mean
    scale = np.percentile(np.abs(yc), 95, axis=0) + 1e-8
    return (yc / scale).astype(np.float32), TargetStats(mean, scale, cutoff_hz)
