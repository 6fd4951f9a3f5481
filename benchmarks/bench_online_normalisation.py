"""How far the causal normalisation of measured BOLD (``rtbold scanner-export``) is from the
offline target normalisation, on simulated scans.

Each scan is one of the 23 packaged real resting-state DiFuMo-64 series (575 volumes, TR 2.1 s)
turned into what the masker gives online: a per-region intensity offset (1000) and scale (5-25),
a linear scanner drift (0.5 % of the offset over the scan), and white noise (20 % of the signal's
SD). Offline: linear detrend over the whole scan (as ``rtbold extract-regions``), then the
targets' zero-phase low-pass and robust scaling (:func:`rtbold.preprocessing.preprocess_targets`).
Online: :class:`rtbold.scanner.normalise.OnlineTargetNormaliser`, volume by volume, without and
with its causal low-pass. Printed per variant, over regions and scans (median, 5th percentile):
Pearson r with the offline series over volumes 20-574 and over the first 100 volumes after
those 20 (3.5 min), the RMS difference in offline units, and the lag (in TRs) at which the two
correlate best.

    python benchmarks/bench_online_normalisation.py            # all 23 scans
    python benchmarks/bench_online_normalisation.py --scans 4  # a quick run
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.signal import detrend

from rtbold.preprocessing import preprocess_targets
from rtbold.scanner.normalise import OnlineTargetNormaliser
from rtbold.simulator.bold import load_bold_source

#: Volumes left out at the start (the normaliser's warm-up).
SKIP = 20


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int = 4) -> int:
    """Lag (volumes) of ``a`` behind ``b`` with the highest correlation."""
    best = max(range(0, max_lag + 1), key=lambda d: np.corrcoef(a[d:], b[:len(b) - d])[0, 1])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=23)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = load_bold_source(None)
    rng = np.random.default_rng(args.seed)
    rows: dict[str, dict[str, list]] = {}
    for s in range(min(args.scans, source.data.shape[0])):
        y, tr = source.data[s], source.tr
        n, p = y.shape
        k = np.arange(n)[:, None]
        y = (y - y.mean(0)) / y.std(0)
        raw = (1000 + rng.uniform(5, 25, p) * (y + rng.normal(0, 0.2, y.shape))
               + 5.0 * k / n)
        offline, _ = preprocess_targets(detrend(raw, axis=0), tr)
        for name, lowpass in (("causal detrend + robust scale", False),
                              ("  ... + causal low-pass", True)):
            norm = OnlineTargetNormaliser(p, tr, lowpass=lowpass)
            online = np.array([norm.update(v) for v in raw])
            r = rows.setdefault(name, {"r": [], "r_early": [], "rms": [], "lag": []})
            for i in range(p):
                a, b = online[SKIP:, i], offline[SKIP:, i]
                r["r"].append(np.corrcoef(a, b)[0, 1])
                r["r_early"].append(np.corrcoef(a[:100], b[:100])[0, 1])
                r["rms"].append(np.sqrt(np.mean((a - b) ** 2)))
                r["lag"].append(_lag(a, b))
    print(f"{min(args.scans, source.data.shape[0])} scans x 64 regions, volumes {SKIP}-574; "
          "median (5th percentile) over regions and scans")
    print(f"{'online variant':32s} {'r':>12s} {'r first 100':>14s} {'RMS diff':>12s} "
          f"{'lag (TR)':>9s}")
    for name, r in rows.items():
        def fmt(v, low=True):
            v = np.asarray(v)
            q = np.percentile(v, 5 if low else 95)
            return f"{np.median(v):.3f} ({q:.2f})"
        lags = np.asarray(r["lag"])
        print(f"{name:32s} {fmt(r['r']):>12s} {fmt(r['r_early']):>14s} "
              f"{fmt(r['rms'], low=False):>12s} {np.median(lags):>5.0f} "
              f"({np.mean(lags > 0):.0%} > 0)")
    print("(RMS: 95th percentile in brackets; offline values have SD about 0.5)")


if __name__ == "__main__":
    main()
