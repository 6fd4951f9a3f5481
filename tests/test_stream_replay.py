"""`rtbold replay`: a file goes out as LSL streams with the file's labels, values and times.

Real LSL on loopback (tests/conftest.py sets LSLAPICFG), real files, pylsl and mne-lsl readers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mne
import numpy as np
import pylsl
import pytest

from rtbold.player.replay import (Replayer, find_measured_bold, marker_matches,
                                  read_measured_bold)

pytestmark = pytest.mark.timeout(120)


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _resolve(source_id: str, timeout: float = 10.0) -> pylsl.StreamInfo:
    found = pylsl.resolve_bypred(f"source_id='{source_id}'", 1, timeout)
    assert found, f"LSL stream with source_id {source_id!r} not found"
    return found[0]


def _inlet(source_id: str, **kwargs) -> pylsl.StreamInlet:
    inlet = pylsl.StreamInlet(_resolve(source_id), **kwargs)
    inlet.open_stream(timeout=10)
    return inlet


def _labels(info: pylsl.StreamInfo) -> list[dict[str, str]]:
    out, ch = [], info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append({k: ch.child_value(k) for k in ("label", "unit", "type")})
        ch = ch.next_sibling()
    return out


def _file_data_uv(path: Path) -> tuple[np.ndarray, mne.io.BaseRaw]:
    """The file's samples read independently of rtbold (mne, volts -> microvolts)."""
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    return raw.get_data() * 1e6, raw


def _pull_until(inlet, stop, max_samples: int = 4096):
    """Pull chunks until ``stop(n_received)``; returns data (n, C), stamps (n,), [(t_recv, n)]."""
    chunks, stamps, receipts = [], [], []
    while not stop(len(stamps)):
        data, ts = inlet.pull_chunk(timeout=0.05, max_samples=max_samples)
        if ts:
            chunks.append(np.asarray(data, dtype=np.float64))
            stamps.extend(ts)
            receipts.append((pylsl.local_clock(), len(stamps)))
    n_ch = inlet.info().channel_count()
    data = np.concatenate(chunks) if chunks else np.zeros((0, n_ch))
    return data, np.asarray(stamps), receipts


def test_replay_eeglab_labels_values_timestamps(eeg_files):
    """Real-time replay of the EEGLAB file: labels, units, rate, values and 1/sfreq spacing."""
    path = eeg_files["eeglab"]
    expected, raw = _file_data_uv(path)
    sid = _uid("replay-eeglab")
    rep = Replayer(path, source_id=sid, marker=None)
    rep.start()
    try:
        inlet = _inlet(sid)
        info = inlet.info()
        assert info.name() == "eeglab_data" and info.type() == "EEG"
        assert info.nominal_srate() == raw.info["sfreq"] == 128.0
        assert info.channel_format() == pylsl.cf_float32
        chans = _labels(info)
        assert [c["label"] for c in chans] == raw.ch_names
        assert all(c["unit"] == "microvolts" and c["type"] == "EEG" for c in chans)
        t_end = pylsl.local_clock() + 1.2
        data, ts, _ = _pull_until(inlet, lambda n: pylsl.local_clock() > t_end)
        inlet.close_stream()
    finally:
        rep.stop()
    assert len(ts) > 100
    # Sample k is stamped t0 + k/sfreq: recover k from the stamp and compare with the file.
    k = np.round((ts - rep.t0) * 128.0).astype(int)
    np.testing.assert_allclose(ts, rep.t0 + k / 128.0, atol=1e-9, rtol=0)
    assert np.all(np.diff(k) == 1), "samples missing or out of order"
    np.testing.assert_allclose(np.diff(ts), 1 / 128.0, atol=1e-9, rtol=0)
    np.testing.assert_allclose(data, expected[:, k].T.astype(np.float32), rtol=1e-6, atol=1e-4)


