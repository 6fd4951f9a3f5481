"""In-session calibration: fine-tune the live model on the participant's own paired EEG and
measured BOLD, and keep the result only when it predicts held-out minutes better.

- :mod:`.config`: the settings (``[live.calibration]``);
- :mod:`.session`: a recorded session folder as calibration data;
- :mod:`.finetune`: one calibration (:func:`~.finetune.calibrate_session`, ``rtbold calibrate``);
- :mod:`.live`: calibrations in a separate process during a live session, and the model swap.
"""

from .config import CalibrationConfig, load_calibration_config

__all__ = ["CalibrationConfig", "load_calibration_config"]
