"""Acquisition of the EEG stream (and of marker / measured-BOLD streams) over LSL.

:func:`resolve_stream` finds a stream by name, type and/or source id and, when nothing matches,
lists what it saw. :class:`EEGInlet` pulls chunks into a preallocated buffer, applies the channel
mapping onto the model's channels and the unit scale to microvolts, replaces NaN samples (counted
and reported, never silently), and checks the timestamps against the nominal rate: missing samples
and jumps come back as :class:`Break` records so the caller can reset its filter and flag windows.

NaN samples: never written into windows as NaN. With ``nan_policy="hold"`` (default) each channel
repeats its last finite value (a step of 0 rather than a jump to 0, so the resampler rings less);
with ``"zero"`` they become 0. Either way they are counted (:attr:`EEGInlet.n_nan`), logged,
recorded as an event, and every frame whose window overlaps them (widened by the resampler's
length) carries the flag ``"nan"``. The raw recording keeps them as received.

Stream loss: the inlet is opened with ``recover=True`` so liblsl reconnects by itself to an
outlet with the same source id; a stream without a source id (or one liblsl gives up on) is
resolved again by its name, type and source id. Silence longer than ``silence_s`` is reported as
"disconnected" and acquisition keeps running.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pylsl

logger = logging.getLogger(__name__)

_UNIT_SCALE = {"uv": 1.0, "µv": 1.0, "microvolt": 1.0, "microvolts": 1.0, "mv": 1e3,
               "millivolt": 1e3, "millivolts": 1e3, "v": 1e6, "volt": 1e6, "volts": 1e6}


class StreamNotFoundError(RuntimeError):
    """No LSL stream matched the requested name / type / source id."""


def describe_stream(info: pylsl.StreamInfo) -> str:
    """One line: name, type, source id, rate and channel count."""
    rate = info.nominal_srate()
    return (f"name={info.name()!r} type={info.type()!r} source_id={info.source_id()!r} "
            f"rate={'irregular' if rate == 0 else f'{rate:g} Hz'} channels={info.channel_count()}")


def _quote(value: str) -> str:
    if "'" in value:
        raise ValueError(f"LSL stream property {value!r} contains a quote; rename the stream.")
    return f"'{value}'"


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
    terms = [f"{key}={_quote(val)}" for key, val in
             (("name", name), ("type", stype), ("source_id", source_id)) if val]
    if not terms:
        raise ValueError(f"Give the {what} stream's name, type or source_id to resolve it.")
    pred = " and ".join(terms)
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
        "Check the name/source id (rtbold run --stream NAME --source-id ID), that the amplifier "
        "software is streaming, and the LSL configuration (--lsl-config).")


def try_resolve(name: str | None, stype: str | None = None, source_id: str | None = None,
                timeout: float = 1.0) -> pylsl.StreamInfo | None:
    """Like :func:`resolve_stream` but returns None instead of raising."""
    terms = [f"{key}={_quote(val)}" for key, val in
             (("name", name), ("type", stype), ("source_id", source_id)) if val]
    if not terms or timeout <= 0:
        return None
    found = pylsl.resolve_bypred(" and ".join(terms), 1, timeout)
    return found[0] if found else None


def try_resolve_any(names: list[str], source_id: str | None = None,
                    timeout: float = 1.0) -> pylsl.StreamInfo | None:
    """First of several candidate names found (one query for all); earlier names preferred."""
    if not names or timeout <= 0:
        return None
    pred = "(" + " or ".join(f"name={_quote(n)}" for n in names) + ")"
    if source_id:
        pred += f" and source_id={_quote(source_id)}"
    found = pylsl.resolve_bypred(pred, 1, timeout)
    if not found:
        return None
    # Others may be up too: one more short look so the preferred name wins when both exist.
    if len(names) > 1 and found[0].name() != names[0]:
        found += pylsl.resolve_bypred(pred, len(names), 0.2)
    by_name = {info.name(): info for info in found}
    return next(by_name[n] for n in names if n in by_name)


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


def unit_scale(units: list[str], setting: str = "auto") -> float:
    """Factor that converts the stream's values to microvolts."""
    if setting != "auto":
        return _UNIT_SCALE[setting.lower()]
    known = {_UNIT_SCALE[u.strip().lower()] for u in units if u.strip().lower() in _UNIT_SCALE}
    if len(known) > 1:
        logger.warning("EEG channels have mixed units %s; assuming microvolts.", sorted(set(units)))
        return 1.0
    return known.pop() if known else 1.0


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
    breaks: list[Break] = field(default_factory=list)
    nan_spans: list[tuple[float, float]] = field(default_factory=list)
    n_nan: int = 0


