"""MR-artefact correction (rtbold.artifacts): triggers, gradient AAS against MNE, R-peaks, BCG,
chunked = one-shot, missed / doubled triggers and a missing ECG, on simulated in-scanner EEG."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from rtbold.artifacts import (ArtifactConfig, GradientTemplates, MRCorrector, RPeakDetector,
                              VolumeTriggers, correct_recording, recording_corrector)
from rtbold.io.eeg import marker_matches, read_eeg
from rtbold.preprocessing import EEGPreprocessor
from rtbold.simulator import simulate_dataset
from rtbold.simulator.config import in_scanner_config

FS = 5000.0
TR = 2.1
N_EEG = 26
# Short templates so that a short recording reaches full correction.
CFG = dict(gradient_templates=12, bcg_templates=20)


def _paths(root):
    base = root / "derivatives" / "rtbold-sim" / "sub-01" / "eeg" / "sub-01_task-rest_run-01_desc-"
    return root / "sub-01" / "eeg" / "sub-01_task-rest_run-01_eeg.vhdr", base


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """~63 s of raw in-scanner EEG at 5 kHz with one dropped and one doubled trigger."""
    root = tmp_path_factory.mktemp("inscanner")
    simulate_dataset(root, in_scanner_config(
        n_subjects=1, n_volumes=24, lead_s=10.0, seed=4,
        scanner={"dropped_triggers": 1, "doubled_triggers": 1}), progress=False)
    raw_path, base = _paths(root)
    raw = read_eeg(raw_path)
    truth = np.load(f"{base}scanner.npz")
    clean = read_eeg(f"{base}clean_eeg.vhdr").data
    return raw, clean, truth


def _markers(raw):
    return [a.onset for a in raw.annotations if marker_matches(a.description, "R128")]


def _one_shot(raw, cfg):
    corr = MRCorrector(FS, N_EEG, cfg, TR, has_ecg=True)
    corr.add_markers(_markers(raw))
    corr.set_horizon(math.inf)
    t = np.arange(raw.n_times) / FS
    x, tt = corr.process(raw.data[:N_EEG], t, raw.data[N_EEG])
    x2, t2 = corr.flush()
    return np.concatenate([x, x2], axis=1), np.concatenate([tt, t2]), corr


# -- triggers ------------------------------------------------------------------------------------
def test_triggers_regular_doubled_missed_lost_restart():
    vt = VolumeTriggers(2.0, tolerance_s=0.002, max_missed=1)
    ev = vt.add([10.0, 12.0, 12.02, 14.0])
    assert [e.kind for e in ev] == ["first", "volume", "doubled", "volume"]
    assert vt.tr == pytest.approx(2.0) and ev[3].regular
    assert vt.safe_until() == pytest.approx(16.0 - 0.002)
    # 16.0 missed: the horizon passing it places it one TR on; the next marker is regular
    # but the volume before it was not bounded by two real triggers.
    assert [e.kind for e in vt.advance(16.1)] == ["inferred"]
    ev = vt.add([18.0])
    assert [(e.kind, e.regular) for e in ev] == [("volume", False)]
    # Two missed in a row (max_missed = 1): the triggers are lost, then resume on the grid.
    assert [e.kind for e in vt.advance(24.0)] == ["inferred", "lost"]
    assert vt.lost and vt.safe_until() == -math.inf
    assert [e.kind for e in vt.add([26.0])] == ["volume"]
    # The sequence shifts off the grid: first a missed trigger and a doubled one (what a stream
    # knows at the time), then the triggers are lost and a new sequence starts.
    assert [e.kind for e in vt.add([28.7])] == ["inferred", "doubled"]
    assert [e.kind for e in vt.add([30.7])] == ["lost", "restart"]
    assert vt.tr is None
    assert [(e.kind, e.regular) for e in vt.add([32.7])] == [("volume", True)]
    assert vt.counts["doubled"] == 2 and vt.counts["inferred"] == 3


def test_triggers_same_events_whatever_the_arrival():
    times = [5.0, 7.1, 7.13, 9.2, 13.4, 15.5, 17.6]  # doubled at 7.13, missed at 11.3
    once = VolumeTriggers(2.1)
    ev_once = once.add(times) + once.advance(math.inf)
    live = VolumeTriggers(2.1)
    ev_live = []
    for t in times:
        ev_live += live.advance(t - 0.05) + live.add([t])
    ev_live += live.advance(math.inf)
    assert [(e.t, e.kind) for e in ev_once] == [(e.t, e.kind) for e in ev_live]
    assert [e.kind for e in ev_once].count("inferred") == 2  # 11.3 and, after the end, 19.7


# -- gradient ------------------------------------------------------------------------------------
def test_gradient_template_equals_mne_gradient_remover(rng):
    """The template of volume k is GradientRemover's with a (n, 0) window; the corrected sample
    is the raw one minus it."""
    from mne.preprocessing import GradientRemover

    n, L, C = 4, 500, 3
    shape = rng.normal(0, 300, (C, L))
    data = rng.normal(0, 10, (C, 12 * L + 50)) + np.linspace(0, 40, 12 * L + 50)
    onsets = 25 + L * np.arange(12)
    for o in onsets:
        data[:, o:o + L] += shape
    mne_rm = GradientRemover(data, onsets, window=(n, 0))
    tmpl = GradientTemplates(n)
    for k in range(10):
        if k >= n:
            np.testing.assert_allclose(tmpl.mean(), mne_rm.get_tr_template(k), atol=1e-3)
        tmpl.push(data[:, onsets[k]:onsets[k] + L])
    # The same through the streaming corrector (gradient only), fed in odd chunks.
    sf = 1000.0
    cfg = ArtifactConfig(gradient="aas", gradient_templates=n)
    corr = MRCorrector(sf, C, cfg, tr=L / sf)
    corr.add_markers(onsets / sf)
    corr.set_horizon(math.inf)
    t = np.arange(data.shape[1]) / sf
    outs = [corr.process(data[:, a:a + 333], t[a:a + 333])[0] for a in range(0, len(t), 333)]
    out = np.concatenate(outs + [corr.flush()[0]], axis=1)
    for k in (n, 7, 11):
        seg = slice(onsets[k], onsets[k] + L)
        np.testing.assert_allclose(out[:, seg], data[:, seg] - mne_rm.get_tr_template(k),
                                   atol=1e-3)


def test_missed_and_doubled_triggers_never_enter_the_template(rng):
    """A doubled trigger is ignored; a missed one is corrected with the template but neither the
    volume before nor after it enters the template."""
    from scipy.signal import detrend

    L, C, sf = 400, 2, 1000.0
    shape = detrend(rng.normal(0, 500, (C, L)))  # the gradient artefact has no mean or slope
    n_vol = 14
    data = rng.normal(0, 5, (C, n_vol * L + 200))
    onsets = 100 + L * np.arange(n_vol)
    for o in onsets:
        data[:, o:o + L] += shape
    t = np.arange(data.shape[1]) / sf

    def run(markers):
        corr = MRCorrector(sf, C, ArtifactConfig(gradient="aas", gradient_templates=3),
                           tr=L / sf)
        corr.add_markers(np.sort(markers) / sf)
        corr.set_horizon(math.inf)
        out = np.concatenate([corr.process(data, t)[0], corr.flush()[0]], axis=1)
        return out, corr

    clean, c0 = run(onsets)
    dropped, c1 = run(np.delete(onsets, 8))
    doubled, c2 = run(np.r_[onsets, onsets[8] + 17])
    assert c1.triggers.counts["inferred"] >= 1 and c2.triggers.counts["doubled"] == 1
    # The doubled trigger changes nothing at all.
    np.testing.assert_allclose(doubled, clean, atol=1e-9)
    # The missed volume is still corrected (its artefact of 500 µV SD is gone) ...
    seg = slice(onsets[8], onsets[8] + L)
    assert np.std(dropped[:, seg]) < 10
    # ... the volumes around it never went into a template (fewer pushed), and the volume
    # marks are flagged.
    assert c1.gradient.n_pushed == c0.gradient.n_pushed - 2
    flags = {f for f, a, b in c1.drain_marks() if a <= onsets[8] / sf + 0.1 <= b}
    assert "trigger" in flags
    assert c1.volume_times == pytest.approx(list(onsets / sf))  # the volumes, missed one placed


# -- R-peaks -------------------------------------------------------------------------------------
def test_rpeak_detector_is_causal_and_chunk_independent(recording):
    raw, clean, truth = recording
    ecg = clean[N_EEG]  # the ECG without gradient artefact
    t = np.arange(len(ecg)) / FS
    one = [p for p, _ in RPeakDetector(FS).process(ecg, t)]
    det = RPeakDetector(FS)
    chunked, start = [], 0
    for size in np.random.default_rng(1).integers(1, 4000, 2000):
        stop = min(start + int(size), len(ecg))
        chunked += [p for p, _ in det.process(ecg[start:stop], t[start:stop])]
        start = stop
        if start >= len(ecg):
            break
    assert chunked == one
    true = truth["r_peaks_s"]
    true = true[(true > 2.5) & (true < t[-1] - 0.1)]  # after the first threshold is set
    lag = np.array([min(p - true, key=abs) for p in one if p > 2.5])
    assert len(lag) == len(true)  # every beat, nothing else
    assert np.all(np.abs(lag - np.median(lag)) < 0.005)  # a constant lag (the filters)
    assert 0 < np.median(lag) < 0.05 < det.lookahead_s + 0.01


# -- the whole correction -----------------------------------------------------------------------
@pytest.mark.parametrize("bcg", ["aas", "obs"])
def test_chunked_with_streamed_markers_equals_one_shot(recording, bcg):
    """Random chunks, markers arriving up to 80 ms after their time and a horizon that only
    knows the markers: the same samples and flags as the whole recording at once."""
    raw, _, _ = recording
    cfg = ArtifactConfig(gradient="aas", bcg=bcg, **CFG)
    ref, ref_t, c_ref = _one_shot(raw, cfg)
    corr = MRCorrector(FS, N_EEG, cfg, TR, has_ecg=True)
    t = np.arange(raw.n_times) / FS
    markers = list(_markers(raw))
    rng = np.random.default_rng(7)
    outs, times, start = [], [], 0
    while start < raw.n_times:
        stop = min(start + int(rng.integers(1, 3000)), raw.n_times)
        while markers and markers[0] <= t[stop - 1] - rng.uniform(0, 0.08):
            corr.add_markers([markers.pop(0)])
        x, tt = corr.process(raw.data[:N_EEG, start:stop], t[start:stop],
                             raw.data[N_EEG, start:stop])
        outs.append(x)
        times.append(tt)
        if corr.volumes:  # before the first marker everything waits (up to max_hold_s)
            # Bounded: at most a volume (a missed trigger), the chunk and the marker's lag.
            assert corr.held_s < TR + 0.6 + 0.08 + 0.01
        start = stop
    corr.add_markers(markers)
    x, tt = corr.flush()
    out, out_t = np.concatenate(outs + [x], axis=1), np.concatenate(times + [tt])
    np.testing.assert_array_equal(out_t, ref_t)
    np.testing.assert_allclose(out, ref, atol=1e-6, rtol=0)
    assert corr.volume_times == c_ref.volume_times
    # (The one-shot horizon is infinite: it also declares the triggers lost after the end.)
    assert {k: v for k, v in corr.triggers.counts.items() if k != "lost"} == \
        {k: v for k, v in c_ref.triggers.counts.items() if k != "lost"}


def test_correction_recovers_the_clean_eeg(recording):
    raw, clean, _ = recording
    cfg = ArtifactConfig(gradient="aas", bcg="aas", **CFG)
    corr, ecg = recording_corrector(raw, N_EEG, cfg, TR, "R128")
    assert ecg == N_EEG and raw.ch_types[ecg] == "ecg"
    pre = EEGPreprocessor(FS, n_channels=N_EEG, corrector=corr)
    out, t = pre.run(raw.data[:N_EEG], ecg=raw.data[ecg])
    ref, _ = EEGPreprocessor(FS, n_channels=N_EEG).run(clean[:N_EEG])
    unc, _ = EEGPreprocessor(FS, n_channels=N_EEG).run(raw.data[:N_EEG])
    assert out.shape == ref.shape
    late = t > 45.0  # templates full (12 volumes, 20 beats) before
    r = [np.corrcoef(out[c, late], ref[c, late])[0, 1] for c in range(N_EEG)]
    r_unc = [np.corrcoef(unc[c, late], ref[c, late])[0, 1] for c in range(N_EEG)]
    # Measured 0.88 (BCG shape and amplitude change beat to beat; the templates carry
    # EEG / sqrt(n)); without correction 0.34.
    assert np.median(r) > 0.8 and np.median(r_unc) < 0.5
    st = corr.status()
    assert st.gradient == "scan ended" and st.gradient_templates == st.gradient_needed
    assert st.bcg_templates == st.bcg_needed
    assert 50 < st.heart_rate_bpm < 90
    assert st.triggers["doubled"] == 1 and st.triggers["inferred"] >= 1
    # Flags: the template-filling start is flagged, the end is not.
    marks = corr.drain_marks()
    assert any(f == "gradient" and a < 12 for f, a, b in marks)
    assert not any(f in ("gradient", "bcg") and b > 45 and a < 58 for f, a, b in marks)


def test_missing_ecg_turns_bcg_off_and_flags_everything(recording, caplog):
    raw, _, _ = recording
    no_ecg = type(raw)(raw.data[:N_EEG], raw.sfreq, raw.ch_names[:N_EEG], raw.ch_types[:N_EEG],
                       raw.annotations, raw.source)
    cfg = ArtifactConfig(gradient="aas", bcg="obs", **CFG)
    with caplog.at_level(logging.WARNING):
        corr, ecg = recording_corrector(no_ecg, N_EEG, cfg, TR, "R128")
    assert ecg is None and corr.bcg is None
    assert "no ECG channel" in caplog.text and "BCG correction is off" in caplog.text
    assert corr.status().bcg == "off: no ECG channel"
    assert "BCG off: no ECG channel" in corr.status().line()
    x, t = corr.process(no_ecg.data[:, :50000], np.arange(50000) / FS)
    marks = [m for m in corr.drain_marks() if m[0] == "bcg"]
    assert marks and min(a for _, a, _ in marks) <= t[0] and max(b for *_, b in marks) >= t[-1]
    # A named ECG channel that is not there is an error naming it.
    with pytest.raises(ValueError, match="no ECG channel 'EKG1'"):
        recording_corrector(no_ecg, N_EEG, ArtifactConfig(bcg="aas", ecg_channel="EKG1"), TR,
                            "R128")


def test_correct_recording_keeps_every_sample_and_the_ecg(recording):
    raw, clean, _ = recording
    data, corr = correct_recording(raw, ArtifactConfig(gradient="aas", **CFG), "R128")
    assert data.shape == raw.data.shape
    np.testing.assert_array_equal(data[N_EEG], raw.data[N_EEG])  # the ECG as recorded
    late = slice(int(45 * FS), int(58 * FS))
    resid = np.median(np.std(data[:N_EEG, late] - clean[:N_EEG, late], axis=1))
    assert resid < 0.2 * np.median(np.std(raw.data[:N_EEG, late] - clean[:N_EEG, late], axis=1))
    assert corr.triggers.tr == pytest.approx(TR)
    # The scanner stopped one TR after the last marker: no missed trigger is placed there, the
    # EEG after it is left as recorded (a template would put an artefact into it), flagged.
    end = int(round((_markers(raw)[-1] + TR) * FS)) + 2
    np.testing.assert_array_equal(data[:N_EEG, end:], raw.data[:N_EEG, end:])
    assert corr.triggers.counts["lost"] == 1
    assert any(f == "gradient" and a <= end / FS + 0.01 and b >= (raw.n_times - 1) / FS
               for f, a, b in corr.drain_marks())


def test_hold_is_bounded_when_the_markers_stop(rng):
    """Without volume markers the corrector holds at most ``max_hold_s`` of stream time, then
    releases the samples as recorded, flagged; a marker afterwards starts the correction."""
    sf, C = 1000.0, 3
    cfg = ArtifactConfig(gradient="aas", gradient_templates=2, max_hold_s=5.0)
    corr = MRCorrector(sf, C, cfg, tr=2.0)
    x = rng.normal(0, 10, (C, 20000))
    t = np.arange(20000) / sf
    out, held = [], []
    for a in range(0, 20000, 250):
        y, _ = corr.process(x[:, a:a + 250], t[a:a + 250])
        out.append(y)
        held.append(corr.held_s)
    assert max(held) <= 5.0 + 0.25
    got = np.concatenate(out, axis=1)
    np.testing.assert_array_equal(got, x[:, :got.shape[1]])  # uncorrected, nothing lost
    assert got.shape[1] >= 20000 - 5250
    marks = corr.drain_marks()
    assert marks and all(f == "gradient" for f, *_ in marks)
    assert corr.status().gradient == "waiting for volume triggers"


def test_in_scanner_simulation_is_deterministic_and_decomposes(tmp_path, recording):
    """The same seed writes the same files; raw = clean + gradient + BCG, with the ECG channel,
    R128 markers with the dropped one left out and the doubled one added."""
    import hashlib

    def digest(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    cfg = in_scanner_config(n_subjects=1, n_volumes=10, lead_s=1.0, seed=9,
                            scanner={"dropped_triggers": 1})
    for name in ("a", "b"):
        simulate_dataset(tmp_path / name, cfg, progress=False)
    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b and any("desc-gradient_eeg" in k for k in a)
    raw, clean, truth = recording
    _, base = _paths(raw.source.parents[2])
    ga = read_eeg(f"{base}gradient_eeg.vhdr").data
    bcg = read_eeg(f"{base}bcg_eeg.vhdr").data
    # (The files hold float32 at 0.1 µV resolution.)
    np.testing.assert_allclose(raw.data, clean + ga + bcg, atol=0.05)
    assert raw.ch_types[N_EEG] == "ecg" and np.ptp(ga[:N_EEG], axis=1).min() > 400
    m = np.rint(np.array(_markers(raw)) * FS).astype(int)
    np.testing.assert_array_equal(m, truth["marker_samples"])
    assert len(truth["dropped_volumes"]) == 1 and len(truth["doubled_volumes"]) == 1
    assert truth["volume_samples"][truth["dropped_volumes"][0]] not in m


def test_samples_waiting_for_a_marker_go_on_when_it_comes(rng):
    """Samples past the point where the next trigger may come wait for its marker; adding the
    marker releases them at once (``release``), without a new chunk."""
    sf, C, tr = 1000.0, 2, 1.0
    corr = MRCorrector(sf, C, ArtifactConfig(gradient="aas", gradient_templates=2), tr=tr)
    x = rng.normal(0, 5, (C, 3200))
    t = np.arange(3200) / sf
    corr.add_markers([0.0, 1.0, 2.0])
    _, got = corr.process(x[:, :3060], t[:3060])  # 60 ms past the expected trigger at 3.0 s
    assert got[-1] < 3.0 - 0.002 and corr.held_s > 0.05
    assert corr.release()[1].size == 0  # nothing new without the marker
    corr.add_markers([3.0])
    _, more = corr.release()
    assert more[0] == pytest.approx(got[-1] + 1 / sf) and more[-1] == t[3059]
    assert corr.held_s == 0
