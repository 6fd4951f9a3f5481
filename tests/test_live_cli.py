"""``rtbold run --headless`` in a subprocess: status lines, then a clean stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from rtbold.atlas import load_atlas
from rtbold.models import create_model, save_bundle
from rtbold.stream.recorder import read_tsv

from live_helpers import SyntheticSource, montage_channels


def test_run_headless_sigint_leaves_complete_session(tmp_path):
    ch = montage_channels()
    torch.manual_seed(0)
    bundle = tmp_path / "tiny.safetensors"
    save_bundle(bundle, create_model("unebolt", size="tiny", n_rois=64, ch_names=ch),
                {"roi_names": list(load_atlas(64).roi_names), "tr": 1.0, "atlas": "DiFuMo64"})
    src = SyntheticSource(ch, 250.0, 40.0, speed=5.0)
    session = tmp_path / "session"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "rtbold.cli", "run", "--headless", "--bundle", str(bundle),
           "--stream", src.name, "--source-id", src.source_id, "--session-dir", str(session),
           "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    lines = []
    try:
        src.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if sum(ln.startswith("TR ") for ln in lines) >= 3:
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        lines += out.splitlines(keepends=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        src.stop()
    text = "".join(lines)
    assert proc.returncode == 0, text
    tr_lines = [ln for ln in lines if ln.startswith("TR ")]
    assert len(tr_lines) >= 3, text
    assert "lost=0" in tr_lines[0] and "latency=" in tr_lines[0] and "strongest=" in tr_lines[0]
    assert "stopping (Ctrl-C)" in text
    _, rows = read_tsv(session / "predictions.tsv")
    assert len(rows) == len(tr_lines)
    _, events = read_tsv(session / "events.tsv")
    assert events[-1][2] == "session_end"
    assert (session / "eeg.bin").stat().st_size > 0
