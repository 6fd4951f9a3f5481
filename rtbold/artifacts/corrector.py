"""MR-artefact correction of a stream or a recording: gradient, then BCG, at the amplifier rate.

:class:`MRCorrector` is the first stage of the shared preprocessing
(:class:`rtbold.preprocessing.EEGPreprocessor`), before resampling to 200 Hz. It takes chunks of
the model's channels (and the ECG), the volume-marker times and how far the markers are known,
and releases corrected samples in order.

Holding back
------------
A sample can be corrected once it is known which volume it belongs to: once every marker up to
its time has arrived. Volumes are one TR apart, so no marker can come earlier than one TR (less
the tolerance) after the last one: the samples of a volume up to there are released as they come
(:meth:`VolumeTriggers.safe_until`). Only the samples near the next expected trigger wait, until
its marker arrives (live: at most ``marker_latency_s`` in real time, then a missed trigger is
placed one TR on). When the marker of volume k arrives, the samples up to it are released at
once, and the samples after it are in volume k, whose template is ready: the 16-s window that
ends at the trigger is complete as soon as the marker and the resampler's 50 ms after it are in,
as without correction. The hold is bounded by ``max_hold_s`` of stream time (markers that
stop), beyond which samples are released uncorrected and flagged.

Everything depends on the sample times, the marker times and how far the markers are complete,
not on how the stream was chunked: a recording corrected in one go and the same recording fed in
random chunks, with the markers arriving as a stream delivers them, give the same samples.

Flags (``drain_marks``): ``gradient`` (no full gradient template: the first volumes, before the
first trigger, after the triggers were lost), ``bcg`` (no full BCG template, a missed beat, BCG
asked for but no ECG), ``trigger`` (a missed trigger was placed, or a doubled one ignored).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from .bcg import BCGCorrector
from .config import ArtifactConfig
from .gradient import GradientCorrector
from .triggers import TriggerEvent, VolumeTriggers

logger = logging.getLogger(__name__)

__all__ = ["ArtifactStatus", "MRCorrector", "correct_recording", "recording_corrector"]

#: Volumes a gradient template needs before its samples may go into a BCG template.
MIN_GRADIENT_FOR_BCG = 3


@dataclass
class ArtifactStatus:
    """What the correction is doing (status panel, headless line)."""

    gradient: str = "off"
    gradient_templates: int = 0
    gradient_needed: int = 0
    raw_rms_uv: float | None = None
    residual_rms_uv: float | None = None
    bcg: str = "off"
    bcg_templates: int = 0
    bcg_needed: int = 0
    heart_rate_bpm: float | None = None
    bcg_uv: float | None = None
    triggers: dict[str, int] = field(default_factory=dict)
    held_s: float = 0.0

    def line(self) -> str:
        """One line, e.g. ``GA 20/20 (1.2 mV -> 24 µV RMS); BCG obs 20/20, 66 bpm, 95 µV``."""
        parts = []
        if self.gradient != "off":
            ga = f"GA {self.gradient_templates}/{self.gradient_needed}"
            if self.raw_rms_uv is not None and self.residual_rms_uv is not None:
                ga += f" ({_uv(self.raw_rms_uv)} -> {_uv(self.residual_rms_uv)} RMS)"
            if self.gradient not in ("on", "filling"):
                ga += f" [{self.gradient}]"
            missed = self.triggers.get("inferred", 0)
            doubled = self.triggers.get("doubled", 0)
            if missed or doubled:
                ga += f", triggers missed {missed}, doubled {doubled}"
            parts.append(ga)
        if self.bcg.startswith("off:"):
            parts.append(f"BCG {self.bcg}")
        elif self.bcg != "off":
            bcg = f"BCG {self.bcg_templates}/{self.bcg_needed}"
            if self.heart_rate_bpm is not None:
                bcg += f", {self.heart_rate_bpm:.0f} bpm"
            if self.bcg_uv is not None:
                bcg += f", {_uv(self.bcg_uv)} p-p"
            parts.append(bcg)
        return "; ".join(parts) if parts else "off"


def _uv(v: float) -> str:
    return f"{v / 1000:.1f} mV" if v >= 1000 else f"{v:.0f} µV"


class MRCorrector:
    """Gradient and BCG correction of one stream (see the module notes).

    Parameters
    ----------
    sfreq : float
        Amplifier rate (Hz).
    n_channels : int
        EEG rows of every chunk (the model's channels).
    config : ArtifactConfig
    tr : float
        Expected TR (s), to tell doubled and missed triggers apart before it is measured.
    has_ecg : bool
        Whether chunks come with an ECG row; without it the BCG correction is off and every
        sample is flagged ``bcg`` when it was asked for.
    """

    def __init__(self, sfreq: float, n_channels: int, config: ArtifactConfig, tr: float, *,
                 has_ecg: bool = False) -> None:
        self.sfreq = float(sfreq)
        self.n_channels = int(n_channels)
        self.config = config
        self.has_ecg = bool(has_ecg)
        rows = self.n_channels + int(self.has_ecg)
        self.triggers: VolumeTriggers | None = None
        self.gradient: GradientCorrector | None = None
        if config.gradient == "aas":
            tol = max(config.trigger_tolerance_s, 1.5 / self.sfreq)
            self.triggers = VolumeTriggers(tr, tol, config.max_missed_triggers)
            self.gradient = GradientCorrector(rows, self.sfreq, config.gradient_templates, tr)
        self.bcg: BCGCorrector | None = None
        if config.bcg != "off" and self.has_ecg:
            self.bcg = BCGCorrector(self.n_channels, self.sfreq, config.bcg,
                                    n_templates=config.bcg_templates,
                                    n_components=config.bcg_components,
                                    start_s=config.bcg_start_s, epoch_s=config.bcg_epoch_s)
        self.bcg_missing = config.bcg != "off" and not self.has_ecg
        self._horizon = -math.inf
        self._ended = False
        self._held: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, n), (n,) times
        self._n_held = 0
        self._events: list[TriggerEvent] = []
        self._marks: list[tuple[str, float, float]] = []
        #: Every volume start, in order (real and inferred markers).
        self.volumes: list[float] = []
        self._volume_kinds: list[str] = []

    # -- markers ------------------------------------------------------------------------------
    def add_markers(self, times) -> list[TriggerEvent]:
        """Volume-marker times (stream time, in order). Returns their classification."""
        times = [float(t) for t in times]
        if not times:
            return []
        self._horizon = max(self._horizon, times[-1])
        if self.triggers is None:
            return []
        return self._route(self.triggers.add(times))

    def set_horizon(self, t: float) -> list[TriggerEvent]:
        """Every volume marker up to stream time ``t`` has been given (missed ones are placed)."""
        self._horizon = max(self._horizon, float(t))
        if self.triggers is None:
            return []
        return self._route(self.triggers.advance(self._horizon))

    def _route(self, events: list[TriggerEvent]) -> list[TriggerEvent]:
        for ev in events:
            self.gradient.on_event(ev, self.triggers.tr)
            if ev.starts_volume:
                self.volumes.append(ev.t)
                self._volume_kinds.append(ev.kind)
            if ev.kind in ("inferred", "lost", "restart", "doubled"):
                logger.info("Volume trigger %s at %.3f s", ev.kind, ev.t)
        self._events += events
        return events

    def end_markers(self) -> list[TriggerEvent]:
        """No volume marker will follow (a whole recording): the samples after the last
        volume are not corrected (flagged ``gradient``)."""
        self._horizon = math.inf
        self._ended = True
        if self.triggers is None:
            return []
        return self._route(self.triggers.finish())

    def drain_events(self) -> list[TriggerEvent]:
        """Trigger events since the last call (the live engine makes ticks of inferred ones)."""
        out, self._events = self._events, []
        return out

    def drain_marks(self) -> list[tuple[str, float, float]]:
        """``(flag, t_start, t_stop)`` of released samples not fully corrected, since last call."""
        out = self._marks
        for part in (self.gradient, self.bcg):
            if part is not None:
                out += part.marks
                part.marks = []
        self._marks = []
        return out

    # -- samples ----------------------------------------------------------------------------------
    @property
    def held_s(self) -> float:
        """Stream time held back now (s)."""
        return self._n_held / self.sfreq

    def process(self, data: np.ndarray, times: np.ndarray, ecg: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Feed EEG (n_channels, n) µV, its times and the ECG (n,); return what is released."""
        data = np.asarray(data, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != self.n_channels or data.shape[1] != len(times):
            raise ValueError(f"Expected EEG of shape ({self.n_channels}, {len(times)}), got "
                             f"{data.shape}.")
        if self.has_ecg:
            if ecg is None or len(ecg) != len(times):
                raise ValueError("This corrector was built with an ECG channel: pass its samples.")
            data = np.vstack([data, np.asarray(ecg, dtype=np.float64)[None]])
        if len(times):
            self._held.append((data, times))
            self._n_held += len(times)
        return self._release(self._cutoff())

    def release(self) -> tuple[np.ndarray, np.ndarray]:
        """What may be released now without new samples: call after :meth:`add_markers` so the
        samples that waited for a marker go on at once, not with the next chunk."""
        return self._release(self._cutoff())

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Release everything held (end of a recording, or before a gap in the stream)."""
        if self._held and self.triggers is not None:
            self._route(self.triggers.advance(self._held[-1][1][-1] + 0.5 / self.sfreq))
        return self._release(math.inf)

    def reset_stream(self) -> None:
        """After a gap (call :meth:`flush` first): restart the ECG detector; templates stay."""
        if self.bcg is not None:
            self.bcg.reset_stream()

    def _cutoff(self) -> float:
        if self.triggers is None:
            return math.inf
        if not self._held:
            return -math.inf
        newest = float(self._held[-1][1][-1])
        horizon = max(self._horizon, newest - self.config.max_hold_s)
        self._route(self.triggers.advance(horizon))
        return max(horizon, self.triggers.safe_until()) - 0.5 / self.sfreq

    def _release(self, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        out_x, out_t, left = [], [], []
        for x, t in self._held:
            if left or t[0] >= cutoff:
                left.append((x, t))
                continue
            k = int(np.searchsorted(t, cutoff, side="left"))
            out_x.append(x[:, :k])
            out_t.append(t[:k])
            if k < len(t):
                left.append((x[:, k:], t[k:]))
        self._held = left
        self._n_held = sum(len(t) for _, t in left)
        if not out_t:
            return np.zeros((self.n_channels, 0)), np.zeros(0)
        x = np.concatenate(out_x, axis=1) if len(out_x) > 1 else out_x[0]
        t = np.concatenate(out_t) if len(out_t) > 1 else out_t[0]
        return self._correct(x, t), t

    def _correct(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self.bcg_missing and len(t):
            self._marks.append(("bcg", float(t[0]), float(t[-1])))
        n = self.n_channels
        if self.gradient is None:
            return x[:n] if self.bcg is None else self.bcg.correct(x[:n], x[n], t)
        # Volume by volume, so that each gradient epoch is stored without the BCG estimate.
        parts = []
        for a, b in self.gradient.runs(t):
            y, count = self.gradient.correct(x[:, a:b], t[a:b])
            eeg = y[:n]
            if self.bcg is not None:
                # Gradient residue from templates of under MIN_GRADIENT_FOR_BCG volumes would
                # spoil the BCG templates; later, it averages out over the beats.
                done = self.bcg.correct(eeg, y[n], t[a:b], count >= MIN_GRADIENT_FOR_BCG)
                self.gradient.unmix(t[a:b], eeg - done)
                eeg = done
            parts.append(eeg)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    @property
    def volume_times(self) -> list[float]:
        """The volumes of a corrected recording: real and missed triggers up to the last real
        one (a missed trigger placed after it is the scanner having stopped)."""
        if self.triggers is None:
            return []
        real = [t for t, k in zip(self.volumes, self._volume_kinds) if k != "inferred"]
        return [t for t in self.volumes if real and t <= real[-1]]

    # -- status -----------------------------------------------------------------------------------
    def status(self) -> ArtifactStatus:
        st = ArtifactStatus(held_s=self.held_s)
        cfg = self.config
        if self.gradient is not None:
            tmpl = self.gradient.templates
            st.gradient_templates, st.gradient_needed = tmpl.count, tmpl.n
            st.raw_rms_uv = self.gradient.raw_rms_uv
            st.residual_rms_uv = self.gradient.residual_rms_uv
            st.triggers = dict(self.triggers.counts)
            if self.triggers.n_markers == 0:
                st.gradient = "waiting for volume triggers"
            elif self.triggers.lost and self._ended:
                st.gradient = "scan ended"
            elif self.triggers.lost:
                st.gradient = "triggers lost"
            else:
                st.gradient = "on" if tmpl.count >= tmpl.n else "filling"
        if self.bcg_missing:
            st.bcg = "off: no ECG channel"
        elif self.bcg is not None:
            st.bcg = cfg.bcg
            st.bcg_templates, st.bcg_needed = self.bcg.count, self.bcg.n
            st.heart_rate_bpm = self.bcg.detector.heart_rate_bpm
            st.bcg_uv = self.bcg.amplitude_uv
        return st


def recording_corrector(rec, n_channels: int, config: ArtifactConfig, tr: float,
                        marker: str | None) -> tuple[MRCorrector | None, int | None]:
    """The corrector of a whole recording (offline): every volume marker known at once.

    Parameters
    ----------
    rec : rtbold.io.eeg.EEGRecording
    n_channels : int
        The model's channels (rows after the channel mapping).
    config : ArtifactConfig
    tr : float
        The fMRI series' TR (s).
    marker : str | None
        Volume marker; needed for the gradient correction.

    Returns
    -------
    corrector : MRCorrector | None
        None when the correction is off.
    ecg : int | None
        Row of the ECG channel in ``rec.data`` (None: none, BCG off with a warning).
    """
    if not config.enabled:
        return None, None
    from ..channels import find_ecg
    from ..io.eeg import marker_matches

    ecg = find_ecg(rec.ch_names, rec.ch_types, config.ecg_channel, what=rec.label)
    if ecg is None and config.bcg != "off":
        logger.warning("%s has no ECG channel (no channel of type ECG or named ECG/EKG; set "
                       "artifacts.ecg_channel): BCG correction is off.", rec.label)
    if config.gradient != "off" and marker is None:
        raise ValueError(f"{rec.label}: gradient correction needs the volume marker (set "
                         "marker), it is locked to the volumes.")
    corrector = MRCorrector(rec.sfreq, n_channels, config, tr, has_ecg=ecg is not None)
    if corrector.triggers is not None:
        onsets = [rec.first_time + a.onset for a in rec.annotations
                  if marker_matches(a.description, marker)]
        if not onsets:
            seen = sorted({a.description for a in rec.annotations})
            raise ValueError(f"{rec.label} has no volume marker {marker!r} for the gradient "
                             f"correction; its annotations are {seen[:10] or 'none'}.")
        corrector.add_markers(sorted(onsets))
        corrector.end_markers()
    return corrector, ecg


def correct_recording(rec, config: ArtifactConfig, marker: str | None, tr: float | None = None,
                      block_s: float = 10.0) -> tuple[np.ndarray, MRCorrector | None]:
    """A corrected copy of a whole recording at its own rate (``rtbold replay --gradient ...``).

    Every channel but the ECG goes through the correction the live engine runs; the ECG is
    left as recorded. ``tr`` defaults to the median spacing of the volume markers.

    Returns
    -------
    data : array, shape (n_channels, n_times)
        float64, µV.
    corrector : MRCorrector | None
        For its status and marks (None when the correction is off).
    """
    from ..channels import find_ecg
    from ..io.eeg import marker_matches

    data = np.array(rec.data, dtype=np.float64, copy=True)
    if not config.enabled:
        return data, None
    if tr is None:
        onsets = np.array([a.onset for a in rec.annotations
                           if marker is not None and marker_matches(a.description, marker)])
        if len(onsets) < 2:
            raise ValueError(f"{rec.label}: fewer than two volume markers {marker!r}; give the TR.")
        tr = float(np.median(np.diff(onsets)))
    ecg = find_ecg(rec.ch_names, rec.ch_types, config.ecg_channel, what=rec.label)
    rows = [i for i in range(len(rec.ch_names)) if i != ecg]
    corrector, ecg = recording_corrector(rec, len(rows), config, tr, marker)
    block = int(block_s * rec.sfreq)
    times = rec.first_time + np.arange(rec.n_times) / rec.sfreq
    out_x, out_t = [], []
    for start in range(0, rec.n_times, block):
        stop = min(start + block, rec.n_times)
        x, t = corrector.process(rec.data[rows, start:stop], times[start:stop],
                                 None if ecg is None else rec.data[ecg, start:stop])
        out_x.append(x)
        out_t.append(t)
    x, t = corrector.flush()
    out_x.append(x)
    out_t.append(t)
    done = np.concatenate(out_x, axis=1)
    if done.shape[1] != rec.n_times:  # every sample comes out once, in order
        raise RuntimeError(f"MR-artefact correction released {done.shape[1]} of {rec.n_times} "
                           "samples.")
    data[rows] = done
    return data, corrector
