"""rtbold demo: replay of the simulated demo recording, live engine and packaged model, end to end."""

import json

import numpy as np
import pytest
from qt_helpers import region_stats

from rtbold import demo
from rtbold.cli import main
from rtbold.models import read_bundle_meta
from rtbold.stream.recorder import read_predictions


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return demo.demo_recording(tmp_path_factory.mktemp("cache"))


def test_packaged_demo_model_and_held_out_recording(recording):
    meta = read_bundle_meta(demo.demo_bundle_path())
    assert meta.model_name == "unebolt" and meta.model_size == "tiny"
    assert meta.model_variant == "unebolt_bp" and meta.model_config["bandpower_branch"]
    assert meta.model_config["bandpower"]["session_norm"]
    assert len(meta.roi_names) == 64 and len(meta.ch_names) == 26
    assert "semi-synthetic" in str(meta.notes)
    assert demo.demo_bundle_path().stat().st_size < 10 * 2**20
    # The demo subject is not among the subjects the model was trained or validated on, and its
    # real fMRI scan (packaged scan 17) drove none of them (training used real scans 0-16).
    text = json.dumps(meta.training)
    assert f"sub-{demo.DEMO_SUBJECT + 1:02d}" not in text and "sub-01" in text
    assert meta.training["data_root"].endswith("sim_train")
    assert recording.name == f"sub-{demo.DEMO_SUBJECT + 1:02d}_task-rest_run-01_eeg.vhdr"


def test_headless_demo_predicts_and_records(recording, tmp_path, capsys):
    session = tmp_path / "session"
    rc = main(["demo", "--headless", "--n-trs", "5", "--speed", "3", "--recording", str(recording),
               "--session-dir", str(session)])
    out = capsys.readouterr().out
    assert rc == 0
    tr_lines = [ln for ln in out.splitlines() if ln.startswith("TR ")]
    assert len(tr_lines) >= 5 and "lost=0" in tr_lines[-1]
    assert "correlation between predicted and measured BOLD" in out
    pred = read_predictions(session)
    values = np.asarray(pred["values"])
    assert values.shape[0] >= 5 and values.shape[1] == 64 and np.all(np.isfinite(values))
    assert np.ptp(values, axis=0).max() > 0  # predictions change from TR to TR


def test_demo_window_shows_three_views_after_ten_trs(qtbot, recording, tmp_path):
    replay, cfg = demo.start_replay(recording=recording, speed=5.0, session_dir=tmp_path / "s")
    win = None
    try:
        win = demo.demo_window(cfg, exec_loop=False)
        qtbot.addWidget(win)
        qtbot.waitUntil(lambda: win.history.n_total >= 10, timeout=90_000)
        win.draw_now()
        qtbot.wait(50)
        img = win.grab().toImage()
        assert img.save(str(tmp_path / "demo.png"))
        for name, widget in (("glass", win.glass.layout_widget), ("traces", win.traces.plot),
                             ("fc", win.fc.glw)):
            std, n_colors = region_stats(img, widget, win)
            assert std > 8 and n_colors > 50, (name, std, n_colors)
        last = win.history.last(10)
        assert last["measured"] is not None and np.isfinite(last["measured"]).all()
        assert not win.banner.isVisibleTo(win)  # no error shown in the window
    finally:
        if win is not None:
            win.stop(wait=True)
        replay.stop()
