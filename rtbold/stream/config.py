"""Settings of a live session (``[live]`` table of a TOML file, see configs/live.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts.config import ArtifactConfig
from ..calibration.config import CalibrationConfig
from ..config import ConfigError, load_config


@dataclass
class StreamConfig:
    """Which EEG stream to read and how (``[live.stream]``)."""

    #: Stream name, type and/or source id; at least name or source_id. Matching is exact.
    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    resolve_timeout_s: float = field(default=10.0, metadata={"range": (0.1, 3600.0)})
    #: Units of the stream's EEG values; "auto" reads the channel "unit" field of the stream
    #: description: names (microvolts, uV, µV, millivolts, volts, V: BrainVision Connector,
    #: OpenBCI) or mne-lsl's powers of ten of volts ("0" = V, "-6" = µV); microvolts when absent.
    units: str = field(default="auto", metadata={"choices": (
        "auto", "uV", "µV", "mV", "V", "microvolts", "millivolts", "volts")})
    #: Channel mapping onto the model's channels (rtbold.channels.ChannelMapping).
    channel_policy: str = field(default="refuse",
                                metadata={"choices": ("refuse", "interpolate", "zero")})
    #: Largest share of the model's channels that "interpolate" or "zero" may fill; a stream
    #: lacking more is refused.
    max_filled: float = field(default=0.25, metadata={"range": (0.0, 1.0)})
    #: LSL post-processing: clock synchronisation (on: required for stream time across hosts)
    #: and timestamp dejittering (off: keeps the sender's timestamps as they are).
    clock_sync: bool = True
    dejitter: bool = False
    #: NaN samples: "hold" repeats the channel's last finite value, "zero" writes 0; both flag
    #: the frames whose window contains them and count the samples.
    nan_policy: str = field(default="hold", metadata={"choices": ("hold", "zero")})
    #: No sample for this long (wall time): report the stream "silent".
    silence_s: float = field(default=1.0, metadata={"range": (0.05, 60.0)})
    #: No sample for this long (wall time): close the inlet and look for the stream again by
    #: name and source id (a source that was killed is noticed at once, without waiting).
    reconnect_s: float = field(default=2.0, metadata={"range": (0.1, 600.0)})
    #: A step between consecutive timestamps larger than (1 + this) sample periods is a gap.
    jitter_tolerance: float = field(default=0.5, metadata={"range": (0.01, 1000.0)})
    #: Acquisition loop period (s).
    pull_interval_s: float = field(default=0.005, metadata={"range": (0.0005, 0.1)})
    #: liblsl inlet buffer (s): how much a stalled engine (or a fast replay waiting for the
    #: engine) can catch up on; 0: about a million samples (20 min at 800 Hz, at most an hour).
    max_buflen_s: int = field(default=0, metadata={"range": (0, 3600)})
    #: Lowest acceptable nominal rate (Hz); the model reads 200 Hz EEG.
    min_sfreq: float = field(default=200.0, metadata={"range": (1.0, 1e6)})
    #: RMS of the first seconds of EEG outside scalp-EEG values (in µV): "warn" (event, status
    #: message, frames flagged "amplitude") or "off".
    amplitude_check: str = field(default="warn", metadata={"choices": ("warn", "off")})
    #: A channel whose peak-to-peak over a second is below this (µV) is "flat".
    flat_uv: float = field(default=0.5, metadata={"range": (0.0, 1e6)})
    #: Samples at a channel's extreme value within a second that make it "clipped".
    clip_samples: int = field(default=5, metadata={"range": (2, 100_000)})
    #: |value| (µV) at which a channel is "saturated" (the amplifier's range); 0: not checked.
    saturation_uv: float = field(default=0.0, metadata={"range": (0.0, 1e9)})


@dataclass
class TriggerConfig:
    """Where TR ticks come from (``[live.trigger]``)."""

    #: "markers": a scanner-trigger / annotation marker stream; "internal": every TR of stream
    #: time once the first full window exists. A missing marker stream falls back to "internal"
    #: with a warning.
    source: str = field(default="markers", metadata={"choices": ("markers", "internal")})
    #: Marker stream name; None tries "<eeg name>-markers" (rtbold replay) and
    #: "<eeg name>-annotations" (mne-lsl player).
    name: str | None = None
    source_id: str | None = None
    #: Marker value that marks a volume; matched on the end of the value after removing spaces
    #: (so "Response/R149" and "R149" both match "R149").
    marker: str = "R149"
    resolve_timeout_s: float = field(default=2.0, metadata={"range": (0.0, 600.0)})
    #: Repetition time (s); None takes the bundle's.
    tr: float | None = field(default=None, metadata={"range": (0.1, 60.0)})
    #: No TR tick for this many TRs: say why (no matching marker, marker stream gone, EEG
    #: silent) in the status, events.tsv and the log.
    no_tick_trs: float = field(default=2.0, metadata={"range": (1.0, 1000.0)})


@dataclass
class MeasuredConfig:
    """Optional measured-BOLD stream shown beside the prediction (``[live.measured]``)."""

    enabled: bool = True
    #: None: "<eeg name>-measured-bold" (published by ``rtbold replay``).
    name: str | None = None
    resolve_timeout_s: float = field(default=0.5, metadata={"range": (0.0, 600.0)})
    #: A volume's values may come after its frame (scanner reconstruction and export): they are
    #: paired with it late, up to this long (stream time) after the newest frame's volume; later
    #: ones are recorded in events.tsv as "measured_late" and counted, not paired.
    max_delay_s: float = field(default=10.0, metadata={"range": (0.0, 600.0)})
    #: Running r of predicted vs measured BOLD over the last this many paired TRs.
    window_trs: int = field(default=30, metadata={"range": (3, 100_000)})
    #: Prediction of frame i is compared with the measured volume of frame i + lag_trs. The
    #: models are trained on windows [t - 16 s, t] paired with the volume at t, so the lag they
    #: imply is 0.
    lag_trs: int = field(default=0, metadata={"range": (0, 100)})


@dataclass
class WorkerConfig:
    """Inference worker (``[live.worker]``)."""

    #: Ticks waiting for the worker; when full the oldest is dropped and counted as skipped.
    queue_size: int = field(default=8, metadata={"range": (1, 1000)})
    #: When behind (a newer tick is queued), skip a tick whose window is older than one TR.
    skip_stale: bool = True
    #: Longest wall time to wait for the EEG to cover a tick's window before skipping it.
    max_wait_s: float = field(default=5.0, metadata={"range": (0.01, 600.0)})
    warmup: int = field(default=2, metadata={"range": (0, 100)})
    #: torch intra-op threads on CPU; 0 keeps torch's default.
    torch_threads: int = field(default=1, metadata={"range": (0, 256)})
    #: "auto": when the EEG runs ahead of real time (a replay at 10x or --fast), acquisition
    #: stops pulling while the worker still needs the buffered windows, no tick is dropped and
    #: none is stale, so every speed gives the same frames; "off": never.
    backpressure: str = field(default="auto", metadata={"choices": ("auto", "off")})
    #: Frames whose predictions have not changed over this many TRs are flagged "constant"
    #: (0: off).
    constant_trs: int = field(default=5, metadata={"range": (0, 10_000)})


@dataclass
class OutputConfig:
    """What the engine publishes and records (``[live.output]``)."""

    bold_outlet: bool = True
    feedback_outlet: bool = True
    record: bool = True
    #: fsync the session files once per TR (power-loss safe); off: flushed to the OS only
    #: (kill -9 safe), which keeps recording well under a millisecond.
    fsync: bool = True
    #: Prefix of the outlets' stream names ("<prefix>-bold", "<prefix>-feedback").
    name: str = "rtbold"
    #: Feedback value (rtbold.stream.outlets.FeedbackTarget): "region:<name>", "network:<Yeo-7
    #: name>" or "diff:<term> - <term>".
    feedback_target: str = "network:Default"
    #: Running baseline (TRs) that z-scores the feedback value; "window" or "initial".
    feedback_baseline_trs: int = field(default=30, metadata={"range": (2, 100_000)})
    feedback_baseline: str = field(default="window", metadata={"choices": ("window", "initial")})
    #: LSL source ids of the outlets; None: "<name>-bold-<random>" etc.
    source_id: str | None = None


@dataclass
class LiveConfig:
    """A live session: model bundle, device, EEG stream, trigger, outputs."""

    bundle: Path | None = None
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda", "mps")})
    #: Session folder; None: sessions/<date-time> under the working directory.
    session_dir: Path | None = None
    #: Ring buffer length (s); must exceed the 16 s window plus the resampler delay. The slack
    #: beyond 16 s is how far the worker may lag (or a network burst may jump) before a tick's
    #: window is overwritten; memory is C x 2 x buffer_s x 200 x 4 bytes (1.6 MB for 26 channels).
    buffer_s: float = field(default=40.0, metadata={"range": (17.0, 600.0)})
    stream: StreamConfig = field(default_factory=StreamConfig)
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    measured: MeasuredConfig = field(default_factory=MeasuredConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    #: MR-artefact correction of raw in-scanner EEG (``[live.artifacts]``), off by default.
    artifacts: ArtifactConfig = field(default_factory=ArtifactConfig)
    #: In-session calibration on the measured BOLD (``[live.calibration]``): on request, or by
    #: itself after ``after_min`` minutes of paired frames.
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def check(self) -> None:
        """Raise ConfigError for what can be checked before loading a model or connecting.

        The bundle must exist, the session folder must not hold a session, and the EEG stream
        must be named; each message names the key and the command-line flag to fix it.
        """
        if self.bundle is None:
            raise ConfigError("live.bundle: no model bundle given; set bundle in [live] or pass "
                              "--bundle PATH ('demo' for the packaged demo model).")
        bundle = resolve_bundle(self.bundle)
        if not bundle.is_file():
            raise ConfigError(f"live.bundle: {str(self.bundle)!r} does not exist (looked for "
                              f"{bundle.resolve()}); set bundle in [live] or pass --bundle PATH "
                              "('demo' for the packaged demo model).")
        if not (self.stream.name or self.stream.source_id or self.stream.type):
            raise ConfigError("live.stream: give the EEG stream's name, type or source_id "
                              "(live.stream.name, or --stream NAME).")
        check_session_dir(self.session_dir)


def resolve_bundle(path: str | Path) -> Path:
    """The bundle file: ``"demo"`` is the packaged demo model."""
    if str(path) == "demo":
        from ..demo import demo_bundle_path

        return demo_bundle_path()
    return Path(path)


def check_session_dir(folder: str | Path | None) -> None:
    """Raise ConfigError when ``folder`` already holds a recorded session."""
    if folder is not None and (Path(folder) / "session.json").exists():
        raise ConfigError(f"live.session_dir: {folder} already holds a recorded session "
                          "(recordings are never overwritten); choose a new folder "
                          "(--session-dir DIR).")


def load_live_config(path: str | Path | None, section: str = "live") -> LiveConfig:
    """Read the ``[live]`` table of a TOML file (defaults everywhere when ``path`` is None)."""
    if path is None:
        return LiveConfig()
    return load_config(path, LiveConfig, section=section)