class EEGInlet:
    """Pull EEG from one LSL stream into preallocated memory.

    Parameters
    ----------
    info : StreamInfo
        A resolved stream.
    target_names : list of str
        The model's channels; the stream's channel labels are mapped onto them once, here.
    policy : str
        Channel mapping policy (refuse | interpolate | zero).
    units, clock_sync, dejitter, nan_policy, jitter_tolerance, max_buflen_s, min_sfreq
        See :class:`rtbold.stream.config.StreamConfig`.
    """

    def __init__(self, info: pylsl.StreamInfo, target_names: list[str], *, policy: str = "refuse",
                 units: str = "auto", clock_sync: bool = True, dejitter: bool = False,
                 nan_policy: str = "hold", jitter_tolerance: float = 0.5, max_buflen_s: int = 60,
                 min_sfreq: float = 200.0, max_chunk: int | None = None,
                 open_timeout: float = 5.0) -> None:
        self.name = info.name()
        self.source_id = info.source_id()
        self.stype = info.type()
        self.sfreq = float(info.nominal_srate())
        if self.sfreq <= 0:
            raise ValueError(f"LSL stream {self.name!r} has an irregular sampling rate; EEG must "
                             "have a nominal rate (set it in the amplifier software).")
        if self.sfreq < min_sfreq:
            raise ValueError(
                f"LSL stream {self.name!r} runs at {self.sfreq:g} Hz but the model needs EEG "
                f"sampled at >= {min_sfreq:g} Hz; raise the amplifier's sampling rate.")
        if info.channel_format() == pylsl.cf_string:
            raise ValueError(f"LSL stream {self.name!r} carries strings, not EEG samples; check "
                             "--stream / --source-id.")
        self._flags = (pylsl.proc_clocksync if clock_sync else 0) | (
            pylsl.proc_dejitter if dejitter else 0)
        self._max_buflen = int(max_buflen_s)
        self._open(info, open_timeout)
        try:
            self._setup(info, target_names, policy, units, nan_policy, jitter_tolerance,
                        max_chunk, open_timeout)
        except BaseException:
            self.close()  # do not leave a connected inlet behind a refused stream
            raise

    def _setup(self, info, target_names, policy, units, nan_policy, jitter_tolerance, max_chunk,
               open_timeout) -> None:
        from ..channels import ChannelMapping

        full = self._inlet.info(open_timeout)
        labels, types, ch_units = channel_info(full)
        if labels is None:
            raise ValueError(
                f"LSL stream {self.name!r} has no channel labels in its description "
                "(<desc><channels><channel><label>); the engine cannot tell which channel is "
                "which. Configure the amplifier's LSL app to send channel labels.")
        self.ch_names = labels
        self.ch_types = types
        self.mapping = ChannelMapping.build(labels, list(target_names), source_types=types,
                                            policy=policy, what=f"LSL stream {self.name!r}")
        self.scale = unit_scale(ch_units, units)
        self._matrix = (self.mapping.matrix * self.scale).astype(np.float64)
        self.n_channels = full.channel_count()
        self.max_chunk = int(max_chunk or max(64, int(np.ceil(self.sfreq * 2.0))))
        self._buf = np.empty((self.max_chunk, self.n_channels), dtype=self._inlet.np_dtype)
        self.nan_policy = nan_policy
        self._hold = np.zeros(self.n_channels)
        self._period = 1.0 / self.sfreq
        self._tol = float(jitter_tolerance)
        self._last_t: float | None = None
        # Counters (read by the status reporter; ints are updated atomically under the GIL).
        self.n_samples = 0
        self.lost_samples = 0
        self.n_gaps = 0
        self.n_jumps = 0
        self.n_nan = 0
        self.n_reconnects = 0
        self.connected = True
        self.last_data_wall = time.monotonic()
        self._eff = (None, 0)  # (first time of the rate window, samples since)
        self.effective_sfreq = 0.0
        logger.info("Connected to EEG %s; %d -> %d channels, x%g to µV", describe_stream(info),
                    self.n_channels, len(target_names), self.scale)

    def _open(self, info: pylsl.StreamInfo, timeout: float) -> None:
        self._info = info
        self._inlet = pylsl.StreamInlet(info, max_buflen=self._max_buflen, recover=True,
                                        processing_flags=self._flags)
        self._inlet.open_stream(timeout)

    def close(self) -> None:
        try:
            self._inlet.close_stream()
        except Exception:  # noqa: BLE001 - closing a lost stream may fail; nothing to do
            pass

    def reopen(self, timeout: float = 0.2) -> bool:
        """Find the stream again by name/type/source id after liblsl lost it; True on success."""
        info = try_resolve(self.name, self.stype, self.source_id or None, timeout)
        if info is None:
            return False
        if info.channel_count() != self.n_channels or info.nominal_srate() != self.sfreq:
            logger.error("Stream %s came back with %d channels at %g Hz (was %d at %g Hz); "
                         "ignoring it.", self.name, info.channel_count(), info.nominal_srate(),
                         self.n_channels, self.sfreq)
            return False
        self.close()
        self._open(info, 2.0)
        logger.warning("Re-opened EEG stream %s", describe_stream(info))
        return True

    def pull(self) -> Chunk | None:
        """Everything available now (None when nothing). Raises pylsl LostError when lost."""
        _, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=self.max_chunk, dest_obj=self._buf)
        n = len(ts)
        if n == 0:
            return None
        now = time.monotonic()
        if not self.connected:
            self.connected = True
            self.n_reconnects += 1
            logger.warning("EEG stream %s is back after %.1f s of silence.", self.name,
                           now - self.last_data_wall)
        self.last_data_wall = now
        times = np.array(ts, dtype=np.float64)
        raw = self._buf[:n]
        x = raw.astype(np.float64) if raw.dtype != np.float64 else raw
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
            logger.warning("EEG stream %s: %d NaN sample(s) at %.3f s replaced (%s).", self.name,
                           chunk.n_nan, times[idx[0]], self.nan_policy)
        if x.size and self.nan_policy == "hold":
            self._hold = x[-1].copy()
        chunk.data = self._matrix @ x.T
        chunk.breaks = self._continuity(times)
        self.n_samples += n
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
                logger.warning("EEG stream %s: %d sample(s) missing between %.3f and %.3f s.",
                               self.name, n_lost, full[k], full[k + 1])
            else:
                self.n_jumps += 1
                out.append(Break(index, "jump", float(full[k]), float(full[k + 1]), 0))
                logger.warning("EEG stream %s: timestamps jumped back %.3f s at %.3f s.",
                               self.name, -step, full[k + 1])
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

    def check_silence(self, silence_s: float) -> bool:
        """Mark the stream disconnected after ``silence_s`` without data; True when silent."""
        if self.n_samples == 0:  # nothing received yet: waiting, not disconnected
            return False
        silent = time.monotonic() - self.last_data_wall > silence_s
        if silent and self.connected:
            self.connected = False
            logger.warning("EEG stream %s: no data for %.1f s; waiting for it to come back.",
                           self.name, silence_s)
        return silent

    @property
    def has_source_id(self) -> bool:
        return bool(self.source_id)


