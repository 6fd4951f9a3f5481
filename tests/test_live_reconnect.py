"""Reconnection owned by rtbold: sources killed with SIGKILL and restarted, every inlet combination.

Each source is a separate process (:class:`rtbold.player.synthetic.SourceProcess`) paced by the
LSL clock like an amplifier, so a restarted one continues the stream-time axis after a gap. The
engine must notice the loss, find the streams again by name and source id, and give frames
again within 5 s of the restart, flagged ``"gap"`` while their window touches the hole.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pylsl
import pytest

from rtbold.stream.engine import LiveEngine
from rtbold.stream.recorder import read_tsv

from live_helpers import SourceProcess, live_config, make_runner, montage_channels, unique_id

TR = 1.0
RESUME_S = 5.0  # the target: frames again <= 5 s after the source is back


@pytest.fixture(scope="module")
def runner():
    return make_runner(montage_channels(), size="tiny", tr=TR)


def _engine(runner, tmp_path, name, sid, *, markers: bool, measured: bool):
    src = SimpleNamespace(name=name, source_id=sid, tr=TR, measured=measured or None)
    cfg = live_config(src, tmp_path, trigger__source="markers" if markers else "internal",
                      measured__enabled=measured)
    cfg.measured.resolve_timeout_s = 2.0 if measured else 0.0
    arrivals = []
    engine = LiveEngine(cfg, runner=runner,
                        on_frame=lambda f: arrivals.append((time.monotonic(), f)))
    return engine, arrivals


def _wait(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def _first_after(arrivals, t_stream):
    return next(((w, f) for w, f in list(arrivals) if f.t > t_stream), None)


@pytest.mark.parametrize("streams", [("eeg",), ("eeg", "markers"), ("eeg", "measured"),
                                     ("eeg", "markers", "measured")],
                         ids=["eeg", "eeg+markers", "eeg+measured", "eeg+markers+measured"])
def test_kill9_restart_frames_resume(runner, tmp_path, streams):
    name, sid = unique_id("kill9"), unique_id("sid")
    markers, measured = "markers" in streams, "measured" in streams
    src = SourceProcess(name, sid, streams=streams, t0=pylsl.local_clock() - 17.0, tr=TR,
                        preroll_s=17.0)
    engine, arrivals = _engine(runner, tmp_path, name, sid, markers=markers, measured=measured)
    try:
        src.start()
        engine.start()
        assert engine.clock.mode == ("markers" if markers else "internal")
        assert _wait(lambda: len(arrivals) >= 2, 15.0), "no frames before the kill"
        src.kill()
        t_killed = pylsl.local_clock()
        time.sleep(2.0)
        src.start()  # same name and source id, new process: like a restarted amplifier app
        t_back = pylsl.local_clock()
        assert _wait(lambda: _first_after(arrivals, t_back) is not None, RESUME_S + 5.0)
        wall, frame = _first_after(arrivals, t_back)
        resumed = wall - src.ready_wall
        print(f"{'+'.join(streams)}: frames resumed {resumed:.2f} s after the restart")
        assert resumed <= RESUME_S
        assert "gap" in frame.flags  # its window holds the hole
        # the measured-BOLD inlet reconnects on its own schedule: wait for its first frame too
        assert _wait(lambda: any(f.t > t_back + 1.5 and (not measured or f.measured is not None)
                                 for _, f in arrivals), 8.0)
        status = engine.status()
        assert status.connected and status.n_reconnects >= len(streams)
    finally:
        engine.stop()
        src.kill()
    assert engine.inlet.n_reconnects >= 1
    if markers:
        assert engine._marker_inlet.n_reconnects >= 1
        assert all("internal_clock" not in f.flags for _, f in arrivals)
    if measured:
        assert engine._measured_inlet.n_reconnects >= 1
        late = [f for _, f in arrivals if f.t > t_back + 1.5]
        first = next(i for i, f in enumerate(late) if f.measured is not None)
        assert all(f.measured is not None for f in late[first:])  # resumed and stays
    # Frames across the hole are flagged; the hole is counted as lost samples.
    assert engine.inlet.lost_samples >= 2.0 * 250
    hole = [f for _, f in arrivals if t_killed - 16 < f.t < t_back + 16]
    assert all("gap" in f.flags for f in hole if f.t > t_killed)
    _, events = read_tsv(engine.session_dir / "events.tsv")
    kinds = [e[2] for e in events]
    assert "disconnected" in kinds and "reconnect" in kinds and "gap" in kinds


def test_marker_source_killed_alone(runner, tmp_path):
    """Only the trigger program dies and restarts; the EEG goes on without a lost sample."""
    name, sid = unique_id("kill9m"), unique_id("sid")
    t0 = pylsl.local_clock() - 17.0
    eeg = SourceProcess(name, sid, streams=("eeg",), t0=t0, tr=TR, preroll_s=17.0)
    trig = SourceProcess(name, sid, streams=("markers",), t0=t0, tr=TR)
    engine, arrivals = _engine(runner, tmp_path, name, sid, markers=True, measured=False)
    try:
        eeg.start()
        trig.start()
        engine.start()
        assert _wait(lambda: len(arrivals) >= 2, 15.0)
        trig.kill()
        time.sleep(2.5)
        # Silent markers for more than 2 TRs: the engine says why.
        assert _wait(lambda: "marker stream" in engine.status().waiting_for, 3.0), \
            engine.status()
        trig.start()
        t_back = pylsl.local_clock()
        assert _wait(lambda: _first_after(arrivals, t_back) is not None, RESUME_S + 5.0)
        wall, frame = _first_after(arrivals, t_back)
        print(f"marker stream alone: frames resumed {wall - trig.ready_wall:.2f} s after restart")
        assert wall - trig.ready_wall <= RESUME_S
        assert frame.flags == ()  # the EEG never stopped
        assert _wait(lambda: engine.status().waiting_for == "", 3.0)
    finally:
        engine.stop()
        trig.kill()
        eeg.kill()
    assert engine.inlet.lost_samples == 0
    assert engine._marker_inlet.n_reconnects == 1
    _, events = read_tsv(engine.session_dir / "events.tsv")
    kinds = [e[2] for e in events]
    assert "no_tick" in kinds and "ticks_resumed" in kinds
