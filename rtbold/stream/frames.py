"""What the live engine hands to its consumers: one :class:`Frame` per TR and :class:`EngineStatus`.

Both are plain dataclasses so the GUI, the recorder and tests can use them without importing
anything from the engine's threads. Times are LSL stream times (clock-corrected), never wall time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Latency stages reported in :attr:`Frame.latency` (seconds since the tick was seen).
STAGES: tuple[str, ...] = ("window_ready", "inference_start", "inference_end", "published",
                           "recorded")


@dataclass
class Frame:
    """One predicted BOLD frame.

    Attributes
    ----------
    index : int
        TR counter from session start (counts every tick, skipped ones included, so a gap in the
        indices shows a skipped TR).
    t : float
        Stream time (LSL clock, s) of the window end = volume time.
    values : array, shape (P,)
        Predicted BOLD (float32, normalised units as trained).
    feedback : float | None
        Z-scored feedback value (None until enough frames for a baseline).
    flags : tuple of str
        ``()`` when clean; ``"gap"`` (window overlaps lost samples or a reconnection, bridged by
        holding the last value), ``"nan"`` (window overlaps NaN samples that were replaced),
        ``"flat"`` / ``"clipped"`` / ``"saturated"`` (a channel was so within the window),
        ``"amplitude"`` (the EEG's RMS is implausible for microvolts), ``"nonfinite"`` (the
        model gave NaN/inf: not published), ``"constant"`` (predictions unchanged over several
        TRs), ``"late"`` (published more than one TR after the volume, LSL clock),
        ``"internal_clock"`` (tick from the internal clock, not a trigger); with MR-artefact
        correction (``[live.artifacts]``): ``"gradient"`` / ``"bcg"`` (the window holds samples
        without a full gradient or BCG template: the first volumes or beats, no trigger, a
        missed beat, no ECG channel), ``"trigger"`` (a missed trigger was placed one TR on, or a
        doubled one ignored, within the window; a frame of a missed trigger carries it too).
    latency : dict
        Stage -> seconds since the tick (``window_ready``, ``inference_start``, ``inference_end``,
        ``published``, ``recorded``).
    measured : array, shape (P,) | None
        Measured BOLD at this TR when a measured-bold stream is present, in the model's region
        order (matched by name; NaN for regions the stream lacks).
    """

    index: int
    t: float
    values: np.ndarray
    feedback: float | None = None
    flags: tuple[str, ...] = ()
    latency: dict[str, float] = field(default_factory=dict)
    measured: np.ndarray | None = None


@dataclass
class EngineStatus:
    """Snapshot of the engine's state, sent to ``on_status`` about twice a second."""

    connected: bool = False
    stream_name: str = ""
    effective_sfreq: float = 0.0
    lost_samples: int = 0
    buffer_fill: float = 0.0
    last_tick: float | None = None
    device: str = ""
    bundle: str = ""
    n_frames: int = 0
    n_skipped: int = 0
    message: str = ""
    #: Why no TR tick came for ``trigger.no_tick_trs`` TRs ("" while ticks come), e.g.
    #: "no TR for 5 s: no markers matching 'R149' seen on 'X-markers'".
    waiting_for: str = ""
    #: Role ("eeg", "markers", "measured") -> "<name>: connected | silent for 1.2 s |
    #: reconnecting for 3.0 s | absent for 10.0 s".
    streams: dict[str, str] = field(default_factory=dict)
    #: "markers" or "internal".
    clock: str = ""
    #: Reconnections of all inlets so far.
    n_reconnects: int = 0
    #: Quality flag ("flat", "clipped", "saturated") -> channels in the latest second.
    bad_channels: dict[str, list[str]] = field(default_factory=dict)
    #: How the measured-BOLD stream's regions match the model's, by name ("" when none was
    #: found): all of them, a subset (both counts), or none, with what to do.
    measured: str = ""
    #: Model regions with a measured series (None: no measured-BOLD stream found yet).
    measured_regions: int | None = None
    #: Measured-BOLD vectors by how they were paired with frames (rtbold.stream.pairing):
    #: "on_time", "late" (after their frame, still paired), "too_late" and "unpaired" (not
    #: paired, recorded in events.tsv); empty without a measured stream.
    measured_counts: dict[str, int] = field(default_factory=dict)
    #: MR-artefact correction, one line ("" when off): templates filled, residual, heart rate,
    #: triggers missed and doubled (rtbold.artifacts.ArtifactStatus.line).
    artifacts: str = ""
    #: In-session calibration, one line ("" when it cannot run: no recording or no measured
    #: BOLD): paired minutes, running, the last verdict with its held-out numbers.
    calibration: str = ""
