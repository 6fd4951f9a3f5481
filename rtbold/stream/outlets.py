"""LSL outlets for the live predictions: every region (``rtbold-bold``) and one feedback value.

``rtbold-bold`` (type ``fMRI``)
    P float32 channels, one per region, labelled with the region names in ``desc/channels`` (with
    ``unit`` and ``type``), nominal rate 1/TR, and ``desc`` fields ``atlas``, ``tr``, ``model``.
    One sample per TR, stamped with the window end (the volume time, in stream time).
``rtbold-feedback`` (type ``Feedback``)
    One float32 channel: the configured :class:`FeedbackTarget` (a region, a Yeo-7 network mean or
    the difference of two such terms), z-scored against a running baseline. Any LSL client
    (PsychoPy, OpenNFT-style displays, mne-lsl, LabRecorder) reads it unchanged.

Feedback targets
----------------
``region:<DiFuMo name>``
    one region, e.g. ``region:Calcarine cortex posterior`` (case-insensitive; ASCII apostrophe
    accepted for ``’``).
``network:<Yeo-7 name>``
    mean of the regions of a network, e.g. ``network:Visual``, ``network:Default``.
``diff:<term> - <term>``
    difference of two region/network terms, e.g. ``diff:network:Visual - network:Default``.
    The separator is `` - `` with spaces around it (some region names contain a hyphen).

Baseline
--------
``baseline="window"`` (default): the value at TR n is z-scored against the previous
``baseline_trs`` values (not including itself), the usual running baseline of neurofeedback.
``baseline="initial"``: the first ``baseline_trs`` values form a fixed baseline (Welford's running
mean/variance while it fills), as in a rest block followed by feedback. Until ``min_baseline`` values
are in the baseline the outlet sends 0.0 (neutral feedback) and :meth:`FeedbackOutlet.push` returns
None. Non-finite predictions (flagged frames) are sent as NaN and kept out of the baseline.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import deque
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


def _lsl():
    import pylsl

    return pylsl


def _default_source_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class BoldOutlet:
    """LSL outlet with one channel per predicted region, one sample per TR.

    Parameters
    ----------
    roi_names : sequence of str
        Region names in channel order.
    tr : float
        Repetition time in seconds; the nominal rate is ``1 / tr``.
    name : str
        Stream name.
    stype : str
        Stream type (``"fMRI"``).
    source_id : str | None
        LSL source id; default ``<name>-<random>``. Give a stable one so that consumers reconnect
        to a restarted session.
    atlas, model : str
        Written to the stream's ``desc`` (``atlas``, ``model``) with ``tr``.
    unit : str
        Channel unit in ``desc/channels/channel/unit``.
    timestamp : str
        What a sample's timestamp is, written to ``desc/timestamp``.
    """

    def __init__(self, roi_names, *, tr: float, name: str = "rtbold-bold", stype: str = "fMRI",
                 source_id: str | None = None, atlas: str = "DiFuMo64", model: str = "",
                 unit: str = "normalised",
                 timestamp: str = "window end (volume time) in stream time") -> None:
        if not (tr > 0 and math.isfinite(tr)):
            raise ValueError(f"BoldOutlet {name!r}: tr must be a positive number of seconds, "
                             f"got {tr!r}.")
        self.roi_names = [str(r) for r in roi_names]
        if not self.roi_names:
            raise ValueError(f"BoldOutlet {name!r} needs at least one region name.")
        pylsl = _lsl()
        self.name, self.tr = name, float(tr)
        self.source_id = source_id or _default_source_id(name)
        info = pylsl.StreamInfo(name, stype, len(self.roi_names), 1.0 / self.tr, "float32",
                                self.source_id)
        channels = info.desc().append_child("channels")
        for roi in self.roi_names:
            node = channels.append_child("channel")
            node.append_child_value("label", roi)
            node.append_child_value("unit", unit)
            node.append_child_value("type", "BOLD")
        info.desc().append_child_value("atlas", atlas)
        info.desc().append_child_value("tr", repr(self.tr))
        info.desc().append_child_value("model", model)
        info.desc().append_child_value("timestamp", timestamp)
        # 10 minutes of TRs buffered for a consumer that stalls (max_buffered is in seconds).
        self._outlet = pylsl.StreamOutlet(info, 1, 600)

    def push(self, values, timestamp: float) -> None:
        """Push one frame: ``values`` (P,) stamped ``timestamp`` (window end, stream time)."""
        arr = np.asarray(values, dtype=np.float32).ravel()
        if arr.size != len(self.roi_names):
            raise ValueError(f"BoldOutlet {self.name!r} has {len(self.roi_names)} channels, got "
                             f"{arr.size} values.")
        self._outlet.push_sample(arr, float(timestamp))

    def have_consumers(self) -> bool:
        """Whether any inlet is connected."""
        return bool(self._outlet.have_consumers())

    def close(self) -> None:
        """Destroy the outlet (consumers see the stream disappear)."""
        self._outlet = None


@dataclass(frozen=True)
class _Term:
    kind: str   # "region" | "network"
    name: str   # canonical name (as in the atlas)


@dataclass(frozen=True)
class FeedbackTarget:
    """What the feedback value is: a region, a network mean, or the difference of two terms.

    Build with :meth:`parse`; ``weights`` (P,) turns a frame into the value (``weights @ values``).

    Attributes
    ----------
    spec : str
        Canonical text form (``region:...``, ``network:...``, ``diff:A - B``).
    weights : np.ndarray
        (P,) float64 weights over the regions.
    label : str
        Short readable label for the channel.
    """

    spec: str
    weights: np.ndarray
    label: str

    @classmethod
    def parse(cls, text: str, atlas=None) -> "FeedbackTarget":
        """Parse ``region:NAME``, ``network:NAME`` or ``diff:TERM - TERM`` against an atlas.

        Parameters
        ----------
        text : str
            The target (see the module notes).
        atlas : rtbold.atlas.Atlas | sequence of str | int | None
            The regions the predictions use: an :class:`~rtbold.atlas.Atlas`, the region names
            in prediction order (a bundle's ``roi_names``, any subset of a DiFuMo atlas), or
            the region count of a whole packaged DiFuMo atlas; default DiFuMo-64.
        """
        from rtbold.atlas import NETWORK_ORDER, SUPPORTED_N_REGIONS, atlas_for_regions, load_atlas

        if atlas is None:
            atlas = load_atlas(64)
        elif isinstance(atlas, (int, np.integer)):
            if int(atlas) not in SUPPORTED_N_REGIONS:
                raise ValueError(
                    f"Feedback target {text!r}: {int(atlas)} regions is not a whole DiFuMo "
                    f"atlas {SUPPORTED_N_REGIONS}; pass the bundle's region names "
                    "(FeedbackTarget.parse(text, runner.roi_names)) so its regions are known.")
            atlas = load_atlas(int(atlas))
        elif not hasattr(atlas, "roi_names"):
            atlas = atlas_for_regions(list(atlas))
        raw = str(text).strip()
        kind, sep, rest = raw.partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in ("region", "network", "diff"):
            raise ValueError(f"Feedback target {raw!r}: expected 'region:<name>', "
                             "'network:<name>' or 'diff:<term> - <term>', e.g. "
                             "'network:Visual' or 'diff:network:Visual - network:Default'.")

        def term(t: str) -> tuple[_Term, np.ndarray]:
            k, s, n = t.strip().partition(":")
            k, n = k.strip().lower(), n.strip()
            w = np.zeros(atlas.n_regions)
            if s and k == "region":
                try:
                    i = atlas.index(n)
                except KeyError as err:
                    raise ValueError(f"Feedback target {raw!r}: {err.args[0]}") from None
                w[i] = 1.0
                return _Term("region", atlas.roi_names[i]), w
            if s and k == "network":
                match = [net for net in NETWORK_ORDER if net.lower() == n.lower()]
                if not match:
                    raise ValueError(f"Feedback target {raw!r}: unknown network {n!r}; expected "
                                     f"one of {list(NETWORK_ORDER)}.")
                idx = atlas.regions_in(match[0])
                if not idx:
                    raise ValueError(f"Feedback target {raw!r}: network {match[0]!r} has no "
                                     f"region in {atlas.name}.")
                w[idx] = 1.0 / len(idx)
                return _Term("network", match[0]), w
            raise ValueError(f"Feedback target {raw!r}: term {t.strip()!r} must be "
                             "'region:<name>' or 'network:<name>'.")

        if kind in ("region", "network"):
            t, w = term(raw)
            return cls(spec=f"{t.kind}:{t.name}", weights=w, label=t.name)
        parts = rest.split(" - ")
        if len(parts) != 2:
            raise ValueError(f"Feedback target {raw!r}: a difference is 'diff:<term> - <term>' "
                             "with ' - ' (spaces around the minus) between exactly two terms.")
        (a, wa), (b, wb) = term(parts[0]), term(parts[1])
        return cls(spec=f"diff:{a.kind}:{a.name} - {b.kind}:{b.name}", weights=wa - wb,
                   label=f"{a.name} - {b.name}")

    def value(self, values) -> float:
        """The target's raw (not z-scored) value for one frame of P region values."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size != self.weights.size:
            raise ValueError(f"Feedback target {self.spec!r} expects {self.weights.size} region "
                             f"values, got {arr.size}.")
        used = self.weights != 0
        return float(self.weights[used] @ arr[used])


class RunningBaseline:
    """Running mean/SD of the feedback value: a sliding window or a fixed initial block.

    Parameters
    ----------
    n : int
        Baseline length in TRs.
    mode : {"window", "initial"}
        ``window``: the last ``n`` values; ``initial``: the first ``n`` values, then frozen
        (Welford's update while it fills).
    min_count : int
        Values needed before :meth:`zscore` returns a number.
    """

    def __init__(self, n: int, mode: str = "window", min_count: int = 3) -> None:
        if mode not in ("window", "initial"):
            raise ValueError(f"baseline mode must be 'window' or 'initial', got {mode!r}.")
        if int(n) < 2:
            raise ValueError(f"baseline length must be at least 2 TRs, got {n!r}.")
        self.n, self.mode, self.min_count = int(n), mode, max(2, int(min_count))
        self._window: deque[float] = deque(maxlen=self.n)
        self._count, self._mean, self._m2 = 0, 0.0, 0.0

    @property
    def count(self) -> int:
        return len(self._window) if self.mode == "window" else self._count

    def stats(self) -> tuple[float, float] | None:
        """(mean, sample SD) of the baseline, or None while fewer than ``min_count`` values."""
        if self.count < self.min_count:
            return None
        if self.mode == "window":
            arr = np.fromiter(self._window, dtype=float)
            return float(arr.mean()), float(arr.std(ddof=1))
        return self._mean, math.sqrt(self._m2 / (self._count - 1))

    def zscore(self, x: float) -> float | None:
        """z of ``x`` against the current baseline (None while warming up; 0 for a flat baseline)."""
        st = self.stats()
        if st is None:
            return None
        mean, sd = st
        return 0.0 if sd <= 1e-12 else (x - mean) / sd

    def update(self, x: float) -> None:
        """Add one value (non-finite values are ignored)."""
        if not math.isfinite(x):
            return
        if self.mode == "window":
            self._window.append(x)
        elif self._count < self.n:
            self._count += 1
            delta = x - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (x - self._mean)


class FeedbackOutlet:
    """LSL outlet ``rtbold-feedback``: one z-scored value per TR.

    Parameters
    ----------
    target : FeedbackTarget | str
        What to feed back (parsed against ``atlas`` when a string).
    tr : float
        Repetition time (nominal rate ``1 / tr``).
    atlas : rtbold.atlas.Atlas | sequence of str | int | None
        The regions of the predictions (see :meth:`FeedbackTarget.parse`; default DiFuMo-64).
    baseline_trs : int
        Baseline length in TRs.
    baseline : {"window", "initial"}
        Sliding window of the previous values, or the first ``baseline_trs`` values (frozen).
    min_baseline : int
        Values needed in the baseline before z-scores are sent (0.0 is sent until then).
    name, source_id : str
        Stream name and LSL source id (default ``<name>-<random>``).
    """

    def __init__(self, target, *, tr: float, atlas=None, baseline_trs: int = 30,
                 baseline: str = "window", min_baseline: int = 3, name: str = "rtbold-feedback",
                 source_id: str | None = None) -> None:
        if not (tr > 0 and math.isfinite(tr)):
            raise ValueError(f"FeedbackOutlet {name!r}: tr must be a positive number of seconds, "
                             f"got {tr!r}.")
        self.target = target if isinstance(target, FeedbackTarget) else \
            FeedbackTarget.parse(target, atlas)
        self.baseline = RunningBaseline(baseline_trs, baseline, min_baseline)
        self.name, self.tr = name, float(tr)
        self.source_id = source_id or _default_source_id(name)
        pylsl = _lsl()
        info = pylsl.StreamInfo(name, "Feedback", 1, 1.0 / self.tr, "float32", self.source_id)
        ch = info.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", "feedback")
        ch.append_child_value("unit", "z")
        ch.append_child_value("type", "Feedback")
        info.desc().append_child_value("target", self.target.spec)
        info.desc().append_child_value("tr", repr(self.tr))
        info.desc().append_child_value("baseline", baseline)
        info.desc().append_child_value("baseline_trs", str(int(baseline_trs)))
        info.desc().append_child_value("warmup_value", "0.0 until the baseline has "
                                       f"{self.baseline.min_count} values")
        self._outlet = pylsl.StreamOutlet(info, 1, 600)

    def compute(self, values, *, update_baseline: bool = True) -> float | None:
        """z-score one frame's target value against the baseline, then add it to the baseline.

        ``update_baseline=False`` keeps the frame out of the baseline (e.g. a frame flagged
        ``gap``). Returns None during warm-up, NaN for a non-finite frame.
        """
        x = self.target.value(values)
        if not math.isfinite(x):
            return math.nan
        z = self.baseline.zscore(x)
        if update_baseline:
            self.baseline.update(x)
        return z

    def push(self, values, timestamp: float, *, update_baseline: bool = True) -> float | None:
        """Compute the feedback for one frame (P region values) and push it stamped ``timestamp``.

        Returns the z value sent (None during warm-up, when 0.0 is sent).
        """
        z = self.compute(values, update_baseline=update_baseline)
        self._outlet.push_sample([0.0 if z is None else z], float(timestamp))
        return z

    def have_consumers(self) -> bool:
        """Whether any inlet is connected."""
        return bool(self._outlet.have_consumers())

    def close(self) -> None:
        """Destroy the outlet."""
        self._outlet = None
