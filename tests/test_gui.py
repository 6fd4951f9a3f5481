"""GUI tests (real Qt, offscreen): window, bridge, views, tooltips, errors, screenshot."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt6 import QtCore, QtGui  # noqa: E402

from qt_helpers import region_stats, shown_window  # noqa: E402

from rtbold.atlas import load_atlas  # noqa: E402
from rtbold.gui import theme  # noqa: E402
from rtbold.gui.fc import FCView, network_summary, window_fc  # noqa: E402
from rtbold.gui.glassbrain import (GlassBrainView, color_levels, marker_positions,  # noqa: E402
                                   outline_path, robust_spread)
from rtbold.gui.history import FrameHistory  # noqa: E402
from rtbold.gui.main_window import MainWindow  # noqa: E402
from rtbold.gui.regions import region_info  # noqa: E402
from rtbold.gui.synthetic import SyntheticEngine, SyntheticFrames  # noqa: E402
from rtbold.gui.traces import running_correlation  # noqa: E402
from rtbold.metrics import remove_global  # noqa: E402
from rtbold.stream.frames import EngineStatus, Frame  # noqa: E402



@pytest.fixture
def window(qtbot, tmp_path):
    win = shown_window(qtbot, tmp_path)
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
    assert set(window.docks) == {"connect", "status", "feedback", "validation"}
    # every panel fits a full-HD lab screen (a third column once pushed it past 2,000 px)
    assert window.minimumSizeHint().width() <= 1920
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


@pytest.mark.parametrize("n", [64, 128, 256])
def test_outlines_and_markers_in_mni_space(n):
    regions = region_info(n_regions=n)
    xyz, reg = marker_positions(regions)
    n_pairs = sum(m.bilateral for m in regions.display)
    assert len(xyz) == n + n_pairs and set(reg) == set(range(n))
    assert n_pairs > n // 3  # bilateral components are common at every size
    for view, (h, v) in (("sagittal", (1, 2)), ("coronal", (0, 2)), ("axial", (0, 1))):
        rect = outline_path(view).boundingRect()
        # the outline spans the MNI brain (about -105..75 mm front-back, +-70 mm left-right)
        assert rect.width() > 120 and rect.height() > 120
        inside = ((xyz[:, h] >= rect.left()) & (xyz[:, h] <= rect.right())
                  & (xyz[:, v] >= rect.top()) & (xyz[:, v] <= rect.bottom()))
        assert inside.mean() > 0.95, view
    for m in regions.display:  # pairs: one marker per hemisphere
        if m.bilateral:
            assert m.points[0][0] < 0 < m.points[1][0]
    if n == 64:
        i = regions.index("Calcarine cortex posterior")
        assert xyz[reg == i][:, 1].max() < -80  # occipital is at the back
        assert regions.display[regions.index("Heschl's gyrus")].bilateral
        assert regions.display[regions.index("Cingulate cortex posterior")].side == "midline"
        assert regions.display[regions.index("Intraparietal sulcus LH")].side == "left"
        j = regions.index("Intraparietal sulcus RH")
        assert regions.display[j].side == "right" and xyz[reg == j][0, 0] > 30


def _glass_with_frame(qtbot, n, values, **kwargs):
    regions = region_info(n_regions=n)
    gb = GlassBrainView(regions, **kwargs)
    gb.setStyleSheet(theme.APP_STYLESHEET)
    qtbot.addWidget(gb)
    gb.resize(1100, 380)
    gb.show()
    qtbot.waitExposed(gb)
    hist = FrameHistory(n)
    for k, v in enumerate(np.atleast_2d(values)):
        hist.append(Frame(index=k, t=2.1 * k, values=np.asarray(v, np.float32)))
    gb.update_view(hist)
    qtbot.wait(20)
    return gb


def _red_and_blue_pixels(gb, margin=60):
    """Red and blue pixels inside each projection's view box (not the colour bar).

    Outlines, labels and background are grey; only markers coloured by the diverging map are red
    (r > b + ``margin``) or blue (b > r + ``margin``).
    """
    img = gb.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB32)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    bgr = arr[:, : img.width(), :3].astype(int)  # Format_RGB32 is BGRA in memory
    red, blue = [], []
    for vb in gb.viewboxes.values():
        rect = gb.layout_widget.mapFromScene(vb.sceneBoundingRect()).boundingRect()
        top_left = gb.layout_widget.mapTo(gb, rect.topLeft())
        box = bgr[top_left.y():top_left.y() + rect.height(),
                  top_left.x():top_left.x() + rect.width()]
        red.append(int((box[..., 2] > box[..., 0] + margin).sum()))
        blue.append(int((box[..., 0] > box[..., 2] + margin).sum()))
    return red, blue


@pytest.mark.parametrize("n", [64, 128, 256])
def test_glass_brain_pixels_at_every_size(qtbot, rng, n):
    values = rng.standard_normal((5, n))
    gb = _glass_with_frame(qtbot, n, values)
    assert gb.stack.currentWidget() is gb.layout_widget
    red, blue = _red_and_blue_pixels(gb)
    # every projection shows red and blue markers
    assert all(r > 150 and b > 150 for r, b in zip(red, blue)), (n, red, blue)
    # the tooltip names the region, its side and its network at every size
    i = int(np.argmax(values[-1]))
    text = gb.tooltip_text(i)
    assert text.startswith(gb.regions.names[i]) and gb.regions.networks[i] in text
    assert f"{values[-1, i]:+.2f}" in text
    # Control: the same view without markers (outlines only) fails the check.
    for sc in gb.scatters.values():
        sc.clear()
    qtbot.wait(20)
    red, blue = _red_and_blue_pixels(gb)
    assert max(red) < 20 and max(blue) < 20, (red, blue)


def test_glass_brain_network_highlight(qtbot, rng):
    gb = _glass_with_frame(qtbot, 128, rng.standard_normal((3, 128)))
    gb.network_combo.setCurrentIndex(gb.network_combo.findData("Visual"))
    sc = gb.scatters["axial"]
    regions = gb.marker_region[gb._orders["axial"]]
    alpha = np.array([b.color().alpha() for b in sc.data["brush"]])
    visual = np.array([gb.regions.networks[r] == "Visual" for r in regions])
    assert visual.any() and (alpha[visual] == 255).all() and (alpha[~visual] < 255).all()
    gb.network_combo.setCurrentIndex(0)
    assert all(b.color().alpha() == 255 for b in sc.data["brush"])


def test_robust_limits_spread_a_frame_with_a_common_offset(qtbot, rng):
    pattern = rng.standard_normal((30, 64))
    frames = 5.0 + np.sin(np.arange(30))[:, None] + 0.3 * pattern  # large common component
    assert robust_spread(frames) == pytest.approx(robust_spread(0.3 * pattern))
    low, high = color_levels(frames[-1], frames)
    assert low < frames[-1].mean() < high and high - low < 2.0
    assert np.mean((frames[-1] > low) & (frames[-1] < high)) > 0.8
    gb = _glass_with_frame(qtbot, 64, frames)
    idx = gb.marker_color_index()
    assert idx.min() < 60 and idx.max() > 195 and len(np.unique(idx)) > 30
    red, blue = _red_and_blue_pixels(gb)
    assert min(red) > 150 and min(blue) > 150
    # The old fixed limits (+-2 around 0) colour every marker the same saturated red.
    gb.mode_combo.setCurrentIndex(gb.mode_combo.findData("fixed"))
    assert gb.levels == (-2.0, 2.0)
    assert np.unique(gb.marker_color_index()).tolist() == [255]
    qtbot.wait(20)
    red, blue = _red_and_blue_pixels(gb)
    assert max(blue) < 20
    # "Minus mean" with robust limits: the same colours, the bar reads in deviations.
    gb.mode_combo.setCurrentIndex(gb.mode_combo.findData("robust"))
    robust_idx = gb.marker_color_index()
    gb.subtract_mean.setChecked(True)
    assert abs(sum(gb.levels)) < 1e-9
    np.testing.assert_array_equal(gb.marker_color_index(), robust_idx)
    # with fixed limits it removes the offset as well
    gb.mode_combo.setCurrentIndex(gb.mode_combo.findData("fixed"))
    assert len(np.unique(gb.marker_color_index())) > 30


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


def test_glass_brain_real_hover_at_256(qtbot, rng):
    values = rng.standard_normal((3, 256))
    gb = _glass_with_frame(qtbot, 256, values)
    vb = gb.viewboxes["coronal"]
    xz = gb.marker_xyz[:, [0, 2]]
    dist = np.linalg.norm(xz[:, None] - xz[None], axis=2) + 1e3 * np.eye(len(xz))
    k = int(np.argmax(dist.min(axis=1)))  # the most isolated marker in this projection
    i = int(gb.marker_region[k])
    view_pt = gb.layout_widget.mapFromScene(vb.mapViewToScene(QtCore.QPointF(*xz[k])))
    qtbot.mouseMove(gb.layout_widget.viewport(), view_pt)
    qtbot.waitUntil(lambda: vb.toolTip().startswith(gb.regions.names[i]), timeout=3000)
    assert gb.regions.networks[i] in vb.toolTip() and f"{values[-1, i]:+.2f}" in vb.toolTip()


def test_glass_brain_without_coordinates_shows_note(qtbot):
    regions = region_info([f"ROI {i}" for i in range(40)])
    gb = GlassBrainView(regions)
    qtbot.addWidget(gb)
    assert gb.stack.currentWidget() is gb.note
    assert "not those of a DiFuMo table" in gb.note.text()
    hist = FrameHistory(40)
    hist.append(Frame(index=0, t=0.0, values=np.ones(40, np.float32)))
    gb.update_view(hist)  # must not raise


@pytest.mark.parametrize("n", [128, 256])
def test_window_reconfigures_for_more_regions(window, qtbot, n):
    frames = [Frame(index=k, t=2.1 * k, values=np.random.default_rng(k).standard_normal(n)
                    .astype(np.float32)) for k in range(5)]
    _feed_from_thread(window, frames)
    qtbot.waitUntil(lambda: window.regions.n == n and window.history.n_total == 5,
                    timeout=3000)
    window.draw_now()
    assert window.glass.stack.currentWidget() is window.glass.layout_widget
    assert window.glass.marker_region.max() == n - 1
    assert window.fc.image.image.shape == (n, n)
    assert len(window.traces.selected) == len(window.regions.networks_present())
    # every trace is named: no long DiFuMo name is dropped by the axis for lack of room
    painter = QtGui.QPainter(QtGui.QImage(8, 8, QtGui.QImage.Format.Format_ARGB32))
    texts = [spec[2] for spec in window.traces.plot.getAxis("left").generateDrawSpecs(painter)[2]]
    painter.end()
    assert len(texts) == len(window.traces.selected) and all(texts), texts
    assert not window.status_view.errors.count()


def _planted_networks(rng, t=120, n_net=4, per_net=16, global_sd=4.0):
    """Series with a strong global component, network signals and noise; network labels."""
    g = global_sd * rng.standard_normal((t, 1))
    nets = np.repeat(np.arange(n_net), per_net)
    s = rng.standard_normal((t, n_net))[:, nets]
    return g + s + 0.7 * rng.standard_normal((t, n_net * per_net)), [f"N{k}" for k in nets]


def test_gsr_fc_recovers_planted_networks(rng):
    x, labels = _planted_networks(rng)
    present = sorted(set(labels))
    raw, gsr = window_fc(x), window_fc(x, gsr=True)
    np.testing.assert_allclose(gsr, np.corrcoef(remove_global(x).T), atol=1e-9)
    assert np.abs(gsr - raw).max() > 0.5
    off = ~np.eye(len(present), dtype=bool)
    s_raw, s_gsr = network_summary(raw, labels, present), network_summary(gsr, labels, present)
    # raw: the global component makes every pair alike (all r high, little contrast)
    assert s_raw[off].min() > 0.8 and np.diag(s_raw).min() - s_raw[off].max() < 0.1
    # after GSR: within-network r clearly above between-network r
    assert np.diag(s_gsr).min() > 0.3 and s_gsr[off].max() < 0.0
    # the strongest partner of every region is in its own network
    g = gsr - 2 * np.eye(len(labels))
    assert all(labels[int(np.argmax(g[i]))] == labels[i] for i in range(len(labels)))
    # a bad column stays 0 and does not leak into the global signal of the others
    x_bad = x.copy()
    x_bad[3, 5] = np.nan
    fc_bad = window_fc(x_bad, gsr=True)
    assert np.all(fc_bad[5, np.arange(64) != 5] == 0)
    keep = np.arange(64) != 5
    np.testing.assert_allclose(fc_bad[np.ix_(keep, keep)],
                               np.corrcoef(remove_global(x[:, keep]).T), atol=1e-9)


def test_fc_view_switches_to_gsr(window, qtbot, rng):
    x, _ = _planted_networks(rng, t=30)
    for k, v in enumerate(x):
        window.bridge.on_frame(Frame(index=k, t=2.1 * k, values=v.astype(np.float32)))
    qtbot.waitUntil(lambda: window.history.n_total == 30, timeout=3000)
    window.draw_now()
    fcv = window.fc
    assert not fcv.gsr and "raw" not in fcv.info.text()
    raw_summary = fcv.summary.copy()
    fcv.kind_combo.setCurrentIndex(fcv.kind_combo.findData(True))
    assert fcv.gsr and "after GSR" in fcv.plot.titleLabel.text
    vals = window.history.last(30)["values"][:, fcv.order]
    np.testing.assert_allclose(fcv.image.image, window_fc(vals, gsr=True), atol=1e-12)
    nets = [fcv.regions.networks[i] for i in fcv.order]
    np.testing.assert_allclose(fcv.summary, network_summary(window_fc(vals, gsr=True), nets,
                                                            fcv.present), equal_nan=True)
    assert not np.allclose(fcv.summary, raw_summary, equal_nan=True)
    assert "(raw +" in fcv.info.text()
    assert window.current_settings().fc_gsr


def test_fc_view_readable_at_256(qtbot, rng):
    regions = region_info(n_regions=256)
    fcv = FCView(regions, gsr=True)
    fcv.setStyleSheet(theme.APP_STYLESHEET)
    qtbot.addWidget(fcv)
    fcv.resize(520, 640)
    fcv.show()
    qtbot.waitExposed(fcv)
    hist = FrameHistory(256)
    for k, v in enumerate(rng.standard_normal((30, 256))):
        hist.append(Frame(index=k, t=2.1 * k, values=v.astype(np.float32)))
    fcv.update_view(hist)
    nets = [regions.networks[i] for i in fcv.order]
    assert nets == sorted(nets, key=lambda n: fcv.present.index(n))  # grouped by network
    assert len(fcv.present) == 8  # DiFuMo-256 has Limbic regions
    xs, _ = fcv.boundaries.getData()
    assert len(xs) == 4 * (len(fcv.present) - 1)  # one line pair per network boundary
    labels = [t for _, t in fcv.plot.getAxis("left")._tickLevels[0]]
    assert labels == [theme.NETWORK_SHORT[n] for n in fcv.present]
    qtbot.wait(20)
    std, n_colors = region_stats(fcv.grab().toImage(), fcv.glw, fcv)
    assert std > 8 and n_colors > 50


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
                          bundle="tiny.rtbold", n_frames=7, n_skipped=1,
                          waiting_for="no TR for 5 s: no markers matching 'R149' seen",
                          streams={"eeg": "amp: connected", "markers": "amp-markers: absent for 10.0 s"},
                          clock="internal", n_reconnects=2, bad_channels={"flat": ["O1", "O2"]})
    window.bridge.on_status(status)
    src = SyntheticFrames(seed=4)
    window.bridge.on_frame(src.next())
    qtbot.waitUntil(lambda: window.bridge.status is status, timeout=3000)
    window.draw_now()
    f = window.status_view.fields
    assert "connected" in f["connected"].text() and "199.97 Hz" == f["rate"].text()
    assert ">12<" in f["lost"].text() and window.status_view.buffer.value() == 50
    assert f["frames"].text() == "7 (1 skipped)"
    # the engine's own account of its inlets, clock and silence is shown, not only logged
    assert "no markers matching 'R149'" in f["waiting"].text()
    assert "amp-markers: absent" in f["streams"].text() and theme.ERROR in f["streams"].text()
    assert f["clock"].text() == "internal · 2 reconnections"
    assert f["bad"].text() == "flat: O1, O2"
    window.bridge.on_status(EngineStatus(connected=True, streams={"eeg": "amp: connected"}))
    qtbot.waitUntil(lambda: f["waiting"].text() == "—", timeout=3000)
    assert f["bad"].text() == "none"
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
