"""Kept for tests/test_gui_live.py, which imports the live helpers from here: they now live in
:mod:`rtbold.player.synthetic` (through tests/live_helpers.py). No tests."""

from live_helpers import SyntheticSource, live_config, make_runner, montage_channels  # noqa: F401
