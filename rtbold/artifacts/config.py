"""Settings of the MR-artefact correction (``[live.artifacts]`` and ``[data.artifacts]``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ArtifactConfig:
    """How raw in-scanner EEG is cleaned before resampling (one setting for live and offline).

    Both corrections are off by default: EEG recorded outside the scanner, or already cleaned,
    goes through unchanged.
    """

    #: Gradient artefact: "aas" subtracts the average of the previous ``gradient_templates``
    #: volumes, locked to the volume markers, at the amplifier rate; "off".
    gradient: str = field(default="off", metadata={"choices": ("aas", "off")})
    #: Ballistocardiogram: "aas" subtracts the average of the previous ``bcg_templates`` beats
    #: locked to the ECG R-peaks; "obs" fits the mean and ``bcg_components`` principal
    #: components of those beats to each beat (optimal basis set); "off".
    bcg: str = field(default="off", metadata={"choices": ("aas", "obs", "off")})
    #: ECG channel label; None takes the channel of type ECG, else the one named ECG/EKG. A
    #: stream or file without it turns the BCG correction off with a warning.
    ecg_channel: str | None = None
    #: Volumes averaged into the gradient template (literature: 20-30 offline).
    gradient_templates: int = field(default=20, metadata={"range": (1, 200)})
    #: Beats averaged into the BCG template (AAS) or decomposed (OBS).
    bcg_templates: int = field(default=20, metadata={"range": (2, 200)})
    #: OBS: principal components fitted besides the mean beat (Niazy et al. 2005: 3-4).
    bcg_components: int = field(default=4, metadata={"range": (1, 10)})
    #: The BCG epoch starts this long after the R-peak (the pulse artefact starts ~0.2 s after
    #: it) and must not start before the R-peak detector has confirmed the beat (0.05 s), so
    #: that no sample waits for a beat.
    bcg_start_s: float = field(default=0.1, metadata={"range": (0.06, 1.0)})
    #: Longest BCG epoch (s). A beat's epoch runs until the next beat's starts, so the epochs
    #: tile the recording (a template shorter than the cardiac cycle would leave a step at its
    #: end); 1.5 s covers heart rates down to 40 bpm.
    bcg_epoch_s: float = field(default=1.5, metadata={"range": (0.3, 3.0)})
    #: A volume marker within this of one TR after the previous one is regular; one closer is
    #: a doubled trigger (ignored); none there is a missed trigger. At least 1.5 samples.
    trigger_tolerance_s: float = field(default=0.002, metadata={"range": (0.0, 0.5)})
    #: Missed triggers in a row that are placed one TR after the last (corrected with the
    #: template, flagged, never added to it); beyond that the scanner is taken to have stopped.
    max_missed_triggers: int = field(default=1, metadata={"range": (0, 10)})
    #: Live: a volume marker arrives at most this long (LSL clock) after its stream time.
    #: Samples near an expected volume wait for its marker at most this long in real time.
    marker_latency_s: float = field(default=0.1, metadata={"range": (0.0, 5.0)})
    #: Live: most stream time held back waiting for a volume marker (bounds memory when the
    #: markers stop); what is older is released as not corrected.
    max_hold_s: float = field(default=30.0, metadata={"range": (1.0, 600.0)})

    @property
    def enabled(self) -> bool:
        """True when any correction runs."""
        return self.gradient != "off" or self.bcg != "off"

    def summary(self) -> str:
        """``gradient aas (20 volumes), bcg obs (20 beats, 4 components)`` or ``off``."""
        if not self.enabled:
            return "off"
        parts = []
        if self.gradient != "off":
            parts.append(f"gradient {self.gradient} ({self.gradient_templates} volumes)")
        if self.bcg != "off":
            extra = f", {self.bcg_components} components" if self.bcg == "obs" else ""
            parts.append(f"bcg {self.bcg} ({self.bcg_templates} beats{extra})")
        return ", ".join(parts)



def add_artifact_args(parser) -> None:
    """``--gradient``, ``--bcg``, ``--ecg-channel``: the correction of raw in-scanner EEG for a
    command that reads recordings (``rtbold evaluate``, ``rtbold replay``)."""
    group = parser.add_argument_group("MR-artefact correction of raw in-scanner EEG")
    group.add_argument("--gradient", choices=("aas", "off"), default="off",
                       help="gradient artefact: average artefact subtraction locked to the "
                            "volume markers (default off)")
    group.add_argument("--bcg", choices=("aas", "obs", "off"), default="off",
                       help="ballistocardiogram from the ECG's R-peaks: average subtraction or "
                            "optimal basis set (default off)")
    group.add_argument("--ecg-channel", default=None, metavar="LABEL",
                       help="ECG channel (default: the channel of type ECG or named ECG/EKG)")


def artifact_config_from_args(args) -> ArtifactConfig:
    """The :class:`ArtifactConfig` of :func:`add_artifact_args`' flags."""
    return ArtifactConfig(gradient=args.gradient, bcg=args.bcg, ecg_channel=args.ecg_channel)


__all__ = ["ArtifactConfig", "add_artifact_args", "artifact_config_from_args"]
