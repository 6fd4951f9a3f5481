"""Reading EEG recordings into one in-memory form.

Any file :func:`mne.io.read_raw` opens (BrainVision, EDF/BDF, FIF, EEGLAB, ...) and XDF files
(LabRecorder, read with pyxdf) become an :class:`EEGRecording`: data in microvolts, channel names
and types, sampling rate and annotations (volume markers and other events).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Extensions handled by mne.io.read_raw (the ones rtbold is tested on first).
MNE_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".fif", ".fif.gz", ".set", ".gdf", ".cnt", ".mff")


@dataclass(frozen=True)
class Annotation:
    """An event: onset in seconds from the first sample, duration (s) and description."""

    onset: float
    duration: float
    description: str


@dataclass
class EEGRecording:
    """An EEG recording in memory.

    Attributes
    ----------
    data : array, shape (n_channels, n_times)
        float64; EEG channels in microvolts (other channels in their own SI-scaled units x 1e6).
    sfreq : float
        Sampling rate (Hz).
    ch_names : list of str
    ch_types : list of str
        MNE channel types (``eeg``, ``eog``, ``ecg``, ``emg``, ``misc``, ``stim``, ...).
    annotations : list of Annotation
    source : Path | None
        The file it was read from.
    first_time : float
        Time of sample 0 (s). 0 for files; for XDF the LSL timestamp of the first sample.
    """

    data: np.ndarray
    sfreq: float
    ch_names: list[str]
    ch_types: list[str]
    annotations: list[Annotation] = field(default_factory=list)
    source: Path | None = None
    first_time: float = 0.0

    def __post_init__(self) -> None:
        if self.data.ndim != 2 or self.data.shape[0] != len(self.ch_names):
            raise ValueError(f"{self.label}: data shape {self.data.shape} does not match "
                             f"{len(self.ch_names)} channel names.")
        if len(self.ch_types) != len(self.ch_names):
            raise ValueError(f"{self.label}: {len(self.ch_types)} channel types for "
                             f"{len(self.ch_names)} channels.")

    @property
    def label(self) -> str:
        return str(self.source) if self.source is not None else "recording"

    @property
    def n_times(self) -> int:
        return self.data.shape[1]

    @property
    def duration(self) -> float:
        return self.n_times / self.sfreq

    def times(self) -> np.ndarray:
        """Time of every sample (s)."""
        return self.first_time + np.arange(self.n_times) / self.sfreq

    def check_finite(self, picks: list[int] | None = None) -> None:
        """Raise a clear error if the (picked) channels contain NaN or infinite samples."""
        data = self.data if picks is None else self.data[picks]
        names = self.ch_names if picks is None else [self.ch_names[i] for i in picks]
        bad = ~np.isfinite(data)
        if bad.any():
            rows = np.nonzero(bad.any(axis=1))[0]
            first = int(np.argmax(bad.any(axis=0)))
            raise ValueError(
                f"{self.label}: channel(s) {', '.join(names[r] for r in rows)} contain NaN or "
                f"infinite samples (first at {first / self.sfreq:.3f} s). Repair or mark the "
                "segment bad before using this recording."
            )


def marker_matches(description: str, marker: str) -> bool:
    """Whether an annotation or LSL marker is the configured volume marker.

    Spaces are ignored and a BrainVision type prefix is allowed: mne reads ``R149`` markers as
    ``"Response/R149"`` and ``S  1`` as ``"Stimulus/S  1"``; they match ``"R149"`` and ``"S1"``.
    """
    d, m = description.replace(" ", ""), marker.replace(" ", "")
    return d == m or d.endswith("/" + m)


def read_eeg(path: str | Path, *, stream_name: str | None = None) -> EEGRecording:
    """Read an EEG recording.

    Parameters
    ----------
    path : path-like
        A file :func:`mne.io.read_raw` opens, or an ``.xdf`` file.
    stream_name : str | None
        XDF only: the name of the EEG stream. None picks the only stream of type EEG and fails if
        there are several.

    Returns
    -------
    EEGRecording
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"EEG file {path} does not exist.")
    if path.suffix.lower() == ".xdf":
        return _read_xdf(path, stream_name)
    return _read_mne(path)


