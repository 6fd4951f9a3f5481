"""GUI tests (real Qt, offscreen): window, bridge, views, tooltips, errors, screenshot."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt6 import QtCore  # noqa: E402

from qt_helpers import region_stats  # noqa: E402

from rtbold.atlas import load_atlas  # noqa: E402
from rtbold.gui.fc import network_summary, window_fc  # noqa: E402
from rtbold.gui.glassbrain import GlassBrainView, marker_positions, outline_path  # noqa: E402
from rtbold.gui.history import FrameHistory  # noqa: E402
from rtbold.gui.main_window import MainWindow  # noqa: E402
from rtbold.gui.regions import region_info  # noqa: E402
from rtbold.gui.synthetic import SyntheticEngine, SyntheticFrames  # noqa: E402
from rtbold.gui.traces import running_correlation  # noqa: E402
from rtbold.stream.frames import EngineStatus, Frame  # noqa: E402



@pytest.fixture
def window(qtbot, tmp_path):
    win = MainWindow(settings_path=tmp_path / "gui-session.toml", discover=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.draw_loop.stop()


def _feed_from_thread(win, frames):
    """Call the engine callback from a worker thread, as LiveEngine does; return its duration."""
    out = {}

    def run():
        t0 = time.perf_counter()
        for f in frames:
            win.bridge.on_frame(f)
        out["dt"] = time.perf_counter() - t0

    th = threading.Thread(target=run)
    th.start()
    th.join(5)
    return out["dt"]


def test_window_opens(window):
    assert window.isVisible()
    assert "rtbold" in window.windowTitle()
    assert set(window.docks) == {"connect", "status", "feedback"}
    assert window.regions.n == 64 and window.regions.atlas_name == "DiFuMo64"
    assert not window.banner.isVisible()


def test_bridge_queues_frames_from_worker_thread(window, qtbot):
    src = SyntheticFrames(seed=1)
    frames = [src.next() for _ in range(25)]
    dt = _feed_from_thread(window, frames)
    assert dt < 0.5  # the engine thread never waits on the GUI
    qtbot.waitUntil(lambda: window.history.n_total == 25, timeout=3000)
    d = window.history.last(100)
    np.testing.assert_array_equal(d["index"], np.arange(25))
    np.testing.assert_array_equal(d["values"][-1], frames[-1].values)
    # Coalescing: the draw loop draws the latest state, not once per frame.
    qtbot.waitUntil(lambda: window.glass.frame_label.text() == "TR 24", timeout=3000)
    assert window.draw_loop.n_draws < 25


def test_each_view_updates_with_frames(window, qtbot):
    src = SyntheticFrames(seed=2)
    sc = window.glass.scatters["axial"]
    brushes_before = [b.color().name() for b in sc.data["brush"]]
    fc_before = window.fc.image.image.copy()
    _feed_from_thread(window, [src.next() for _ in range(10)])
    qtbot.waitUntil(lambda: window.history.n_total == 10, timeout=3000)
    window.draw_now()
    # glass brain: marker colours follow the frame
    brushes_after = [b.color().name() for b in sc.data["brush"]]
    assert brushes_after != brushes_before
    assert len(set(brushes_after)) > 10
    # FC: no longer the identity, symmetric, ordered by network
    fc = window.fc.image.image
    assert not np.allclose(fc, fc_before)
    np.testing.assert_allclose(fc, fc.T, atol=1e-12)
    vals = window.history.last(30)["values"][:, window.fc.order]
    np.testing.assert_allclose(fc, np.corrcoef(vals.T.astype(float)), atol=1e-6)
    assert window.fc.summary.shape == (7, 7)  # DiFuMo-64 has no Limbic region
    # traces: one curve per network, 10 points each, measured overlaid, correlation shown
    tv = window.traces
    assert len(tv.selected) == 7  # one region per network (7 networks in DiFuMo-64)
    for k, i in enumerate(tv.selected):
        x, y = tv.trace_data(k)
        np.testing.assert_array_equal(x, np.arange(10))
        np.testing.assert_allclose(y, window.history.last(10)["values"][:, i])
        assert np.isfinite(tv.trace_data(k, measured=True)[1]).all()
    for curve in tv.curves + tv.measured_curves:  # one item per network: 10 points each
        x, _ = curve.getData()
        assert len(x) == 10
    assert np.isfinite(window.traces.correlations).all()
    assert window.traces.plot.getAxis("right")._tickLevels[0][0][1].startswith("r=")
    # feedback: the gauge shows the last frame's value
    assert window.feedback.gauge.value == pytest.approx(window.history.last_frame.feedback)


def test_traces_selection_by_name_and_network(window):
    tv = window.traces
    tv.select(["Putamen", "Default"])
    atlas = load_atlas(64)
    expected = [atlas.index("Putamen")] + [i for i in atlas.regions_in("Default")
                                           if i != atlas.index("Putamen")]
    assert tv.selected == expected
    assert len(tv.curves) == 2  # one drawn item per network: Subcortical/other and Default
    tv.combo.setCurrentText("All regions")
    assert len(tv.selected) == 64 and len(tv.curves) == 7  # drawn as one item per network
    hist = FrameHistory(64)
    for k in range(12):
        hist.append(Frame(index=k, t=2.1 * k, values=np.full(64, k, np.float32)))
    tv.update_view(hist)
    x, y = tv.curves[0].getData()
    assert len(x) == 12 * len(tv.groups[0])  # every region of the network, 12 TRs each
    with pytest.raises(KeyError, match="No region named"):
        tv.select(["Nowhere gyrus"])


def test_running_correlation_matches_numpy(rng):
    a = rng.standard_normal((50, 3))
    b = a + rng.standard_normal((50, 3))
    b[:5, 0] = np.nan
    r = running_correlation(a, b)
    assert r[0] == pytest.approx(np.corrcoef(a[5:, 0], b[5:, 0])[0, 1])
    assert r[1] == pytest.approx(np.corrcoef(a[:, 1], b[:, 1])[0, 1])
    assert np.isnan(running_correlation(a[:2], b[:2])).all()


def test_fc_helpers(rng):
    x = rng.standard_normal((40, 5))
    x[:, 4] = 1.0  # constant column: r = 0, not NaN
    fc = window_fc(x)
    np.testing.assert_allclose(fc[:4, :4], np.corrcoef(x[:, :4].T), atol=1e-12)
    assert np.all(fc[4, :4] == 0) and fc[4, 4] == 1
    s = network_summary(np.corrcoef(x[:, :4].T), ["A", "A", "B", "C"], ["A", "B", "C"])
    assert s[0, 0] == pytest.approx(np.corrcoef(x[:, :4].T)[0, 1])
    assert np.isnan(s[1, 1])


def test_outlines_and_markers_in_mni_space():
    regions = region_info()
    xyz, reg = marker_positions(regions)
    n_pairs = sum(d["mode"] == "bilateral_pair" for d in regions.display)
    assert len(xyz) == 64 + n_pairs and set(reg) == set(range(64))
    for view, (h, v) in (("sagittal", (1, 2)), ("coronal", (0, 2)), ("axial", (0, 1))):
        rect = outline_path(view).boundingRect()
        # the outline spans the MNI brain (about -105..75 mm front-back, +-70 mm left-right)
        assert rect.width() > 120 and rect.height() > 120
        inside = ((xyz[:, h] >= rect.left()) & (xyz[:, h] <= rect.right())
                  & (xyz[:, v] >= rect.top()) & (xyz[:, v] <= rect.bottom()))
        assert inside.mean() > 0.95, view
    i = regions.index("Calcarine cortex posterior")
    assert xyz[reg == i][:, 1].max() < -80  # occipital is at the back


def test_glass_brain_hover_tooltip(window, qtbot):
    src = SyntheticFrames(seed=3)
    _feed_from_thread(window, [src.next() for _ in range(3)])
    qtbot.waitUntil(lambda: window.history.n_total == 3, timeout=3000)
    window.draw_now()
    gb = window.glass
    i = gb.regions.index("Putamen")
    value = float(window.history.last_frame.values[i])
    text = gb.tooltip_text(i)
    assert text.startswith("Putamen (both hemispheres)") and f"{value:+.2f}" in text
    # A real hover: move the mouse onto the left putamen marker in the coronal view.
    vb = gb.viewboxes["coronal"]
    xyz, reg = marker_positions(gb.regions)
    pos = xyz[reg == i][0][[0, 2]]
    scene_pt = vb.mapViewToScene(QtCore.QPointF(*pos))
    view_pt = gb.layout_widget.mapFromScene(scene_pt)
    qtbot.mouseMove(gb.layout_widget.viewport(), view_pt)
    qtbot.waitUntil(lambda: "Putamen" in vb.toolTip(), timeout=3000)
    assert f"{value:+.2f}" in vb.toolTip()


def test_glass_brain_without_coordinates_shows_note(qtbot):
    regions = region_info(n_regions=128)
    gb = GlassBrainView(regions)
    qtbot.addWidget(gb)
    assert gb.stack.currentWidget() is gb.note
    assert "DiFuMo-64 only" in gb.note.text()
    hist = FrameHistory(128)
    hist.append(Frame(index=0, t=0.0, values=np.ones(128, np.float32)))
    gb.update_view(hist)  # must not raise


def test_window_reconfigures_for_128_regions(window, qtbot):
    frames = [Frame(index=k, t=2.1 * k, values=np.random.default_rng(k).standard_normal(128)
                    .astype(np.float32)) for k in range(5)]
    _feed_from_thread(window, frames)
    qtbot.waitUntil(lambda: window.regions.n == 128 and window.history.n_total == 5,
                    timeout=3000)
    window.draw_now()
    assert window.glass.stack.currentWidget() is window.glass.note
    assert window.fc.image.image.shape == (128, 128)
    assert len(window.traces.selected) == len(window.regions.networks_present())
    assert not window.status_view.errors.count()


def test_errors_and_status_shown_in_window(window, qtbot):
    err = RuntimeError("EEG stream 'amp' lost: no samples for 1.0 s")
    threading.Thread(target=window.bridge.on_error, args=(err,)).start()
    qtbot.waitUntil(lambda: window.status_view.errors.count() == 1, timeout=3000)
    assert window.banner.isVisible()
    assert "RuntimeError: EEG stream 'amp' lost" in window.banner.label.text()
    window.show_error("RuntimeError: EEG stream 'amp' lost: no samples for 1.0 s")
    assert window.status_view.errors.count() == 1  # a repeat is counted, not listed again
    assert window.status_view.errors.item(0).text().endswith("(×2)")
    status = EngineStatus(connected=True, stream_name="amp", effective_sfreq=199.97,
                          lost_samples=12, buffer_fill=0.5, last_tick=123.4, device="cpu",
                          bundle="tiny.rtbold", n_frames=7, n_skipped=1)
    window.bridge.on_status(status)
    src = SyntheticFrames(seed=4)
    window.bridge.on_frame(src.next())
    qtbot.waitUntil(lambda: window.bridge.status is status, timeout=3000)
    window.draw_now()
    f = window.status_view.fields
    assert "connected" in f["connected"].text() and "199.97 Hz" == f["rate"].text()
    assert ">12<" in f["lost"].text() and window.status_view.buffer.value() == 50
    assert f["frames"].text() == "7 (1 skipped)"
    table = window.status_view.latency
    assert [table.item(r, 0).text() for r in range(table.rowCount())][:2] == \
        ["window_ready", "inference_start"]


def test_feedback_detach_and_attach(window, qtbot):
    fb = window.feedback
    fb.toggle_detached()
    assert fb.detached and fb.window.isVisible()
    assert fb.gauge.window() is fb.window
    fb.window.close()
    qtbot.waitUntil(lambda: not fb.detached, timeout=2000)
    assert fb.gauge.parent() is fb and fb.gauge.isVisible()


def test_start_stop_with_engine_factory(qtbot, tmp_path):
    made = []

    def factory(settings, **callbacks):
        made.append(settings)
        return SyntheticEngine(64, interval_s=0.02, **callbacks)

    win = MainWindow(factory, settings_path=tmp_path / "s.toml", discover=False)
    qtbot.addWidget(win)
    win.show()
    win.connect_panel.bundle_edit.setText("/data/model.rtbold")
    win.connect_panel.start_button.click()
    qtbot.waitUntil(lambda: win.history.n_total >= 10, timeout=5000)
    assert made[0].bundle == "/data/model.rtbold"
    assert not win.connect_panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: win.glass.frame_label.text() != "", timeout=3000)
    win.connect_panel.stop_button.click()
    assert win.engine is None and win.connect_panel.start_button.isEnabled()
    assert (tmp_path / "s.toml").is_file()  # choices saved on Start
    win.close()


def test_start_reports_factory_errors(qtbot, tmp_path):
    def factory(settings, **callbacks):
        raise ValueError("Bundle /x.rtbold does not exist; choose an existing bundle.")

    win = MainWindow(factory, settings_path=tmp_path / "s.toml", discover=False)
    qtbot.addWidget(win)
    win.start()
    assert win.banner.isVisibleTo(win) and "does not exist" in win.banner.label.text()
    assert win.engine is None and win.connect_panel.start_button.isEnabled()


def test_screenshot_after_ten_frames(window, qtbot, tmp_path):
    src = SyntheticFrames(seed=5)
    window.bridge.on_status(EngineStatus(connected=True, stream_name="sim-eeg",
                                         effective_sfreq=200.0, buffer_fill=1.0, device="cpu",
                                         bundle="unebolt-tiny.rtbold", n_frames=10))
    _feed_from_thread(window, [src.next() for _ in range(10)])
    qtbot.waitUntil(lambda: window.history.n_total == 10, timeout=3000)
    window.draw_now()
    qtbot.wait(50)
    img = window.grab().toImage()
    assert img.save(str(tmp_path / "window.png"))
    for name, widget in (("glass", window.glass.layout_widget), ("traces", window.traces.plot),
                         ("fc", window.fc.glw)):
        std, n_colors = region_stats(img, widget, window)
        assert std > 8 and n_colors > 50, (name, std, n_colors)
    # Control: an empty plot area of the same kind is one flat colour, so the check above can fail.
    import pyqtgraph as pg

    empty = pg.GraphicsLayoutWidget()
    qtbot.addWidget(empty)
    empty.resize(300, 200)
    std, n_colors = region_stats(empty.grab().toImage(), empty, empty)
    assert std < 1 and n_colors <= 2
