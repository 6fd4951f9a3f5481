"""The headless live engine: acquisition thread + TR clock + inference worker.

Threads and hand-over (ARCHITECTURE.md sections 1-2)::

    rtbold-acquisition  (pulls every pull_interval_s; never waits on inference)
        EEG inlet -> channel mapping, µV, NaN handling -> EEGPreprocessor (resampling, high-pass)
        -> RingBuffer.write
        raw EEG -> SessionRecorder.write_eeg            (append-only, as received)
        marker inlet -> TRClock.on_markers  | internal clock -> TRClock.on_data
        ticks -> bounded queue.Queue (full: oldest dropped, recorded as skipped)
        measured-bold inlet -> small deque (looked up by stream time)
        on_status(EngineStatus) about twice a second
    rtbold-inference  (InferenceWorker)
        tick -> wait on RingBuffer.cond until the window is covered (stream time) -> extract_window
        -> model -> BoldOutlet/FeedbackOutlet -> SessionRecorder.write_frame -> on_frame(Frame)

Every callback runs on one of these threads; a GUI forwards it with a Qt signal.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from .config import LiveConfig
from .frames import EngineStatus, Frame
from .inlet import (EEGInlet, MarkerInlet, ValueInlet, describe_stream, resolve_stream,
                    try_resolve, try_resolve_any)
from .ringbuffer import RingBuffer
from .trclock import Tick, TRClock
from .worker import InferenceWorker, ModelRunner, Skip

logger = logging.getLogger(__name__)

#: A gap longer than this (s) restarts the internal clock at the next full window.
_LONG_GAP_S = 1.0


class LiveEngine:
    """Live EEG -> predicted BOLD, one frame per TR.

    Parameters
    ----------
    config : LiveConfig
        Session settings (see configs/live.toml).
    on_frame : callable(Frame) | None
        Called from the inference thread after the frame was published and recorded.
    on_status : callable(EngineStatus) | None
        Called from the acquisition thread about twice a second and on state changes.
    on_error : callable(Exception) | None
        Called from either thread when something fails that the engine survives.
    runner : ModelRunner | None
        An already loaded model (tests, benchmarks, the GUI's model cache); default: load
        ``config.bundle``.

    Notes
    -----
    :meth:`start` raises (StreamNotFoundError, ValueError from the channel mapping or rate check,
    FileNotFoundError for the bundle) before any thread starts, so a bad setup fails clearly.
    """

    def __init__(self, config: LiveConfig, *, on_frame: Callable[[Frame], None] | None = None,
                 on_status: Callable[[EngineStatus], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 runner: ModelRunner | None = None) -> None:
        self.config = config
        self.on_frame, self.on_status, self.on_error = on_frame, on_status, on_error
        self.runner = runner
        self.inlet: EEGInlet | None = None
        self.ring: RingBuffer | None = None
        self.clock: TRClock | None = None
        self.worker: InferenceWorker | None = None
        self.recorder = None
        self.session_dir: Path | None = None
        self.events: list[tuple[str, float | None, str]] = []
        self.n_ticks_dropped = 0
        self.tr: float | None = None
        self._marker_inlet: MarkerInlet | None = None
        self._measured_inlet: ValueInlet | None = None
        self._measured: deque[tuple[float, np.ndarray]] = deque(maxlen=64)
        self._bold = self._feedback = None
        self._rec_lock = threading.Lock()
        self._stop = threading.Event()
        self._acq: threading.Thread | None = None
        self._ticks: queue.Queue[Tick] | None = None
        self._message = ""
        self._segment_start: float | None = None
        self._first_time: float | None = None
        self._last_status = 0.0
        self._started = False
        self._silent = False
        self.acq_busy_s = 0.0  # wall time spent in acquisition work, sleeps excluded (benchmarks)
        self.acq_cpu_s = 0.0  # CPU time of the acquisition thread (benchmarks)
        self.acq_iterations = 0

    # -- public -------------------------------------------------------------------------------
    @property
    def roi_names(self) -> list[str]:
        return list(self.runner.roi_names) if self.runner is not None else []

    @property
    def networks(self) -> list[str]:
        """Yeo-7 network of each region (empty when the atlas is not a packaged DiFuMo size)."""
        try:
            from rtbold.atlas import load_atlas

            return list(load_atlas(len(self.roi_names)).networks)
        except Exception:  # noqa: BLE001 - unknown atlas size: no network names
            return []

    def start(self) -> None:
        """Load the model, connect to the streams and start the threads."""
        if self._started:
            raise RuntimeError("LiveEngine.start() was already called; create a new engine.")
        try:
            self._start()
        except BaseException:
            self.stop()  # close whatever was opened (inlets, outlets, session folder)
            raise

    def _start(self) -> None:
        cfg = self.config
        sc = cfg.stream
        if self.runner is None:
            if cfg.bundle is None:
                raise ValueError("No model bundle: set live.bundle or pass --bundle PATH.")
            self.runner = ModelRunner.from_bundle(cfg.bundle, cfg.device)
        runner = self.runner
        self._set_threads()
        t_fwd = runner.warmup(cfg.worker.warmup)
        logger.info("Model %s on %s: forward %.1f ms after warm-up", runner.name, runner.device,
                    t_fwd * 1e3)
        self.tr = cfg.trigger.tr or runner.tr
        if not self.tr:
            raise ValueError("Unknown TR: the bundle does not store one; set live.trigger.tr.")
        info = resolve_stream(sc.name, sc.type, sc.source_id, timeout=sc.resolve_timeout_s)
        if abs(runner.sfreq - 200.0) > 1e-6:
            raise ValueError(f"Bundle {runner.name} expects {runner.sfreq:g} Hz input; the live "
                             "engine feeds 200 Hz windows.")
        # Marker and measured streams first: the EEG inlet buffers from the moment it opens, and
        # the acquisition thread should not start with seconds of backlog.
        self.clock = TRClock(self.tr, cfg.trigger.source, cfg.trigger.marker)
        if cfg.trigger.source == "markers":
            self._connect_markers(info.name())
        else:
            self._event("clock", None, f"internal TR clock every {self.tr:g} s of stream time")
        if cfg.measured.enabled:
            self._connect_measured(info.name())
        self._open_outlets()
        self.inlet = EEGInlet(
            info, runner.ch_names, policy=sc.channel_policy, units=sc.units,
            clock_sync=sc.clock_sync, dejitter=sc.dejitter, nan_policy=sc.nan_policy,
            jitter_tolerance=sc.jitter_tolerance, max_buflen_s=sc.max_buflen_s,
            min_sfreq=sc.min_sfreq)
        from ..preprocessing import EEGPreprocessor

        # The shared chain after channel mapping (done by the inlet): resampling to 200 Hz and
        # the high-pass the model was trained with, exactly as offline (prepare_scan).
        self._preprocessor = EEGPreprocessor(self.inlet.sfreq, n_channels=len(runner.ch_names),
                                             highpass_hz=runner.highpass_hz)
        self.ring = RingBuffer(len(runner.ch_names), cfg.buffer_s)
        self._open_recorder(info)
        self._ticks = queue.Queue(maxsize=cfg.worker.queue_size)
        self.worker = InferenceWorker(
            self.ring, runner, self._ticks, tr=self.tr, publish=self._publish,
            record=self._record_frame, record_skip=self._record_skip,
            measured=self._measured_at if self._measured_inlet is not None else None,
            on_frame=self.on_frame, on_error=self._error, skip_stale=cfg.worker.skip_stale,
            max_wait_s=cfg.worker.max_wait_s,
            extra_flags=lambda tick: ("internal_clock",) if tick.source == "internal" else ())
        self._started = True
        self.worker.start()
        self._acq = threading.Thread(target=self._acquire_loop, name="rtbold-acquisition",
                                     daemon=True)
        self._acq.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads, finish the TR in flight, close outlets and the session folder."""
        self._stop.set()
        if self._acq is not None:
            self._acq.join(timeout)
        if self.worker is not None and self.worker.ident is not None:  # started
            # Let the worker finish ticks whose data already arrived, then stop it.
            deadline = time.monotonic() + min(timeout, 2.0 * (self.tr or 1.0))
            while (self._ticks is not None and not self._ticks.empty()
                   and time.monotonic() < deadline and self.worker.is_alive()):
                time.sleep(0.01)
            self.worker.stop()
            self.worker.join(timeout)
        for inlet in (self.inlet, self._marker_inlet, self._measured_inlet):
            if inlet is not None:
                inlet.close()
        for out in (self._bold, self._feedback):
            if out is not None:
                out.close()
        if self.recorder is not None:
            with self._rec_lock:
                self.recorder.write_event(
                    "engine_stop", description="stopped",
                    n_frames=self.n_frames, n_skipped=self.n_skipped,
                    lost_samples=self.inlet.lost_samples if self.inlet else 0)
                self.recorder.close()
        self._emit_status(force=True)

    def __enter__(self) -> "LiveEngine":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def marker_stream(self) -> str | None:
        """Name of the marker stream the TR clock follows (None: internal clock)."""
        return self._marker_inlet.name if self._marker_inlet is not None else None

    @property
    def n_frames(self) -> int:
        return self.worker.n_frames if self.worker is not None else 0

    @property
    def n_skipped(self) -> int:
        return self.worker.n_skipped if self.worker is not None else 0

    @property
    def skips(self) -> list[Skip]:
        return list(self.worker.skips) if self.worker is not None else []

    def status(self) -> EngineStatus:
        """Current state (thread-safe snapshot)."""
        inlet, ring = self.inlet, self.ring
        return EngineStatus(
            connected=bool(inlet is not None and inlet.connected),
            stream_name=inlet.name if inlet is not None else (self.config.stream.name or ""),
            effective_sfreq=inlet.effective_sfreq if inlet is not None else 0.0,
            lost_samples=inlet.lost_samples if inlet is not None else 0,
            buffer_fill=ring.fill if ring is not None else 0.0,
            last_tick=self.clock.last_t if self.clock is not None else None,
            device=str(self.runner.device) if self.runner is not None else "",
            bundle=self.runner.name if self.runner is not None else "",
            n_frames=self.n_frames, n_skipped=self.n_skipped, message=self._message)

    # -- setup ----------------------------------------------------------------------------------
    def _set_threads(self) -> None:
        n = self.config.worker.torch_threads
        if n and str(self.runner.device) == "cpu":
            import torch

            if torch.get_num_threads() != n:
                torch.set_num_threads(n)

    def _connect_markers(self, eeg: str) -> None:
        tc = self.config.trigger
        names = [tc.name] if tc.name else [f"{eeg}-markers", f"{eeg}-annotations"]
        info = try_resolve_any(names, tc.source_id, tc.resolve_timeout_s)
        if info is not None:
            self._marker_inlet = MarkerInlet(info, clock_sync=self.config.stream.clock_sync)
            self._event("clock", None, f"TR ticks from marker stream {describe_stream(info)}, "
                        f"marker {tc.marker!r}")
            return
        reason = (f"marker stream {' or '.join(repr(n) for n in names)} not found within "
                  f"{tc.resolve_timeout_s:g} s")
        self.clock.fall_back(reason)
        self._event("warning", None, f"{reason}; using the internal TR clock "
                    f"(every {self.tr:g} s of stream time), frames are not scanner-aligned",
                    kind_detail="trigger_fallback")

    def _connect_measured(self, eeg: str) -> None:
        mc = self.config.measured
        name = mc.name or f"{eeg}-measured-bold"
        info = try_resolve(name, None, None, mc.resolve_timeout_s)
        if info is None:
            return
        if info.channel_count() != len(self.roi_names):
            self._event("warning", None, f"measured-bold stream {name!r} has "
                        f"{info.channel_count()} channels, the model {len(self.roi_names)} "
                        "regions; not shown")
            return
        self._measured_inlet = ValueInlet(info, clock_sync=self.config.stream.clock_sync)
        self._event("measured", None, f"measured BOLD from {describe_stream(info)}")

    def _open_outlets(self) -> None:
        oc, runner = self.config.output, self.runner
        atlas = runner.atlas or f"DiFuMo{len(runner.roi_names)}"
        if oc.bold_outlet or oc.feedback_outlet:
            from .outlets import BoldOutlet, FeedbackOutlet

            sid = oc.source_id
            if oc.bold_outlet:
                self._bold = BoldOutlet(runner.roi_names, tr=self.tr, name=f"{oc.name}-bold",
                                        source_id=f"{sid}-bold" if sid else None, atlas=atlas,
                                        model=runner.name)
            if oc.feedback_outlet:
                self._feedback = FeedbackOutlet(
                    oc.feedback_target, tr=self.tr, atlas=len(runner.roi_names),
                    baseline_trs=oc.feedback_baseline_trs, baseline=oc.feedback_baseline,
                    name=f"{oc.name}-feedback", source_id=f"{sid}-feedback" if sid else None)

    def _open_recorder(self, info) -> None:
        cfg, oc, runner = self.config, self.config.output, self.runner
        atlas = runner.atlas or f"DiFuMo{len(runner.roi_names)}"
        if oc.record:
            from .recorder import SessionRecorder

            self.session_dir = Path(cfg.session_dir or default_session_dir())
            inlet = self.inlet
            self.recorder = SessionRecorder(
                self.session_dir, roi_names=runner.roi_names, tr=self.tr, atlas=atlas,
                bundle={"path": str(cfg.bundle) if cfg.bundle else None, "name": runner.name,
                        "ch_names": runner.ch_names, "device": str(runner.device)},
                eeg_ch_names=inlet.ch_names, eeg_ch_types=inlet.ch_types, eeg_sfreq=inlet.sfreq,
                eeg_unit="uV",
                stream_info={"eeg": {"name": inlet.name, "type": inlet.stype,
                                     "source_id": inlet.source_id, "hostname": info.hostname(),
                                     "mapping": inlet.mapping.describe()
                                     if hasattr(inlet.mapping, "describe") else ""},
                             "config": _config_dict(cfg)},
                fsync=oc.fsync)
            for kind, t, text in self.events:  # events from before the recorder existed
                self._write_event(kind, t, text)

    # -- events and status ----------------------------------------------------------------------
    def _event(self, kind: str, t: float | None, text: str, *, kind_detail: str = "") -> None:
        self.events.append((kind_detail or kind, t, text))
        if len(self.events) > 10_000:
            del self.events[:5000]
        if kind == "warning":
            logger.warning(text)
            self._message = text
        else:
            logger.info(text)
        if self.recorder is not None:
            self._write_event(kind_detail or kind, t, text)

    def _write_event(self, kind: str, t: float | None, text: str) -> None:
        try:
            with self._rec_lock:
                self.recorder.write_event(kind, onset=t, description=text)
        except Exception as err:  # noqa: BLE001
            self._error(err)

    def _error(self, err: BaseException) -> None:
        logger.error("%s", err)
        self._message = f"error: {err}"
        if self.on_error is not None:
            try:
                self.on_error(err)
            except Exception:  # noqa: BLE001 - a failing callback must not kill a thread
                logger.exception("on_error callback failed")

    def _emit_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 0.5:
            return
        self._last_status = now
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:  # noqa: BLE001
                logger.exception("on_status callback failed")

    # -- worker callbacks (inference thread) ------------------------------------------------------
    def _publish(self, frame: Frame) -> float | None:
        if self._bold is not None:
            self._bold.push(frame.values, frame.t)
        if self._feedback is not None:
            return self._feedback.push(frame.values, frame.t)
        return None

    def _record_frame(self, frame: Frame) -> None:
        if self.recorder is not None:
            with self._rec_lock:
                self.recorder.write_frame(frame)

    def _record_skip(self, skip: Skip) -> None:
        if self.recorder is not None:
            with self._rec_lock:
                self.recorder.write_event("skipped_tick", onset=skip.t,
                                          description=f"TR {skip.index}: {skip.reason}",
                                          index=skip.index, reason=skip.reason,
                                          detail=skip.detail)

    def _measured_at(self, t: float) -> np.ndarray | None:
        best = None
        for tm, values in list(self._measured):
            if abs(tm - t) <= 0.5 * self.tr and (best is None or abs(tm - t) < abs(best[0] - t)):
                best = (tm, values)
        return None if best is None else best[1]

    # -- acquisition thread -----------------------------------------------------------------------
    def _acquire_loop(self) -> None:
        period = self.config.stream.pull_interval_s
        last_reopen = 0.0
        while not self._stop.is_set():
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                got = self._acquire_once()
                if not got and self.inlet.check_silence(self.config.stream.silence_s):
                    if not self._silent:
                        self._silent = True
                        self._event("warning", None, f"EEG stream {self.inlet.name!r} silent for "
                                    f"more than {self.config.stream.silence_s:g} s; waiting for it "
                                    "to come back", kind_detail="disconnected")
                    # liblsl recovers streams with a source id by itself; others are re-resolved.
                    if not self.inlet.has_source_id and time.monotonic() - last_reopen > 1.0:
                        last_reopen = time.monotonic()
                        self.inlet.reopen(0.2)
            except Exception as err:  # noqa: BLE001 - keep acquiring; report
                if type(err).__name__ == "LostError":
                    self.inlet.connected = False
                    if not self._silent:
                        self._silent = True
                        self._event("warning", None, f"EEG stream {self.inlet.name!r} lost "
                                    f"({err}); looking for it again", kind_detail="disconnected")
                    if time.monotonic() - last_reopen > 1.0:
                        last_reopen = time.monotonic()
                        self.inlet.reopen(0.2)
                else:
                    logger.exception("Acquisition error")
                    self._error(err)
                    self._stop.wait(0.1)
            busy = time.perf_counter() - t0
            self.acq_busy_s += busy
            self.acq_cpu_s += time.thread_time() - c0
            self.acq_iterations += 1
            self._emit_status()
            self._stop.wait(max(0.0, period - busy))

    def _acquire_once(self) -> bool:
        got = False
        while True:  # drain what is there, so a backlog cannot build up
            chunk = self.inlet.pull()
            if chunk is None:
                break
            got = True
            if self._silent:
                self._silent = False
                self._event("reconnect", float(chunk.times[0]),
                            f"EEG stream {self.inlet.name!r} is back (reconnection "
                            f"{self.inlet.n_reconnects})")
                self._message = ""
            self._ingest(chunk)
            if len(chunk.times) < self.inlet.max_chunk:
                break
        if self._measured_inlet is not None:
            ts, values = self._measured_inlet.pull()
            for t, v in zip(ts, values):
                self._measured.append((float(t), v.copy()))
        ticks: list[Tick] = []
        if self._marker_inlet is not None:
            markers = self._marker_inlet.pull()
            if markers:
                if self.recorder is not None:  # every marker, volume or not, is kept
                    with self._rec_lock:
                        for desc, t in markers:
                            self.recorder.write_event("marker", onset=t, description=desc)
                ticks += self.clock.on_markers(markers)
        elif self.clock.mode == "internal" and self._segment_start is not None:
            first_full = self._segment_start + self.ring.window_samples / self.ring.sfreq
            ticks += self.clock.on_data(first_full, self.ring.latest_time())
        for tick in ticks:
            self._enqueue(tick)
        return got

    def _enqueue(self, tick: Tick) -> None:
        seg, ring = self._segment_start, self.ring
        if seg is not None and tick.t - ring.window_samples / ring.sfreq < seg - 0.5 / ring.sfreq:
            # Before a full window of EEG exists (session start, after a long gap): no frame.
            after_gap = seg != self._first_time
            self.worker.skip(tick, "gap" if after_gap else "not_covered",
                             f"less than {ring.window_samples / ring.sfreq:g} s of continuous EEG "
                             f"before {tick.t:.3f} s" + (" (EEG gap)" if after_gap else ""))
            return
        try:
            self._ticks.put_nowait(tick)
        except queue.Full:
            try:  # drop the oldest: it is the stalest
                old = self._ticks.get_nowait()
                self.n_ticks_dropped += 1
                self.worker.skip(old, "queue_full", "inference is behind")
            except queue.Empty:
                pass
            self._ticks.put_nowait(tick)

    def _ingest(self, chunk) -> None:
        inlet, ring, rs = self.inlet, self.ring, self._preprocessor
        if self.recorder is not None and chunk.raw is not None:
            with self._rec_lock:
                self.recorder.write_eeg(chunk.raw.T, chunk.times)
        if self._segment_start is None:
            self._segment_start = self._first_time = float(chunk.times[0])
        bounds = [b.index for b in chunk.breaks] + [len(chunk.times)]
        start = 0
        for brk, stop in zip([None, *chunk.breaks], bounds):
            if brk is not None:
                self._handle_break(brk)
            if stop > start:
                out, times = rs.process(chunk.data[:, start:stop], chunk.times[start:stop])
                ring.write(out.astype(np.float32), times)
            start = stop
        for a, b in chunk.nan_spans:
            # The filter spreads a replaced sample over its length: flag that much around it.
            ring.mark_nan(a - 2 * rs.delay_s, b + 2 * rs.delay_s)
            self._event("nan", a, f"EEG stream {inlet.name!r}: NaN samples {a:.3f}-{b:.3f} s "
                        f"replaced ({inlet.nan_policy})")

    def _handle_break(self, brk) -> None:
        rs, ring = self._preprocessor, self.ring
        out, times = rs.flush()  # keep the samples up to the break
        if out.shape[1]:
            ring.write(out.astype(np.float32), times)
        rs.reset()
        settle = 2 * rs.delay_s + 1.0 / ring.sfreq
        if brk.kind == "jump":
            ring.reset()
            self.clock.restart_internal()
            self._segment_start = brk.t_after
            self._event("warning", brk.t_after,
                        f"EEG timestamps jumped back {brk.t_before - brk.t_after:.3f} s; "
                        "buffer restarted", kind_detail="clock_jump")
            return
        ring.mark_gap(brk.t_before - rs.delay_s, brk.t_after + settle)
        gap = brk.t_after - brk.t_before
        if gap > _LONG_GAP_S:
            self.clock.restart_internal()
            self._segment_start = brk.t_after
        self._event("gap", brk.t_before, f"EEG stream {self.inlet.name!r}: {brk.n_lost} sample(s) "
                    f"lost between {brk.t_before:.3f} and {brk.t_after:.3f} s")
        self._message = (f"gap: {brk.n_lost} samples lost at {brk.t_before:.3f} s "
                         f"(total {self.inlet.lost_samples})")


def _config_dict(cfg: LiveConfig) -> dict:
    from ..config import to_dict

    try:
        return to_dict(cfg)
    except Exception:  # noqa: BLE001
        return {}


def default_session_dir(root: str | Path = "sessions") -> Path:
    """``root/<YYYYmmdd-HHMMSS>``."""
    return Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")


__all__ = ["LiveEngine", "default_session_dir"]
