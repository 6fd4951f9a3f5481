"""Acquisition from LSL: streams that rtbold keeps connected itself, EEG, markers, measured BOLD.

:func:`resolve_stream` finds a stream by name, type and/or source id and, when nothing matches,
lists what it saw. :class:`LslStream` is one inlet that rtbold owns end to end: it is opened with
liblsl's own recovery switched off (liblsl brings back only one of several inlets of a process
after their source restarts), and

* a lost source (liblsl raises :class:`pylsl.util.LostError`, turned into :class:`StreamLost`
  here) or, for a regular-rate stream, silence longer than ``reconnect_s`` closes the inlet and
  starts a background thread that re-resolves the stream by its name, type and source id, with
  backoff (0.1 s doubling to 1 s between attempts), and checks that what comes back is the same
  kind of stream (channel count, rate, format, labels);
* a stream that is not there at start (``info=None``) is looked for the same way until it
  appears (a trigger box that comes up late);
* every change of state is queued in :attr:`LslStream.events` for the engine to record.

:class:`EEGInlet` pulls chunks into a preallocated buffer, applies the channel mapping onto the
model's channels and the unit scale to microvolts, replaces NaN samples (counted, reported once
per episode, never silently), and checks the timestamps against the nominal rate: missing samples
and jumps come back as :class:`Break` records so the caller can reset its filter and flag windows.

NaN samples: never written into windows as NaN. With ``nan_policy="hold"`` (default) each channel
repeats its last finite value; with ``"zero"`` they become 0. Either way they are counted
(:attr:`EEGInlet.n_nan`), recorded as an event, and every frame whose window overlaps them carries
the flag ``"nan"``. The raw recording keeps them as received.

Units
-----
``units="auto"`` reads each channel's ``unit`` field: human-readable names (``microvolts``,
``uV``, ``µV``, ``millivolts``, ``volts``, ``V``; the BrainVision LSL Connector and OpenBCI's GUI
write ``microvolts``), and mne-lsl's convention, a power of ten of the SI unit as an integer
string (``"0"`` = volts, ``"-6"`` = microvolts; mne-lsl's ``PlayerLSL`` writes the ``unit_mul``
of the recording, ``"0"`` for EEG in volts). A stream without units is taken as microvolts; the
amplitude check (:class:`rtbold.stream.quality.AmplitudeCheck`) then says so if the values do not
look like microvolts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pylsl
from pylsl.util import LostError

from ..atlas import RegionMatch, match_regions
from .quality import EpisodeLog

logger = logging.getLogger(__name__)

_UNIT_SCALE = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "microvolt": 1.0, "microvolts": 1.0,
               "mv": 1e3, "millivolt": 1e3, "millivolts": 1e3, "v": 1e6, "volt": 1e6,
               "volts": 1e6, "nv": 1e-3, "nanovolt": 1e-3, "nanovolts": 1e-3}
_POWER_RE = re.compile(r"^[+-]?\d{1,2}$")  # mne-lsl: unit_mul as a power of ten of the SI unit

#: Seconds between re-resolution attempts: doubling from the first to the last.
BACKOFF_S = (0.1, 0.2, 0.4, 0.8, 1.0)


class StreamNotFoundError(RuntimeError):
    """No LSL stream matched the requested name / type / source id."""


class StreamLost(ConnectionError):
    """The source of an LSL inlet went away (liblsl reported it lost)."""


def describe_stream(info: pylsl.StreamInfo) -> str:
    """One line: name, type, source id, rate and channel count."""
    rate = info.nominal_srate()
    return (f"name={info.name()!r} type={info.type()!r} source_id={info.source_id()!r} "
            f"rate={'irregular' if rate == 0 else f'{rate:g} Hz'} channels={info.channel_count()}")


def _quote(value: str) -> str:
    if "'" in value:
        raise ValueError(f"LSL stream property {value!r} contains a quote; rename the stream.")
    return f"'{value}'"


def predicate(names: str | list[str] | None = None, stype: str | None = None,
              source_id: str | None = None) -> str:
    """XPath predicate matching any of ``names`` and the given type and source id."""
    if isinstance(names, str):
        names = [names]
    terms = []
    if names:
        terms.append("(" + " or ".join(f"name={_quote(n)}" for n in names) + ")"
                     if len(names) > 1 else f"name={_quote(names[0])}")
    terms += [f"{key}={_quote(val)}" for key, val in (("type", stype), ("source_id", source_id))
              if val]
    return " and ".join(terms)


def resolve_stream(name: str | None = None, stype: str | None = None,
                   source_id: str | None = None, *, timeout: float = 10.0,
                   what: str = "EEG") -> pylsl.StreamInfo:
    """Find one LSL stream by exact name, type and/or source id.

    Parameters
    ----------
    name, stype, source_id : str | None
        Properties to match (all given ones must match).
    timeout : float
        Seconds to wait.
    what : str
        Used in the error message ("EEG", "marker", ...).

    Raises
    ------
    StreamNotFoundError
        Nothing matched; the message lists every stream seen on this machine/network.
    """
    pred = predicate(name, stype, source_id)
    if not pred:
        raise ValueError(f"Give the {what} stream's name, type or source_id to resolve it.")
    found = pylsl.resolve_bypred(pred, 1, timeout) if timeout > 0 else []
    if found:
        if len(found) > 1:
            logger.warning("%d streams match %s; using %s. Give a source_id to choose.",
                           len(found), pred, describe_stream(found[0]))
        return found[0]
    seen = pylsl.resolve_streams(wait_time=min(1.0, max(timeout, 0.1)))
    listing = "\n  ".join(describe_stream(s) for s in seen) or "(none)"
    raise StreamNotFoundError(
        f"No {what} LSL stream with {pred} within {timeout:g} s. Streams seen:\n  {listing}\n"
        "Check the name/source id (rtbold run --stream NAME --source-id ID, or live.stream.name "
        "/ live.stream.source_id), that the amplifier software is streaming, and the LSL "
        "configuration (--lsl-config).")


def try_resolve_any(names: list[str], source_id: str | None = None, stype: str | None = None,
                    timeout: float = 1.0) -> pylsl.StreamInfo | None:
    """First of several candidate names found (one query for all); earlier names preferred."""
    if not names or timeout <= 0:
        return None
    pred = predicate(names, stype, source_id)
    found = pylsl.resolve_bypred(pred, 1, timeout)
    if not found:
        return None
    # Others may be up too: one more short look so the preferred name wins when both exist.
    if len(names) > 1 and found[0].name() != names[0]:
        found += pylsl.resolve_bypred(pred, len(names), 0.2)
    return _preferred(found, names)


def _preferred(found: list[pylsl.StreamInfo], names: list[str] | None) -> pylsl.StreamInfo:
    if not names:
        return found[0]
    by_name = {info.name(): info for info in found}
    return next((by_name[n] for n in names if n in by_name), found[0])


def channel_info(info: pylsl.StreamInfo) -> tuple[list[str] | None, list[str], list[str]]:
    """Channel labels, types and units from a full stream description (inlet.info()).

    Labels are None when the stream has no ``<channels>`` description.
    """
    labels = info.get_channel_labels()
    n = info.channel_count()
    types = info.get_channel_types() or [None] * n
    units = info.get_channel_units() or [None] * n
    if labels is None or any(lab is None or lab == "" for lab in labels):
        labels = None
    return labels, [(t or "eeg").lower() for t in types], [(u or "") for u in units]


def unit_factor(unit: str) -> float | None:
    """Factor from one channel's ``unit`` string to microvolts; None when not a voltage unit.

    Understands human-readable names and mne-lsl's powers of ten of volts (``"0"``, ``"-6"``).
    """
    text = unit.strip().lower()
    if text in _UNIT_SCALE:
        return _UNIT_SCALE[text]
    if _POWER_RE.match(text):
        return 10.0 ** (int(text) + 6)
    return None


def unit_scale(units: list[str], setting: str = "auto", ch_types: list[str] | None = None,
               *, what: str = "EEG stream") -> float:
    """Factor that converts the stream's values to microvolts.

    Parameters
    ----------
    units : list of str
        The channels' ``unit`` fields.
    setting : str
        ``"auto"`` (read ``units``) or a unit name (``uV``, ``mV``, ``V``, ``microvolts``...).
    ch_types : list of str | None
        Channel types; with ``auto`` only EEG channels decide.
    """
    if setting.strip().lower() != "auto":
        factor = unit_factor(setting)
        if factor is None:
            raise ValueError(f"live.stream.units = {setting!r} is not a voltage unit; use auto, "
                             "uV, mV or V.")
        return factor
    types = ch_types or ["eeg"] * len(units)
    eeg_units = [u for u, t in zip(units, types) if t in ("eeg", "")] or list(units)
    known = {unit_factor(u) for u in eeg_units if u.strip()} - {None}
    if len(known) > 1:
        raise ValueError(f"{what}: EEG channels have mixed units {sorted(set(eeg_units))}; set "
                         "live.stream.units (uV, mV or V) to the unit of the values.")
    return known.pop() if known else 1.0


def unit_text(scale: float) -> str:
    """Readable name of a to-µV factor."""
    return {1.0: "µV", 1e3: "mV", 1e6: "V", 1e-3: "nV"}.get(scale, f"x{scale:g} µV")


@dataclass
class Break:
    """A discontinuity before sample ``index`` of a chunk."""

    index: int
    kind: str  # "gap" (samples missing) or "jump" (time went backwards / clock reset)
    t_before: float
    t_after: float
    n_lost: int


@dataclass
class Chunk:
    """Samples pulled in one go, mapped to the model's channels, in microvolts."""

    data: np.ndarray  # (n_target, n) float64
    times: np.ndarray  # (n,) stream time
    raw: np.ndarray | None = None  # (n, n_source) as received (NaN kept), in µV
    aux: np.ndarray | None = None  # (n,) the ECG channel (EEGInlet.ecg_index), NaN replaced, µV
    breaks: list[Break] = field(default_factory=list)
    nan_spans: list[tuple[float, float]] = field(default_factory=list)
    n_nan: int = 0


