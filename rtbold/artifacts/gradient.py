"""Gradient artefact: average artefact subtraction locked to the volume triggers, causally.

Average artefact subtraction (AAS, Allen et al. 2000) as :class:`mne.preprocessing.GradientRemover`
does it with a ``(n, 0)`` window: the template of a volume is the mean of the ``n`` previous
volume epochs, each linearly detrended, aligned on its trigger sample
(:class:`GradientTemplates`; ``tests/test_artifacts.py`` checks it equals
``GradientRemover(...).get_tr_template``). What differs, so that it runs on a stream:

* the template is subtracted from the samples as they come, not from the detrended epoch
  (detrending an epoch needs all of it, a TR after its first sample); the template has no mean
  or slope, so the EEG keeps its slow part;
* a running sum over the stored epochs gives the template in O(1) per volume, not O(n);
* the triggers need not be evenly spaced: a doubled trigger is ignored, a missed one is placed one
  TR on (:mod:`rtbold.artifacts.triggers`), and only volumes bounded by two real triggers one TR
  apart go into the template;
* a sample's place in its volume comes from its timestamp, so a gap in the stream shifts nothing.

:class:`GradientCorrector` applies the templates to samples that the caller releases in time
order, once every trigger that could concern them is known (see :mod:`rtbold.artifacts.corrector`).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.signal import detrend

from .triggers import TriggerEvent

logger = logging.getLogger(__name__)

__all__ = ["GradientTemplates", "GradientCorrector"]


class GradientTemplates:
    """The last ``n`` volume epochs (detrended, float32) and their running sum.

    Parameters
    ----------
    n : int
        Epochs averaged into the template.
    """

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self._epochs: deque[np.ndarray] = deque()
        self._sum: np.ndarray | None = None
        self._since_exact = 0

    @property
    def count(self) -> int:
        return len(self._epochs)

    @property
    def length(self) -> int | None:
        """Samples per epoch (None while empty)."""
        return None if self._sum is None else self._sum.shape[1]

    def reset(self) -> None:
        self._epochs.clear()
        self._sum = None
        self._since_exact = 0

    def push(self, epoch: np.ndarray) -> np.ndarray:
        """Add one complete epoch (C, L) of raw samples; returns it detrended (float64)."""
        d = detrend(np.asarray(epoch, dtype=np.float64), axis=1, type="linear")
        if self._sum is not None and self._sum.shape != d.shape:
            self.reset()  # another sequence (TR or channels): start over
        stored = d.astype(np.float32)
        if self._sum is None:
            self._sum = np.zeros(d.shape)
        self._epochs.append(stored)
        self._sum += stored
        if len(self._epochs) > self.n:
            self._sum -= self._epochs.popleft()
        self._since_exact += 1
        if self._since_exact >= self.n:  # bound the rounding of add-then-subtract
            self._sum = np.sum(np.asarray(self._epochs, dtype=np.float64), axis=0)
            self._since_exact = 0
        return d

    def mean(self) -> np.ndarray | None:
        """The template (C, L) float32: the mean of the stored epochs; None when empty."""
        if not self._epochs:
            return None
        return (self._sum / len(self._epochs)).astype(np.float32)


@dataclass
class _Epoch:
    t: float
    kind: str  # first | volume | inferred | restart | lost
    push_ok: bool = False  # the next trigger is real and one TR after this real one
    begun: bool = False
    template: np.ndarray | None = None
    count: int = 0
    buf: np.ndarray | None = None
    n_below: int = 0  # samples written at offsets < length
    length: int | None = None


class GradientCorrector:
    """Subtract the gradient template from released samples (see the module notes).

    Parameters
    ----------
    n_channels : int
        Rows corrected (EEG channels, and the ECG when there is one).
    sfreq : float
        Amplifier rate (Hz).
    n_templates : int
        Volumes in a template.
    tr_hint : float
        Expected TR (s), sizes the first epoch's buffer before the TR is measured.
    """

    def __init__(self, n_channels: int, sfreq: float, n_templates: int, tr_hint: float) -> None:
        self.n_channels = int(n_channels)
        self.sfreq = float(sfreq)
        self.templates = GradientTemplates(n_templates)
        self._cap = int(np.ceil(1.3 * tr_hint * self.sfreq))
        self._epochs: list[_Epoch] = []
        self._tr: float | None = None
        #: (flag, t_start, t_stop) of what was released without a full correction.
        self.marks: list[tuple[str, float, float]] = []
        self.n_pushed = 0
        #: Median channel RMS (µV) of the last finished volume before and after correction.
        self.raw_rms_uv: float | None = None
        self.residual_rms_uv: float | None = None

    def on_event(self, ev: TriggerEvent, tr: float | None) -> None:
        """A classified trigger (in time order); ``tr`` is the sequence's TR known so far."""
        self._tr = tr
        if ev.kind == "doubled":
            self.marks.append(("trigger", ev.t, ev.t))
            return
        if ev.kind == "volume" and ev.regular and self._epochs:
            self._epochs[-1].push_ok = True
        self._epochs.append(_Epoch(ev.t, ev.kind))

    def reset(self) -> None:
        """Forget the templates and the volumes (a new session)."""
        self.templates.reset()
        self._epochs.clear()

    # -- correction -------------------------------------------------------------------------
    def _which(self, times: np.ndarray) -> np.ndarray:
        """Index of the volume each sample belongs to (-1 before the first)."""
        starts = np.array([e.t for e in self._epochs]) if self._epochs else np.zeros(0)
        return np.searchsorted(starts, times + 0.5 / self.sfreq, side="right") - 1

    def runs(self, times: np.ndarray) -> list[tuple[int, int]]:
        """Split sample times into runs that each lie in one volume."""
        which = self._which(times)
        bounds = np.flatnonzero(np.diff(which)) + 1
        return list(zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(times)].tolist()))

    def correct(self, x: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct released samples ``x`` (C, n), in time order.

        Returns the corrected copy and, per sample, the number of volumes in its template
        (0: not corrected).
        """
        out = np.array(x, dtype=np.float64, copy=True)
        n = len(times)
        count = np.zeros(n, dtype=np.int64)
        if n == 0:
            return out, count
        which = self._which(times)
        for a, b in self.runs(times):
            j = int(which[a])
            if j < 0:  # before the first trigger
                self.marks.append(("gradient", float(times[a]), float(times[b - 1])))
                continue
            ep = self._epochs[j]
            if not ep.begun:
                self._begin(j)
            count[a:b] = self._apply(ep, out, x, times, a, b)
        # Volumes that are over are not needed any more (the current one stays).
        last = int(which[-1])
        if last > 0:
            del self._epochs[:last]
        return out, count

    def unmix(self, times: np.ndarray, artefact: np.ndarray) -> None:
        """Take another artefact's estimate (first rows) out of the epochs being collected.

        The BCG is not locked to the volumes, but at 50-200 µV it would put ~BCG/sqrt(n) of
        noise into every gradient template; the epochs go into the template without it.
        """
        if not len(times) or not self._epochs:
            return
        which = self._which(times)
        for a, b in self.runs(times):
            j = int(which[a])
            ep = self._epochs[j] if j >= 0 else None
            if ep is None or ep.buf is None:
                continue
            off = np.rint((times[a:b] - ep.t) * self.sfreq).astype(np.int64)
            keep = (off >= 0) & (off < ep.buf.shape[1])
            ep.buf[: artefact.shape[0], off[keep]] -= artefact[:, a:b][:, keep]

    def _begin(self, j: int) -> None:
        """First sample of volume j: finish the volumes before it, take its template."""
        for ep in self._epochs[:j]:
            if ep.begun:
                self._finish(ep)
        ep = self._epochs[j]
        ep.begun = True
        if ep.kind == "restart":
            self.templates.reset()
        if ep.kind == "lost":
            return
        ep.length = int(round(self._tr * self.sfreq)) if self._tr else None
        ep.template = self.templates.mean()
        if ep.template is not None and ep.template.shape[1] != ep.length:
            ep.template = None
        ep.count = self.templates.count if ep.template is not None else 0
        if ep.kind in ("first", "volume", "restart"):
            ep.buf = np.empty((self.n_channels, ep.length or self._cap))

    def _finish(self, ep: _Epoch) -> None:
        ep.begun = False
        L = int(round(self._tr * self.sfreq)) if self._tr else None
        if ep.buf is not None and L and ep.push_ok and ep.buf.shape[1] >= L and ep.n_below >= L:
            d = self.templates.push(ep.buf[:, :L])
            self.n_pushed += 1
            self.raw_rms_uv = float(np.median(np.sqrt(np.mean(d ** 2, axis=1))))
            if ep.template is not None and ep.template.shape == d.shape:
                res = d - ep.template  # the volume as corrected, without its mean and slope
                self.residual_rms_uv = float(np.median(np.sqrt(np.mean(res ** 2, axis=1))))
        ep.buf = None

    def _apply(self, ep: _Epoch, out: np.ndarray, x: np.ndarray, times: np.ndarray,
               a: int, b: int) -> int:
        t = times[a:b]
        off = np.rint((t - ep.t) * self.sfreq).astype(np.int64)
        if ep.buf is not None:
            keep = (off >= 0) & (off < ep.buf.shape[1])
            ep.buf[:, off[keep]] = x[:, a:b][:, keep]
            L = ep.length or ep.buf.shape[1]
            ep.n_below += int(np.count_nonzero(off[keep] < L))
        tmpl = ep.template
        if tmpl is not None:
            inside = (off >= 0) & (off < tmpl.shape[1])
            if inside.all():
                seg = out[:, a:b]
                seg -= tmpl[:, off]
            else:
                idx = np.flatnonzero(inside) + a
                out[:, idx] -= tmpl[:, off[inside]]
            full = ep.count >= self.templates.n and inside.all()
        else:
            full = False
        if ep.kind == "inferred":
            self.marks.append(("trigger", float(t[0]), float(t[-1])))
        if not full:
            self.marks.append(("gradient", float(t[0]), float(t[-1])))
        return ep.count if tmpl is not None else 0
