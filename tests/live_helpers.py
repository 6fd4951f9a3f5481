"""What the live tests share: the synthetic sources and settings of :mod:`rtbold.player`."""

from rtbold.player.synthetic import (SourceProcess, SyntheticSource, eeg_info,  # noqa: F401
                                     live_config, make_runner, montage_channels, run_replay,
                                     synthetic_eeg, unique_id)
