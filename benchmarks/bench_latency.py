"""Tick -> published latency of the live engine, beside the model's bare forward time.

A synthetic 26-channel EEG stream (500 Hz) with a volume marker every TR is replayed faster than
real time over LSL (loopback) into a :class:`rtbold.stream.engine.LiveEngine` running UnEBOLT on
the CPU; for each model size the replay speed is chosen so a TR of wall time is several forward
passes long (the engine is meant to keep up, not to queue). Latencies are per TR, from the moment
the acquisition thread sees the marker:

* ``window_ready``: the EEG covers the volume (includes waiting for the samples to arrive and the
  resampler's 50 ms delay, compressed by the replay speed);
* ``published``: the frame is on the ``rtbold-bold`` outlet; ``published - window_ready`` is the
  engine's own work (``work``: window, model, publish), split into the model call (``model``) and
  the rest (``other``: window extraction, flags, LSL push).

Usage: ``python benchmarks/bench_latency.py [--quick] [--sizes small base] [--trs N] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time

import _live_common as common  # noqa: F401 - sets LSLAPICFG first
import numpy as np
import torch

from rtbold.player.synthetic import SyntheticSource, live_config, make_runner, montage_channels


def bare_forward(runner, n: int = 20) -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(len(runner.ch_names), 3200)).astype(np.float32)
    runner.predict(x)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        runner.predict(x)
        out.append(time.perf_counter() - t0)
    return np.array(out)


def run_size(size: str, n_trs: int, tr: float = 2.1, sfreq: float = 500.0,
             threads: int = 1) -> dict:
    torch.set_num_threads(threads)
    runner = make_runner(montage_channels(), size=size, tr=tr)
    fwd = bare_forward(runner)
    speed = float(np.clip(tr / (4 * np.median(fwd)), 1.0, 40.0))
    duration = 16.0 + n_trs * tr + 0.5
    src = SyntheticSource(montage_channels(), sfreq, duration, tr=tr, first_marker_s=16.0,
                          speed=speed, chunk_s=0.02, block_s=60.0)
    cfg = live_config(src)
    cfg.worker.torch_threads = threads
    cfg.output.bold_outlet = cfg.output.feedback_outlet = True  # "published" = on LSL
    frames = []
    from rtbold.stream.engine import LiveEngine

    engine = LiveEngine(cfg, on_frame=frames.append, runner=runner)
    engine.start()
    t0 = time.perf_counter()
    try:
        src.start()
        src.join(duration / speed + 120)
        deadline = time.monotonic() + 10
        while len(frames) + engine.n_skipped < len(src.onsets) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        engine.stop()
        src.stop()
    wall = time.perf_counter() - t0
    pub = np.array([f.latency["published"] for f in frames])
    ready = np.array([f.latency["window_ready"] for f in frames])
    infer = np.array([f.latency["inference_end"] - f.latency["inference_start"] for f in frames])
    return {"size": size, "speed": speed, "n_frames": len(frames), "n_skipped": engine.n_skipped,
            "lost": engine.inlet.lost_samples, "wall_s": wall,
            "fwd_p50": np.median(fwd), "fwd_p99": common.pct(fwd, 99),
            "pub_p50": np.median(pub), "pub_p99": common.pct(pub, 99),
            "ready_p50": np.median(ready), "work_p50": np.median(pub - ready),
            "work_p99": common.pct(pub - ready, 99), "infer_p50": np.median(infer),
            # window extraction + flags + LSL push: published - ready - model time
            "other_p50": np.median(pub - ready - infer)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="50 TRs per size instead of 200")
    p.add_argument("--sizes", nargs="+", default=["small", "base"])
    p.add_argument("--trs", type=int, default=None)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the model (the engine's default is 1)")
    args = p.parse_args(argv)
    n = args.trs or (50 if args.quick else 200)
    print(f"live latency, CPU, {args.threads} torch thread(s), {n} TRs of 2.1 s, "
          "26 ch @ 500 Hz replayed fast")
    print(f"{'size':6} {'speed':>6} {'frames':>6} {'skip':>4} {'lost':>4} {'fwd p50':>8} "
          f"{'fwd p99':>8} {'tick->pub p50':>13} {'p99':>8} {'ready p50':>9} "
          f"{'work p50':>8} {'work p99':>8} {'model p50':>9} {'other p50':>9}   (ms)")
    for size in args.sizes:
        r = run_size(size, n, threads=args.threads)
        ms = {k: v * 1e3 for k, v in r.items() if isinstance(v, float) and k not in
              ("speed", "wall_s")}
        print(f"{r['size']:6} {r['speed']:6.1f} {r['n_frames']:6d} {r['n_skipped']:4d} "
              f"{r['lost']:4d} {ms['fwd_p50']:8.1f} {ms['fwd_p99']:8.1f} {ms['pub_p50']:13.1f} "
              f"{ms['pub_p99']:8.1f} {ms['ready_p50']:9.1f} {ms['work_p50']:8.1f} "
              f"{ms['work_p99']:8.1f} {ms['infer_p50']:9.2f} {ms['other_p50']:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
