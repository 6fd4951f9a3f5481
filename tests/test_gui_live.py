"""The window driven by a real LiveEngine: loopback LSL EEG + markers + measured BOLD, a real
(tiny, random-weight) UnEBOLT model, real worker threads, frames through the Qt bridge."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from qt_helpers import start_live_window  # noqa: E402
from test_live_utils import SyntheticSource, make_runner, montage_channels  # noqa: E402


def test_window_shows_frames_from_live_engine(qtbot, tmp_path):
    runner = make_runner(montage_channels(), size="tiny")
    src = SyntheticSource(montage_channels(), 200.0, 22.2, speed=10.0, measured_rois=64)
    win = start_live_window(qtbot, tmp_path, src, runner)
    try:
        qtbot.waitUntil(lambda: win.history is not None and win.history.n_total >= 4,
                        timeout=60000)
        qtbot.waitUntil(lambda: win.bridge.status is not None and win.bridge.status.connected,
                        timeout=10000)
        win.draw_now()
    finally:
        src.join(30)
        win.stop(wait=True)
        src.stop()
    assert not win.status_view.errors.count(), win.status_view.errors.item(0).text()
    h = win.history
    d = h.last(100)
    assert np.all(np.diff(d["index"]) > 0)
    assert h.has_measured and np.isfinite(d["measured"]).all()
    # what the views show is what the engine produced
    last = h.last_frame
    np.testing.assert_array_equal(d["values"][-1], last.values)
    assert win.glass.values == pytest.approx(last.values.astype(float))
    k = 0
    np.testing.assert_allclose(win.traces.trace_data(k)[1][-1], last.values[win.traces.selected[k]])
    table = win.status_view.latency
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == \
        ["window_ready", "inference_start", "inference_end", "published", "recorded"]
    assert "connected" in win.status_view.fields["connected"].text() or \
        "disconnected" in win.status_view.fields["connected"].text()
    assert win.engine is None and win.connect_panel.start_button.isEnabled()
    win.close()
