"""What the live tests share: the synthetic sources and settings of :mod:`rtbold.player`."""

from rtbold.player.synthetic import (SourceProcess, SyntheticSource, eeg_info,  # noqa: F401
                                     live_config, make_runner, montage_channels, run_replay,
                                     synthetic_eeg, unique_id)


def run_engine(source, runner, cfg, *, wall_timeout=60.0, windows=None, settle=1.0,
               measured=None):
    """Run a LiveEngine on ``source`` until its last covered marker has a frame (or 10 s more);
    return ``(engine, frames, statuses, errors)``; ``measured`` (a list) collects the
    ``on_measured`` calls (index, t, values)."""
    import time

    from rtbold.stream.engine import LiveEngine

    frames, statuses, errors = [], [], []
    engine = LiveEngine(cfg, on_frame=frames.append, on_status=statuses.append,
                        on_error=errors.append, runner=runner,
                        on_measured=(lambda *a: measured.append(a)) if measured is not None
                        else None)
    engine.start()
    if windows is not None:
        engine.worker.window_hook = lambda tick, w: windows.__setitem__(tick.t, w.copy())
    try:
        source.start()
        source.join(wall_timeout)
        deadline = time.monotonic() + 10
        expected = source.marker_times[source.onsets >= 16.0 - 1e-9]
        while time.monotonic() < deadline and frames and frames[-1].t < expected[-1] - 1e-3:
            time.sleep(0.05)
        time.sleep(settle)
    finally:
        engine.stop()
        source.stop()
    return engine, frames, statuses, errors
