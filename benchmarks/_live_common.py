"""Shared set-up for the live benchmarks: loopback LSL, the synthetic source, small statistics."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Before pylsl is imported anywhere: discovery stays on this machine.
os.environ.setdefault("LSLAPICFG", str(ROOT / "configs" / "lsl-local.cfg"))

import logging  # noqa: E402

import numpy as np  # noqa: E402

# Per-TR warnings (skipped ticks at start-up) would drown the figures; errors still show.
logging.basicConfig(level=logging.ERROR)


def pct(values, q) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.percentile(v, q)) if v.size else float("nan")


def rss_mb() -> float:
    """Resident memory of this process (MiB) from /proc."""
    with open("/proc/self/status") as fid:
        for line in fid:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")
