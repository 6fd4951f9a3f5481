"""Settings of a live session (``[live]`` table of a TOML file, see configs/live.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
    #: description (microvolts when absent).
    units: str = field(default="auto", metadata={"choices": ("auto", "uV", "mV", "V")})
    #: Channel mapping onto the model's channels (rtbold.channels.ChannelMapping).
    channel_policy: str = field(default="refuse",
                                metadata={"choices": ("refuse", "interpolate", "zero")})
    #: LSL post-processing: clock synchronisation (on: required for stream time across hosts)
    #: and timestamp dejittering (off: keeps the sender's timestamps as they are).
    clock_sync: bool = True
    dejitter: bool = False
    #: NaN samples: "hold" repeats the channel's last finite value, "zero" writes 0; both flag
    #: the frames whose window contains them and count the samples.
    nan_policy: str = field(default="hold", metadata={"choices": ("hold", "zero")})
    #: No sample for this long (wall time): report "disconnected" and look for the stream again.
    silence_s: float = field(default=1.0, metadata={"range": (0.05, 60.0)})
    #: A step between consecutive timestamps larger than (1 + this) sample periods is a gap.
    jitter_tolerance: float = field(default=0.5, metadata={"range": (0.01, 1000.0)})
    #: Acquisition loop period (s).
    pull_interval_s: float = field(default=0.005, metadata={"range": (0.0005, 0.1)})
    #: liblsl inlet buffer (s): how much a stalled engine can catch up on.
    max_buflen_s: int = field(default=60, metadata={"range": (1, 3600)})
    #: Lowest acceptable nominal rate (Hz); the model reads 200 Hz EEG.
    min_sfreq: float = field(default=200.0, metadata={"range": (1.0, 1e6)})


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


@dataclass
class MeasuredConfig:
    """Optional measured-BOLD stream shown beside the prediction (``[live.measured]``)."""

    enabled: bool = True
    #: None: "<eeg name>-measured-bold" (published by ``rtbold replay``).
    name: str | None = None
    resolve_timeout_s: float = field(default=0.5, metadata={"range": (0.0, 600.0)})


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

    def check(self) -> None:
        """Raise ConfigError for combinations the schema cannot express."""
        if self.bundle is None:
            raise ConfigError("live.bundle: no model bundle given; set bundle in [live] or pass "
                              "--bundle PATH.")
        if not (self.stream.name or self.stream.source_id or self.stream.type):
            raise ConfigError("live.stream: give the EEG stream's name, type or source_id "
                              "(e.g. --stream NAME).")


def load_live_config(path: str | Path | None, section: str = "live") -> LiveConfig:
    """Read the ``[live]`` table of a TOML file (defaults everywhere when ``path`` is None)."""
    if path is None:
        return LiveConfig()
    return load_config(path, LiveConfig, section=section)
