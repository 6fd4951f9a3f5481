"""Connect panel with real loopback LSL streams, settings persistence and the `rtbold gui` CLI."""

import time
import uuid

import numpy as np
import pytest

pytest.importorskip("pytestqt")
import pylsl  # noqa: E402

from rtbold.cli import build_parser, main  # noqa: E402
from rtbold.gui.connect import ConnectPanel  # noqa: E402
from rtbold.gui.main_window import MainWindow  # noqa: E402
from rtbold.gui.settings import (SessionSettings, default_settings_path,  # noqa: E402
                                 load_settings, save_settings)


@pytest.fixture
def lsl_streams():
    """A 26-channel 200 Hz EEG outlet and a marker outlet with unique names and source ids."""
    tag = uuid.uuid4().hex[:8]
    eeg_info = pylsl.StreamInfo(f"gui-test-eeg-{tag}", "EEG", 26, 200.0, "float32",
                                f"gui-eeg-{tag}")
    mrk_info = pylsl.StreamInfo(f"gui-test-markers-{tag}", "Markers", 1, 0.0, "string",
                                f"gui-mrk-{tag}")
    eeg, mrk = pylsl.StreamOutlet(eeg_info), pylsl.StreamOutlet(mrk_info)
    eeg.push_sample(np.zeros(26, np.float32))
    yield {"eeg": (eeg_info.name(), eeg_info.source_id()),
           "markers": (mrk_info.name(), mrk_info.source_id())}
    del eeg, mrk


def test_stream_picker_lists_loopback_streams(qtbot, lsl_streams):
    panel = ConnectPanel(wait_time=1.0)
    qtbot.addWidget(panel)
    t0 = time.perf_counter()
    panel.refresh()
    assert time.perf_counter() - t0 < 0.2  # discovery runs in the background
    assert not panel.refresh_button.isEnabled()
    eeg_name, eeg_sid = lsl_streams["eeg"]
    qtbot.waitUntil(lambda: any(s["source_id"] == eeg_sid for s in panel.streams), timeout=8000)
    row = next(r for r in range(panel.table.rowCount())
               if panel.table.item(r, 4).text() == eeg_sid)
    cells = [panel.table.item(row, c).text() for c in range(5)]
    assert cells == [eeg_name, "EEG", "200 Hz", "26", eeg_sid]
    eeg_choices = [panel.eeg_combo.itemData(i) for i in range(panel.eeg_combo.count())]
    trig_choices = [panel.trigger_combo.itemData(i) for i in range(panel.trigger_combo.count())]
    assert lsl_streams["eeg"] in eeg_choices and lsl_streams["markers"] not in eeg_choices
    assert lsl_streams["markers"] in trig_choices and ("", "") in trig_choices
    panel.eeg_combo.setCurrentIndex(eeg_choices.index(lsl_streams["eeg"]))
    panel.trigger_combo.setCurrentIndex(trig_choices.index(lsl_streams["markers"]))
    s = panel.settings()
    assert (s.eeg_stream, s.eeg_source_id) == lsl_streams["eeg"]
    assert (s.trigger_stream, s.trigger_source_id) == lsl_streams["markers"]
    assert panel.refresh_button.isEnabled()


def test_remembered_stream_is_kept_when_absent(qtbot):
    s = SessionSettings(eeg_stream="amp-that-is-off", eeg_source_id="amp-123")
    panel = ConnectPanel(s)
    qtbot.addWidget(panel)
    panel._on_found([])
    assert panel.eeg_combo.currentData() == ("amp-that-is-off", "amp-123")
    assert "(not found)" in panel.eeg_combo.currentText()


def test_settings_file_round_trip(tmp_path):
    path = tmp_path / "sub" / "gui-session.toml"
    s = SessionSettings(eeg_stream='amp "A"', eeg_source_id="sid\\1", bundle="/m/b.rtbold",
                        session_dir="/data/ses-01", record=False, fc_window=45,
                        feedback_target=-1.25, color_mode="fixed", subtract_mean=True,
                        fc_gsr=True)
    save_settings(s, path)
    assert load_settings(path) == s
    path.write_text("[gui]\nfc_window = 'many'\n")
    assert load_settings(path) == SessionSettings()  # bad file: defaults, never a crash
    assert load_settings(tmp_path / "missing.toml") == SessionSettings()


def test_default_settings_path_is_outside_the_repo():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    assert repo not in default_settings_path().parents


def test_window_restores_last_choices(qtbot, tmp_path):
    path = tmp_path / "gui-session.toml"
    win = MainWindow(settings_path=path, discover=False)
    qtbot.addWidget(win)
    win.connect_panel.bundle_edit.setText("/models/unebolt.rtbold")
    win.connect_panel.session_edit.setText(str(tmp_path / "sessions"))
    win.connect_panel.record_check.setChecked(False)
    win.fc.window_spin.setValue(40)
    win.traces.window_spin.setValue(150)
    win.feedback.target_spin.setValue(2.0)
    win.glass.mode_combo.setCurrentIndex(win.glass.mode_combo.findData("fixed"))
    win.glass.limit_spin.setValue(3.5)
    win.glass.subtract_mean.setChecked(True)
    win.fc.kind_combo.setCurrentIndex(win.fc.kind_combo.findData(True))
    win.close()
    assert path.is_file()
    win2 = MainWindow(settings_path=path, discover=False)
    qtbot.addWidget(win2)
    assert win2.connect_panel.bundle_edit.text() == "/models/unebolt.rtbold"
    assert win2.connect_panel.session_edit.text() == str(tmp_path / "sessions")
    assert not win2.connect_panel.record_check.isChecked()
    assert win2.fc.window == 40 and win2.traces.n_trs == 150
    assert win2.feedback.target_spin.value() == 2.0
    assert win2.glass.mode == "fixed" and win2.glass.limit_spin.value() == 3.5
    assert win2.glass.subtract_mean.isChecked() and win2.fc.gsr
    win2.close()


def test_cli_registers_gui(tmp_path, capsys):
    args = build_parser().parse_args(["gui", "--bundle", "x.rtbold", "--start"])
    assert args.command == "gui" and args.start and str(args.bundle) == "x.rtbold"
    assert main(["gui", "--bundle", str(tmp_path / "missing.rtbold")]) == 2
    assert "missing.rtbold does not exist" in capsys.readouterr().err


def test_run_window_autostarts_engine(qtbot, tmp_path):
    from rtbold.gui.cli import run_window
    from rtbold.gui.synthetic import SyntheticEngine

    def factory(settings, **callbacks):
        assert settings.bundle == str(tmp_path / "b.rtbold")
        return SyntheticEngine(64, interval_s=0.02, **callbacks)

    win = run_window(factory, settings_path=tmp_path / "s.toml", bundle=tmp_path / "b.rtbold",
                     autostart=True, discover=False, exec_loop=False)
    qtbot.addWidget(win)
    assert win.isVisible()
    qtbot.waitUntil(lambda: win.history.n_total >= 5, timeout=5000)
    win.close()
    assert win.engine is None
    assert load_settings(tmp_path / "s.toml").bundle == str(tmp_path / "b.rtbold")


def test_default_factory_reports_missing_bundle_in_window(qtbot, tmp_path):
    from rtbold.gui.cli import make_engine_factory

    win = MainWindow(make_engine_factory(), settings_path=tmp_path / "s.toml", discover=False)
    qtbot.addWidget(win)
    win.connect_panel.start_button.click()
    assert "no model bundle given" in win.banner.label.text()
    assert win.status_view.errors.count() == 1 and win.engine is None
