"""Measured BOLD matched to the model's regions by name, on real LSL streams (loopback): a
stream of other regions says why it is not compared (both counts, what to do) in the status,
events.tsv, the window and the headless lines; a subset is compared where names overlap."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from rtbold.atlas import load_atlas, match_regions
from rtbold.stream.recorder import read_tsv

from live_helpers import SyntheticSource, live_config, make_runner, montage_channels, run_engine

SFREQ = 250.0


@pytest.fixture(autouse=True)
def _free_lsl_ports():
    yield
    gc.collect()


@pytest.fixture(scope="module")
def runner64():
    return make_runner(montage_channels(), size="tiny", n_rois=64)


@pytest.fixture(scope="module")
def runner128():
    return make_runner(montage_channels(), size="tiny", n_rois=128)


def test_a_64_region_stream_beside_a_128_region_model_says_why(runner128, tmp_path):
    """DiFuMo-64 measured BOLD, DiFuMo-128 model: nothing compared (27 names recur across the
    two resolutions, as different components), and the status and events.tsv say so with both
    counts and what to do."""
    src = SyntheticSource(montage_channels(), SFREQ, 19.2, speed=10.0, measured_rois=64)
    engine, frames, statuses, errors = run_engine(src, runner128, live_config(src, tmp_path))
    assert not errors and len(frames) >= 3
    assert all(f.measured is None for f in frames)
    note = statuses[-1].measured
    assert statuses[-1].measured_regions == 0
    for part in ("is not compared", "the stream has 64 regions (DiFuMo64)",
                 "the model predicts 128 regions (DiFuMo128)", "different atlases",
                 "27 names they share belong to different components",
                 "rtbold simulate --n-regions 128", "bundle trained on the stream's 64 regions"):
        assert part in note, (part, note)
    _, events = read_tsv(engine.session_dir / "events.tsv")
    assert any(e[2] == "warning" and "is not compared" in e[3] for e in events)


def test_a_subset_of_regions_is_compared_by_name(runner64, tmp_path):
    """A stream with 40 of the model's regions in another order, plus two channels the model
    lacks: the frames carry them in the model's order, NaN for the 24 others, and the note and
    the recorded measured.tsv say which."""
    names = list(load_atlas(64).roi_names)
    rng = np.random.default_rng(4)
    picked = sorted(rng.choice(64, 40, replace=False).tolist())
    order = rng.permutation(picked).tolist()
    labels = [names[i] for i in order[:20]] + ["Left ear", names[order[20]].upper()] + \
        [names[i] for i in order[21:]] + ["Ventricle of doubt"]
    src = SyntheticSource(montage_channels(), SFREQ, 19.2, speed=10.0, measured_names=labels,
                          measured_atlas="DiFuMo64")
    engine, frames, statuses, errors = run_engine(src, runner64, live_config(src, tmp_path))
    assert not errors and len(frames) >= 3
    assert statuses[-1].measured_regions == 40
    assert ("covers 40 of the model's 64 regions" in statuses[-1].measured
            and "the stream has 42 regions (DiFuMo64)" in statuses[-1].measured)
    key = {n.lower(): i for i, n in enumerate(names)}
    column = {key[lab.lower()]: j for j, lab in enumerate(labels) if lab.lower() in key}
    assert sorted(column) == picked
    for f in frames:
        i = int(np.argmin(np.abs(src.marker_times - f.t)))
        sent = src.measured_values[i]
        assert f.measured.shape == (64,)
        assert np.isnan(np.delete(f.measured, picked)).all()
        np.testing.assert_array_equal(f.measured[picked], [sent[column[k]] for k in picked])
    header, rows = read_tsv(engine.session_dir / "measured.tsv")
    assert header[2:] == names and len(rows) == len(frames)
    missing = sorted(set(range(64)) - set(picked))
    assert all(rows[0][2 + k] == "n/a" for k in missing)


@pytest.mark.parametrize("n_channels", [64, 30])
def test_unlabelled_streams_are_compared_in_order_only_at_the_same_count(runner64, tmp_path,
                                                                        n_channels):
    src = SyntheticSource(montage_channels(), SFREQ, 18.2, speed=10.0, measured_rois=n_channels,
                          measured_names=())
    engine, frames, statuses, errors = run_engine(src, runner64, live_config(src))
    assert not errors and frames
    note = statuses[-1].measured
    if n_channels == 64:
        assert "64 unnamed channels, compared with the model's 64 regions in order" in note
        i = int(np.argmin(np.abs(src.marker_times - frames[-1].t)))
        np.testing.assert_array_equal(frames[-1].measured, src.measured_values[i])
    else:
        assert all(f.measured is None for f in frames)
        assert "the stream has 30 regions, the model predicts 64 regions (DiFuMo64)" in note
        assert "its channels have no labels to match by name" in note


def test_region_match_rules():
    """The name rules without streams: case and apostrophe, atlas declared on one side only,
    duplicated DiFuMo-128 names with their component numbers."""
    names128 = list(load_atlas(128).roi_names)
    heschl = load_atlas(64).index("Heschl's gyrus")
    m = match_regions(load_atlas(64).roi_names, ["heschl's GYRUS"], stream_atlas="")
    assert m.n_common == 1 and m.index[heschl] == 0 and m.n_stream == 1
    dup = [n for n in load_atlas(256).roi_names if "(component" in n]
    m = match_regions(load_atlas(256).roi_names, dup, model_atlas="DiFuMo256",
                      stream_atlas="difumo-256")
    assert m.n_common == len(dup) > 0
    m = match_regions(names128, load_atlas(64).roi_names, model_atlas="DiFuMo128")
    assert m.n_common == 27  # no atlas declared by the stream: names alone decide
    values = np.arange(64, dtype=np.float32)[None]
    out = m.take(values)
    assert out.shape == (1, 128) and np.isfinite(out).sum() == 27


def test_headless_demo_with_a_128_region_bundle_says_why_there_is_no_r(tmp_path, capsys):
    """`rtbold demo --headless` with a DiFuMo-128 bundle beside the demo's DiFuMo-64 recording:
    the lines say why instead of "r = +nan over 0 TRs"."""
    from rtbold import demo
    from rtbold.cli import main
    from rtbold.models import create_model, save_bundle

    torch.manual_seed(0)
    bundle = tmp_path / "tiny128.safetensors"
    save_bundle(bundle, create_model("unebolt", size="tiny", n_rois=128,
                                     ch_names=montage_channels()),
                {"roi_names": list(load_atlas(128).roi_names), "tr": 2.1, "atlas": "DiFuMo128"})
    recording = demo.demo_recording(tmp_path / "cache")
    rc = main(["demo", "--headless", "--n-trs", "3", "--speed", "4", "--recording",
               str(recording), "--bundle", str(bundle), "--session-dir", str(tmp_path / "s"),
               "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "nan" not in out
    tr_lines = [ln for ln in out.splitlines() if ln.startswith("TR ")]
    assert len(tr_lines) >= 3
    assert all("r(pred, meas)=n/a (the measured regions do not match the model's" in ln
               for ln in tr_lines)
    notice = next(ln for ln in out.splitlines() if ln.startswith("rtbold demo: measured BOLD"))
    assert "64 regions (DiFuMo64)" in notice and "128 regions (DiFuMo128)" in notice
    final = out.splitlines()[-1]
    assert final.startswith("rtbold demo: no correlation between predicted and measured BOLD: ")
    assert "is not compared: the stream has 64 regions (DiFuMo64)" in final


def test_window_shows_why_measured_bold_is_missing(qtbot, runner128, tmp_path):
    """The window with a live DiFuMo-128 engine and a DiFuMo-64 measured stream: the status
    panel's "Measured BOLD" row and a note above the traces give both counts and what to do."""
    pytest.importorskip("pytestqt")
    from qt_helpers import start_live_window

    src = SyntheticSource(montage_channels(), SFREQ, 19.2, speed=10.0, measured_rois=64)
    win = start_live_window(qtbot, tmp_path, src, runner128)
    try:
        qtbot.waitUntil(lambda: win.history is not None and win.history.n_total >= 2,
                        timeout=60000)
        qtbot.waitUntil(lambda: win.bridge.status is not None and bool(win.bridge.status.measured),
                        timeout=10000)
        win.draw_now()
        row = win.status_view.fields["measured"].text()
        note = win.traces.measured_note
        assert win.regions.n == 128 and not win.history.has_measured
        for text in (row, note.text()):
            assert "64 regions (DiFuMo64)" in text and "128 regions (DiFuMo128)" in text
            assert "To compare" in text
        assert note.isVisibleTo(win) and win.traces.corr_label.text() == "measured: no match"
    finally:
        src.join(30)
        win.stop(wait=True)
        src.stop()
    win.close()
