"""The validation panel (real Qt, offscreen): scatter and running r of predicted vs measured
BOLD, with measured volumes that come with their frame, after it, or not at all."""

import threading

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from qt_helpers import shown_window  # noqa: E402
from rtbold.gui.synthetic import SyntheticFrames  # noqa: E402
from rtbold.stream.outlets import FeedbackTarget  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    win = shown_window(qtbot, tmp_path)
    yield win
    win.draw_loop.stop()


def _from_thread(calls):
    th = threading.Thread(target=lambda: [c() for c in calls])
    th.start()
    th.join(5)


def test_panel_shows_the_running_r_of_frames_and_late_volumes(window, qtbot):
    src = SyntheticFrames(seed=4)
    frames = [src.next() for _ in range(40)]
    view = window.validation
    window.draw_now()
    assert view.r_label.text() == "r = n/a"  # nothing measured yet
    assert "no measured BOLD" in view.median_label.text()
    late = {f.index: f.measured for f in frames[20:]}  # the last 20 come 2 TRs late
    for f in frames[20:]:
        f.measured = None
    calls = []
    for f in frames:
        calls.append(lambda f=f: window.bridge.on_frame(f))
        if f.index - 2 in late:
            calls.append(lambda i=f.index - 2: window.bridge.on_measured(i, 0.0, late[i]))
    calls += [lambda i=i: window.bridge.on_measured(i, 0.0, late[i]) for i in (38, 39)]
    _from_thread(calls)
    qtbot.waitUntil(lambda: view.rc is not None and view.rc.n_pairs == 40, timeout=3000)
    window.draw_now()
    pred = np.array([f.values for f in frames], dtype=float)[-30:]
    meas = np.array([late.get(f.index, f.measured) for f in frames], dtype=float)[-30:]
    w = FeedbackTarget.parse("network:Default", window.regions.names).weights
    r_fb = np.corrcoef(pred @ w, meas @ w)[0, 1]
    assert view.combo.currentText().startswith("Feedback target")
    assert view.r_label.text() == f"r = {r_fb:+.2f}"
    r = [np.corrcoef(pred[:, k], meas[:, k])[0, 1] for k in range(64)]
    assert f"median over regions: {np.median(r):+.2f}" in view.median_label.text()
    np.testing.assert_allclose(view.bars.opts["height"], r, atol=1e-9)
    x, y = view.scatter.getData()
    np.testing.assert_allclose(x, pred @ w, rtol=1e-6)
    np.testing.assert_allclose(y, meas @ w, rtol=1e-6)
    # the late volumes also filled the traces' history (dashed measured curve)
    d = window.history.last(40)
    np.testing.assert_allclose(d["measured"][-1], late[39], rtol=1e-6)
    # a region chosen: its own scatter and r
    name = window.regions.names[5]
    view.combo.setCurrentText(name)
    window.draw_now()
    assert view.r_label.text() == f"r = {r[5]:+.2f}"
    np.testing.assert_allclose(view.scatter.getData()[0], pred[:, 5], rtol=1e-6)


def test_panel_without_measured_bold_says_so(window, qtbot):
    src = SyntheticFrames(seed=5, measured=False)
    _from_thread([lambda f=src.next(): window.bridge.on_frame(f) for _ in range(10)])
    qtbot.waitUntil(lambda: window.history.n_total == 10, timeout=3000)
    window.draw_now()
    view = window.validation
    assert view.r_label.text() == "r = n/a" and len(view.rc) == 0
    assert "no measured BOLD paired" in view.median_label.text()
    assert len(view.scatter.getData()[0]) == 0
