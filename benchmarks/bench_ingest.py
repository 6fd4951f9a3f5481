"""Ingest cost of a 64-channel 5 kHz EEG stream: CPU share of one core and lost samples.

A synthetic 64-channel 5 kHz stream (channel labels: the 26 model channels plus 38 extra 10-05
labels that the mapping drops) is pushed over LSL (loopback) in 20 ms chunks, ``--speed`` times
faster than real time, into a full :class:`rtbold.stream.engine.LiveEngine` (mapping, NaN check,
5000 -> 200 Hz streaming resampler, ring buffer, raw EEG recorded to disk, a tiny model every TR).
The acquisition thread's CPU time (``time.thread_time``) divided by the stream time gives its share
of one core at real time.

Usage: ``python benchmarks/bench_ingest.py [--quick] [--minutes N] [--speed X] [--no-record]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import _live_common as common  # noqa: F401 - sets LSLAPICFG first

from rtbold.player.synthetic import SyntheticSource, live_config, make_runner, montage_channels

EXTRA = ["AF7", "AF3", "AFZ", "AF4", "AF8", "F5", "F1", "F2", "F6", "FC5", "FC3", "FC1", "FCZ",
         "FC2", "FC4", "FC6", "C5", "C1", "C2", "C6", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4",
         "CP6", "P5", "P1", "P2", "P6", "PO7", "PO3", "PO4", "PO8", "FT7", "FT8", "TP7"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 minute of stream time")
    p.add_argument("--minutes", type=float, default=None, help="stream minutes (default 5)")
    p.add_argument("--speed", type=float, default=2.0, help="replay speed (x real time)")
    p.add_argument("--no-record", action="store_true", help="do not record the raw EEG")
    args = p.parse_args(argv)
    minutes = args.minutes or (1.0 if args.quick else 5.0)
    ch = montage_channels()
    extra = [c for c in EXTRA if c not in ch][: 64 - len(ch)]
    names = ch + extra
    assert len(names) == 64, len(names)
    sfreq = 5000.0
    src = SyntheticSource(names, sfreq, minutes * 60.0, tr=2.1, speed=args.speed, chunk_s=0.02,
                          block_s=20.0)
    tmp = Path(tempfile.mkdtemp(prefix="rtbold-ingest-"))
    cfg = live_config(src, None if args.no_record else tmp)
    cfg.stream.max_buflen_s = 30
    frames = []
    from rtbold.stream.engine import LiveEngine

    engine = LiveEngine(cfg, on_frame=frames.append, runner=make_runner(ch, "tiny", tr=2.1))
    engine.start()
    try:
        t0 = time.perf_counter()
        src.start()
        src.join(minutes * 60.0 / args.speed + 120)
        time.sleep(0.5)
        wall = time.perf_counter() - t0
    finally:
        engine.stop()
        src.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    stream_s = minutes * 60.0
    inlet = engine.inlet
    print(f"ingest: 64 ch @ 5 kHz, {stream_s:.0f} s of stream time at {args.speed:g}x "
          f"({wall:.1f} s wall), raw EEG {'not ' if args.no_record else ''}recorded")
    print(f"  samples pushed {src.n_sent}, received {inlet.n_samples}, lost (timestamp gaps) "
          f"{inlet.lost_samples}, missing at the end {src.n_sent - inlet.n_samples}")
    print(f"  acquisition thread CPU {engine.acq_cpu_s:.2f} s over {stream_s:.0f} s of stream = "
          f"{100 * engine.acq_cpu_s / stream_s:.1f} % of one core at real time "
          f"({engine.acq_iterations} loop iterations, "
          f"{1e3 * engine.acq_busy_s / max(engine.acq_iterations, 1):.2f} ms busy per iteration)")
    print(f"  frames {len(frames)}, skipped TRs {engine.n_skipped}, effective rate "
          f"{inlet.effective_sfreq:.1f} Hz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
