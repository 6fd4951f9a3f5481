"""Offline path throughput: read, preprocess and window a simulated 20-min, 26-channel recording.

Prints the time of each stage, windows per second and peak memory (RSS high-water mark of this
process, which includes Python, numpy and torch themselves).

    python benchmarks/bench_preprocessing.py                 # 575 volumes (20 min) at 5 kHz
    python benchmarks/bench_preprocessing.py --sfreq 250 --n-volumes 100   # a quick run
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sfreq", type=float, default=5000.0)
    parser.add_argument("--n-volumes", type=int, default=575)
    parser.add_argument("--data", type=Path, default=None,
                        help="an existing simulated dataset (default: simulate one in a temp dir)")
    args = parser.parse_args()

    from rtbold.datasets import WindowDataset, discover_scans, prepare_scan
    from rtbold.montage import load_montage
    from rtbold.simulator import SimulatorConfig, simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            root = Path(tmp) / "sim"
            t0 = time.perf_counter()
            simulate_dataset(root, SimulatorConfig(n_subjects=1, n_volumes=args.n_volumes,
                                                   sfreq=args.sfreq), progress=False)
            print(f"simulate (not part of the figures): {time.perf_counter() - t0:.1f} s")
        rss0 = _rss_mib()
        spec = discover_scans(root)[0]
        t0 = time.perf_counter()
        scan = prepare_scan(spec, list(load_montage().ch_names))
        t_prep = time.perf_counter() - t0
        ds = WindowDataset([scan])
        ds[0]  # imports torch once; not part of the per-window figure
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        t_win = time.perf_counter() - t0
        n = len(ds)
        eeg_mib = scan.eeg.nbytes / 2**20
        print(f"recording: {scan.info['n_volumes']} volumes, {scan.info['eeg_sfreq']:g} Hz, "
              f"{scan.eeg.shape[0]} channels, {scan.times[-1] - scan.times[0]:.0f} s")
        print(f"read + map + resample + targets: {t_prep:.2f} s")
        print(f"windows: {n} in {t_win:.2f} s = {n / t_win:.0f} windows/s "
              f"(end to end incl. reading: {n / (t_prep + t_win):.0f} windows/s)")
        print(f"peak RSS: {_rss_mib():.0f} MiB (before reading: {rss0:.0f} MiB); "
              f"EEG held at 200 Hz: {eeg_mib:.1f} MiB, vs {n * 26 * 3200 * 4 / 2**20:.0f} MiB "
              "if every window were a copy")


if __name__ == "__main__":
    main()