def _open_inlet(info: pylsl.StreamInfo, clock_sync: bool) -> pylsl.StreamInlet:
    """An opened inlet for a low-rate side stream (markers, measured BOLD)."""
    flags = pylsl.proc_clocksync if clock_sync else 0
    inlet = pylsl.StreamInlet(info, max_buflen=360, recover=True, processing_flags=flags)
    inlet.open_stream(2.0)
    return inlet


class MarkerInlet:
    """Marker or annotation stream: yields ``(description, stream time)``.

    String streams (scanner-trigger software, ``rtbold replay``'s ``<name>-markers``, mne-lsl's
    string-encoded annotations) give their value; numeric one-hot streams (mne-lsl's default
    ``<name>-annotations``) give the label of the channel that is non-zero.
    """

    def __init__(self, info: pylsl.StreamInfo, *, clock_sync: bool = True) -> None:
        self.name = info.name()
        self._inlet = _open_inlet(info, clock_sync)
        self.is_string = info.channel_format() == pylsl.cf_string
        labels, _, _ = channel_info(self._inlet.info(2.0))
        self.labels = labels or [str(i) for i in range(info.channel_count())]

    def pull(self) -> list[tuple[str, float]]:
        samples, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=256)
        out = []
        for sample, t in zip(samples, ts):
            if self.is_string:
                out.append((str(sample[0]), float(t)))
            else:
                for label, value in zip(self.labels, sample):
                    if value != 0:
                        out.append((label, float(t)))
        return out

    def close(self) -> None:
        try:
            self._inlet.close_stream()
        except Exception:  # noqa: BLE001
            pass


class ValueInlet:
    """Numeric stream of vectors (the measured-BOLD stream): yields ``(t, values)``."""

    def __init__(self, info: pylsl.StreamInfo, *, clock_sync: bool = True) -> None:
        self.name = info.name()
        self._inlet = _open_inlet(info, clock_sync)
        self.n_channels = info.channel_count()

    def pull(self) -> tuple[np.ndarray, np.ndarray]:
        data, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=256, as_numpy=True)
        return np.asarray(ts, dtype=np.float64), np.asarray(data, dtype=np.float32)

    def close(self) -> None:
        try:
            self._inlet.close_stream()
        except Exception:  # noqa: BLE001
            pass
