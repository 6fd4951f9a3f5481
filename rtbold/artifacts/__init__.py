"""MR-artefact correction of raw in-scanner EEG, live and offline alike.

One module per job:

- :mod:`~rtbold.artifacts.config`: :class:`ArtifactConfig` (``[live.artifacts]``,
  ``[data.artifacts]``);
- :mod:`~rtbold.artifacts.triggers`: volume triggers (regular, doubled, missed, lost);
- :mod:`~rtbold.artifacts.gradient`: causal average artefact subtraction locked to the volumes;
- :mod:`~rtbold.artifacts.rpeaks`: causal R-peak detection on the ECG;
- :mod:`~rtbold.artifacts.bcg`: pulse-artefact subtraction (AAS or OBS) locked to the R-peaks;
- :mod:`~rtbold.artifacts.corrector`: :class:`MRCorrector`, which holds samples back until their
  volume is known and runs both, the first stage of :class:`rtbold.preprocessing.EEGPreprocessor`.
"""

from .bcg import BCGCorrector
from .config import ArtifactConfig
from .corrector import ArtifactStatus, MRCorrector, correct_recording, recording_corrector
from .gradient import GradientCorrector, GradientTemplates
from .rpeaks import RPeakDetector
from .triggers import TriggerEvent, VolumeTriggers

__all__ = ["ArtifactConfig", "ArtifactStatus", "BCGCorrector", "GradientCorrector",
           "GradientTemplates", "MRCorrector", "RPeakDetector", "TriggerEvent",
           "VolumeTriggers", "correct_recording", "recording_corrector"]
