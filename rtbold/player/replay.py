"""Replay a recorded EEG file as live LSL streams (``rtbold replay FILE``).

The file (any format :func:`rtbold.io.eeg.read_eeg` reads: mne's formats and XDF) goes out as

``<name>``
    an ``EEG`` stream, one float32 channel per file channel, nominal rate = the file's rate, with the
    channel labels, types and units (``microvolts`` for EEG/EOG/ECG/EMG) in ``desc/channels``.
``<name>-markers``
    a ``Markers`` stream (one string channel, irregular rate) with the volume markers (annotations
    whose description ends with ``marker``) or, with ``marker=None``, every annotation.
``<name>-measured-bold``
    only when the recording has measured region series next to it (simulator BIDS output:
    ``sub-XX/func/<entities>_atlas-<atlas>_timeseries.tsv`` beside ``sub-XX/eeg/<entities>_eeg.*``):
    one float32 channel per region, one sample per volume, stamped with the volume marker's time.

Stream time
-----------
All three streams share one time axis, the *stream time* of the recording: sample ``k`` is stamped
``t0 + k / sfreq`` and an annotation at ``onset`` seconds from sample 0 is stamped ``t0 + onset``,
where ``t0`` is :func:`pylsl.local_clock` when the replay starts. Looping continues the axis
(the second pass starts at ``t0 + n_times / sfreq``). The timestamps do not depend on the pacing:
at 1x they coincide with the wall clock (sample ``k`` is pushed when ``local_clock() >= t0 +
k / sfreq``, the usual LSL meaning of a timestamp), at ``speed`` X the samples are pushed X times
faster but keep the same stamps, so they run ahead of the wall clock, and ``fast`` mode does the same
without any pacing. A consumer that works in stream time (rtbold's engine does: windows and TR ticks
come from timestamps) therefore makes identical predictions at 1x, 10x and fast.

Pacing
------
Chunks of ``chunk_s`` seconds of data are scheduled against the monotonic LSL clock from the start:
the chunk ending at sample ``k`` is due at ``t0 + k / (sfreq * speed)``. Each due time is computed
from the start, never by adding sleeps, so the replay does not drift.

Fast mode
---------
LSL has no end-to-end back-pressure (an outlet or inlet queue that is full drops its oldest samples),
so ``fast`` avoids losses this way:

* nothing is pushed before a consumer is connected (:meth:`pylsl.StreamOutlet.wait_for_consumers`),
  and pushing pauses while no consumer is connected (:meth:`~pylsl.StreamOutlet.have_consumers`),
  so no sample goes out to nobody (the marker and measured-BOLD streams get ``consumer_grace_s``
  more to connect);
* the EEG outlet buffers the whole recording (``max_buffered`` >= its duration), so the outlet side
  never drops, however slowly the socket drains;
* the consumer must pull at least once per ``max_buflen`` of its inlet (360 s of stream time by
  default in pylsl and mne-lsl); rtbold's acquisition thread pulls every few milliseconds and never
  waits on inference, so this holds for it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.eeg import EEGRecording, marker_matches, read_eeg
from ..io.fmri import read_region_tsv

logger = logging.getLogger(__name__)

#: Channel types whose values are in microvolts in an :class:`~rtbold.io.eeg.EEGRecording`.
_VOLTAGE_TYPES = ("eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "bio")
#: Channel types written to the LSL desc in the XDF meta-data convention (upper case).
_LSL_TYPES = {"eeg": "EEG", "eog": "EOG", "ecg": "ECG", "emg": "EMG", "stim": "STIM",
              "misc": "MISC"}


@dataclass
class MeasuredBold:
    """Measured region time series that belong to a recording.

    Attributes
    ----------
    data : np.ndarray
        (n_volumes, n_regions) float values, one row per fMRI volume.
    roi_names : list of str
        Region names (the TSV header).
    tr : float | None
        Repetition time from the JSON sidecar (``RepetitionTime``).
    atlas : str
        Atlas name (sidecar ``Atlas``, else the ``atlas-`` entity of the file name).
    path : Path
        The TSV file.
    """

    data: np.ndarray
    roi_names: list[str]
    tr: float | None
    atlas: str
    path: Path


def read_recording(path: str | Path, *, stream_name: str | None = None) -> EEGRecording:
    """Read the recording to replay (any format :func:`rtbold.io.eeg.read_eeg` reads)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EEG file {path} does not exist; give the path of a recording to "
                                "replay (EDF, BrainVision .vhdr, EEGLAB .set, FIF, XDF, ...).")
    return read_eeg(path, stream_name=stream_name)