def _read_mne(path: Path) -> EEGRecording:
    import mne

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = mne.io.read_raw(path, preload=True, verbose="warning")
    except Exception as err:  # mne raises many types for corrupt files
        raise ValueError(f"Could not read EEG file {path}: {type(err).__name__}: {err}. "
                         "Check that the file is complete and in a format MNE reads "
                         "(BrainVision, EDF/BDF, FIF, EEGLAB).") from err
    for w in caught:  # a truncated file: mne drops the markers beyond its end, say so
        if "outside data range" in str(w.message):
            logger.warning("%s: %s; the file looks truncated (%.3f s of data) and those markers "
                           "are lost.", path, str(w.message).strip().rstrip("."),
                           raw.n_times / raw.info["sfreq"])
    # BrainVision has no channel types: mne reads an ECG channel as EEG; its name says ECG.
    types = ["ecg" if t == "eeg" and name.strip().upper().startswith(("ECG", "EKG")) else t
             for name, t in zip(raw.ch_names, raw.get_channel_types())]
    data = raw._data  # preloaded float64 array: scale in place instead of copying 1+ GB
    data *= 1e6  # volts -> microvolts
    annotations = [
        Annotation(float(a["onset"] - raw.first_time), float(a["duration"]), str(a["description"]))
        for a in raw.annotations
    ]
    return EEGRecording(data, float(raw.info["sfreq"]), list(raw.ch_names), list(types),
                        annotations, path)


def _read_xdf(path: Path, stream_name: str | None) -> EEGRecording:
    import pyxdf

    try:
        streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=True)
    except Exception as err:
        raise ValueError(f"Could not read XDF file {path}: {type(err).__name__}: {err}") from err

    def info(s, key):
        v = s["info"].get(key, [""])
        return v[0] if isinstance(v, list) and v else (v or "")

    seen = [f"{info(s, 'name')!r} (type {info(s, 'type')!r}, {info(s, 'channel_count')} ch)"
            for s in streams]
    if stream_name is not None:
        eeg = [s for s in streams if info(s, "name") == stream_name]
    else:
        eeg = [s for s in streams if info(s, "type").upper() == "EEG"]
    if len(eeg) != 1:
        what = f"named {stream_name!r}" if stream_name else "of type EEG"
        raise ValueError(f"{path}: expected exactly one stream {what}, found {len(eeg)}. Streams in "
                         f"the file: {'; '.join(seen) or 'none'}. Pass the EEG stream's name.")
    s = eeg[0]
    ts = np.asarray(s["time_stamps"], dtype=np.float64)
    if len(ts) < 2:
        raise ValueError(f"{path}: stream {info(s, 'name')!r} has {len(ts)} samples.")
    sfreq = float(info(s, "nominal_srate") or 0) or float(1.0 / np.median(np.diff(ts)))
    n_ch = int(info(s, "channel_count"))
    names, types, scales = [], [], []
    try:
        chans = s["info"]["desc"][0]["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        chans = []
    for i in range(n_ch):
        c = chans[i] if i < len(chans) else {}
        names.append((c.get("label") or [f"Ch{i + 1}"])[0])
        types.append(((c.get("type") or ["eeg"])[0] or "eeg").lower())
        unit = ((c.get("unit") or ["microvolts"])[0] or "microvolts").lower()
        scales.append(1e6 if unit in ("v", "volt", "volts") else 1e3 if unit in ("mv", "millivolts")
                      else 1.0)
    data = np.asarray(s["time_series"], dtype=np.float64).T * np.asarray(scales)[:, None]
    first = float(ts[0])
    annotations = []
    for m in streams:
        if m is s or info(m, "type").lower() not in ("markers", "marker", "events"):
            continue
        for t, v in zip(m["time_stamps"], m["time_series"]):
            annotations.append(Annotation(float(t) - first, 0.0, str(v[0])))
    annotations.sort(key=lambda a: a.onset)
    types = [t if t in ("eeg", "eog", "ecg", "emg", "misc", "stim") else "misc" for t in types]
    return EEGRecording(data, sfreq, names, types, annotations, path, first_time=first)