def test_replay_edf_pacing_1x_no_drift(eeg_files):
    """At 1x, stream time advances with the wall clock: < 2 % rate error over ~2 s, no lag."""
    path = eeg_files["eegmat"]  # 500 Hz EDF
    sid = _uid("replay-pace")
    rep = Replayer(path, source_id=sid, chunk_s=0.02)
    rep.start()
    try:
        inlet = _inlet(sid)
        t_end = pylsl.local_clock() + 2.0
        data, ts, receipts = _pull_until(inlet, lambda n: pylsl.local_clock() > t_end)
        inlet.close_stream()
    finally:
        rep.stop()
    sfreq = 500.0
    np.testing.assert_allclose(np.diff(ts), 1 / sfreq, atol=1e-9, rtol=0)
    t_recv = np.array([r[0] for r in receipts])
    t_last = np.array([ts[r[1] - 1] for r in receipts])  # stream time of newest sample received
    slope = np.polyfit(t_recv - t_recv[0], t_last - t_last[0], 1)[0]
    assert abs(slope - 1.0) < 0.02, f"replay runs at {slope:.4f}x instead of 1x"
    # Not early (a sample never arrives before its stamp) and not late by more than a few chunks.
    lag = t_recv - t_last
    assert lag.min() > -0.002 and np.median(lag) < 0.1, (lag.min(), np.median(lag))
    assert (t_last[-1] - ts[0]) > 1.8


def test_replay_speed_keeps_stream_time(eeg_files):
    """At 5x the samples arrive 5 times faster but are still stamped 1/sfreq apart."""
    path = eeg_files["eegmmidb"]  # 160 Hz
    sid = _uid("replay-speed")
    rep = Replayer(path, source_id=sid, speed=5.0)
    rep.start()
    try:
        inlet = _inlet(sid)
        t_end = pylsl.local_clock() + 1.2
        _, ts, receipts = _pull_until(inlet, lambda n: pylsl.local_clock() > t_end)
        inlet.close_stream()
    finally:
        rep.stop()
    np.testing.assert_allclose(np.diff(ts), 1 / 160.0, atol=1e-9, rtol=0)
    t_recv = np.array([r[0] for r in receipts])
    t_last = np.array([ts[r[1] - 1] for r in receipts])
    slope = np.polyfit(t_recv - t_recv[0], t_last - t_last[0], 1)[0]
    assert abs(slope / 5.0 - 1.0) < 0.03, f"replay runs at {slope:.3f}x instead of 5x"


def test_replay_fast_every_sample_and_markers(eeg_files):
    """--fast waits for the consumer and delivers every sample in order; markers at stream times."""
    path = eeg_files["eeglab"]
    expected, raw = _file_data_uv(path)
    sid = _uid("replay-fast")
    rep = Replayer(path, source_id=sid, fast=True, marker=None, chunk_s=0.25)
    rep.start()
    try:
        time.sleep(0.3)
        assert rep.n_pushed == 0, "fast mode pushed before a consumer connected"
        minlet = _inlet(f"{sid}-markers")
        inlet = _inlet(sid, max_buflen=600)
        deadline = time.monotonic() + 60
        data, ts, _ = _pull_until(inlet, lambda n: n >= raw.n_times or time.monotonic() > deadline)
        # Markers were pushed with their chunk; read them all.
        texts, mts = [], []
        while True:
            m, t = minlet.pull_sample(timeout=0.5)
            if m is None:
                break
            texts.append(m[0])
            mts.append(t)
        rep.join()
    finally:
        rep.stop()
    n = raw.n_times
    assert len(ts) == n, f"{n - len(ts)} samples lost in fast mode"
    np.testing.assert_allclose(ts - rep.t0, np.arange(n) / 128.0, atol=1e-9, rtol=0)
    np.testing.assert_allclose(data, expected.T.astype(np.float32), rtol=1e-6, atol=1e-4)
    # Every annotation of the file, in order, stamped t0 + onset (the EEG clock).
    assert texts == list(raw.annotations.description)
    np.testing.assert_allclose(np.array(mts) - rep.t0, raw.annotations.onset, atol=1e-9, rtol=0)
    # The marker falls on the EEG sample nearest its onset (same clock, within one sample).
    idx = np.searchsorted(ts, mts)
    assert np.all(np.abs(ts[np.clip(idx, 0, n - 1)] - np.array(mts)) <= 1 / 128.0)


