"""Acquisition: LSL inlets -> shared preprocessing -> ring buffer, and the TR clock.

One thread (``rtbold-acquisition``) pulls every ``pull_interval_s`` and never waits on inference::

    marker inlet   -> every marker recorded -> TRClock.on_markers -> ticks
    measured inlet -> MeasuredPairing (a frame takes its vector; one after its frame -> sink)
    EEG inlet      -> raw recorded -> channel quality (flat/clipped/saturated), amplitude check
                   -> EEGPreprocessor (resampling, high-pass) -> RingBuffer
                   -> internal clock ticks (TRClock.on_data)
    ticks          -> queue for the InferenceWorker
    inlet events, gaps, "no tick for 2 TRs, because ..." -> sink (events.tsv, log, status)

Each inlet reconnects by itself (:class:`rtbold.stream.inlet.LslStream`). A gap in the EEG
(lost samples, a restarted source) is bridged in the ring buffer by holding the last value, so
frames resume at the next tick after the EEG is back; every frame whose window touches the gap is
flagged ``"gap"``. A clock jump (timestamps going back) restarts the buffer.

Back-pressure
-------------
When the EEG runs ahead of real time (``rtbold replay --speed 10`` or ``--fast``: its
timestamps lie in the future of the LSL clock) and ``worker.backpressure = "auto"``, acquisition
holds back EEG while writing more would overwrite a window that a waiting tick still needs; the
samples wait in a backlog in this process (at most ``stream.max_buflen_s`` of them, then in
liblsl's inlet buffer) and no tick is dropped. They are pulled from liblsl at once regardless,
because liblsl drops a lost inlet's unread samples: a replay that ends and closes its outlets
while the engine is still behind loses nothing.
A replay therefore gives the same frames at every speed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
import pylsl

from .inlet import EEGInlet, MarkerInlet, ValueInlet, unit_text
from .quality import AmplitudeCheck, ChannelQuality, EpisodeLog
from .ringbuffer import RingBuffer
from .sink import FrameSink, Skip
from .trclock import Tick, TRClock

logger = logging.getLogger(__name__)

#: Stream time (s) the EEG must run ahead of the LSL clock to count as an accelerated replay.
_AHEAD_S = 1.0
#: Seconds of stream time kept free between the newest sample and a needed window's start.
_MARGIN_S = 1.0
#: What the events log says about volume triggers the MR-artefact correction classified.
_TRIGGER_TEXT = {
    "doubled": "doubled volume trigger {marker!r} at {t:.3f} s ignored (no frame); frames over "
               "it flagged 'trigger'",
    "inferred": "volume trigger {marker!r} missed: placed at {t:.3f} s, one TR after the last; "
                "its frame and the frames over it flagged 'trigger'",
    "lost": "volume triggers {marker!r} lost from {t:.3f} s (scanner stopped?): gradient "
            "correction paused, frames flagged 'gradient'",
    "restart": "volume triggers {marker!r} restart at {t:.3f} s at another spacing: gradient "
               "templates start again",
}


class Acquisition(threading.Thread):
    """The acquisition thread (see the module notes).

    Parameters
    ----------
    eeg : EEGInlet
    ring : RingBuffer
    preprocessor : rtbold.preprocessing.EEGPreprocessor
        The shared chain after channel mapping (resampling to 200 Hz, the bundle's high-pass).
    clock : TRClock
    sink : FrameSink
    config : LiveConfig
    markers : MarkerInlet | None
        None with the internal clock.
    measured : ValueInlet | None
    busy_t : callable() -> float | None
        Stream time of the tick the worker is handling (back-pressure).
    """

    def __init__(self, eeg: EEGInlet, ring: RingBuffer, preprocessor, clock: TRClock,
                 sink: FrameSink, config, *, markers: MarkerInlet | None = None,
                 measured: ValueInlet | None = None,
                 busy_t: Callable[[], float | None] = lambda: None) -> None:
        super().__init__(name="rtbold-acquisition", daemon=True)
        self.eeg, self.ring, self.pre, self.clock, self.sink = eeg, ring, preprocessor, clock, sink
        self.config = config
        self.markers, self.measured_inlet = markers, measured
        self.measured = None
        if measured is not None:
            from .pairing import MeasuredPairing

            self.measured = MeasuredPairing(clock.tr, max_delay_s=config.measured.max_delay_s,
                                            on_late=sink.measured, on_dropped=sink.measured_dropped)
        self.busy_t = busy_t
        self.tr = clock.tr
        self.ticks: queue.Queue[Tick] = queue.Queue()  # bounded by hand (see _enqueue)
        self.queue_size = config.worker.queue_size
        self.n_ticks_dropped = 0
        self.lossless = False
        self._halt = threading.Event()
        self._segment_start: float | None = None
        self._held: list[Tick] = []  # ticks that came before the first EEG sample
        #: Chunks pulled but not yet written (back-pressure), at most about the inlet's buffer.
        self._backlog: deque = deque()
        self._backlog_n = 0
        self._backlog_max = eeg.max_buflen * int(eeg.sfreq)
        self._first_time: float | None = None
        self._log = EpisodeLog(logger)
        sc = config.stream
        used = np.flatnonzero(eeg.mapping.matrix.any(axis=0))
        self._used = used
        self.quality = ChannelQuality([eeg.ch_names[i] for i in used], eeg.sfreq,
                                      flat_uv=sc.flat_uv, clip_samples=sc.clip_samples,
                                      saturation_uv=sc.saturation_uv or None)
        self._real_rows = np.array([t not in eeg.mapping.missing
                                    for t in eeg.mapping.target_names])
        unit = unit_text(eeg.scale)
        if sc.units == "auto":
            unit += f" (unit field {sorted(set(eeg.ch_units))[:3]})"
        self.amplitude = AmplitudeCheck(eeg.sfreq, unit) if sc.amplitude_check == "warn" else None
        # The no-tick watchdog.
        self._last_tick_wall = time.monotonic()
        self._no_tick_reason: str | None = None
        self._no_tick_why: str | None = None
        self._no_tick_checked = 0.0
        self._markers_since_tick: list[str] = []
        self._last_marker_wall = -np.inf
        self._last_marker_t: float | None = None
        self.acq_busy_s = 0.0  # wall time spent in acquisition work, sleeps excluded (benchmarks)
        self.acq_cpu_s = 0.0  # CPU time of the acquisition thread (benchmarks)
        self.acq_iterations = 0
        #: Called about twice a second (the engine's status reporter).
        self.on_idle: Callable[[], None] | None = None

    @property
    def waiting_for(self) -> str:
        """Why no tick came for ``trigger.no_tick_trs`` TRs ('' while ticks come)."""
        return self._no_tick_reason or ""

    @property
    def amplitude_flag(self) -> bool:
        return self.amplitude is not None and self.amplitude.problem is not None

    def stop(self) -> None:
        self._halt.set()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        period = self.config.stream.pull_interval_s
        while not self._halt.is_set():
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                self.step()
            except Exception as err:  # noqa: BLE001 - keep acquiring; report
                logger.exception("Acquisition error")
                self.sink.error(err)
                self._halt.wait(0.1)
            busy = time.perf_counter() - t0
            self.acq_busy_s += busy
            self.acq_cpu_s += time.thread_time() - c0
            self.acq_iterations += 1
            if self.on_idle is not None:
                self.on_idle()
            self._halt.wait(max(0.0, period - busy))

    def step(self) -> None:
        """One pass: side streams, EEG (as much as is there and may be written), watchdogs."""
        ticks = self._pull_markers()
        self._pull_measured()
        # Pull what is there into our own memory first: liblsl drops a lost inlet's unread
        # samples, so a backlog held back by back-pressure must not wait in liblsl's buffer.
        for _ in range(64):
            if self._backlog_n >= self._backlog_max:  # full: liblsl's buffer takes the rest
                self.eeg.last_data_wall = time.monotonic()  # held back, not silent
                break
            chunk = self.eeg.pull()
            if chunk is None:
                break
            self._check_ahead()
            self._backlog.append(chunk)
            self._backlog_n += len(chunk.times)
            if len(chunk.times) < self.eeg.max_chunk:
                break
        ticks += self._marker_horizon()
        for _ in range(16):  # write what may be written, coming back to the markers between
            if not self._backlog or not self._may_pull():
                break
            chunk = self._backlog.popleft()
            self._backlog_n -= len(chunk.times)
            self._ingest(chunk)
            ticks += self._volume_ticks()
            if self.clock.mode == "internal" and self._segment_start is not None:
                first_full = self._segment_start + self.ring.window_samples / self.ring.sfreq
                ticks += self.clock.on_data(first_full, self.ring.latest_time())
            for tick in ticks:
                self._enqueue(tick)
            ticks = self._pull_markers()
        for tick in ticks:
            self._enqueue(tick)
        sc = self.config.stream
        self.eeg.watchdog(sc.silence_s)
        for inlet in (self.eeg, self.markers, self.measured_inlet):
            if inlet is not None:
                while inlet.events:
                    kind, text = inlet.events.popleft()
                    self.sink.event(kind, None, text, warn=kind in ("disconnected", "silent",
                                                                    "warning"),
                                    status=True, log_every=True)
        self._watch_ticks()

    # -- side streams -----------------------------------------------------------------------------
    def _pull_markers(self) -> list[Tick]:
        if self.markers is None:
            return []
        got = self.markers.pull()
        if not got:
            return []
        self.sink.markers(got)  # every marker, volume or not, is kept
        self._last_marker_wall = time.monotonic()
        if self.clock.mode == "internal" and self.clock.fallback_reason is not None and any(
                self._matches(d) for d, _ in got):
            self.clock.use_markers()
            self.sink.event("clock", got[0][1], f"TR ticks now from marker stream "
                            f"{self.markers.name!r} (marker {self.clock.marker!r}); the internal "
                            "clock stops", status=True)
        corr = self.pre.corrector
        if corr is not None and corr.triggers is not None and self.clock.mode == "markers":
            # The volumes come from the trigger classification: a doubled marker makes no
            # tick, a missed one gets a tick one TR on (flagged).
            corr.add_markers([t for d, t in got if self._matches(d)])
            corr.set_horizon(got[-1][1])
            ticks = self._volume_ticks()
            # The samples that waited for this marker go on now, not with the next chunk
            # (the window that ends at the trigger must not wait for it).
            out, times = self.pre.release()
            if times.size:
                self.ring.write(out.astype(np.float32), times)
                self._artifact_marks()
        else:
            ticks = self.clock.on_markers(got)
        if ticks:
            self._last_marker_t = ticks[-1].t
            self._check_ahead(ticks[-1].t - pylsl.local_clock(), "marker")
        else:
            self._markers_since_tick += [d for d, _ in got][:20]
            del self._markers_since_tick[:-20]
        return ticks

    def _marker_horizon(self) -> list[Tick]:
        """Live: a volume marker is in within ``marker_latency_s`` (LSL clock) of its time, so
        every marker up to then has come; missed triggers before it are placed."""
        corr = self.pre.corrector
        if corr is None or corr.triggers is None:
            return []
        corr.set_horizon(pylsl.local_clock() - self.config.artifacts.marker_latency_s)
        return self._volume_ticks()

    def _volume_ticks(self) -> list[Tick]:
        """Ticks and events of the trigger classification since the last call."""
        corr = self.pre.corrector
        if corr is None:
            return []
        ticks = []
        for ev in corr.drain_events():
            if ev.starts_volume and self.clock.mode == "markers":
                ticks.append(self.clock.on_volume(ev.t, "inferred" if ev.kind == "inferred"
                                                  else "marker"))
            text = _TRIGGER_TEXT.get(ev.kind)
            if text is not None:
                self.sink.event("trigger", ev.t, text.format(marker=self.clock.marker,
                                                             t=ev.t), warn=ev.kind != "restart",
                                status=True, log_every=True)
        return ticks

    def _matches(self, desc: str) -> bool:
        from .trclock import marker_matches

        return marker_matches(desc, self.clock.marker)

    def _pull_measured(self) -> None:
        if self.measured_inlet is None:
            return
        ts, values = self.measured_inlet.pull()
        if len(ts):
            self.measured.add(ts, values)

    # -- back-pressure and the tick queue -------------------------------------------------------
    def _oldest_needed(self) -> float | None:
        """Stream time of the earliest tick that still needs its window."""
        needed = [t for t in (self.busy_t(),) if t is not None]
        with self.ticks.mutex:
            if self.ticks.queue:
                needed.append(self.ticks.queue[0].t)
        # A marker stream that is delivering: the next volume comes about one TR after the last.
        if (self.clock.mode == "markers" and self._last_marker_t is not None
                and time.monotonic() - self._last_marker_wall < 1.0):
            needed.append(self._last_marker_t + self.tr)
        return min(needed) if needed else None

    def _check_ahead(self, lead_s: float | None = None, what: str = "EEG") -> None:
        """Switch back-pressure on once a stream runs ahead of real time (a replay)."""
        lead_s = self.eeg.lead_s if lead_s is None else lead_s
        if (not self.lossless and self.config.worker.backpressure == "auto"
                and lead_s > _AHEAD_S):
            self.lossless = True
            self.sink.event("replay", None, f"{what} stream runs {lead_s:.1f} s ahead of real "
                            "time (a replay): back-pressure on, no TR is dropped")

    def _may_pull(self) -> bool:
        if not self.lossless:
            return True
        latest = self.ring.latest_time()
        need = self._oldest_needed()
        if latest is None or need is None:
            return True
        ring = self.ring
        # Less one TR: the tick the worker has just taken may not show in busy_t yet.
        room = ((ring.capacity - ring.window_samples) / ring.sfreq - _MARGIN_S - self.pre.delay_s
                - self.tr)
        return latest < need + room

    def _enqueue(self, tick: Tick) -> None:
        self._tick_seen()
        seg, ring = self._segment_start, self.ring
        if seg is None:
            self._held.append(tick)
            return
        if tick.t - ring.window_samples / ring.sfreq < seg - 0.5 / ring.sfreq:
            # Before a full window of EEG exists (session start, after a clock jump): no frame.
            after = seg is not None and seg != self._first_time
            self.sink.skip(Skip(tick.index, tick.t, "gap" if after else "not_covered",
                                f"less than {ring.window_samples / ring.sfreq:g} s of EEG before "
                                f"{tick.t:.3f} s" + (" (after a clock jump)" if after else "")))
            return
        if not self.lossless:
            while self.ticks.qsize() >= self.queue_size:
                with self.ticks.mutex:
                    head = self.ticks.queue[0] if self.ticks.queue else None
                if head is None or pylsl.local_clock() - head.t < self.tr:
                    break  # not behind real time (a replay ahead of it): keep every tick
                try:  # drop the oldest: it is the stalest
                    old = self.ticks.get_nowait()
                except queue.Empty:
                    break
                self.n_ticks_dropped += 1
                self.sink.skip(Skip(old.index, old.t, "queue_full", "inference is behind"))
        self.ticks.put_nowait(tick)

    # -- the no-tick watchdog ---------------------------------------------------------------------
    def _tick_seen(self) -> None:
        self._last_tick_wall = time.monotonic()
        self._markers_since_tick = []
        if self._no_tick_reason is not None:
            self._no_tick_reason = self._no_tick_why = None
            self.sink.event("ticks_resumed", None, "TR ticks come again", status=True)

    def _watch_ticks(self) -> None:
        now = time.monotonic()
        if self._backlog or not self.ticks.empty() or self.busy_t() is not None:
            self._last_tick_wall = now  # frames are still coming from ticks already seen
            return
        silent = now - self._last_tick_wall
        if silent < self.config.trigger.no_tick_trs * self.tr or now - self._no_tick_checked < 0.5:
            return
        self._no_tick_checked = now
        why = self._why_no_tick()
        reason = f"no TR for {silent:.0f} s: {why}"
        if why != self._no_tick_why:  # a new reason (not only a longer wait): say it again
            self._no_tick_why = why
            self.sink.event("no_tick", None, reason, warn=True, log_every=True)
        self._no_tick_reason = reason

    def _why_no_tick(self) -> str:
        head = ""
        eeg = self.eeg
        if not eeg.connected:
            return head + f"EEG stream {eeg.name!r} {eeg.state}"
        if eeg.n_samples == 0:
            return head + f"EEG stream {eeg.name!r} has sent no sample yet"
        if self.clock.mode == "internal":
            return head + "waiting for a full window of EEG for the internal clock"
        mk = self.markers
        if mk is None:
            return head + "no marker stream"
        if mk.state == "absent":
            return head + f"marker stream {mk.name!r} not found (still looking for it)"
        if not mk.connected:
            return head + f"marker stream {mk.name!r} gone ({mk.state})"
        others = self._markers_since_tick
        if others:
            shown = ", ".join(repr(m) for m in dict.fromkeys(others))
            return head + (f"no markers matching {self.clock.marker!r} on {mk.name!r} "
                           f"(received {shown}); set live.trigger.marker (--marker)")
        return head + (f"no markers matching {self.clock.marker!r} seen on {mk.name!r} "
                       "(the stream sends nothing: is the scanner running?)")

    # -- EEG --------------------------------------------------------------------------------------
    def _ingest(self, chunk) -> None:
        eeg, ring, rs = self.eeg, self.ring, self.pre
        if chunk.raw is not None:
            self.sink.eeg(chunk.raw.T, chunk.times)
            self._check_channels(chunk.raw[:, self._used], chunk.times)
        if self.amplitude is not None and not self.amplitude.done:
            problem = self.amplitude.add(chunk.data[self._real_rows])
            if problem:
                self.sink.event("warning", float(chunk.times[0]), problem, warn=True,
                                rms_uv=self.amplitude.rms_uv)
        if self._segment_start is None:
            self._segment_start = self._first_time = float(chunk.times[0])
            held, self._held = self._held, []
            for tick in held:
                self._enqueue(tick)
        bounds = [b.index for b in chunk.breaks] + [len(chunk.times)]
        start = 0
        for brk, stop in zip([None, *chunk.breaks], bounds):
            if brk is not None:
                self._handle_break(brk)
            if stop > start:
                ecg = None if chunk.aux is None else chunk.aux[start:stop]
                out, times = rs.process(chunk.data[:, start:stop], chunk.times[start:stop], ecg)
                ring.write(out.astype(np.float32), times)
            start = stop
        self._artifact_marks()
        for a, b in chunk.nan_spans:
            # The filter spreads a replaced sample over its length: flag that much around it.
            ring.mark_nan(a - 2 * rs.delay_s, b + 2 * rs.delay_s)
            if self._log.allow("nan-event"):
                self.sink.event("nan", a, f"EEG stream {eeg.name!r}: NaN samples {a:.3f}-{b:.3f} "
                                f"s replaced ({eeg.nan_policy}); {eeg.n_nan} so far")

    def _artifact_marks(self) -> None:
        """Windows over samples the MR-artefact correction could not fully correct get flagged."""
        corr = self.pre.corrector
        if corr is None:
            return
        pad = 2 * self.pre.delay_s
        for flag, a, b in corr.drain_marks():
            self.ring.mark(flag, a - pad, b + pad)

    def _check_channels(self, raw: np.ndarray, times: np.ndarray) -> None:
        before = dict(self.quality.current)
        for flag, a, b, chans in self.quality.add(raw, times):
            self.ring.mark(flag, a - 2 * self.pre.delay_s, b + 2 * self.pre.delay_s)
        for flag, chans in self.quality.current.items():
            if chans == before[flag]:
                continue
            if chans:
                self.sink.event(flag, float(times[-1]), f"EEG stream {self.eeg.name!r}: "
                                f"{flag} channel(s) {', '.join(chans)}; frames flagged {flag!r}",
                                warn=True, channels=list(chans))
            else:
                self.sink.event(flag, float(times[-1]), f"EEG stream {self.eeg.name!r}: no "
                                f"{flag} channel any more", status=False)

    def _handle_break(self, brk) -> None:
        rs, ring = self.pre, self.ring
        out, times = rs.flush()  # keep the samples up to the break
        if out.shape[1]:
            ring.write(out.astype(np.float32), times)
        self._artifact_marks()
        rs.reset()
        settle = 2 * rs.delay_s + 1.0 / ring.sfreq
        if brk.kind == "jump":
            ring.reset()
            self.clock.restart_internal()
            self._segment_start = brk.t_after
            self.sink.event("clock_jump", brk.t_after, f"EEG timestamps jumped back "
                            f"{brk.t_before - brk.t_after:.3f} s; buffer restarted", warn=True)
            return
        ring.mark_gap(brk.t_before - rs.delay_s, brk.t_after + settle)
        ring.bridge(brk.t_after)
        gap = brk.t_after - brk.t_before
        if gap > ring.capacity / ring.sfreq:
            self.clock.restart_internal(brk.t_after + self.tr)
        text = (f"EEG stream {self.eeg.name!r}: {brk.n_lost} sample(s) lost between "
                f"{brk.t_before:.3f} and {brk.t_after:.3f} s (total {self.eeg.lost_samples}); "
                "frames over it flagged 'gap'")
        self.sink.event("gap", brk.t_before, text, warn=True, n_lost=brk.n_lost)
