"""Players: recorded files and synthetic EEG published as live LSL streams.

:mod:`rtbold.player.replay`
    ``rtbold replay FILE``: any recording mne or pyxdf reads, with its markers and measured BOLD.
:mod:`rtbold.player.synthetic`
    Synthetic EEG with volume markers (and measured BOLD), in this process or as a separate
    process (``python -m rtbold.player.synthetic``) that tests kill and restart; used by the
    test suite and the benchmarks.
"""