_ENTITY_RE = re.compile(r"^(?P<prefix>.+?)_(eeg|ieeg)$")


def find_measured_bold(eeg_path: str | Path) -> Path | None:
    """Find the measured region series TSV that belongs to a BIDS EEG file, if any.

    ``sub-01/eeg/sub-01_task-rest_run-01_eeg.vhdr`` matches
    ``sub-01/func/sub-01_task-rest_run-01_atlas-<atlas>_timeseries.tsv`` (DiFuMo64 preferred when
    several atlases are there).
    """
    eeg_path = Path(eeg_path)
    match = _ENTITY_RE.match(eeg_path.stem)
    if match is None or eeg_path.parent.name not in ("eeg", "ieeg"):
        return None
    func = eeg_path.parent.parent / "func"
    if not func.is_dir():
        return None
    candidates = sorted(func.glob(f"{match['prefix']}_atlas-*_timeseries.tsv"))
    if not candidates:
        return None
    preferred = [c for c in candidates if "_atlas-DiFuMo64_" in c.name]
    return (preferred or candidates)[0]


def read_measured_bold(tsv: str | Path) -> MeasuredBold:
    """Read a region time-series TSV (header = region names) and the TR from its JSON sidecar."""
    tsv = Path(tsv)
    series = read_region_tsv(tsv)
    sidecar = tsv.with_suffix(".json")
    meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    atlas = meta.get("Atlas")
    if atlas is None:
        found = re.search(r"_atlas-([A-Za-z0-9]+)_", tsv.name)
        atlas = found.group(1) if found else "unknown"
    return MeasuredBold(data=series.data, roi_names=series.roi_names, tr=series.tr,
                        atlas=str(atlas), path=tsv)


def _lsl():
    import pylsl

    return pylsl


def _eeg_info(pylsl, rec, name: str, source_id: str):
    info = pylsl.StreamInfo(name, "EEG", len(rec.ch_names), float(rec.sfreq), "float32", source_id)
    channels = info.desc().append_child("channels")
    for ch, kind in zip(rec.ch_names, rec.ch_types):
        node = channels.append_child("channel")
        node.append_child_value("label", ch)
        node.append_child_value("unit", "microvolts" if kind in _VOLTAGE_TYPES else "n/a")
        node.append_child_value("type", _LSL_TYPES.get(kind, kind.upper()))
    acq = info.desc().append_child("acquisition")
    acq.append_child_value("manufacturer", "rtbold replay")
    if rec.source is not None:
        acq.append_child_value("source_file", str(rec.source))
    return info


