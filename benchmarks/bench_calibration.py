"""Closed loop on held-out subjects: calibrate on the first half of a live session, score the
second half.

For each simulated subject of ``--heldout`` (real fMRI scans and subject parameters never used
for training or model selection), the recording is replayed with ``rtbold replay --fast`` into
``rtbold run --headless`` with the group bundle, which records the session (raw EEG, frames and
the measured BOLD paired with them). ``rtbold calibrate``'s code then fine-tunes the group bundle
on the first half of the paired frames (``holdout_min`` = half the session) and scores both
bundles on the second half: per-region r, residual Tcorr, Pixcorr, the mean r of each Yeo-7
network's regions. Writes ``results.json``, ``results.md`` and ``calibration.png`` (mean over
subjects) to ``--out``.

Usage: ``python benchmarks/bench_calibration.py --heldout runs/sim_heldout --out
runs/bench_calibration [--bundle demo] [--params heads]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _live_common as common  # noqa: F401 - sets LSLAPICFG first
import numpy as np


def record_session(eeg_path: Path, bundle: Path, session: Path) -> Path:
    """Replay ``eeg_path`` (with its measured BOLD) into ``rtbold run`` and record ``session``."""
    from rtbold.stream.recorder import read_tsv

    if (session / "session.json").is_file():
        return session
    name = f"rtbold-cal-{os.getpid()}-{eeg_path.stem[:12]}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cli = [sys.executable, "-m", "rtbold.cli"]
    log = (session.parent / f"{session.name}.run.log").open("w")
    run = subprocess.Popen([*cli, "run", "--headless", "--bundle", str(bundle), "--stream", name,
                            "--source-id", name, "--session-dir", str(session), "--device",
                            "cpu"], stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    time.sleep(3.0)
    replay = subprocess.run([*cli, "replay", "--fast", "--name", name, "--source-id", name,
                             str(eeg_path)], capture_output=True, text=True, env=env)
    # the replay ends once everything is pushed; wait for the engine to work through it
    last, still = -1, 0
    while still < 5:
        time.sleep(1.0)
        n = len(read_tsv(session / "predictions.tsv")[1]) if (
            session / "predictions.tsv").is_file() else 0
        still = still + 1 if n == last else 0
        last = n
    t_stop = time.perf_counter()
    run.send_signal(2)
    try:
        run.wait(timeout=300)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
    print(f"{session.name}: rtbold run stopped {time.perf_counter() - t_stop:.1f} s after "
          f"Ctrl-C (exit {run.returncode})", flush=True)
    log.close()
    if replay.returncode != 0:
        raise RuntimeError(f"rtbold replay {eeg_path} failed: {replay.stdout[-500:]}")
    return session


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--heldout", required=True, type=Path, help="held-out simulated dataset")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--bundle", default="demo", help="group bundle (default: the demo bundle)")
    p.add_argument("--params", default="readout", choices=("readout", "heads", "last", "all"))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--subjects", nargs="*", default=None, help="e.g. 201 202 (default all)")
    args = p.parse_args(argv)

    from rtbold.calibration.config import CalibrationConfig
    from rtbold.calibration.finetune import calibrate_session
    from rtbold.calibration.session import read_session_frames
    from rtbold.report import plot_calibration
    from rtbold.stream.config import resolve_bundle

    bundle = resolve_bundle(args.bundle).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sessions").mkdir(exist_ok=True)
    eegs = sorted(args.heldout.glob("sub-*/eeg/*_eeg.vhdr"))
    if args.subjects:
        eegs = [e for e in eegs if e.parts[-3][4:] in args.subjects]
    rows, results = [], []
    for eeg in eegs:
        sub = eeg.parts[-3]
        t0 = time.perf_counter()
        session = record_session(eeg, bundle, args.out / "sessions" / sub)
        t_rec = time.perf_counter() - t0
        frames = read_session_frames(session)
        half = frames.paired_minutes / 2.0
        cfg = CalibrationConfig(params=args.params, holdout_min=half)
        if args.epochs is not None:
            cfg.epochs = args.epochs
        if args.lr is not None:
            cfg.lr = args.lr
        res = calibrate_session(session, bundle, cfg, out=args.out / args.params / sub)
        results.append(res)
        b, a = res.before, res.after
        rows.append({"subject": sub, "paired_min": round(frames.paired_minutes, 1),
                     "n_calibration": res.n_calibration, "n_holdout": res.n_holdout,
                     "before": b, "after": a, "accepted": res.accepted,
                     "selected": res.selected, "record_s": round(t_rec), "seconds":
                     res.seconds})
        print(f"{sub}: {res.line()} [{res.seconds:.0f} s]", flush=True)
    if not results:
        print(f"no sub-*/eeg/*_eeg.vhdr under {args.heldout}")
        return 1
    rb = np.array([r.region_r_before for r in results])
    ra = np.array([r.region_r_after for r in results])
    networks = results[0].networks
    plot_calibration(np.nanmean(rb, 0), np.nanmean(ra, 0), networks,
                     args.out / f"calibration_{args.params}.png",
                     title=f"Calibration on the first half of {len(results)} held-out sessions "
                           f"({args.params}); per-region r on the second half, mean over subjects")
    net = np.array(networks)
    order = list(dict.fromkeys(networks))
    per_net = {n: {"before": float(np.nanmean(rb[:, net == n])),
                   "after": float(np.nanmean(ra[:, net == n]))} for n in order}
    summary = {k: {m: float(np.mean([r[k][m] for r in rows])) for m in rows[0][k]}
               for k in ("before", "after")}
    gain = np.array([r["after"]["tcorr"] - r["before"]["tcorr"] for r in rows])
    doc = {"bundle": str(bundle), "params": args.params, "subjects": rows, "mean": summary,
           "networks": per_net, "regions_improved": int(np.sum(np.nanmean(ra, 0)
                                                                > np.nanmean(rb, 0)))}
    (args.out / f"results_{args.params}.json").write_text(json.dumps(doc, indent=1))
    lines = [f"# Calibration on the first half, scored on the second ({args.params}, "
             f"{Path(bundle).name})", "",
             "| subject | paired min | calib. TRs | held-out TRs | Tcorr before -> after | "
             "res. Tcorr | Pixcorr | accepted |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        b, a = r["before"], r["after"]
        lines.append(f"| {r['subject']} | {r['paired_min']} | {r['n_calibration']} | "
                     f"{r['n_holdout']} | {b['tcorr']:.3f} -> {a['tcorr']:.3f} | "
                     f"{b['res_tcorr']:.3f} -> {a['res_tcorr']:.3f} | "
                     f"{b['pixcorr']:.3f} -> {a['pixcorr']:.3f} | {r['accepted']} |")
    b, a = summary["before"], summary["after"]
    lines.append(f"| mean | | | | {b['tcorr']:.3f} -> {a['tcorr']:.3f} | {b['res_tcorr']:.3f} "
                 f"-> {a['res_tcorr']:.3f} | {b['pixcorr']:.3f} -> {a['pixcorr']:.3f} | "
                 f"{sum(r['accepted'] for r in rows)}/{len(rows)} |")
    lines += ["", f"Tcorr gain per subject: {np.round(gain, 3).tolist()}; regions whose mean r "
              f"rose: {doc['regions_improved']}/{rb.shape[1]}", "",
              "| network | r before | r after |", "| --- | --- | --- |"]
    lines += [f"| {n} | {v['before']:.3f} | {v['after']:.3f} |" for n, v in per_net.items()]
    (args.out / f"results_{args.params}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
