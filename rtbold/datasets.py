"""Simultaneous EEG-fMRI datasets: finding scans, pairing EEG windows with fMRI volumes, splits.

Layouts understood by :func:`discover_scans`:

- **BIDS** (what ``rtbold simulate`` writes): ``sub-XX/[ses-YY/]eeg/*_eeg.<vhdr|edf|bdf|set|fif>``
  paired by entities with ``*_timeseries.tsv`` (+ JSON sidecar with ``RepetitionTime``) in the
  subject's ``func/`` folder or under ``derivatives/*/sub-XX/``.
- **NeuroBOLT release**: ``EEG_set/subXX-scanYY_eeg.set`` (or ``EEG/``) with
  ``fMRI_difumo64/subXX-scanYY_difumo64_roi.tsv`` (converted from the release's pickles with
  ``rtbold convert-neurobolt``) or, with ``trust_pickle``, the ``.pkl`` files themselves.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .channels import ChannelMapping
from .io.eeg import EEGRecording, marker_matches, read_eeg
from .io.fmri import RegionSeries, read_neurobolt_pickle, read_region_tsv
from .preprocessing import (SFREQ, WINDOW_S, WINDOW_SAMPLES, EEGPreprocessor, TargetStats,
                            extract_window, preprocess_targets, window_end_index)

logger = logging.getLogger(__name__)

EEG_SUFFIXES = (".vhdr", ".edf", ".bdf", ".set", ".fif", ".xdf")
DEFAULT_MARKER = "R149"


@dataclass(frozen=True)
class ScanSpec:
    """Where one scan's EEG and fMRI region series are."""

    subject: str
    scan: str
    eeg_path: Path
    bold_path: Path
    layout: str

    @property
    def name(self) -> str:
        return f"{self.subject}_{self.scan}"


def _bids_entities(path: Path) -> dict[str, str]:
    return dict(re.findall(r"([a-zA-Z]+)-([a-zA-Z0-9]+)", path.name.split(".")[0]))


