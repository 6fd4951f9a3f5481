"""Session recorder: append-only files, readable after a SIGKILL up to the last TR."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mne
import numpy as np
import pytest

from rtbold.stream.frames import Frame
from rtbold.stream.recorder import (SessionRecorder, export_raw_fif, read_predictions,
                                    read_raw_eeg, read_tsv)

pytestmark = pytest.mark.timeout(90)
ROIS = ["Superior frontal sulcus", "Heschl\u2019s gyrus", "Calcarine cortex posterior"]
CH = ["FP1", "FP2", "CZ", "ECG"]


def _recorder(folder: Path, **kw) -> SessionRecorder:
    return SessionRecorder(folder, roi_names=ROIS, tr=2.1, atlas="DiFuMo64",
                           bundle={"path": "model.rtbold", "model": "unebolt-tiny"},
                           eeg_ch_names=CH, eeg_ch_types=["eeg", "eeg", "eeg", "ecg"],
                           eeg_sfreq=200.0, stream_info={"eeg": {"name": "amp"}}, **kw)


def test_recorder_files_and_round_trip(tmp_path, rng):
    folder = tmp_path / "session"
    rec = _recorder(folder, fsync=False)
    eeg = rng.normal(0, 30, (4, 1000)).astype(np.float32)
    times = 100.0 + np.arange(1000) / 200.0
    for start in range(0, 1000, 37):  # uneven chunks, as pulled from an inlet
        rec.write_eeg(eeg[:, start:start + 37], times[start:start + 37])
    rec.write_event("marker", onset=101.0, description="R149")
    rec.write_event("gap", onset=102.5, description="12 samples lost", n_lost=12)
    values = rng.normal(size=(3, 3)).astype(np.float32)
    rec.write_frame(Frame(0, 101.0, values[0], None, (), {"window_ready": 0.001}))
    rec.write_frame(Frame(1, 103.1, values[1], 0.5, ("gap",),
                          {"window_ready": 0.001, "inference_end": 0.02, "extra": 1.0},
                          measured=np.array([1.0, 2.0, 3.0])))
    rec.write_frame(Frame(2, 105.2, values[2], -1.25, ("gap", "late"), {}))
    rec.close()
    rec.close()  # idempotent

    meta = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    assert meta["roi_names"] == ROIS and meta["tr"] == 2.1 and meta["atlas"] == "DiFuMo64"
    assert meta["bundle"]["model"] == "unebolt-tiny" and meta["eeg"]["ch_names"] == CH
    side = json.loads((folder / "predictions.json").read_text(encoding="utf-8"))
    assert side["RepetitionTime"] == 2.1 and side["roi_names"] == ROIS

    pred = read_predictions(folder)
    assert pred["roi_names"] == ROIS
    np.testing.assert_array_equal(pred["index"], [0, 1, 2])
    np.testing.assert_array_equal(pred["t"], [101.0, 103.1, 105.2])
    assert pred["flags"] == [(), ("gap",), ("gap", "late")]
    np.testing.assert_array_equal(pred["feedback"], [np.nan, 0.5, -1.25])
    np.testing.assert_array_equal(pred["values"].astype(np.float32), values)

    header, rows = read_tsv(folder / "latency.tsv")
    assert header == ["index", "t", "window_ready", "inference_start", "inference_end",
                      "published", "recorded"]
    assert rows[1][2] == "0.001" and rows[1][4] == "0.02" and rows[1][3] == "n/a"
    header, rows = read_tsv(folder / "measured.tsv")
    assert header == ["index", "t", *ROIS] and rows == [["1", "103.1", "1.0", "2.0", "3.0"]]
    header, rows = read_tsv(folder / "events.tsv")
    kinds = [r[header.index("kind")] for r in rows]
    assert kinds == ["session_start", "marker", "gap", "session_end"]
    assert json.loads(rows[2][header.index("info")]) == {"n_lost": 12}

    data, ts, eeg_header = read_raw_eeg(folder)
    np.testing.assert_array_equal(data, eeg)
    np.testing.assert_array_equal(ts, times)
    assert eeg_header["ch_types"] == ["eeg", "eeg", "eeg", "ecg"]

    fif = export_raw_fif(folder)
    raw = mne.io.read_raw_fif(fif, preload=True, verbose="error")
    assert raw.ch_names == CH and raw.info["sfreq"] == 200.0
    assert raw.get_channel_types() == ["eeg", "eeg", "eeg", "ecg"]
    np.testing.assert_allclose(raw.get_data(), eeg * 1e-6, rtol=1e-6)
    assert list(raw.annotations.description) == ["R149"]
    assert raw.annotations.onset[0] == pytest.approx(1.0)
    with pytest.raises(FileExistsError):
        export_raw_fif(folder)


def test_recorder_never_overwrites(tmp_path):
    _recorder(tmp_path / "s").close()
    with pytest.raises(FileExistsError, match="already holds a recorded session"):
        _recorder(tmp_path / "s")


def test_recorder_rejects_bad_shapes(tmp_path):
    rec = _recorder(tmp_path / "s", fsync=False)
    with pytest.raises(ValueError, match="3 regions"):
        rec.write_prediction(0, 1.0, np.zeros(5))
    with pytest.raises(ValueError, match="write_eeg expects"):
        rec.write_eeg(np.zeros((3, 10)), np.arange(10.0))
    rec.close()
    rec2 = SessionRecorder(tmp_path / "noeeg", roi_names=ROIS, tr=2.1)
    with pytest.raises(RuntimeError, match="eeg_ch_names"):
        rec2.write_eeg(np.zeros((4, 1)), [0.0])
    rec2.close()


def test_readers_drop_partial_tail(tmp_path):
    """A crash can cut the last line/sample; the readers keep everything before it."""
    folder = tmp_path / "s"
    rec = _recorder(folder, fsync=False)
    rec.write_eeg(np.ones((4, 10)), np.arange(10.0))
    rec.write_prediction(0, 1.0, [1.0, 2.0, 3.0])
    rec.flush()
    with (folder / "predictions.tsv").open("a") as fid:
        fid.write("1\t3.1\t\tn/a\t0.5")  # cut mid-row
    with (folder / "eeg.bin").open("ab") as fid:
        fid.write(np.ones(6, "<f4").tobytes())  # one and a half samples of values ...
    with (folder / "eeg_times.bin").open("ab") as fid:
        fid.write(np.array([10.0]).tobytes())  # ... and one timestamp
    pred = read_predictions(folder)
    np.testing.assert_array_equal(pred["index"], [0])
    data, ts, _ = read_raw_eeg(folder)
    assert data.shape == (4, 11) and ts[-1] == 10.0


_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from rtbold.stream.frames import Frame
    from rtbold.stream.recorder import SessionRecorder

    folder = sys.argv[1]
    rois = ["r%d" % i for i in range(64)]
    rec = SessionRecorder(folder, roi_names=rois, tr=0.1,
                          eeg_ch_names=["C%d" % i for i in range(8)], eeg_sfreq=200.0)
    k = 0
    for tr in range(10 ** 6):
        for _ in range(4):  # 20 samples per TR in 4 pulls of 5 samples
            idx = np.arange(k, k + 5)
            rec.write_eeg(np.sin(idx[None, :] * 0.01 + np.arange(8)[:, None]), idx / 200.0)
            k += 5
            time.sleep(0.001)
        rec.write_event("marker", onset=k / 200.0, description="R149")
        rec.write_frame(Frame(tr, k / 200.0, (tr + np.arange(64) / 100.0).astype(np.float32),
                              None, (), {"window_ready": 0.001, "recorded": 0.002}))
        print(tr, k, flush=True)   # this TR is on disk
""")


