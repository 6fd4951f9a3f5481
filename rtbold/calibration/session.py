"""A recorded live session as calibration data: its EEG windows paired with its measured BOLD.

A session folder (:mod:`rtbold.stream.recorder`) holds the raw EEG as received, the frames
(``predictions.tsv``: index and stream time ``t`` of each window end) and the measured BOLD paired
with frames (``measured.tsv``). :func:`session_scan` turns them into a
:class:`rtbold.datasets.PreparedScan` with the offline chain that training uses
(:func:`rtbold.datasets.preprocess_recording`, the bundle's channels and high-pass, and the
session's own MR-artefact settings), so a window here is the window the live engine predicted
from, up to the live resampler's start-up.

Targets are the measured frames, normalised offline like training targets
(:func:`rtbold.preprocessing.preprocess_targets` after a linear detrend), separately for each
contiguous part of the session handed to :func:`normalise_part`: the calibration part and the
held-out part never share statistics.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import from_dict
from ..io.eeg import Annotation, EEGRecording
from ..preprocessing import preprocess_targets
from ..stream.recorder import read_markers, read_measured, read_predictions, read_raw_eeg

logger = logging.getLogger(__name__)

__all__ = ["SessionFrames", "read_session_frames", "session_recording", "session_scan",
           "normalise_part"]

#: Flags of frames never used for calibration: the EEG under them was not what the model saw.
EXCLUDED_FLAGS = ("gap", "gradient", "bcg", "trigger")


@dataclass
class SessionFrames:
    """The frames of a session in time order, with the measured BOLD paired with each.

    Every frame counts (the live session statistics of a session-normalised model grew with every
    predicted window); ``paired`` says which have a measured vector.

    Attributes
    ----------
    index : array (K,) int
        Frame indices (``predictions.tsv`` ``index``).
    t : array (K,)
        Stream time of each window end (s).
    flags : list of tuple
    predicted : array (K, P)
        What the live model predicted.
    measured : array (K, P)
        The measured BOLD paired with the frame, as recorded (NaN where none, and in the
        regions the measured stream lacks).
    roi_names : list of str
    tr : float
    meta : dict
        ``session.json``.
    """

    index: np.ndarray
    t: np.ndarray
    flags: list
    predicted: np.ndarray
    measured: np.ndarray
    roi_names: list[str]
    tr: float
    meta: dict

    def __len__(self) -> int:
        return len(self.index)

    @property
    def region_mask(self) -> np.ndarray:
        """(P,) bool: regions the measured stream has (a stream of a few regions, e.g. the
        feedback target's, leaves the others NaN in every frame)."""
        return np.isfinite(self.measured).any(axis=0)

    @property
    def paired(self) -> np.ndarray:
        """(K,) bool: the frame has a value for every region the measured stream has."""
        cols = self.region_mask
        return np.isfinite(self.measured[:, cols]).all(axis=1) & bool(cols.any())

    @property
    def paired_minutes(self) -> float:
        """Minutes of paired frames (count x TR)."""
        return float(self.paired.sum()) * self.tr / 60.0


def read_session_frames(folder: str | Path) -> SessionFrames:
    """Read a session's frames that have measured BOLD.

    Raises
    ------
    FileNotFoundError
        The folder holds no session or no ``measured.tsv``.
    ValueError
        The measured regions are not the predicted ones.
    """
    folder = Path(folder)
    if not (folder / "session.json").is_file():
        raise FileNotFoundError(f"{folder} holds no rtbold session (no session.json); pass the "
                                "folder `rtbold run` recorded into (live.session_dir).")
    meta = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    if not (folder / "measured.tsv").is_file():
        raise FileNotFoundError(f"{folder} has no measured.tsv: the session had no measured BOLD "
                                "([live.measured], e.g. `rtbold scanner-export`), so there is "
                                "nothing to calibrate on.")
    pred = read_predictions(folder)
    meas = read_measured(folder)
    roi = list(meas["roi_names"])
    if roi != list(pred["roi_names"]):
        raise ValueError(f"{folder / 'measured.tsv'}: its region columns are not those of "
                         "predictions.tsv; the session folder was edited or mixed.")
    measured = {int(k): v for k, v in zip(meas["index"], meas["values"])}
    order = np.argsort(pred["t"], kind="stable")
    p = len(roi)
    none = np.full(p, np.nan)
    index = pred["index"][order]
    return SessionFrames(
        index=index, t=pred["t"][order], flags=[pred["flags"][i] for i in order],
        predicted=pred["values"][order].reshape(len(order), p),
        measured=np.stack([measured.get(int(k), none) for k in index]) if len(index)
        else np.zeros((0, p)),
        roi_names=list(roi), tr=float(meta["tr"]), meta=meta)


def session_recording(folder: str | Path) -> EEGRecording:
    """The session's raw EEG as an :class:`~rtbold.io.eeg.EEGRecording` (µV, the stream's
    channels; the markers of ``events.tsv`` as annotations; ``first_time`` = the first sample's
    LSL time, so annotation onsets and frame times share the stream clock)."""
    folder = Path(folder)
    data, times, header = read_raw_eeg(folder)
    if times.size < 2:
        raise ValueError(f"{folder / 'eeg.bin'} holds {times.size} EEG sample(s); the session "
                         "recorded no EEG (live.output.record) or was cut at once.")
    sfreq = header.get("sfreq") or (times.size - 1) / (times[-1] - times[0])
    annotations = [Annotation(t - times[0], 0.0, desc) for t, desc in read_markers(folder)]
    rec = EEGRecording(data.astype(np.float64), float(sfreq), list(header["ch_names"]),
                       list(header["ch_types"]), annotations, source=folder / "eeg.bin",
                       first_time=float(times[0]))
    return rec


def _artifact_config(meta: dict):
    """The session's ``[live.artifacts]`` settings (None when the correction was off)."""
    from ..artifacts.config import ArtifactConfig

    raw = ((meta.get("streams") or {}).get("config") or {}).get("artifacts")
    if not raw:
        return None
    cfg = from_dict(ArtifactConfig, raw, "session.json streams.config.artifacts")
    return cfg if cfg.enabled else None


def session_scan(folder: str | Path, ch_names: list[str], *, highpass: float | None,
                 frames: SessionFrames | None = None):
    """The session as a :class:`rtbold.datasets.PreparedScan` for the model's channels.

    Volumes are every frame (so a session-normalised model's causal statistics grow as they
    did live); ``valid`` is False for frames without a full EEG window or with a flag in
    :data:`EXCLUDED_FLAGS`. ``targets`` hold the *raw* measured frames (NaN where none; normalise
    parts with :func:`normalise_part`): use the frames where ``valid`` and
    :attr:`SessionFrames.paired`.
    """
    from ..datasets import PreparedScan, ScanSpec, full_windows, preprocess_recording
    from ..preprocessing import TargetStats

    folder = Path(folder)
    frames = frames if frames is not None else read_session_frames(folder)
    rec = session_recording(folder)
    config: dict[str, Any] = (frames.meta.get("streams") or {}).get("config") or {}
    policy = (config.get("stream") or {}).get("channel_policy", "refuse")
    marker = (config.get("trigger") or {}).get("marker")
    data, times, mapping, _ = preprocess_recording(
        rec, list(ch_names), policy=policy, highpass=highpass,
        artifacts=_artifact_config(frames.meta), tr=frames.tr, marker=marker, what=str(folder))
    onsets = frames.t
    valid = full_windows(times, onsets)
    valid &= np.array([not set(f) & set(EXCLUDED_FLAGS) for f in frames.flags], dtype=bool)
    spec = ScanSpec(subject=str(folder.name), scan="session", eeg_path=folder / "eeg.bin",
                    bold_path=folder / "measured.tsv", layout="session")
    p = len(frames.roi_names)
    return PreparedScan(spec, data.astype(np.float32), times, onsets,
                        frames.measured.astype(np.float32), valid, list(frames.roi_names),
                        frames.tr, TargetStats(np.zeros(p), np.ones(p), 0.0), mapping,
                        {"n_volumes": len(onsets), "n_windows": int(valid.sum())},
                        [tuple(f) for f in frames.flags])


def normalise_part(measured: np.ndarray, tr: float) -> np.ndarray:
    """Training-style targets of one contiguous part of a session (K, P): linear detrend, then
    :func:`rtbold.preprocessing.preprocess_targets` (low-pass, demean, 95th-percentile scale)."""
    from scipy import signal

    y = signal.detrend(np.asarray(measured, dtype=np.float64), axis=0, type="linear")
    return preprocess_targets(y, tr)[0]