def discover_scans(root: str | Path, layout: str = "auto", *,
                   trust_pickle: bool = False) -> list[ScanSpec]:
    """Find every scan with both EEG and region series under ``root``.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    layout : str
        ``bids``, ``neurobolt`` or ``auto`` (BIDS when ``sub-*`` folders exist).
    trust_pickle : bool
        NeuroBOLT layout: accept the release's pickled tables where no converted TSV exists.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset folder {root} does not exist.")
    if layout == "auto":
        if any(root.glob("sub-*")):
            layout = "bids"
        elif any((root / d).is_dir() for d in ("EEG_set", "EEG")):
            layout = "neurobolt"
        else:
            raise ValueError(f"{root} is neither a BIDS dataset (no sub-* folders) nor a NeuroBOLT "
                             "release (no EEG_set/ or EEG/ folder).")
    if layout == "bids":
        specs = _discover_bids(root)
    elif layout == "neurobolt":
        specs = _discover_neurobolt(root, trust_pickle)
    else:
        raise ValueError(f"Unknown dataset layout {layout!r}; use bids, neurobolt or auto.")
    if not specs:
        raise ValueError(f"No scan with both EEG and region series found in {root} ({layout} "
                         "layout). Check the file names against the layout in the README.")
    return specs


def _discover_bids(root: Path) -> list[ScanSpec]:
    tables = [p for p in root.rglob("*_timeseries.tsv") if "sub-" in p.name]
    specs = []
    for eeg in sorted(p for p in root.glob("sub-*/**/eeg/*_eeg.*") if p.suffix in EEG_SUFFIXES):
        ent = _bids_entities(eeg)
        match = [t for t in tables
                 if all(_bids_entities(t).get(k) == v for k, v in ent.items() if k != "eeg")]
        if not match:
            logger.warning("No region series (*_timeseries.tsv) for %s; skipped.", eeg)
            continue
        if len(match) > 1:
            raise ValueError(f"Several region series match {eeg.name}: "
                             f"{[m.name for m in match]}; keep one atlas per dataset folder.")
        scan = "_".join(f"{k}-{v}" for k, v in ent.items() if k not in ("sub",))
        specs.append(ScanSpec(f"sub-{ent['sub']}", scan or "scan", eeg, match[0], "bids"))
    return specs


def _discover_neurobolt(root: Path, trust_pickle: bool) -> list[ScanSpec]:
    eeg_dir = next((root / d for d in ("EEG_set", "EEG") if (root / d).is_dir()), None)
    if eeg_dir is None:
        raise FileNotFoundError(f"{root} has no EEG_set/ or EEG/ folder.")
    fmri_dirs = [root / d for d in ("fMRI_difumo64_tsv", "fMRI_difumo64", "fMRI_difumo")
                 if (root / d).is_dir()]
    specs = []
    for eeg in sorted(eeg_dir.glob("*_eeg.set")):
        stem = eeg.name[: -len("_eeg.set")]  # subXX-scanYY
        found = None
        for d in fmri_dirs:
            for cand in sorted(d.glob(f"{stem}_*roi.tsv")) + sorted(d.glob(f"{stem}_*.tsv")):
                found = found or cand
        if found is None:
            pkls = [p for d in fmri_dirs for p in sorted(d.glob(f"{stem}_*.pkl"))]
            if pkls and not trust_pickle:
                raise ValueError(f"The region series of {stem} is only available as a pickle "
                                 f"({pkls[0]}). Convert once with `rtbold convert-neurobolt "
                                 f"--trust-pickle {root} {root / 'fMRI_difumo64_tsv'}`.")
            found = pkls[0] if pkls else None
        if found is None:
            logger.warning("No region series for %s; skipped.", eeg)
            continue
        subject, _, scan = stem.partition("-")
        specs.append(ScanSpec(subject, scan or "scan", eeg, found, "neurobolt"))
    return specs


def read_targets(spec: ScanSpec, *, tr: float | None = None,
                 trust_pickle: bool = False) -> RegionSeries:
    """The region series of a scan (TSV, or a trusted NeuroBOLT pickle)."""
    if spec.bold_path.suffix == ".pkl":
        return read_neurobolt_pickle(spec.bold_path, trust_pickle=trust_pickle, tr=tr or 2.1)
    return read_region_tsv(spec.bold_path, tr=tr)


def volume_times(rec: EEGRecording, n_volumes: int, *, marker: str | None = DEFAULT_MARKER,
                 tr: float | None = None, first_volume_s: float | None = None,
                 skip_markers: int = 0, onsets: list[float] | None = None) -> np.ndarray:
    """Onset time (s, on the recording's clock) of each fMRI volume.

    From markers (annotations whose description is ``marker``, BrainVision ``Response/R149`` or
    ``Stimulus/S  1`` style included), or, when ``marker`` is None, from ``tr`` and
    ``first_volume_s``. ``onsets`` (on the recording's clock) replaces the markers' times: the
    volumes the gradient correction found, with doubled triggers left out and missed ones placed.

    Raises
    ------
    ValueError
        When there are fewer markers than fMRI volumes, or a volume lies beyond the EEG; the
        message gives both counts.
    """
    end = rec.first_time + rec.duration
    if marker is not None:
        if onsets is None:
            onsets = np.array([a.onset for a in rec.annotations
                               if marker_matches(a.description, marker)]) + rec.first_time
        onsets = np.asarray(onsets, dtype=np.float64)[skip_markers:]
        if len(onsets) == 0:
            seen = sorted({a.description for a in rec.annotations})
            raise ValueError(f"{rec.label} has no volume marker {marker!r}. Its annotations are "
                             f"{seen[:10] or 'none'}. Set the marker (config key marker) or give a "
                             "TR and first-volume time.")
        if len(onsets) < n_volumes:
            raise ValueError(f"{rec.label} has {len(onsets)} volume markers {marker!r} but the fMRI "
                             f"series has {n_volumes} volumes. Check that the files belong together.")
        if len(onsets) > n_volumes:
            raise ValueError(f"{rec.label} has {len(onsets)} volume markers {marker!r} but the fMRI "
                             f"series has {n_volumes} volumes. If the first markers are dummy scans, "
                             "set skip_markers; otherwise check the pairing.")
    else:
        if tr is None or first_volume_s is None:
            raise ValueError("Without volume markers, both tr and first_volume_s are needed.")
        onsets = rec.first_time + first_volume_s + tr * np.arange(n_volumes)
    beyond = int(np.sum(onsets > end + 0.5 / rec.sfreq))
    if beyond:
        raise ValueError(f"{beyond} of {n_volumes} volumes of {rec.label} lie beyond the end of the "
                         f"EEG ({rec.duration:.1f} s, {len(onsets)} markers); the recordings do not "
                         "cover each other.")
    return onsets


@dataclass
class PreparedScan:
    """One scan ready for windowing: EEG at 200 Hz on the model's channels, targets, volume times."""

    spec: ScanSpec
    eeg: np.ndarray  # (C, n) float32, µV, 200 Hz, model channels
    times: np.ndarray  # (n,)
    volume_times: np.ndarray  # (K,)
    targets: np.ndarray  # (K, P) float32, normalised
    valid: np.ndarray  # (K,) bool: window fully inside the EEG
    roi_names: list[str]
    tr: float
    target_stats: TargetStats
    mapping: ChannelMapping | None = None
    info: dict = field(default_factory=dict)
    #: (K,) flags of each window from the MR-artefact correction ("gradient", "bcg", "trigger":
    #: samples without a full template, a missed or doubled trigger); empty tuples without it.
    flags: list = field(default_factory=list)

    @property
    def valid_indices(self) -> np.ndarray:
        return np.nonzero(self.valid)[0]

    def window(self, k: int) -> np.ndarray:
        """Model input (C, 3200) for volume ``k``."""
        return extract_window(self.eeg, self.times, float(self.volume_times[k]))


def prepare_scan(spec: ScanSpec, ch_names: list[str], *, marker: str | None = DEFAULT_MARKER,
                 policy: str = "refuse", roi_names: list[str] | None = None,
                 highpass: float | None = None, tr: float | None = None,
                 first_volume_s: float | None = None, skip_markers: int = 0,
                 trust_pickle: bool = False, eeg: EEGRecording | None = None,
                 artifacts=None) -> PreparedScan:
    """Read and preprocess one scan with the shared path.

    Parameters
    ----------
    spec : ScanSpec
    ch_names : list of str
        The model's channels, in order.
    marker : str | None
        Volume marker; None to place volumes from ``tr`` and ``first_volume_s``.
    policy : str
        Missing-channel policy (refuse, interpolate, zero).
    roi_names : list of str | None
        Regions to predict, in order; None keeps every column of the table except global signals.
    highpass : float | None
        EEG high-pass (Hz) before windowing.
    artifacts : rtbold.artifacts.ArtifactConfig | None
        MR-artefact correction of a raw in-scanner recording (the live engine's, run on the
        whole file); with gradient correction the volumes are the corrected trigger list.
    """
    series = read_targets(spec, tr=tr, trust_pickle=trust_pickle)
    if roi_names is not None:
        series = series.select(roi_names)
    else:
        keep = [n for n in series.roi_names if not n.lower().startswith("global signal")]
        series = series.select(keep)
    rec = eeg if eeg is not None else read_eeg(spec.eeg_path)
    data, times, mapping, corrector = preprocess_recording(
        rec, ch_names, policy=policy, highpass=highpass, artifacts=artifacts, tr=series.tr,
        marker=marker, what=str(spec.eeg_path))
    found = corrector.volume_times if corrector is not None and corrector.triggers else None
    onsets = volume_times(rec, series.n_volumes, marker=marker, tr=series.tr,
                          first_volume_s=first_volume_s, skip_markers=skip_markers, onsets=found)
    flags = [()] * len(onsets)
    if corrector is not None:
        flags = window_flags(corrector.drain_marks(), onsets)
        n_flagged = sum(bool(f) for f in flags)
        logger.info("%s: MR-artefact correction (%s): %d of %d windows hold samples not fully "
                    "corrected; %s", spec.name, artifacts.summary(), n_flagged, len(onsets),
                    corrector.status().line())
    try:
        targets, stats = preprocess_targets(series.data, series.tr)
    except ValueError as err:
        raise ValueError(f"{spec.bold_path}: {err}") from None
    valid = full_windows(times, onsets)
    n_dropped = int((~valid).sum())
    if n_dropped:
        logger.info("%s: %d of %d volumes have no full %g s EEG window before them; not used.",
                    spec.name, n_dropped, len(onsets), WINDOW_S)
    return PreparedScan(spec, data.astype(np.float32), times, onsets, targets, valid,
                        list(series.roi_names), series.tr, stats, mapping,
                        {"eeg_sfreq": rec.sfreq, "n_volumes": len(onsets),
                         "n_windows": int(valid.sum()), "missing_channels": mapping.missing,
                         "n_flagged": sum(bool(f) for f in flags)}, flags)


def preprocess_recording(rec: EEGRecording, ch_names: list[str], *, policy: str = "refuse",
                         highpass: float | None = None, artifacts=None, tr: float | None = None,
                         marker: str | None = DEFAULT_MARKER, what: str | None = None):
    """The shared offline EEG chain of a whole recording: channel mapping, MR-artefact
    correction (when ``artifacts`` asks for it), resampling to 200 Hz and the high-pass.

    Parameters
    ----------
    rec : EEGRecording
    ch_names : list of str
        The model's channels, in order.
    policy : str
        Missing-channel policy (refuse, interpolate, zero).
    highpass : float | None
        EEG high-pass (Hz).
    artifacts : rtbold.artifacts.ArtifactConfig | None
    tr : float | None
        Repetition time (s); needed by the MR-artefact correction.
    marker : str | None
        Volume marker; needed by the gradient correction.
    what : str | None
        Name of the recording in error messages (default ``rec.label``).

    Returns
    -------
    data : array, shape (C, n)
        µV, 200 Hz, the model's channels.
    times : array, shape (n,)
    mapping : ChannelMapping
    corrector : rtbold.artifacts.MRCorrector | None
        After the run: its volumes and the marks of samples it could not fully correct.
    """
    mapping = ChannelMapping.build(rec.ch_names, ch_names, source_types=rec.ch_types,
                                   policy=policy, what=what or rec.label)
    used = np.nonzero(mapping.matrix.any(axis=0))[0].tolist()
    rec.check_finite(used)
    from .artifacts.corrector import recording_corrector

    corrector, ecg = (recording_corrector(rec, len(ch_names), artifacts, tr, marker)
                      if artifacts is not None else (None, None))
    if ecg is not None:
        rec.check_finite([ecg])
    pre = EEGPreprocessor(rec.sfreq, mapping=mapping, highpass_hz=highpass, corrector=corrector)
    data, times = pre.run(rec.data, first_time=rec.first_time,
                          ecg=None if ecg is None else rec.data[ecg])
    return data, times, mapping, corrector


def full_windows(times: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """(K,) bool: the volume at each onset has a full 16-s window of EEG (``times``: the
    200-Hz axis) ending on a sample near it (not past the last EEG sample)."""
    onsets = np.asarray(onsets, dtype=np.float64)
    valid = np.array([window_end_index(times, t) >= WINDOW_SAMPLES for t in onsets], dtype=bool)
    return valid & (onsets <= times[-1] + 0.5 / SFREQ)


def window_flags(marks: list[tuple[str, float, float]], onsets: np.ndarray,
                 window_s: float = WINDOW_S, pad_s: float = 0.1) -> list[tuple[str, ...]]:
    """Flags of the window before each onset from ``(flag, t_start, t_stop)`` marks (as the live
    ring buffer flags a frame; ``pad_s`` covers the resampler's spread)."""
    out = []
    for t in np.asarray(onsets, dtype=np.float64):
        t0 = t - window_s
        out.append(tuple(dict.fromkeys(f for f, a, b in marks
                                       if a - pad_s <= t and b + pad_s >= t0)))
    return out


class WindowDataset:
    """Torch dataset of (EEG window, fMRI frame) pairs, sliced on the fly.

    Each scan's EEG is held once; a window is cut (and demeaned, scaled) only when asked for,
    so a 20-min scan does not become 567 copies of 16 s.

    Parameters
    ----------
    scans : list of PreparedScan
    items : list of (scan_index, volume_index) | None
        Pairs to serve; None serves every valid volume of every scan.
    """

    def __init__(self, scans: list[PreparedScan], items: list[tuple[int, int]] | None = None):
        self.scans = scans
        if items is None:
            items = [(i, int(k)) for i, s in enumerate(scans) for k in s.valid_indices]
        for i, k in items:
            if not scans[i].valid[k]:
                raise ValueError(f"Volume {k} of {scans[i].spec.name} has no full EEG window.")
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        import torch

        i, k = self.items[index]
        scan = self.scans[i]
        return torch.from_numpy(scan.window(k)), torch.from_numpy(scan.targets[k])


def intra_scan_split(n: int, tr: float, gap_s: float = 20.0,
                     window_s: float = WINDOW_S) -> dict[str, np.ndarray]:
    """Chronological 8:1:1 split of one scan's ``n`` windows with HRF guard gaps (MODEL.md 1.7).

    The gap (``ceil(max(gap_s, window_s) / tr)`` windows) is taken from the start of validation
    and of test. For n = 567 and TR 2.1 s: train 0-452, val 463-508, test 519-566.
    """
    gap = math.ceil(max(gap_s, window_s) / tr)
    n_train, n_val = int(math.floor(0.8 * n)), int(math.floor(0.1 * n))
    val = np.arange(n_train + gap, n_train + n_val)
    test = np.arange(n_train + n_val + gap, n)
    if len(val) == 0 or len(test) == 0:
        raise ValueError(f"{n} windows are too few for an 8:1:1 split with a {gap}-window gap.")
    return {"train": np.arange(n_train), "val": val, "test": test}


def cross_subject_split(subjects: list[str], ratios: tuple[int, int, int] = (3, 1, 1),
                        seed: int = 0) -> dict[str, list[str]]:
    """Split subjects (not scans) into train/val/test about ``ratios`` apart, reproducibly.

    Every subject lands in exactly one set, so no subject's scans leak across sets. A part with
    ratio 0 stays empty (e.g. ``(4, 1, 0)`` when the test subjects are a separate dataset); any
    other part gets at least one subject.
    """
    unique = sorted(set(subjects))
    if len(unique) < 3:
        raise ValueError(f"A cross-subject split needs at least 3 subjects, got {len(unique)}.")
    order = np.random.default_rng(seed).permutation(len(unique))
    total = sum(ratios)
    n_test = max(1, round(len(unique) * ratios[2] / total)) if ratios[2] > 0 else 0
    n_val = max(1, round(len(unique) * ratios[1] / total)) if ratios[1] > 0 else 0
    shuffled = [unique[i] for i in order]
    return {"test": sorted(shuffled[:n_test]), "val": sorted(shuffled[n_test:n_test + n_val]),
            "train": sorted(shuffled[n_test + n_val:])}