def test_recorder_survives_sigkill(tmp_path):
    """Kill a recording process with SIGKILL; everything up to the last reported TR is readable."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    folder = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    last_tr, last_k = -1, 0
    deadline = time.monotonic() + 60
    try:
        while last_tr < 15 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last_tr, last_k = map(int, line.split())
        os.kill(proc.pid, signal.SIGKILL)  # mid-way through the next TR's writes
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert last_tr >= 15, proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL

    pred = read_predictions(folder)
    n = len(pred["index"])
    assert n >= last_tr + 1 and n <= last_tr + 2  # at most the TR in flight beyond the report
    np.testing.assert_array_equal(pred["index"], np.arange(n))
    expected = (np.arange(n)[:, None] + np.arange(64)[None, :] / 100.0).astype(np.float32)
    np.testing.assert_array_equal(pred["values"].astype(np.float32), expected)
    _, lat = read_tsv(folder / "latency.tsv")
    assert len(lat) >= last_tr + 1

    data, ts, _ = read_raw_eeg(folder)
    assert data.shape[1] >= last_k  # every sample up to the last reported TR
    idx = np.arange(data.shape[1])
    np.testing.assert_array_equal(ts, idx / 200.0)
    np.testing.assert_allclose(data, np.sin(idx[None, :] * 0.01 + np.arange(8)[:, None]),
                               rtol=1e-6, atol=1e-6)
    header, rows = read_tsv(folder / "events.tsv")
    markers = [r for r in rows if r[header.index("kind")] == "marker"]
    assert len(markers) >= last_tr + 1
    raw = mne.io.read_raw_fif(export_raw_fif(folder), verbose="error")
    assert raw.n_times == data.shape[1] and len(raw.annotations) >= last_tr
    assert math.isclose(raw.info["sfreq"], 200.0)


def test_recorder_concurrent_writers(tmp_path):
    """Acquisition (EEG + events) and inference (frames) threads write at once; files stay whole."""
    import threading

    rec = _recorder(tmp_path / "s", fsync=False)
    n_chunks, n_frames = 400, 100

    def acquire():
        for i in range(n_chunks):
            idx = np.arange(i * 5, i * 5 + 5)
            rec.write_eeg(np.tile(idx.astype(np.float32), (4, 1)), idx / 200.0)
            if i % 10 == 0:
                rec.write_event("marker", onset=i * 5 / 200.0, description="R149")

    def infer():
        for i in range(n_frames):
            rec.write_frame(Frame(i, i * 0.1, np.full(3, i, np.float32), None, (), {}))

    threads = [threading.Thread(target=acquire), threading.Thread(target=infer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    data, ts, _ = read_raw_eeg(tmp_path / "s")
    np.testing.assert_array_equal(ts, np.arange(n_chunks * 5) / 200.0)
    np.testing.assert_array_equal(data, np.tile(np.arange(n_chunks * 5, dtype=np.float32), (4, 1)))
    pred = read_predictions(tmp_path / "s")
    np.testing.assert_array_equal(pred["index"], np.arange(n_frames))
    header, rows = read_tsv(tmp_path / "s" / "events.tsv")
    assert sum(r[header.index("kind")] == "marker" for r in rows) == n_chunks // 10
