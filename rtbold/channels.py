"""Mapping a recording's or a stream's channels onto a model's montage, by name.

The mapping is a linear operator (``target = matrix @ source``): picking a channel is a row with
one 1, a zero-filled channel is a row of zeros, and an interpolated channel is a row of spherical-
spline weights over the channels present. The same object serves files and LSL streams.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

#: Old 10-20 names and their 10-10 equivalents.
ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
#: Channel types that never go into the model.
NON_EEG_TYPES = {"ecg", "eog", "emg", "stim", "misc", "resp", "bio", "gsr", "temperature", "syst"}
_NON_EEG_NAME = re.compile(r"^(ECG|EKG|EOG|VEOG|HEOG|EMG|CWL|RESP|GSR|TRIGGER|STATUS|STI|MARKER)",
                           re.IGNORECASE)
POLICIES = ("refuse", "interpolate", "zero")


def normalise_channel_name(name: str) -> str:
    """Canonical form of an EEG channel name for matching.

    Upper case, without an ``EEG`` prefix, reference suffixes (``-REF``, ``-LE``), spaces and
    trailing dots, with the old 10-20 temporal names mapped to 10-10 (T3->T7, T4->T8, T5->P7,
    T6->P8). ``'EEG Fp1'``, ``'Fp1.'`` and ``'fp1'`` all become ``'FP1'``.
    """
    n = name.strip()
    n = re.sub(r"^EEG[\s_:-]+", "", n, flags=re.IGNORECASE)
    n = re.sub(r"[-_](REF|LE|AVG|AR|M1|M2|A1|A2)$", "", n, flags=re.IGNORECASE)
    n = n.rstrip(".").replace(" ", "").upper()
    return ALIASES.get(n, n)


def is_non_eeg(name: str, ch_type: str | None = None) -> bool:
    """True for ECG/EOG/EMG/carbon-wire-loop/trigger channels, by type or by name."""
    if ch_type is not None and ch_type.lower() in NON_EEG_TYPES:
        return True
    return bool(_NON_EEG_NAME.match(name.strip().removeprefix("EEG ").strip()))


@dataclass
class ChannelMapping:
    """How the channels of a source (file or stream) become a model's channels.

    Attributes
    ----------
    matrix : array, shape (n_target, n_source)
        ``target = matrix @ source``.
    source_names, target_names : list of str
    missing : list of str
        Target channels the source lacks (interpolated or zero-filled, per ``policy``).
    dropped : list of str
        Source channels not used (non-EEG or not in the target montage).
    policy : str
        ``refuse``, ``interpolate`` or ``zero``.
    """

    matrix: np.ndarray
    source_names: list[str]
    target_names: list[str]
    missing: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    policy: str = "refuse"

    @classmethod
    def build(cls, source_names: list[str], target_names: list[str], *,
              source_types: list[str] | None = None, policy: str = "refuse",
              policy_key: str = "missing_channels",
              what: str = "recording") -> "ChannelMapping":
        """Match channels by name; decide what to do with the ones that are missing.

        Parameters
        ----------
        source_names : list of str
            Channel labels of the file or stream, in its order.
        target_names : list of str
            The model's channels, in the model's order (e.g. a bundle's ``ch_names``).
        source_types : list of str | None
            MNE channel types of the source; non-EEG types are never used.
        policy : str
            What to do with target channels the source lacks: ``refuse`` (error listing them),
            ``interpolate`` (spherical spline from standard 10-05 positions) or ``zero``
            (zero-filled, with a warning).
        policy_key : str
            The setting that chooses ``policy``, named in the refusal (``missing_channels``
            offline, ``live.stream.channel_policy`` live).
        what : str
            Name of the source in messages (a file path or a stream name).
        """
        if policy not in POLICIES:
            raise ValueError(f"Missing-channel policy must be one of {POLICIES}, got {policy!r}.")
        source_names = list(source_names)
        target_names = list(target_names)
        types = list(source_types) if source_types is not None else [None] * len(source_names)
        if len(types) != len(source_names):
            raise ValueError(f"{what}: {len(source_names)} channel names but {len(types)} types.")
        norm = [normalise_channel_name(n) for n in source_names]
        eeg = [i for i, (n, t) in enumerate(zip(source_names, types)) if not is_non_eeg(n, t)]
        dup = sorted(k for k, c in Counter(norm[i] for i in eeg).items() if c > 1)
        if dup:
            raise ValueError(
                f"{what} has duplicate channel names after normalisation: {dup} "
                f"(from {[source_names[i] for i in eeg if norm[i] in dup]}). Rename the channels "
                "so that each electrode appears once."
            )
        lookup = {norm[i]: i for i in eeg}
        target_norm = [normalise_channel_name(n) for n in target_names]
        matrix = np.zeros((len(target_names), len(source_names)))
        missing = []
        for row, t in enumerate(target_norm):
            if t in lookup:
                matrix[row, lookup[t]] = 1.0
            else:
                missing.append(target_names[row])
        if missing:
            if policy == "refuse":
                raise ValueError(
                    f"{what} lacks {len(missing)} of the model's {len(target_names)} channels: "
                    f"{', '.join(missing)}. It has {', '.join(source_names[i] for i in eeg)}. "
                    "Rename the channels, or set the missing-channel policy to 'interpolate' or "
                    f"'zero' (config key {policy_key})."
                )
            if policy == "zero":
                logger.warning("%s: zero-filling %d missing channel(s): %s", what, len(missing),
                               ", ".join(missing))
            else:
                # Interpolate from every EEG electrode the source has (not only the montage's).
                known = _standard_positions()
                present = [i for i in eeg if norm[i] in known]
                if len(present) < 4:
                    raise ValueError(f"{what}: only {len(present)} EEG channels with standard "
                                     "positions; too few to interpolate the missing ones.")
                weights = _spline_weights([norm[i] for i in present],
                                          [normalise_channel_name(m) for m in missing])
                for j, m in enumerate(missing):
                    matrix[target_names.index(m), present] = weights[j]
                logger.warning("%s: interpolating %d missing channel(s) by spherical spline: %s",
                               what, len(missing), ", ".join(missing))
        used = set(np.nonzero(matrix.any(axis=0))[0].tolist())
        dropped = [source_names[i] for i in range(len(source_names)) if i not in used]
        return cls(matrix, source_names, target_names, missing, dropped, policy)

    @property
    def n_source(self) -> int:
        return len(self.source_names)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Map source data (n_source, n_times) to the target channels (n_target, n_times)."""
        if data.shape[0] != self.n_source:
            raise ValueError(f"Data has {data.shape[0]} channels; this mapping expects "
                             f"{self.n_source} ({', '.join(self.source_names[:5])}, ...).")
        return self.matrix @ data

    def describe(self) -> str:
        """One line for logs and status displays."""
        msg = f"{len(self.target_names)} channels mapped from {self.n_source}"
        if self.missing:
            msg += f"; {self.policy} for missing {', '.join(self.missing)}"
        return msg


_ECG_NAME = re.compile(r"^(ECG|EKG)", re.IGNORECASE)


def find_ecg(source_names: list[str], source_types: list[str] | None = None,
             label: str | None = None, *, what: str = "recording") -> int | None:
    """Index of the ECG channel: ``label`` if given, else the channel of type ECG, else the one
    named ECG/EKG; None when there is none.

    Raises
    ------
    ValueError
        ``label`` is given but not among the channels, or several channels could be the ECG.
    """
    names = list(source_names)
    if label is not None:
        want = label.strip().lower()
        hits = [i for i, n in enumerate(names) if n.strip().lower() == want]
        if not hits:
            raise ValueError(f"{what} has no ECG channel {label!r} (artifacts.ecg_channel); its "
                             f"channels are {', '.join(names)}.")
        return hits[0]
    types = [(t or "").lower() for t in (source_types or [""] * len(names))]
    hits = [i for i, t in enumerate(types) if t == "ecg"]
    if not hits:
        hits = [i for i, n in enumerate(names) if _ECG_NAME.match(n.strip())]
    if len(hits) > 1:
        raise ValueError(f"{what} has several ECG channels ({', '.join(names[i] for i in hits)}); "
                         "choose one with artifacts.ecg_channel.")
    return hits[0] if hits else None


def _standard_positions() -> dict[str, np.ndarray]:
    """MNE's standard 10-05 electrode positions by normalised name."""
    import mne

    # MNE 1.13 renamed standard_1005 to colin27_1005 (same positions).
    name = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"
    montage = mne.channels.make_standard_montage(name)
    return {normalise_channel_name(k): v for k, v in montage.get_positions()["ch_pos"].items()}


def _spline_weights(present: list[str], missing: list[str]) -> np.ndarray:
    """Spherical-spline interpolation weights (n_missing, n_present) from standard positions."""
    from mne.channels.interpolation import _make_interpolation_matrix

    pos = _standard_positions()
    unknown = [n for n in present + missing if n not in pos]
    if unknown:
        raise ValueError(f"No standard 10-05 position for channel(s) {unknown}; cannot interpolate. "
                         "Use the 'zero' policy or rename the channels.")
    return _make_interpolation_matrix(np.array([pos[n] for n in present]),
                                      np.array([pos[n] for n in missing]))
