"""Soak: an hour of stream time replayed fast through the live engine, with source restarts.

26-channel 250 Hz synthetic EEG with a volume marker every 2.1 s, replayed ``--speed`` times faster
than real time over LSL (loopback) into a :class:`rtbold.stream.engine.LiveEngine` (tiny UnEBOLT on
the CPU, everything recorded, default settings). The EEG outlet is destroyed and recreated twice
(at a third and two thirds of the session, 3 s of stream lost each time) and the marker outlet once
(at half). Reports lost samples outside those gaps, how soon frames resumed after each restart,
skipped TRs, resident memory over time (growth after the first fifth of the run) and latency drift
(tick -> published p50 in the first and last tenth of the session).

Usage: ``python benchmarks/bench_soak.py [--quick] [--minutes N] [--speed X] [--size tiny]
[--no-restarts]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import _live_common as common
import numpy as np

from rtbold.player.synthetic import SyntheticSource, live_config, make_runner, montage_channels


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="10 minutes of stream time")
    p.add_argument("--minutes", type=float, default=None, help="stream minutes (default 60)")
    p.add_argument("--speed", type=float, default=30.0)
    p.add_argument("--size", default="tiny")
    p.add_argument("--no-restarts", action="store_true", help="no outlet restarts")
    args = p.parse_args(argv)
    minutes = args.minutes or (10.0 if args.quick else 60.0)
    tr = 2.1
    ch = montage_channels()
    dur = minutes * 60.0
    gap_s = 3.0
    restarts = [] if args.no_restarts else [(dur / 3, gap_s, 1.5), (2 * dur / 3, gap_s, 1.5)]
    marker_restarts = [] if args.no_restarts else [(dur / 2, 2.0)]
    src = SyntheticSource(ch, 250.0, dur, tr=tr, speed=args.speed, chunk_s=0.1, block_s=120.0,
                          restart=restarts, marker_restarts=marker_restarts)
    tmp = Path(tempfile.mkdtemp(prefix="rtbold-soak-"))
    cfg = live_config(src, tmp)
    cfg.worker.skip_stale = True  # as in a real session
    cfg.output.bold_outlet = cfg.output.feedback_outlet = True
    frames = []
    arrivals = []
    from rtbold.stream.engine import LiveEngine

    def on_frame(f):
        frames.append((f.t, f.latency["published"]))
        arrivals.append(time.monotonic())

    engine = LiveEngine(cfg, on_frame=on_frame, runner=make_runner(ch, args.size, tr=tr))
    rss: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample_rss():
        t0 = time.monotonic()
        while not stop.wait(2.0):
            rss.append((time.monotonic() - t0, common.rss_mb()))

    engine.start()
    rss0 = common.rss_mb()
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        t0 = time.perf_counter()
        src.start()
        src.join(minutes * 60.0 / args.speed + 300)
        time.sleep(1.0)
        wall = time.perf_counter() - t0
    finally:
        stop.set()
        engine.stop()
        src.stop()
        size_mb = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) / 2**20
        shutil.rmtree(tmp, ignore_errors=True)
    lat = np.array([x[1] for x in frames])
    k = max(1, len(lat) // 10)
    # Growth after warm-up: from the first sample past a fifth of the run to the end.
    after1 = [m for t, m in rss if t >= 0.2 * wall] or [m for _, m in rss] or [float("nan")]
    print(f"soak: {minutes:.0f} min of stream time at {args.speed:g}x ({wall:.0f} s wall), "
          f"UnEBOLT-{args.size} on CPU, 26 ch @ 250 Hz, TR {tr} s")
    in_gaps = int(sum(round(g * src.sfreq) for _, g, _ in restarts))
    print(f"  frames {len(frames)} of {src.n_markers_sent} markers sent ({len(src.onsets)} due; "
          "none is sent while the marker outlet is down or the EEG source is), skipped "
          f"{engine.n_skipped} "
          f"(reasons: {sorted({s.reason for s in engine.skips})}), lost samples "
          f"{engine.inlet.lost_samples} ({in_gaps} in the {len(restarts)} restart gaps, "
          f"{engine.inlet.lost_samples - in_gaps} outside), received {engine.inlet.n_samples} "
          f"of {src.n_sent} sent")
    for what, back in src.back_walls:
        after = [w for w in arrivals if w > back]
        resumed = f"{after[0] - back:.2f} s" if after else "never"
        print(f"  {what} outlet restarted: frames resumed {resumed} after it was back")
    end_mb = rss[-1][1] if rss else float("nan")
    max_mb = max((m for _, m in rss), default=float("nan"))
    print(f"  RSS after start {rss0:.0f} MiB, after a fifth of the run {after1[0]:.0f} MiB, end "
          f"{end_mb:.0f} MiB, max {max_mb:.0f} MiB -> growth after warm-up "
          f"{after1[-1] - after1[0]:+.1f} MiB")
    if rss:
        marks = [rss[min(len(rss) - 1, int(len(rss) * q / 6))][1] for q in range(6)]
        print("  RSS at each sixth of the run (restarts at 2/6, 3/6 (markers), 4/6): "
              + ", ".join(f"{m:.0f}" for m in marks) + f", {rss[-1][1]:.0f} MiB")
    print(f"  tick->published p50 first tenth {1e3 * np.median(lat[:k]):.1f} ms, last tenth "
          f"{1e3 * np.median(lat[-k:]):.1f} ms, p99 overall {1e3 * common.pct(lat, 99):.1f} ms")
    print(f"  session folder {size_mb:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
