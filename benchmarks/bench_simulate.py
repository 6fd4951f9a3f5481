"""Time and peak memory of ``rtbold simulate`` for one 20-min scan at a given amplifier rate.

Usage: python benchmarks/bench_simulate.py OUT_DIR [--sfreq 5000] [--n-volumes 575]
Prints wall time, the peak resident memory of this process, and the size written.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from rtbold.simulator import simulate_dataset, simulator_config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--sfreq", type=float, default=5000.0)
    ap.add_argument("--n-volumes", type=int, default=575)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    cfg = simulator_config(n_subjects=1, n_volumes=args.n_volumes, sfreq=args.sfreq)
    t0 = time.perf_counter()
    summary = simulate_dataset(args.out_dir, cfg, overwrite=args.overwrite, progress=False)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    size_mb = sum(p.stat().st_size for p in summary.files) / 1e6
    print(summary.format())
    print(f"sfreq {args.sfreq:g} Hz, {summary.scan_duration_s:.0f} s of EEG: wall {wall:.1f} s, "
          f"peak RSS {peak_mb:.0f} MB, written {size_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
