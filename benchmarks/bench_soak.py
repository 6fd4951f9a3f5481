"""Soak: an hour of stream time replayed fast through the live engine.

26-channel 250 Hz synthetic EEG with a volume marker every 2.1 s, replayed ``--speed`` times faster
than real time over LSL (loopback) into a :class:`rtbold.stream.engine.LiveEngine` (tiny UnEBOLT on
the CPU, everything recorded). Reports lost samples, skipped TRs, resident memory over time
(growth after the first minute of wall time) and latency drift (tick -> published p50 in the first
and last tenth of the session).

Usage: ``python benchmarks/bench_soak.py [--quick] [--minutes N] [--speed X] [--size tiny]``
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
    args = p.parse_args(argv)
    minutes = args.minutes or (10.0 if args.quick else 60.0)
    tr = 2.1
    ch = montage_channels()
    src = SyntheticSource(ch, 250.0, minutes * 60.0, tr=tr, speed=args.speed, chunk_s=0.1,
                          block_s=120.0)
    tmp = Path(tempfile.mkdtemp(prefix="rtbold-soak-"))
    cfg = live_config(src, tmp)
    cfg.worker.skip_stale = True  # as in a real session
    cfg.output.bold_outlet = cfg.output.feedback_outlet = True
    frames = []
    from rtbold.stream.engine import LiveEngine

    engine = LiveEngine(cfg, on_frame=lambda f: frames.append((f.t, f.latency["published"])),
                        runner=make_runner(ch, args.size, tr=tr))
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
    print(f"  frames {len(frames)} of {len(src.onsets)} markers, skipped {engine.n_skipped} "
          f"(reasons: {sorted({s.reason for s in engine.skips})}), lost samples "
          f"{engine.inlet.lost_samples}, received {engine.inlet.n_samples} of {src.n_sent}")
    end_mb = rss[-1][1] if rss else float("nan")
    max_mb = max((m for _, m in rss), default=float("nan"))
    print(f"  RSS after start {rss0:.0f} MiB, after a fifth of the run {after1[0]:.0f} MiB, end "
          f"{end_mb:.0f} MiB, max {max_mb:.0f} MiB -> growth after warm-up "
          f"{after1[-1] - after1[0]:+.1f} MiB")
    print(f"  tick->published p50 first tenth {1e3 * np.median(lat[:k]):.1f} ms, last tenth "
          f"{1e3 * np.median(lat[-k:]):.1f} ms, p99 overall {1e3 * common.pct(lat, 99):.1f} ms")
    print(f"  session folder {size_mb:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
