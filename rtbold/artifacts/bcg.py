"""Ballistocardiogram: subtraction locked to the ECG R-peaks, causally, at the amplifier rate.

Each beat's epoch starts ``start_s`` after its R-peak (the pulse artefact starts ~0.2 s after it)
and runs until the next beat's epoch starts (at most ``epoch_s``), so the epochs tile the
recording as in OBS (Niazy et al. 2005). Two methods:

``aas``
    average artefact subtraction (Allen et al. 1998): the mean of the previous ``n`` complete
    epochs is subtracted.
``obs``
    optimal basis set (Niazy et al. 2005, as ``mne.preprocessing.apply_pca_obs`` does offline):
    per channel, the mean of the previous ``n`` epochs and their first ``n_components`` principal
    components are fitted to the beat by least squares and the fit is subtracted. Offline OBS
    fits the whole epoch, which would hold every sample back by an epoch. Here the fit is
    causal: the samples of each 20-ms block get the coefficients fitted on the part of the beat
    that came before the block, shrunk towards the plain average (weight of 0.1 s of samples),
    so early in the beat OBS is AAS and later it follows the beat's own shape and amplitude.

Epochs keep their mean: the artefact has a mean over the cardiac cycle, and taking each epoch's
mean out would leave a step at every beat; since the epochs tile the recording, the EEG's own
level in the template (its mean over the last beats) is subtracted everywhere alike, which only
moves the baseline slowly. Epochs with samples that were not fully gradient-corrected never enter
the store. A beat and its template are fixed at the beat's first
sample and epochs enter the store when their last sample has passed, so chunks of any size give the same output (to rounding). The
R-peaks come from :class:`rtbold.artifacts.rpeaks.RPeakDetector`, which confirms a beat 50 ms
after it, before its epoch starts: no sample waits for a beat.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from .rpeaks import RPeakDetector

logger = logging.getLogger(__name__)

__all__ = ["BCGCorrector"]

#: OBS: coefficients are refitted every this many seconds of the beat.
OBS_BLOCK_S = 0.02
#: OBS: the prior (the plain average) weighs as much as this many seconds of samples.
OBS_PRIOR_S = 0.1


@dataclass
class _Beat:
    t: float  # R-peak time
    rr: float | None = None  # median RR when the beat was confirmed
    begun: bool = False
    buf: np.ndarray | None = None  # the epoch as received, for the store
    n_filled: int = 0
    dirty: bool = False  # a sample of the epoch was not fully gradient-corrected
    template: np.ndarray | None = None  # aas: (C, E)
    count: int = 0
    basis: np.ndarray | None = None  # obs: (C, E, 1 + k) float64, unit-RMS columns
    c0: np.ndarray | None = None  # obs: (C, 1 + k) prior coefficients (the average)
    dc: np.ndarray | None = None  # obs: (C,) the store's mean level, subtracted as AAS does
    gram: np.ndarray | None = None
    rhs: np.ndarray | None = None
    block: int = -1
    coef: np.ndarray | None = None


class BCGCorrector:
    """Subtract the pulse artefact from released samples (see the module notes).

    Parameters
    ----------
    n_channels : int
        EEG rows corrected.
    sfreq : float
        Amplifier rate (Hz).
    method : {"aas", "obs"}
    n_templates : int
        Beats in the template (AAS) or in the basis (OBS).
    n_components : int
        OBS: principal components besides the mean.
    start_s, epoch_s : float
        Epoch start after the R-peak and its length (s).
    """

    def __init__(self, n_channels: int, sfreq: float, method: str = "aas", *,
                 n_templates: int = 20, n_components: int = 4, start_s: float = 0.1,
                 epoch_s: float = 1.5) -> None:
        if method not in ("aas", "obs"):
            raise ValueError(f"BCG method must be 'aas' or 'obs', got {method!r}.")
        self.n_channels = int(n_channels)
        self.sfreq = float(sfreq)
        self.method = method
        self.n = int(n_templates)
        self.n_components = int(n_components)
        self.detector = RPeakDetector(sfreq)
        if start_s < self.detector.lookahead_s:
            raise ValueError(f"The BCG epoch must start at least {self.detector.lookahead_s:g} s "
                             f"after the R-peak (when the beat is confirmed), got {start_s}.")
        self.a = int(round(start_s * self.sfreq))
        self.E = int(round(epoch_s * self.sfreq))
        self.block = max(1, int(round(OBS_BLOCK_S * self.sfreq)))
        self.prior = OBS_PRIOR_S * self.sfreq
        self._store: deque[np.ndarray] = deque()
        self._sum = np.zeros((self.n_channels, self.E))

        self._beats: list[_Beat] = []
        self._filling: list[_Beat] = []
        #: (flag, t_start, t_stop) of what was released without a full correction.
        self.marks: list[tuple[str, float, float]] = []
        #: Median channel peak-to-peak (µV) of the current template.
        self.amplitude_uv: float | None = None

    @property
    def count(self) -> int:
        """Beats in the store."""
        return len(self._store)

    def reset_stream(self) -> None:
        """After a gap: restart the R-peak detector and the beats in progress (keep the store)."""
        self.detector.reset()
        self._beats.clear()
        self._filling.clear()

    # -- correction -------------------------------------------------------------------------
    def correct(self, x: np.ndarray, ecg: np.ndarray, times: np.ndarray,
                clean: np.ndarray | None = None) -> np.ndarray:
        """Correct released EEG ``x`` (C, n) with the ECG of the same samples; returns a copy.

        ``clean`` (n,) says which samples were fully gradient-corrected: an epoch with a sample
        that was not never enters the store (gradient residue would spoil the template).
        """
        out = np.array(x, dtype=np.float64, copy=True)
        n = len(times)
        if n == 0:
            return out
        for t_r, rr in self.detector.process(ecg, times):
            self._beats.append(_Beat(t_r, rr))
        half = 0.5 / self.sfreq
        starts = np.array([b.t + self.a / self.sfreq for b in self._beats]) if self._beats \
            else np.zeros(0)
        which = np.searchsorted(starts, times + half, side="right") - 1
        bounds = np.flatnonzero(np.diff(which)) + 1
        for a, b in zip(np.r_[0, bounds], np.r_[bounds, n]):
            j = int(which[a])
            beat = self._beats[j] if j >= 0 else None
            if beat is not None and not beat.begun:
                self._begin(beat)
            self._fill(x, times, a, b, clean)
            self._apply(beat, out, x, times, a, b)
        last = int(which[-1])
        if last > 0:
            del self._beats[:last]
        return out

    def _offsets(self, beat: _Beat, times: np.ndarray) -> np.ndarray:
        return np.rint((times - beat.t) * self.sfreq).astype(np.int64) - self.a

    def _begin(self, beat: _Beat) -> None:
        beat.begun = True
        beat.buf = np.empty((self.n_channels, self.E))
        self._filling.append(beat)
        if not self._store:
            return
        beat.count = len(self._store)
        mean = self._sum / beat.count
        self.amplitude_uv = float(np.median(np.ptp(mean, axis=1)))
        if self.method == "aas":
            beat.template = mean.astype(np.float32)
            return
        # OBS basis per channel: the mean beat and the first principal components. The store's
        # mean level (the EEG's offset) is taken out first and subtracted whole, as AAS does.
        y = np.asarray(self._store, dtype=np.float64).transpose(1, 0, 2)  # (C, N, E)
        beat.dc = mean.mean(axis=1)
        yc = y - mean[:, None, :]
        k = min(self.n_components, beat.count - 1)
        cols = [(mean - beat.dc[:, None])[:, :, None]]
        if k > 0:
            gram = yc @ yc.transpose(0, 2, 1)  # (C, N, N)
            _, vecs = np.linalg.eigh(gram)
            top = vecs[:, :, ::-1][:, :, :k]  # (C, N, k), largest first
            cols.append(yc.transpose(0, 2, 1) @ top)  # (C, E, k)
        basis = np.concatenate(cols, axis=2)
        rms = np.sqrt(np.mean(basis ** 2, axis=1, keepdims=True))
        basis = basis / np.where(rms > 0, rms, 1.0)
        beat.basis = basis  # float64: the running sums must not depend on the chunking
        beat.c0 = np.zeros((self.n_channels, basis.shape[2]))
        beat.c0[:, 0] = rms[:, 0, 0]
        beat.gram = np.zeros((self.n_channels, basis.shape[2], basis.shape[2]))
        beat.rhs = np.zeros((self.n_channels, basis.shape[2]))

    def _fill(self, x: np.ndarray, times: np.ndarray, a: int, b: int,
              clean: np.ndarray | None) -> None:
        """Copy the samples into every epoch being collected; store the complete ones."""
        for beat in list(self._filling):
            off = self._offsets(beat, times[a:b])
            keep = (off >= 0) & (off < self.E)
            if keep.any():
                beat.buf[:, off[keep]] = x[:, a:b][:, keep]
                beat.n_filled += int(keep.sum())
                if clean is not None and not clean[a:b][keep].all():
                    beat.dirty = True
            if beat.n_filled >= self.E or (len(off) and off[-1] >= self.E - 1):
                self._filling.remove(beat)
                if beat.n_filled >= self.E and not beat.dirty:
                    self._push(beat.buf)
                beat.buf = None

    def _push(self, epoch: np.ndarray) -> None:
        stored = epoch.astype(np.float32)
        self._store.append(stored)
        self._sum += stored
        if len(self._store) > self.n:
            self._sum -= self._store.popleft()

    def _apply(self, beat: _Beat | None, out: np.ndarray, x: np.ndarray, times: np.ndarray,
               a: int, b: int) -> None:
        t = times[a:b]
        if beat is None:  # no beat yet
            self.marks.append(("bcg", float(t[0]), float(t[-1])))
            return
        off = self._offsets(beat, t)
        inside = (off >= 0) & (off < self.E)
        # Flags: a template not full yet, or no epoch where the next beat was due (missed).
        due = beat.t + (1.5 * beat.rr if beat.rr else self.E / self.sfreq) + self.a / self.sfreq
        if (inside.any() and beat.count < self.n) or (~inside & (t > due)).any():
            self.marks.append(("bcg", float(t[0]), float(t[-1])))
        if beat.count == 0 or not inside.any():
            return
        idx = np.flatnonzero(inside) + a
        o = off[inside]
        if self.method == "aas":
            out[:, idx] -= beat.template[:, o]
            return
        # OBS: one coefficient set per block of the beat, fitted on what came before it.
        blocks = o // self.block
        cuts = np.flatnonzero(np.diff(blocks)) + 1
        for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(o)]):
            q = int(blocks[s])
            if q != beat.block:
                lhs = beat.gram + self.prior * np.eye(beat.gram.shape[1])[None]
                rhs = beat.rhs + self.prior * beat.c0
                beat.coef = np.linalg.solve(lhs, rhs[..., None])[..., 0]
                beat.block = q
            basis = beat.basis[:, o[s:e], :]  # (C, m, K)
            fit = np.einsum("cmk,ck->cm", basis, beat.coef)
            xs = x[:, idx[s:e]] - beat.dc[:, None]
            beat.gram += np.einsum("cmk,cml->ckl", basis, basis)
            beat.rhs += np.einsum("cmk,cm->ck", basis, xs)
            out[:, idx[s:e]] -= fit + beat.dc[:, None]