class LslStream:
    """One LSL inlet that rtbold keeps connected (see the module notes).

    Parameters
    ----------
    info : StreamInfo | None
        A resolved stream, or None to look for it in the background until it appears.
    what : str
        Role in messages and events: ``"EEG"``, ``"marker"``, ``"measured-bold"``.
    names, stype, source_id : query
        How to find the stream again (``names``: one or several candidate names).
    max_buflen : int
        liblsl inlet buffer (seconds; hundreds of samples for irregular streams).
    clock_sync, dejitter : bool
        liblsl post-processing.
    reconnect_s : float | None
        Regular streams: silence (wall s) after which the inlet is closed and the stream looked
        for again; None: only when liblsl reports it lost.
    validate : callable(full StreamInfo) -> str | None
        Problem with a (re)found stream, or None when it fits; a problem is reported and the
        search goes on.
    open_timeout : float
        Seconds to open an inlet and read its full description.
    """

    def __init__(self, info: pylsl.StreamInfo | None, *, what: str,
                 names: list[str] | None = None, stype: str | None = None,
                 source_id: str | None = None, max_buflen: int = 360, clock_sync: bool = True,
                 dejitter: bool = False, reconnect_s: float | None = None,
                 validate: Callable[[pylsl.StreamInfo], str | None] | None = None,
                 open_timeout: float = 2.0) -> None:
        self.what = what
        self.names = list(names) if names else ([info.name()] if info is not None else [])
        self.stype = stype
        self.source_id = source_id or None
        self.pred = predicate(self.names, stype, self.source_id)
        if not self.pred:
            raise ValueError(f"The {what} stream needs a name, type or source id to be found.")
        self._flags = (pylsl.proc_clocksync if clock_sync else 0) | (
            pylsl.proc_dejitter if dejitter else 0)
        self.max_buflen = int(max_buflen)
        self.reconnect_s = reconnect_s
        self.validate = validate
        self.open_timeout = float(open_timeout)
        #: (kind, text) of state changes, drained, logged and recorded by the engine (appends
        #: are thread-safe).
        self.events: deque[tuple[str, str]] = deque(maxlen=1000)
        self.n_reconnects = 0
        self.n_samples = 0
        self.last_data_wall = time.monotonic()
        self.lost_since: float | None = None
        self._inlet: pylsl.StreamInlet | None = None
        self._pending: tuple[pylsl.StreamInlet, pylsl.StreamInfo] | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._search: threading.Thread | None = None
        self._found_once = False
        self.full_info: pylsl.StreamInfo | None = None
        if info is not None:
            self._inlet, self.full_info = self._connect(info)
            self._found_once = True
            self.name = info.name()
            self.state = "connected"
        else:
            self.name = " or ".join(self.names) if self.names else self.pred
            self.state = "absent"
            self.lost_since = time.monotonic()
            self._start_search()

    # -- state ------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def _connect(self, info: pylsl.StreamInfo) -> tuple[pylsl.StreamInlet, pylsl.StreamInfo]:
        inlet = pylsl.StreamInlet(info, max_buflen=self.max_buflen, recover=False,
                                  processing_flags=self._flags)
        try:
            inlet.open_stream(self.open_timeout)
            full = inlet.info(self.open_timeout)
            if self._flags & pylsl.proc_clocksync:
                # The first clock-corrected pull would block for this (~0.5 s or more): take
                # it here, in the thread that connects, never in the acquisition loop.
                inlet.time_correction(self.open_timeout)
        except Exception:
            _close_quietly(inlet)
            raise
        return inlet, full

    def _lose(self, why: str) -> None:
        """Close the inlet and look for the stream again (acquisition thread)."""
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            _close_quietly(inlet)
        self.state = "reconnecting"
        self.lost_since = time.monotonic()
        text = f"{self.what} stream {self.name!r} {why}; looking for it again ({self.pred})"
        self.events.append(("disconnected", text))
        self._start_search()

    def _start_search(self) -> None:
        if self._search is not None and self._search.is_alive():
            return
        self._search = threading.Thread(target=self._search_loop, daemon=True,
                                        name=f"rtbold-resolve-{self.what}")
        self._search.start()

    def _search_loop(self) -> None:
        problems = EpisodeLog(logger, every_s=30.0)
        attempt = 0
        while not self._closed.is_set():
            try:
                found = pylsl.resolve_bypred(self.pred, 1, 0.3)
            except Exception as err:  # noqa: BLE001 - keep looking; report once in a while
                problems.warning("resolve", "%s stream %r: resolving failed: %s", self.what,
                                 self.name, err)
                found = []
            if found:
                info = _preferred(found, self.names)
                try:
                    inlet, full = self._connect(info)
                except Exception as err:  # noqa: BLE001 - the stream went away again
                    problems.warning("open", "%s stream %r: opening failed: %s", self.what,
                                     info.name(), err)
                else:
                    problem = self.validate(full) if self.validate is not None else None
                    if problem is None:
                        with self._lock:
                            self._pending = (inlet, full)
                        return
                    _close_quietly(inlet)
                    text = f"{self.what} stream {describe_stream(info)} found but refused: {problem}"
                    if problems.warning("refused", "%s", text):
                        self.events.append(("warning", text))
            self._closed.wait(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            attempt += 1

    def _adopt(self) -> bool:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return False
        self._inlet, self.full_info = pending
        self.name = self.full_info.name()
        was = "found" if not self._found_once else "back"
        self._found_once = True
        if was == "back":
            self.n_reconnects += 1
        waited = time.monotonic() - (self.lost_since or time.monotonic())
        self.state = "connected"
        self.lost_since = None
        self.last_data_wall = time.monotonic()
        text = (f"{self.what} stream {describe_stream(self.full_info)} is {was} after "
                f"{waited:.1f} s" + (f" (reconnection {self.n_reconnects})" if was == "back"
                                     else ""))
        self.events.append(("reconnect" if was == "back" else "found", text))
        self.on_adopt()
        return True

    def on_adopt(self) -> None:
        """Hook for subclasses: the stream was (re)connected."""

    # -- pulling ----------------------------------------------------------------------------------
    def pull_chunk(self, **kwargs):
        """``inlet.pull_chunk(timeout=0, **kwargs)``, or None while disconnected or on loss."""
        if self._inlet is None and not self._adopt():
            return None
        try:
            try:
                return self._inlet.pull_chunk(timeout=0.0, **kwargs)
            except LostError as err:
                raise StreamLost(f"{self.what} stream {self.name!r} lost") from err
        except StreamLost:
            self._lose("lost (its source went away)")
            return None

    def seen(self, n: int) -> None:
        """Record that ``n`` samples arrived now."""
        self.n_samples += n
        self.last_data_wall = time.monotonic()
        if self.state == "silent":
            self.state = "connected"
            text = f"{self.what} stream {self.name!r} sends data again"
            self.events.append(("resumed", text))

    def watchdog(self, silence_s: float) -> None:
        """Regular streams: report silence; reconnect after ``reconnect_s`` of it."""
        if self._inlet is None:
            return
        silent = time.monotonic() - self.last_data_wall
        if self.state == "connected" and silent > silence_s and self.n_samples:
            self.state = "silent"
            text = (f"{self.what} stream {self.name!r}: no data for {silence_s:g} s; "
                    "waiting for it")
            self.events.append(("silent", text))
        if self.reconnect_s is not None and silent > self.reconnect_s and self.n_samples:
            self._lose(f"silent for {silent:.1f} s")

    def describe_state(self) -> str:
        """``connected`` / ``silent for 3.2 s`` / ``reconnecting for 1.0 s`` / ``absent``."""
        now = time.monotonic()
        if self.state == "silent":
            return f"silent for {now - self.last_data_wall:.1f} s"
        if self.state in ("reconnecting", "absent") and self.lost_since is not None:
            return f"{self.state} for {now - self.lost_since:.1f} s"
        return self.state

    def close(self) -> None:
        self._closed.set()
        for inlet in (self._inlet, (self._pending or (None,))[0]):
            if inlet is not None:
                _close_quietly(inlet)
        self._inlet = self._pending = None
        if self._search is not None and self._search is not threading.current_thread():
            self._search.join(2.0)


def _close_quietly(inlet: pylsl.StreamInlet) -> None:
    try:
        inlet.close_stream()
    except Exception:  # noqa: BLE001 - closing a lost stream may fail; nothing to do
        pass


class EEGInlet(LslStream):
    """Pull EEG from one LSL stream into preallocated memory, reconnecting by itself.

    Parameters
    ----------
    info : StreamInfo
        A resolved stream.
    target_names : list of str
        The model's channels; the stream's channel labels are mapped onto them once, here.
    policy : str
        Channel mapping policy (refuse | interpolate | zero).
    max_filled : float
        Largest share of the model's channels that ``interpolate``/``zero`` may fill.
    units, clock_sync, dejitter, nan_policy, jitter_tolerance, max_buflen_s, min_sfreq
        See :class:`rtbold.stream.config.StreamConfig`.
    reconnect_s : float
        Silence (wall s) after which the stream is looked for again.
    """

    def __init__(self, info: pylsl.StreamInfo, target_names: list[str], *, policy: str = "refuse",
                 units: str = "auto", clock_sync: bool = True, dejitter: bool = False,
                 nan_policy: str = "hold", jitter_tolerance: float = 0.5,
                 max_buflen_s: int = 0, min_sfreq: float = 200.0, max_chunk: int | None = None,
                 open_timeout: float = 5.0, reconnect_s: float = 2.0,
                 max_filled: float = 0.25) -> None:
        self.sfreq = float(info.nominal_srate())
        name = info.name()
        if self.sfreq <= 0:
            raise ValueError(f"LSL stream {name!r} has an irregular sampling rate; EEG must "
                             "have a nominal rate (set it in the amplifier software).")
        if self.sfreq < min_sfreq:
            raise ValueError(
                f"LSL stream {name!r} runs at {self.sfreq:g} Hz but the model needs EEG "
                f"sampled at >= {min_sfreq:g} Hz (live.stream.min_sfreq); raise the amplifier's "
                "sampling rate.")
        if info.channel_format() == pylsl.cf_string:
            raise ValueError(f"LSL stream {name!r} carries strings, not EEG samples; check "
                             "--stream / --source-id (live.stream.name / source_id).")
        self.n_channels = info.channel_count()
        self._format = info.channel_format()
        self.labels_at_start: list[str] | None = None
        super().__init__(info, what="EEG", names=[name], stype=info.type() or None,
                         source_id=info.source_id() or None,
                         max_buflen=auto_buflen(self.sfreq, max_buflen_s),
                         clock_sync=clock_sync, dejitter=dejitter, reconnect_s=reconnect_s,
                         validate=self._same_stream, open_timeout=open_timeout)
        try:
            self._setup(target_names, policy, units, nan_policy, jitter_tolerance, max_chunk,
                        max_filled)
        except BaseException:
            self.close()  # do not leave a connected inlet behind a refused stream
            raise

    def _same_stream(self, full: pylsl.StreamInfo) -> str | None:
        if full.channel_count() != self.n_channels or full.nominal_srate() != self.sfreq:
            return (f"{full.channel_count()} channels at {full.nominal_srate():g} Hz, was "
                    f"{self.n_channels} at {self.sfreq:g} Hz")
        labels, _, _ = channel_info(full)
        if labels != self.labels_at_start:
            return "its channel labels differ from the stream's at start"
        if full.channel_format() != self._format:
            return "its sample format differs"
        return None

    def _setup(self, target_names, policy, units, nan_policy, jitter_tolerance, max_chunk,
               max_filled) -> None:
        from ..channels import ChannelMapping

        full = self.full_info
        labels, types, ch_units = channel_info(full)
        if labels is None:
            raise ValueError(
                f"LSL stream {self.name!r} has no channel labels in its description "
                "(<desc><channels><channel><label>); the engine cannot tell which channel is "
                "which. Configure the amplifier's LSL app to send channel labels.")
        self.labels_at_start = labels
        self.ch_names = labels
        self.ch_types = types
        self.ch_units = ch_units
        what = f"LSL stream {self.name!r}"
        self.mapping = ChannelMapping.build(labels, list(target_names), source_types=types,
                                            policy=policy, what=what,
                                            policy_key="live.stream.channel_policy")
        n_filled = len(self.mapping.missing)
        if n_filled > max_filled * len(target_names):
            raise ValueError(
                f"{what} has only {len(target_names) - n_filled} of the model's "
                f"{len(target_names)} channels; policy {policy!r} would fill {n_filled} "
                f"({n_filled / len(target_names):.0%}), more than live.stream.max_filled = "
                f"{max_filled:g}. Missing: {', '.join(self.mapping.missing)}. Check the channel "
                "labels, or raise max_filled if you accept predictions from filled channels.")
        self.units_setting = units
        self.scale = unit_scale(ch_units, units, types, what=what)
        #: Source index of the ECG channel passed along as ``Chunk.aux`` (set by the engine for
        #: the BCG correction), None: none.
        self.ecg_index: int | None = None
        self._matrix = (self.mapping.matrix * self.scale).astype(np.float64)
        self.max_chunk = int(max_chunk or max(64, int(np.ceil(self.sfreq * 2.0))))
        self._buf = np.empty((self.max_chunk, self.n_channels), dtype=self._inlet.np_dtype)
        self.nan_policy = nan_policy
        self._hold = np.zeros(self.n_channels)
        self._period = 1.0 / self.sfreq
        self._tol = float(jitter_tolerance)
        self._last_t: float | None = None
        self._nan_log = EpisodeLog(logger)
        # Counters (read by the status reporter; ints are updated atomically under the GIL).
        self.lost_samples = 0
        self.n_gaps = 0
        self.n_jumps = 0
        self.n_nan = 0
        self._eff = (None, 0)  # (first time of the rate window, samples since)
        self.effective_sfreq = 0.0
        #: Newest sample time minus local_clock() when it was pulled (> 0: a replay running
        #: ahead of real time).
        self.lead_s = 0.0
        logger.info("Connected to EEG %s; %d -> %d channels, x%g to µV (units %s)",
                    describe_stream(full), self.n_channels, len(target_names), self.scale,
                    sorted(set(ch_units)) if units == "auto" else units)

    def pull(self) -> Chunk | None:
        """Everything available now, up to ``max_chunk`` samples (None when nothing)."""
        got = self.pull_chunk(max_samples=self.max_chunk, dest_obj=self._buf)
        if got is None:
            return None
        _, ts = got
        n = len(ts)
        if n == 0:
            return None
        self.seen(n)
        times = np.array(ts, dtype=np.float64)
        self.lead_s = float(times[-1]) - pylsl.local_clock()
        raw = self._buf[:n]
        x = raw.astype(np.float64) if raw.dtype != np.float64 else raw.copy()
        chunk = Chunk(data=np.empty(0), times=times)
        chunk.raw = x if self.scale == 1.0 else x * self.scale
        bad = ~np.isfinite(x)
        if bad.any():
            x = self._replace_nan(x.copy(), bad)
            rows = bad.any(axis=1)
            chunk.n_nan = int(rows.sum())
            self.n_nan += chunk.n_nan
            idx = np.flatnonzero(rows)
            # Contiguous runs of NaN samples -> time spans.
            splits = np.flatnonzero(np.diff(idx) > 1) + 1
            for run in np.split(idx, splits):
                chunk.nan_spans.append((times[run[0]], times[run[-1]]))
            self._nan_log.start("nan", "EEG stream %s: NaN samples from %.3f s replaced (%s); "
                                "counted, frames flagged 'nan' (logged once until they stop).",
                                self.name, times[idx[0]], self.nan_policy)
        else:
            self._nan_log.end("nan", "EEG stream %s: NaN samples stopped (%d in total so far).",
                              self.name, self.n_nan)
        if x.size and self.nan_policy == "hold":
            self._hold = x[-1].copy()
        chunk.data = self._matrix @ x.T
        if self.ecg_index is not None:
            chunk.aux = x[:, self.ecg_index] * self.scale
        chunk.breaks = self._continuity(times)
        self._update_rate(times)
        return chunk

    def _replace_nan(self, x: np.ndarray, bad: np.ndarray) -> np.ndarray:
        if self.nan_policy == "zero":
            x[bad] = 0.0
            return x
        # Hold: forward-fill each channel from its last finite value (across chunks too).
        n = x.shape[0]
        idx = np.where(bad, -1, np.arange(n)[:, None])
        idx = np.maximum.accumulate(idx, axis=0)
        filled = np.where(idx >= 0, x[np.clip(idx, 0, None), np.arange(x.shape[1])], self._hold)
        return filled

    def _continuity(self, times: np.ndarray) -> list[Break]:
        prev = self._last_t
        self._last_t = float(times[-1])
        full = times if prev is None else np.concatenate([[prev], times])
        dt = np.diff(full)
        offset = 0 if prev is None else 1
        out = []
        hi = self._period * (1.0 + self._tol)
        lo = -self._period * self._tol
        for k in np.flatnonzero((dt > hi) | (dt < lo)):
            index = int(k) + 1 - offset
            step = float(dt[k])
            if step > 0:
                n_lost = int(round(step * self.sfreq)) - 1
                self.lost_samples += max(n_lost, 0)
                self.n_gaps += 1
                out.append(Break(index, "gap", float(full[k]), float(full[k + 1]), n_lost))
            else:
                self.n_jumps += 1
                out.append(Break(index, "jump", float(full[k]), float(full[k + 1]), 0))
        return out

    def _update_rate(self, times: np.ndarray) -> None:
        t0, count = self._eff
        if t0 is None:
            self._eff = (float(times[0]), len(times))
            return
        count += len(times)
        span = float(times[-1]) - t0
        if span > 0:
            self.effective_sfreq = (count - 1) / span
        if span > 10.0:  # restart the estimate so it follows the recent rate
            self._eff = (float(times[-1]), 1)
        else:
            self._eff = (t0, count)


def auto_buflen(sfreq: float, setting: int = 0) -> int:
    """liblsl inlet buffer (s): ``setting``, or with 0 about a million samples (20 min at 800 Hz,
    capped to an hour), so that a fast replay of a long recording waits in it without loss."""
    if setting:
        return int(setting)
    return int(max(60, min(3600, 1_000_000 // max(sfreq, 1.0))))


class MarkerInlet(LslStream):
    """Marker or annotation stream: yields ``(description, stream time)``.

    String streams (scanner-trigger software, ``rtbold replay``'s ``<name>-markers``, mne-lsl's
    string-encoded annotations) give their value; numeric one-hot streams (mne-lsl's default
    ``<name>-annotations``) give the label of the channel that is non-zero. ``info=None`` looks
    for the stream (any of ``names``) in the background until it appears.
    """

    def __init__(self, info: pylsl.StreamInfo | None, *, names: list[str] | None = None,
                 source_id: str | None = None, clock_sync: bool = True) -> None:
        super().__init__(info, what="marker", names=names, source_id=source_id,
                         max_buflen=360, clock_sync=clock_sync)
        self.on_adopt()

    def on_adopt(self) -> None:
        full = self.full_info
        if full is None:
            return
        self.is_string = full.channel_format() == pylsl.cf_string
        labels, _, _ = channel_info(full)
        self.labels = labels or [str(i) for i in range(full.channel_count())]

    def pull(self) -> list[tuple[str, float]]:
        got = self.pull_chunk(max_samples=1024)
        if not got or not got[1]:
            return []
        samples, ts = got
        self.seen(len(ts))
        out = []
        for sample, t in zip(samples, ts):
            if self.is_string:
                out.append((str(sample[0]), float(t)))
            else:
                for label, value in zip(self.labels, sample):
                    if value != 0:
                        out.append((label, float(t)))
        return out


class ValueInlet(LslStream):
    """Numeric stream of vectors (the measured-BOLD stream): yields ``(t, values)`` in the
    model's region order.

    The stream's channels are matched to the model's regions by name at every (re)connection
    (:func:`rtbold.atlas.match_regions`, the atlas declared in ``desc/atlas`` included): regions
    the stream lacks are NaN, and a stream that matches none of them is kept connected but gives
    nothing, while :attr:`note` says why and what to do. ``info=None`` looks for it (``names``)
    until it appears.
    """

    def __init__(self, info: pylsl.StreamInfo | None, *, roi_names: list[str], atlas: str = "",
                 names: list[str] | None = None, source_id: str | None = None,
                 clock_sync: bool = True) -> None:
        self.roi_names = list(roi_names)
        self.atlas = atlas
        self.match: RegionMatch | None = None
        super().__init__(info, what="measured-bold", names=names, source_id=source_id,
                         max_buflen=7200, clock_sync=clock_sync)
        self.on_adopt()

    def on_adopt(self) -> None:
        full = self.full_info
        if full is None:
            return
        labels, _, _ = channel_info(full)
        self.match = match_regions(self.roi_names, labels, n_stream=full.channel_count(),
                                   model_atlas=self.atlas,
                                   stream_atlas=full.desc().child_value("atlas"))
        complete = self.match.n_common == len(self.roi_names) and self.match.by_name
        self.events.append(("measured" if complete else "warning", self.note))

    @property
    def note(self) -> str:
        """How the stream's regions match the model's ("" before a stream was found)."""
        return self.match.describe(self.name) if self.match is not None else ""

    def pull(self) -> tuple[np.ndarray, np.ndarray]:
        got = self.pull_chunk(max_samples=1024)
        empty = np.empty(0), np.empty((0, len(self.roi_names)), dtype=np.float32)
        if not got or len(got[1]) == 0:
            return empty
        data, ts = got
        self.seen(len(ts))
        if self.match is None or not self.match.n_common:
            return empty  # drained: nothing of it fits the model (see note)
        return np.asarray(ts, dtype=np.float64), self.match.take(np.asarray(data))
