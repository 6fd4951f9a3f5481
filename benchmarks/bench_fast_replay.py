"""Fast replay without loss: ``rtbold replay --fast`` into ``rtbold run``, default settings.

A simulated scan (``--volumes`` fMRI volumes at TR 2.1 s: 570 = 20 min) is replayed with
``rtbold replay --fast`` in one process and predicted by ``rtbold run --headless`` in another,
both with the shipped defaults. The recorded predictions are compared with the offline
evaluator's for the same bundle (what a 1x replay gives, see tests/test_parity.py): lost samples,
frames, skipped TRs, flags and the largest difference.

Usage: ``python benchmarks/bench_fast_replay.py [--quick] [--volumes N]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _live_common as common  # noqa: F401 - sets LSLAPICFG first
import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="100 volumes (3.5 min)")
    p.add_argument("--volumes", type=int, default=None, help="volumes (default 570 = 20 min)")
    args = p.parse_args(argv)
    n_vol = args.volumes or (100 if args.quick else 570)
    import torch

    from rtbold.atlas import load_atlas
    from rtbold.evaluate import data_config_for
    from rtbold.models import create_model, load_bundle, save_bundle
    from rtbold.player.synthetic import montage_channels
    from rtbold.simulator import simulate_dataset, simulator_config
    from rtbold.stream.recorder import read_predictions, read_tsv
    from rtbold.training import load_scans, predict_items

    tmp = Path(tempfile.mkdtemp(prefix="rtbold-fast-"))
    t0 = time.perf_counter()
    simulate_dataset(tmp / "sim", simulator_config(n_subjects=1, n_volumes=n_vol, seed=3,
                                                   lead_s=18.0), progress=False)
    torch.manual_seed(1)
    model = create_model("unebolt", size="tiny", n_rois=64, ch_names=montage_channels(),
                         head_init_scale=1.0)
    bundle = tmp / "model.safetensors"
    save_bundle(bundle, model, {"roi_names": list(load_atlas(64).roi_names), "tr": 2.1,
                                "atlas": "DiFuMo64", "eeg_highpass_hz": 0.5, "marker": "R149"})
    model, meta = load_bundle(bundle)
    (scan,) = load_scans(data_config_for(meta, tmp / "sim"), meta.ch_names, meta.roi_names)
    items = [(0, int(k)) for k in scan.valid_indices]
    expected = predict_items(model, [scan], items, device="cpu")
    print(f"set-up (simulation, offline predictions) {time.perf_counter() - t0:.0f} s")

    name = f"rtbold-fast-{os.getpid()}"
    session = tmp / "session"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cli = [sys.executable, "-m", "rtbold.cli"]
    log = (tmp / "run.log").open("w")  # a pipe nobody reads would fill and block the engine
    run = subprocess.Popen([*cli, "run", "--headless", "--bundle", str(bundle), "--stream", name,
                            "--source-id", name, "--session-dir", str(session), "--device",
                            "cpu"], stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    t1 = time.perf_counter()
    replay = subprocess.Popen([*cli, "replay", "--fast", "--name", name, "--source-id", name,
                               str(scan.spec.eeg_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
    # The replay ends when everything is pushed; the engine works through what waits for it.
    deadline = time.monotonic() + 600
    n_rows = 0
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if (session / "predictions.tsv").is_file():
            n_rows = len(read_tsv(session / "predictions.tsv")[1])
        skipped = 0
        if (session / "events.tsv").is_file():
            skipped = sum(e[2] == "skipped_tick" for e in read_tsv(session / "events.tsv")[1])
        if n_rows + skipped >= len(items):
            break
    wall = time.perf_counter() - t1
    run.send_signal(2)
    run.wait(timeout=60)
    log.close()
    out = (tmp / "run.log").read_text()
    replay_out, _ = replay.communicate(timeout=60)  # it ends once the engine has disconnected
    summary = [ln for ln in out.splitlines() if ln.startswith("rtbold run: ") and "frames" in ln]
    pred = read_predictions(session)
    _, events = read_tsv(session / "events.tsv")
    n_skip = sum(e[2] == "skipped_tick" for e in events)
    flagged = sum(bool(f) for f in pred["flags"])
    n = min(len(pred["values"]), len(expected))
    diff = float(np.max(np.abs(pred["values"][:n] - expected[:n]))) if n else float("nan")
    print(f"fast replay of {n_vol} volumes ({scan.spec.eeg_path.name}) into rtbold run, defaults: "
          f"{wall:.0f} s wall")
    print(f"  replay: {replay_out.strip().splitlines()[-1]}")
    print(f"  {summary[-1] if summary else out[-500:]}")
    print(f"  frames {len(pred['values'])} of {len(items)} volumes, skipped {n_skip}, flagged "
          f"{flagged}; max |live - offline| {diff:.2e} (tolerance 1e-4)")
    return 0 if len(pred["values"]) == len(items) and diff < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