def test_replay_fast_without_consumer_fails_clearly(eeg_files):
    rep = Replayer(eeg_files["eegmat"], source_id=_uid("replay-noconsumer"), fast=True,
                   wait_consumer_s=0.3)
    rep.start()
    try:
        with pytest.raises(RuntimeError, match="No consumer connected"):
            rep.join(timeout=10)
        assert rep.is_done and rep.n_pushed == 0
    finally:
        rep.stop()


def _write_bids(root: Path, roi_names: list[str], tr: float = 1.0, n_vol: int = 5,
                sfreq: float = 250.0) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small simulator-style BIDS run: BrainVision EEG with R149 per volume + region TSV."""
    from pybv import write_brainvision

    rng = np.random.default_rng(0)
    n_times = int((n_vol + 1) * tr * sfreq)
    data = rng.normal(0, 20, (4, n_times))  # microvolts
    onsets = (np.arange(n_vol) * tr + 0.5) * sfreq
    events = [{"onset": int(o), "description": 149, "type": "Response"} for o in onsets]
    eeg_dir = root / "sub-01" / "eeg"
    eeg_dir.mkdir(parents=True)
    write_brainvision(data=data, sfreq=sfreq, ch_names=["Fp1", "Fp2", "Cz", "O1"],
                      fname_base="sub-01_task-rest_run-01_eeg", folder_out=eeg_dir,
                      events=events, unit="µV", overwrite=True)
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    bold = rng.normal(size=(n_vol, len(roi_names))).round(6)
    tsv = func / "sub-01_task-rest_run-01_atlas-DiFuMo64_timeseries.tsv"
    lines = ["\t".join(roi_names)] + ["\t".join(repr(float(v)) for v in row) for row in bold]
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tsv.with_suffix(".json").write_text(json.dumps({"RepetitionTime": tr, "Atlas": "DiFuMo64"}))
    # Another run's series must not be picked up.
    (func / "sub-01_task-rest_run-02_atlas-DiFuMo64_timeseries.tsv").write_text("x\n1\n")
    return eeg_dir / "sub-01_task-rest_run-01_eeg.vhdr", bold, onsets / sfreq


def test_find_and_read_measured_bold(tmp_path):
    from rtbold.atlas import load_atlas

    rois = list(load_atlas(64).roi_names[:3])
    vhdr, bold, _ = _write_bids(tmp_path, rois)
    tsv = find_measured_bold(vhdr)
    assert tsv is not None and tsv.name.startswith("sub-01_task-rest_run-01_atlas-DiFuMo64")
    meas = read_measured_bold(tsv)
    assert meas.roi_names == rois and meas.tr == 1.0 and meas.atlas == "DiFuMo64"
    np.testing.assert_array_equal(meas.data, bold)
    assert find_measured_bold(tmp_path / "x_eeg.vhdr") is None  # not in a BIDS eeg/ folder


def test_marker_matching():
    assert marker_matches("Response/R149", "R149")
    assert marker_matches("Stimulus/S  1", "S1")
    assert not marker_matches("Response/R148", "R149")


def test_replay_measured_bold_stream(tmp_path):
    """Measured region series go out one sample per volume, stamped like the volume marker."""
    from rtbold.atlas import load_atlas

    rois = list(load_atlas(64).roi_names[:3])  # includes 'Calcarine cortex posterior'
    vhdr, bold, onsets = _write_bids(tmp_path, rois)
    sid = _uid("replay-bids")
    rep = Replayer(vhdr, source_id=sid, fast=True, name="bids-run")
    assert rep.measured is not None
    rep.start()
    try:
        minlet = _inlet(f"{sid}-markers")
        binlet = _inlet(f"{sid}-measured-bold")
        inlet = _inlet(sid)
        binfo = binlet.info()
        assert binfo.name() == "bids-run-measured-bold"
        assert binfo.nominal_srate() == 1.0 and binfo.channel_count() == 3
        assert [c["label"] for c in _labels(binfo)] == rois
        assert binfo.desc().child_value("atlas") == "DiFuMo64"
        deadline = time.monotonic() + 30
        _pull_until(inlet, lambda n: n >= rep.n_times or time.monotonic() > deadline)
        vals, bts = binlet.pull_chunk(timeout=1.0)
        marks, mts = minlet.pull_chunk(timeout=1.0)
        rep.join()
    finally:
        rep.stop()
    assert [m[0] for m in marks] == ["Response/R149"] * 5
    np.testing.assert_allclose(np.array(mts) - rep.t0, onsets, atol=1e-9, rtol=0)
    np.testing.assert_allclose(bts, mts, atol=0, rtol=0)
    np.testing.assert_allclose(vals, bold.astype(np.float32), rtol=1e-6)


def test_replay_mne_lsl_stream_connects(eeg_files):
    """mne-lsl's StreamLSL connects to the replayed stream and sees the file's channels and data."""
    from mne.io.constants import FIFF
    from mne_lsl.stream import StreamLSL

    path = eeg_files["eegmat"]
    expected, raw = _file_data_uv(path)
    sid = _uid("replay-mnelsl")
    rep = Replayer(path, source_id=sid, name=sid)
    rep.start()
    stream = StreamLSL(bufsize=1.0, name=sid, source_id=sid)
    try:
        stream.connect(acquisition_delay=0.01, timeout=10)
        assert stream.ch_names == raw.ch_names
        assert stream.info["sfreq"] == 500.0
        # The file's "ECG ECG" channel goes out as type ECG (the BCG correction finds it).
        types = stream.get_channel_types()
        assert types == ["ecg" if n.startswith("ECG") else "eeg" for n in raw.ch_names]
        units = stream.get_channel_units()
        time.sleep(1.3)
        data, ts = stream.get_data(winsize=0.5)
        stream.disconnect()
    finally:
        rep.stop()
    k = np.round((ts - rep.t0) * 500.0).astype(int)
    assert np.all(np.diff(k) == 1)
    # mne-lsl keeps the values as sent (microvolts) and records the unit from desc/channels.
    assert units == [(FIFF.FIFF_UNIT_V, FIFF.FIFF_UNITM_MU)] * len(raw.ch_names)
    np.testing.assert_allclose(data, expected[:, k].astype(np.float32), rtol=1e-6, atol=1e-4)


def test_replay_cli_fast_subprocess(eeg_files, tmp_path):
    """`rtbold --lsl-config ... replay FILE --fast` in its own process delivers every sample."""
    path = eeg_files["eegmmidb"]
    _, raw = _file_data_uv(path)
    sid = _uid("replay-cli")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtbold.cli",
         "--lsl-config", str(root / "configs" / "lsl-local.cfg"), "replay", str(path), "--fast", "--source-id", sid, "--name", sid, "--linger", "1",
         "--all-annotations"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        # The child imports mne and reads the file first: on a loaded machine that takes a while.
        deadline = time.monotonic() + 60
        while not pylsl.resolve_bypred(f"source_id='{sid}'", 1, 1.0):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the replay process never published its stream"
        inlet = _inlet(sid, max_buflen=600)
        assert [c["label"] for c in _labels(inlet.info())] == raw.ch_names
        deadline = time.monotonic() + 60
        _, ts, _ = _pull_until(inlet, lambda n: n >= raw.n_times or time.monotonic() > deadline)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"{raw.n_times} samples pushed" in out
    assert len(ts) == raw.n_times
    np.testing.assert_allclose(np.diff(ts), 1 / 160.0, atol=1e-9, rtol=0)


def test_replay_rejects_bad_input(tmp_path, eeg_files):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Replayer(tmp_path / "missing.edf")
    with pytest.raises(ValueError, match="speed"):
        Replayer(eeg_files["eegmat"], speed=0)
    with pytest.raises(ValueError, match="loop"):  # would have to lose samples
        Replayer(eeg_files["eegmat"], fast=True, loop=True)


def test_replay_without_matching_markers_publishes_no_marker_stream(tmp_path, caplog):
    """A file without the volume marker gets no <name>-markers stream (a consumer falls back to
    its internal clock at once); a truncated file says how many markers it lost."""
    from rtbold.atlas import load_atlas

    vhdr, _, onsets = _write_bids(tmp_path, list(load_atlas(64).roi_names[:3]))
    rep = Replayer(vhdr, marker="R999", measured=False)
    assert rep.events == [] and "R999" in caplog.text and "R149" in caplog.text
    rep._make_outlets()
    try:
        assert set(rep._outlets) == {"eeg"}
    finally:
        rep._outlets.clear()
    vmrk = vhdr.with_suffix(".vmrk")
    text = vmrk.read_text(encoding="utf-8")
    last = text.strip().splitlines()[-1]  # Mk<n>=Response,R149,<sample>,1,0
    key, _, rest = last.partition("=")
    fields = rest.split(",")
    fields[2] = str(10 ** 7)  # far beyond the end
    vmrk.write_text(text + f"Mk{int(key[2:]) + 1}=" + ",".join(fields) + "\n", encoding="utf-8")
    caplog.clear()
    rep = Replayer(vhdr, measured=False)
    assert len(rep.events) == len(onsets)
    assert "outside data range" in caplog.text and "truncated" in caplog.text


def test_replay_loop_continues_stream_time(tmp_path):
    """--loop starts the file again with timestamps (and markers) continuing the stream-time axis."""
    from rtbold.atlas import load_atlas

    vhdr, _, onsets = _write_bids(tmp_path, list(load_atlas(64).roi_names[:3]))
    expected, raw = _file_data_uv(vhdr)
    n = raw.n_times
    sid = _uid("replay-loop")
    rep = Replayer(vhdr, source_id=sid, speed=50.0, loop=True, measured=False,
                   preroll_s=0.01)  # pre-roll: waits for the consumer first
    rep.start()
    try:
        minlet = _inlet(f"{sid}-markers")
        inlet = _inlet(sid, max_buflen=600)
        deadline = time.monotonic() + 30
        data, ts, _ = _pull_until(inlet, lambda k: k >= 2 * n + 10 or time.monotonic() > deadline)
        marks, mts = minlet.pull_chunk(timeout=1.0, max_samples=10)
    finally:
        rep.stop()
    assert len(ts) >= 2 * n + 10
    np.testing.assert_allclose(ts - rep.t0, np.arange(len(ts)) / raw.info["sfreq"], atol=1e-9,
                               rtol=0)
    np.testing.assert_allclose(data[n:2 * n], data[:n], rtol=0, atol=0)  # second pass = first
    np.testing.assert_allclose(data[:n], expected.T.astype(np.float32), rtol=1e-6, atol=1e-4)
    assert len(mts) == 10
    np.testing.assert_allclose(np.array(mts) - rep.t0,
                               np.r_[onsets, onsets + n / raw.info["sfreq"]], atol=1e-9, rtol=0)


def test_preroll_pushes_the_first_seconds_at_once_then_paces(eeg_files):
    """Pre-roll: after a consumer connects, the first 3 s arrive at once, stamped in the past;
    the rest follows in real time on the same stream-time axis."""
    sid = _uid("replay-preroll")
    rep = Replayer(eeg_files["eeglab"], name=sid, source_id=sid, preroll_s=3.0,
                   consumer_grace_s=0.1)  # this test opens no marker inlet
    rep.start()
    try:
        inlet = _inlet(sid)
        t_connect = pylsl.local_clock()
        n_pre = int(3.0 * rep.sfreq)
        data, stamps, receipts = _pull_until(inlet, lambda n: n >= n_pre + int(rep.sfreq))
        t_pre = next(t for t, n in receipts if n >= n_pre)
        assert t_pre - t_connect < 1.0, "pre-roll must arrive at once, not in 3 s"
        t_done = receipts[-1][0]
        assert t_done - t_pre > 0.6, "after the pre-roll, samples are paced in real time"
        np.testing.assert_allclose(np.diff(stamps), 1 / rep.sfreq, atol=1e-6)
        assert stamps[0] == pytest.approx(rep.t0)
        assert rep.t0 < t_connect - 2.0  # stamped in the past, as if recorded all along
        np.testing.assert_allclose(data[:100], rep._samples[:100], rtol=1e-6)
    finally:
        rep.stop()