class Replayer:
    """Publish a recorded EEG file as live LSL streams (EEG, markers, measured BOLD).

    Parameters
    ----------
    path : path-like
        The recording (any format :func:`rtbold.io.eeg.read_eeg` reads).
    name : str | None
        EEG stream name; the marker and measured-BOLD streams get ``-markers`` and
        ``-measured-bold`` appended. Default: the file stem.
    source_id : str | None
        LSL source id of the EEG stream (the others append ``-markers``/``-measured-bold``).
        Default: ``rtbold-replay-<stem>-<random>``, unique per replay.
    speed : float
        Pacing factor (1 = real time). Ignored when ``fast``.
    fast : bool
        Push as fast as the consumer keeps up (see the module notes); waits for a consumer first.
    loop : bool
        Start again at the end, continuing the stream-time axis, until :meth:`stop`.
    marker : str | None
        Volume marker (annotation description ending with it, spaces ignored). None sends every
        annotation on the marker stream (measured BOLD is then matched to no marker and not sent).
    chunk_s : float
        Seconds of data per push (10-20 ms keeps the 1x stream smooth).
    measured : path-like | bool | None
        Measured region series TSV to publish; None finds it next to a BIDS file, False disables.
    wait_consumer_s : float
        Fast mode: how long to wait for a consumer before giving up (RuntimeError in :meth:`join`).
    consumer_grace_s : float
        Fast mode: once the EEG stream has a consumer, how long to wait for the marker (and
        measured-BOLD) streams to get one too, so the first markers are not pushed to nobody.
    stream_name : str | None
        XDF only: which stream of the file is the EEG.
    preroll_s : float
        Paced modes: wait for a consumer, then push the first ``preroll_s`` stream-seconds at
        once, stamped in the past as if the amplifier had been running that long, and pace the
        rest. A live session then has its first full 16 s window right away (``rtbold demo``).
    artifacts : rtbold.artifacts.ArtifactConfig | None
        Correct a raw in-scanner recording before publishing it (the live engine's correction,
        run on the whole file; the ECG goes out as recorded), for consumers that do not
        correct. Without it a raw file goes out raw, and ``rtbold run`` with
        ``[live.artifacts]`` corrects it live.
    """

    def __init__(self, path, *, name: str | None = None, source_id: str | None = None,
                 speed: float = 1.0, fast: bool = False, loop: bool = False,
                 marker: str | None = "R149", chunk_s: float = 0.02, measured=None,
                 wait_consumer_s: float = 60.0, consumer_grace_s: float = 1.0,
                 stream_name: str | None = None, preroll_s: float = 0.0,
                 artifacts=None) -> None:
        if not preroll_s >= 0:
            raise ValueError(f"preroll_s must be >= 0, got {preroll_s!r}.")
        if not fast and not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive number, got {speed!r}.")
        if not chunk_s > 0:
            raise ValueError(f"chunk_s must be positive, got {chunk_s!r}.")
        if fast and loop:
            raise ValueError("fast with loop would outrun any consumer (LSL has no "
                             "back-pressure, so a looped fast replay must lose samples); use a "
                             "speed instead (--speed 10 --loop).")
        self.path = Path(path)
        self.recording = read_recording(self.path, stream_name=stream_name)
        rec = self.recording
        if rec.data.ndim != 2 or rec.data.shape[1] == 0:
            raise ValueError(f"{self.path} holds no samples to replay.")
        self.name = name or self.path.stem
        self.source_id = source_id or f"rtbold-replay-{self.path.stem}-{uuid.uuid4().hex[:8]}"
        self.speed = float(speed)
        self.fast = bool(fast)
        self.loop = bool(loop)
        self.marker = marker
        self.sfreq = float(rec.sfreq)
        self.n_times = int(rec.data.shape[1])
        self.chunk = max(1, int(round(chunk_s * self.sfreq)))
        self.wait_consumer_s = float(wait_consumer_s)
        self.consumer_grace_s = float(consumer_grace_s)
        self.preroll_s = 0.0 if fast else float(preroll_s)
        data = rec.data
        if artifacts is not None and artifacts.enabled:
            from ..artifacts import correct_recording

            data, corrector = correct_recording(rec, artifacts, marker)
            logger.info("%s corrected before the replay (%s): %s", self.path,
                        artifacts.summary(), corrector.status().line())
        # Sample-major float32 once, so each push is a view (no per-chunk conversion).
        self._samples = np.ascontiguousarray(data.T, dtype=np.float32)
        del data

        # Annotations to send: (sample index they fall on, onset in s from sample 0, text).
        events, outside = [], []
        for ann in rec.annotations:
            if marker is not None and not marker_matches(ann.description, marker):
                continue
            if not 0 <= ann.onset < self.n_times / self.sfreq:
                outside.append(float(ann.onset))
                continue
            events.append((int(math.floor(ann.onset * self.sfreq + 1e-9)), float(ann.onset),
                           str(ann.description)))
        events.sort(key=lambda e: e[1])
        self.events = events
        #: Onsets (s) of the markers that lie outside the recording (a truncated file).
        self.markers_outside = outside
        if outside:
            logger.warning("%s: %d %s marker(s) lie outside the recording (0-%.3f s; the first at "
                           "%.3f s): the file looks truncated, they are not sent.", self.path,
                           len(outside), repr(marker) if marker else "", self.duration,
                           min(outside))
        if not events:
            # No marker stream then: a consumer falls back to its internal clock at once instead
            # of waiting on a stream that never ticks.
            found = sorted({a.description for a in rec.annotations})[:5]
            logger.warning("%s has no %s; no %s-markers stream is published. %s", self.path,
                           f"{marker!r} markers" if marker else "annotations", self.name,
                           f"Its annotations include {found}: choose one with --marker."
                           if found else "")

        self.measured: MeasuredBold | None = None
        if measured is not False:
            tsv = find_measured_bold(self.path) if measured is None else Path(measured)
            if tsv is not None:
                self.measured = read_measured_bold(tsv)
                self._check_measured()

        self.t0: float | None = None
        self.n_pushed = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._outlets: dict = {}

    # -- public -------------------------------------------------------------------------------
    @property
    def is_done(self) -> bool:
        """True once every sample was pushed (not with ``loop``), or after :meth:`stop`/an error."""
        return self._done.is_set()

    @property
    def duration(self) -> float:
        """Length of one pass through the recording, in stream seconds."""
        return self.n_times / self.sfreq

    def start(self) -> None:
        """Create the outlets and start pushing from a background thread."""
        if self._thread is not None:
            raise RuntimeError(f"Replay of {self.path} was already started.")
        self._make_outlets()
        self._thread = threading.Thread(target=self._run, name=f"rtbold-replay-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop pushing and close the outlets (consumers see the streams disappear)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._outlets.clear()  # dropping the last reference destroys the liblsl outlets

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the replay thread to end; re-raise its error. Returns True when it ended.

        The outlets stay open after the last sample (so consumers can read it) until :meth:`stop`.
        """
        if self._thread is None:
            raise RuntimeError("Replayer.join() called before start().")
        self._thread.join(timeout)
        if self.error is not None:
            raise RuntimeError(f"Replay of {self.path} failed: {self.error}") from self.error
        return not self._thread.is_alive()

    def wait_consumers_gone(self, timeout: float = 24 * 3600.0) -> bool:
        """Block until the EEG stream has no consumer (or :meth:`stop`, or ``timeout``)."""
        eeg = self._outlets.get("eeg")
        deadline = _lsl().local_clock() + timeout
        while eeg is not None and not self._stop.is_set() and _lsl().local_clock() < deadline:
            if not eeg.have_consumers():
                return True
            self._stop.wait(0.25)
        return False

    def stream_time(self, k: int) -> float:
        """LSL timestamp of (global, loop-continued) sample ``k``."""
        if self.t0 is None:
            raise RuntimeError("The replay has not started; stream times are set at start().")
        return self.t0 + k / self.sfreq

    def __enter__(self) -> "Replayer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------
    def _check_measured(self) -> None:
        meas = self.measured
        if self.marker is None:
            logger.warning("%s: measured BOLD %s needs a volume marker; not sent with marker=None.",
                           self.path, meas.path)
            self.measured = None
            return
        n_vol = len(self.events)
        if n_vol == 0:
            logger.warning("%s has no %r markers; measured BOLD %s is not sent.", self.path,
                           self.marker, meas.path)
            self.measured = None
            return
        if n_vol != meas.data.shape[0]:
            logger.warning("%s: %d %r markers but %d rows in %s; sending the first %d volumes.",
                           self.path, n_vol, self.marker, meas.data.shape[0], meas.path,
                           min(n_vol, meas.data.shape[0]))

    def _make_outlets(self) -> None:
        pylsl = _lsl()
        rec = self.recording
        # Fast mode must never drop on the outlet side: buffer the whole recording (seconds).
        # (capped at an hour: liblsl allocates the queue per consumer up front).
        max_buffered = min(3600, max(360, int(math.ceil(self.duration)) + 10)) if self.fast \
            else 360
        self._outlets["eeg"] = pylsl.StreamOutlet(_eeg_info(pylsl, rec, self.name, self.source_id),
                                                  0, max_buffered)
        if self.events:
            minfo = pylsl.StreamInfo(f"{self.name}-markers", "Markers", 1, pylsl.IRREGULAR_RATE,
                                     "string", f"{self.source_id}-markers")
            mch = minfo.desc().append_child("channels").append_child("channel")
            mch.append_child_value("label", "Marker")
            mch.append_child_value("type", "Markers")
            self._outlets["markers"] = pylsl.StreamOutlet(minfo, 0, max_buffered)  # x100
        if self.measured is not None:
            meas = self.measured
            rate = 1.0 / meas.tr if meas.tr else pylsl.IRREGULAR_RATE
            binfo = pylsl.StreamInfo(f"{self.name}-measured-bold", "fMRI", len(meas.roi_names),
                                     rate, "float32", f"{self.source_id}-measured-bold")
            chans = binfo.desc().append_child("channels")
            for roi in meas.roi_names:
                node = chans.append_child("channel")
                node.append_child_value("label", roi)
                node.append_child_value("unit", "a.u.")
                node.append_child_value("type", "BOLD")
            binfo.desc().append_child_value("atlas", meas.atlas)
            if meas.tr:
                binfo.desc().append_child_value("tr", repr(meas.tr))
            binfo.desc().append_child_value("source_file", str(meas.path))
            self._outlets["measured"] = pylsl.StreamOutlet(binfo, 0, max_buffered)

    def _wait_consumers(self, outlet) -> bool:
        """Block until ``outlet`` has a consumer (or stop); False when waiting timed out."""
        pylsl = _lsl()
        deadline = pylsl.local_clock() + self.wait_consumer_s
        while not self._stop.is_set():
            if outlet.wait_for_consumers(0.1):
                return True
            if pylsl.local_clock() > deadline:
                return False
        return True

    def _run(self) -> None:
        try:
            self._push_all()
        except BaseException as err:  # reported by join(); the thread must not die silently
            logger.exception("Replay of %s failed", self.path)
            self.error = err
        finally:
            self._done.set()

    def _push_all(self) -> None:
        pylsl = _lsl()
        eeg = self._outlets["eeg"]
        markers = self._outlets.get("markers")
        measured = self._outlets.get("measured")
        waits = self.fast or self.preroll_s > 0
        if waits and not self._wait_consumers(eeg):
            raise RuntimeError(f"No consumer connected to LSL stream {self.name!r} (source_id "
                               f"{self.source_id!r}) within {self.wait_consumer_s:g} s in "
                               f"{'fast mode' if self.fast else 'pre-roll'}; start the consumer "
                               "first or replay in real time without pre-roll.")
        if waits:
            # The EEG consumer usually opens its marker inlet right after: give it a moment.
            others = [o for o in (markers, measured) if o is not None]
            deadline = pylsl.local_clock() + self.consumer_grace_s
            while others and not self._stop.is_set() and pylsl.local_clock() < deadline:
                if all(o.have_consumers() for o in others):
                    break
                self._stop.wait(0.01)
        n, sfreq = self.n_times, self.sfreq
        ev_samples = np.array([e[0] for e in self.events], dtype=np.int64)
        n_meas = 0 if self.measured is None else min(len(self.events), self.measured.data.shape[0])
        t_wall0 = pylsl.local_clock()
        self.t0 = t0 = t_wall0 - self.preroll_s  # pre-roll samples are stamped in the past
        logger.info("Replaying %s as LSL %r (%d ch, %g Hz, %s) from stream time %.3f", self.path,
                    self.name, len(self.recording.ch_names), sfreq,
                    "fast" if self.fast else f"{self.speed:g}x", t0)
        k_global = 0  # sample index on the continued stream-time axis (grows across loops)
        while not self._stop.is_set():
            pass_start = k_global
            for start in range(0, n, self.chunk):
                if self._stop.is_set():
                    return
                stop = min(start + self.chunk, n)
                if self.fast:
                    # Pause while nobody listens, so no sample is pushed into the void.
                    if not eeg.have_consumers() and not self._wait_consumers(eeg):
                        raise RuntimeError(f"The consumer of LSL stream {self.name!r} went away "
                                           f"and did not come back within "
                                           f"{self.wait_consumer_s:g} s.")
                else:
                    # The chunk is due when its last sample is: from the start, never cumulative.
                    due = t_wall0 + ((pass_start + stop - 1) / sfreq - self.preroll_s) / self.speed
                    delay = due - pylsl.local_clock()
                    if delay > 0 and self._stop.wait(delay):
                        return
                k = np.arange(pass_start + start, pass_start + stop)
                stamps = t0 + k / sfreq
                eeg.push_chunk(self._samples[start:stop], stamps.tolist())
                self.n_pushed = pass_start + stop
                # Markers (and measured volumes) go out after the samples they fall on.
                lo, hi = np.searchsorted(ev_samples, [start, stop], side="left")
                for i in range(lo, hi):
                    _, onset, text = self.events[i]
                    t_ev = t0 + pass_start / sfreq + onset
                    markers.push_sample([text], t_ev)
                    if measured is not None and i < n_meas:
                        measured.push_sample(self.measured.data[i].astype(np.float32), t_ev)
            k_global = pass_start + n
            if not self.loop:
                return


# -- CLI ---------------------------------------------------------------------------------------
def add_parser(subparsers) -> None:
    """Register ``rtbold replay``."""
    parser = subparsers.add_parser(
        "replay",
        help="replay an EEG file (EDF, BrainVision, EEGLAB, FIF, XDF, ...) as LSL streams",
        description="Replay a recorded EEG file as live LSL streams: <name> (EEG), "
        "<name>-markers, and "
        "<name>-measured-bold when measured region series sit next to a BIDS recording. "
        "Timestamps are stream time (sample k at t0 + k/sfreq) at any speed.")
    parser.add_argument("file", type=Path, help="recording to replay")
    parser.add_argument("--name", default=None, help="LSL stream name (default: file stem)")
    parser.add_argument("--source-id", default=None, help="LSL source id (default: unique)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0,
                      help="pacing factor (default 1 = real time)")
    pace.add_argument("--fast", action="store_true",
                      help="as fast as the consumer keeps up; waits for a consumer, drops nothing")
    parser.add_argument("--loop", action="store_true", help="start over at the end until Ctrl+C")
    mk = parser.add_mutually_exclusive_group()
    mk.add_argument("--marker", default="R149",
                    help="volume marker sent on <name>-markers (default R149)")
    mk.add_argument("--all-annotations", action="store_true",
                    help="send every annotation on <name>-markers, not only the volume marker")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="milliseconds per push")
    parser.add_argument("--no-measured", action="store_true",
                        help="do not publish measured region series found next to the file")
    parser.add_argument("--linger", type=float, default=None,
                        help="seconds to keep the streams open after the last sample (default 2; "
                             "with --fast: until the consumer disconnects, since it may still be "
                             "receiving: liblsl drops what an outlet has not sent when it closes)")
    from ..artifacts.config import add_artifact_args

    add_artifact_args(parser)
    parser.add_argument("--lsl-config", dest="replay_lsl_config", default=None, metavar="FILE",
                        help="liblsl configuration file to load first ('loopback' for the packaged "
                             "machine-only settings); same as the top-level --lsl-config")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ..artifacts.config import artifact_config_from_args

    if args.replay_lsl_config is not None:  # before the first LSL call (outlets are made in start)
        from rtbold.lslconfig import apply_lsl_config

        apply_lsl_config(args.replay_lsl_config)
    replayer = Replayer(args.file, name=args.name, source_id=args.source_id, speed=args.speed,
                        fast=args.fast, loop=args.loop,
                        marker=None if args.all_annotations else args.marker,
                        chunk_s=args.chunk_ms / 1000.0,
                        measured=False if args.no_measured else None,
                        artifacts=artifact_config_from_args(args))
    streams = [replayer.name] + ([f"{replayer.name}-markers"] if replayer.events else [])
    if replayer.measured is not None:
        streams.append(f"{replayer.name}-measured-bold")
    print(f"Replaying {args.file} ({replayer.duration:.1f} s, {len(replayer.recording.ch_names)} "
          f"channels, {replayer.sfreq:g} Hz, {len(replayer.events)} markers) as LSL streams "
          f"{', '.join(streams)} (source id {replayer.source_id}); Ctrl+C stops.")
    replayer.start()
    try:
        while not replayer.join(timeout=0.5):
            pass
        if args.linger is None and args.fast:
            print("All samples pushed; keeping the streams open until the consumer disconnects "
                  "(Ctrl+C stops).", flush=True)
            replayer.wait_consumers_gone()
        elif (args.linger if args.linger is not None else 2.0) > 0:
            # Let consumers read the tail before the outlets close.
            replayer._stop.wait(args.linger if args.linger is not None else 2.0)
    finally:
        replayer.stop()
    print(f"Replay done: {replayer.n_pushed} samples pushed.")
    return 0
