"""The 26-channel NeuroBOLT montage (VU 32-channel BrainAmp MR cap without EOG/EMG/ECG)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np


@dataclass(frozen=True)
class Montage:
    """Channel names (NeuroBOLT order, upper case) and head positions in metres."""

    ch_names: tuple[str, ...]
    positions: np.ndarray  # (n_channels, 3), MNE standard_1005 head coordinates
    standard_names: tuple[str, ...]  # the same channels spelled as in MNE (Fp1, Fz, ...)

    @property
    def n_channels(self) -> int:
        return len(self.ch_names)

    def to_mne(self):
        """An ``mne.channels.DigMontage`` with these positions (names as in ``ch_names``)."""
        import mne

        return mne.channels.make_dig_montage(
            ch_pos=dict(zip(self.ch_names, self.positions)), coord_frame="head"
        )


@lru_cache(maxsize=None)
def load_montage() -> Montage:
    """The NeuroBOLT 26-channel montage shipped with rtbold."""
    text = files("rtbold.data").joinpath("vu26_channels.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    return Montage(
        ch_names=tuple(r["neurobolt_name"] for r in rows),
        positions=np.array([[float(r["x_m"]), float(r["y_m"]), float(r["z_m"])] for r in rows]),
        standard_names=tuple(r["standard_name"] for r in rows),
    )
