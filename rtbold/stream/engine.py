"""The headless live engine: wires acquisition, the inference worker and the sink.

Parts (ARCHITECTURE.md sections 1-2)::

    rtbold-acquisition (rtbold.stream.acquisition.Acquisition)
        inlets (each reconnects by itself) -> EEGPreprocessor -> RingBuffer; TRClock -> ticks
    rtbold-inference (rtbold.stream.worker.InferenceWorker)
        tick -> window -> model -> FrameSink.publish (LSL) -> FrameSink.record -> on_frame
    FrameSink (rtbold.stream.sink)
        outlets + recorder; skips and events

Every callback runs on one of these threads; a GUI forwards it with a Qt signal.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from .config import LiveConfig, check_session_dir, resolve_bundle
from .frames import EngineStatus, Frame
from .inlet import (EEGInlet, MarkerInlet, ValueInlet, describe_stream, resolve_stream,
                    try_resolve_any)
from .worker import InferenceWorker, ModelRunner, Skip

logger = logging.getLogger(__name__)


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
    on_measured : callable(index, t, values) | None
        Called from the acquisition thread with a measured-BOLD vector that came after its frame
        ``index`` was emitted (already recorded); on-time ones come in ``Frame.measured``. May
        also be set as an attribute before :meth:`start`.
    runner : ModelRunner | None
        An already loaded model (tests, benchmarks, the GUI's model cache); default: load
        ``config.bundle``.

    Notes
    -----
    :meth:`start` raises before any thread starts when the set-up is wrong: an existing session
    folder or a missing bundle (before the model is loaded), then StreamNotFoundError, and
    ValueError from the channel mapping, the rate or unit checks.
    """

    def __init__(self, config: LiveConfig, *, on_frame: Callable[[Frame], None] | None = None,
                 on_status: Callable[[EngineStatus], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 on_measured: Callable | None = None,
                 runner: ModelRunner | None = None) -> None:
        self.config = config
        self.on_frame, self.on_status, self.on_error = on_frame, on_status, on_error
        self.on_measured = on_measured
        self.runner = runner
        self.inlet: EEGInlet | None = None
        self.ring = None
        self.clock = None
        self.worker: InferenceWorker | None = None
        self.acquisition = None
        self.sink = None
        self.tr: float | None = None
        self._marker_inlet: MarkerInlet | None = None
        self._measured_inlet: ValueInlet | None = None
        #: In-session calibration (None: no recording, no measured BOLD or no bundle path).
        self.calibration = None
        self._last_status = 0.0
        self._started = False
        self._stopped = False

    # -- public -------------------------------------------------------------------------------
    @property
    def roi_names(self) -> list[str]:
        return list(self.runner.roi_names) if self.runner is not None else []

    @property
    def networks(self) -> list[str]:
        """Yeo-7 network of each region (empty when the regions are not DiFuMo names)."""
        try:
            from rtbold.atlas import atlas_for_regions

            return list(atlas_for_regions(self.roi_names).networks)
        except Exception:  # noqa: BLE001 - unknown regions: no network names
            return []

    @property
    def feedback_target(self):
        """The feedback value's :class:`~rtbold.stream.outlets.FeedbackTarget` (None before
        the model is known)."""
        if self.runner is None:
            return None
        from .outlets import FeedbackTarget

        return FeedbackTarget.parse(self.config.output.feedback_target, self.runner.roi_names)

    @property
    def session_dir(self) -> Path | None:
        return self.sink.session_dir if self.sink is not None else None

    @property
    def recorder(self):
        return self.sink.recorder if self.sink is not None else None

    @property
    def events(self) -> list[tuple[str, float | None, str]]:
        return list(self.sink.events) if self.sink is not None else []

    @property
    def n_ticks_dropped(self) -> int:
        return self.acquisition.n_ticks_dropped if self.acquisition is not None else 0

    def start(self) -> None:
        """Check the set-up, load the model, connect to the streams and start the threads."""
        if self._started:
            raise RuntimeError("LiveEngine.start() was already called; create a new engine.")
        try:
            self._start()
        except BaseException:
            self.stop()  # close whatever was opened (inlets, outlets, session folder)
            raise

    def _start(self) -> None:
        from ..config import ConfigError

        cfg = self.config
        sc = cfg.stream
        # What needs neither a model nor a stream first.
        check_session_dir(cfg.session_dir)
        # settings made in code are range-checked here, not first in the calibration process
        from ..calibration.config import load_calibration_config
        from ..config import to_dict

        load_calibration_config(to_dict(cfg.calibration), "live.calibration")
        if self.runner is None:
            if cfg.bundle is None:
                raise ConfigError("live.bundle: no model bundle given; set bundle in [live] or "
                                  "pass --bundle PATH.")
            self.runner = ModelRunner.from_bundle(resolve_bundle(cfg.bundle), cfg.device)
        runner = self.runner
        if abs(runner.sfreq - 200.0) > 1e-6:
            raise ValueError(f"Bundle {runner.name} expects {runner.sfreq:g} Hz input; the live "
                             "engine feeds 200 Hz windows.")
        self.tr = cfg.trigger.tr or runner.tr
        if not self.tr:
            raise ValueError("Unknown TR: the bundle does not store one; set live.trigger.tr "
                             "(--tr).")
        from .outlets import FeedbackTarget

        FeedbackTarget.parse(cfg.output.feedback_target, runner.roi_names)  # fails early
        self._set_threads()
        t_fwd = runner.warmup(cfg.worker.warmup)
        runner.reset_session()  # a session-normalised model starts its statistics with this run
        logger.info("Model %s on %s: forward %.1f ms after warm-up", runner.name, runner.device,
                    t_fwd * 1e3)
        info = resolve_stream(sc.name, sc.type, sc.source_id, timeout=sc.resolve_timeout_s)
        self.inlet = EEGInlet(
            info, runner.ch_names, policy=sc.channel_policy, units=sc.units,
            clock_sync=sc.clock_sync, dejitter=sc.dejitter, nan_policy=sc.nan_policy,
            jitter_tolerance=sc.jitter_tolerance, max_buflen_s=sc.max_buflen_s,
            min_sfreq=sc.min_sfreq, reconnect_s=sc.reconnect_s, max_filled=sc.max_filled)
        from ..preprocessing import EEGPreprocessor
        from .acquisition import Acquisition
        from .ringbuffer import RingBuffer
        from .sink import open_recorder, open_sink
        from .trclock import TRClock

        self.sink = open_sink(cfg, runner, self.inlet, self.tr)
        self.sink.on_error = self._error
        self.sink.on_measured = self.on_measured
        if cfg.output.record:
            self.sink.attach_recorder(open_recorder(
                cfg, runner, self.inlet, self.tr,
                Path(cfg.session_dir or default_session_dir())))
        self.clock = TRClock(self.tr, cfg.trigger.source, cfg.trigger.marker)
        if cfg.trigger.source == "markers":
            self._connect_markers(info.name())
        else:
            self.sink.event("clock", None, f"internal TR clock every {self.tr:g} s of stream "
                            "time", status=True)
        if cfg.measured.enabled:
            self._connect_measured(info.name())
        # The shared chain after channel mapping (done by the inlet): MR-artefact correction
        # (when asked for), resampling to 200 Hz and the high-pass the model was trained with,
        # exactly as offline (prepare_scan).
        pre = EEGPreprocessor(self.inlet.sfreq, n_channels=len(runner.ch_names),
                              highpass_hz=runner.highpass_hz, corrector=self._make_corrector())
        self.ring = RingBuffer(len(runner.ch_names), cfg.buffer_s)
        worker_ref: dict = {}
        self.acquisition = acq = Acquisition(
            self.inlet, self.ring, pre, self.clock, self.sink, cfg, markers=self._marker_inlet,
            measured=self._measured_inlet,
            busy_t=lambda: worker_ref["w"].busy_t if "w" in worker_ref else None)
        acq.on_idle = self._emit_status
        from .quality import OutputCheck

        self.worker = InferenceWorker(
            self.ring, runner, acq.ticks, tr=self.tr, sink=self.sink,
            measured=acq.measured.claim if acq.measured is not None else None,
            on_frame=self.on_frame, on_error=self._error, skip_stale=cfg.worker.skip_stale,
            max_wait_s=cfg.worker.max_wait_s, extra_flags=self._extra_flags,
            output_check=OutputCheck(cfg.worker.constant_trs))
        worker_ref["w"] = self.worker
        self._start_calibration()
        self._started = True
        self.worker.start()
        acq.start()
        if self.calibration is not None:
            self.calibration.start()

    def _start_calibration(self) -> None:
        """In-session calibration needs the recorded session, measured BOLD and the bundle's
        file (the separate process starts from it)."""
        cfg = self.config
        if not (cfg.output.record and cfg.measured.enabled and cfg.bundle is not None
                and self.sink.session_dir is not None):
            if cfg.calibration.after_min > 0:
                self.sink.event("calibration", None, "live.calibration.after_min is set but "
                                "calibration needs live.output.record, live.measured.enabled "
                                "and a bundle path; it is off", warn=True)
            return
        from ..calibration.live import LiveCalibration

        self.calibration = LiveCalibration(cfg.calibration, self.sink.session_dir, self.runner,
                                           resolve_bundle(cfg.bundle), self.tr, self.sink)

    def request_calibration(self) -> str:
        """Start a calibration now (the GUI's button); returns what happens, in words."""
        if self.calibration is None:
            return ("calibration is not available: it needs a recorded session "
                    "(live.output.record), measured BOLD (live.measured) and a bundle path")
        return self.calibration.request()

    def _make_corrector(self):
        """The MR-artefact corrector for this stream (None when the correction is off)."""
        import dataclasses

        cfg, inlet = self.config, self.inlet
        ac = cfg.artifacts
        if not ac.enabled:
            return None
        from ..artifacts import MRCorrector
        from ..channels import find_ecg

        what = f"EEG stream {inlet.name!r}"
        ecg = find_ecg(inlet.ch_names, inlet.ch_types, ac.ecg_channel, what=what)
        if ecg is None and ac.bcg != "off":
            self.sink.event("warning", None, f"{what} has no ECG channel (no channel of type ECG "
                            "or named ECG/EKG; set live.artifacts.ecg_channel): BCG correction "
                            "is off, frames flagged 'bcg'", warn=True, status=True)
        if ac.gradient != "off" and cfg.trigger.source != "markers":
            self.sink.event("warning", None, "gradient correction needs the scanner's volume "
                            "markers (live.trigger.source = 'markers'); it is off", warn=True,
                            status=True)
            ac = dataclasses.replace(ac, gradient="off")
        if ac.gradient != "off" and inlet.sfreq < 1000:
            self.sink.event("warning", None, f"{what} runs at {inlet.sfreq:g} Hz: the gradient "
                            "artefact is only sampled well at an MR amplifier's rate (5 kHz)",
                            warn=True)
        if not ac.enabled:
            return None
        inlet.ecg_index = ecg
        corrector = MRCorrector(inlet.sfreq, len(self.runner.ch_names), ac, self.tr,
                                has_ecg=ecg is not None)
        ecg_text = f"ECG channel {inlet.ch_names[ecg]!r}" if ecg is not None else "no ECG"
        self.sink.event("artifacts", None, f"MR-artefact correction at {inlet.sfreq:g} Hz: "
                        f"{ac.summary()}; {ecg_text}", status=True)
        return corrector

    def _extra_flags(self, tick) -> tuple[str, ...]:
        flags = ("internal_clock",) if tick.source == "internal" else ()
        if tick.source == "inferred":
            flags += ("trigger",)
        if self.acquisition is not None and self.acquisition.amplitude_flag:
            flags += ("amplitude",)
        return flags

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads, finish the TR in flight, close outlets and the session folder."""
        if self._stopped:
            return
        self._stopped = True
        acq = self.acquisition
        if acq is not None and acq.ident is not None:
            acq.stop()
            acq.join(timeout)
        if self.worker is not None and self.worker.ident is not None:  # started
            # Let the worker finish ticks whose data already arrived, then stop it.
            deadline = time.monotonic() + min(timeout, 2.0 * (self.tr or 1.0))
            while (acq is not None and not acq.ticks.empty()
                   and time.monotonic() < deadline and self.worker.is_alive()):
                time.sleep(0.01)
            self.worker.stop()
            self.worker.join(timeout)
            if acq is not None:  # every tick is accounted for: those left are recorded
                from .sink import Skip

                while not acq.ticks.empty():
                    tick = acq.ticks.get_nowait()
                    self.sink.skip(Skip(tick.index, tick.t, "stopped", "the engine stopped"))
        if self.calibration is not None:
            self.calibration.stop()
        for inlet in (self.inlet, self._marker_inlet, self._measured_inlet):
            if inlet is not None:
                inlet.close()
        if self.sink is not None:
            self.sink.close(n_frames=self.n_frames, n_skipped=self.n_skipped,
                            lost_samples=self.inlet.lost_samples if self.inlet else 0)
        self._emit_status(force=True)

    def __enter__(self) -> "LiveEngine":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def marker_stream(self) -> str | None:
        """Name of the marker stream the TR clock follows (None: internal clock)."""
        mk = self._marker_inlet
        return mk.name if mk is not None and self.clock.mode == "markers" else None

    @property
    def n_frames(self) -> int:
        return self.worker.n_frames if self.worker is not None else 0

    @property
    def n_skipped(self) -> int:
        return self.sink.n_skipped if self.sink is not None else 0

    @property
    def skips(self) -> list[Skip]:
        return list(self.sink.skips) if self.sink is not None else []

    def status(self) -> EngineStatus:
        """Current state (thread-safe snapshot)."""
        inlet, ring, acq, mi = self.inlet, self.ring, self.acquisition, self._measured_inlet
        streams = {}
        for role, s in (("eeg", inlet), ("markers", self._marker_inlet),
                        ("measured", self._measured_inlet)):
            if s is not None:
                streams[role] = f"{s.name}: {s.describe_state()}"
        quality = {}
        if acq is not None:
            quality = {f: list(c) for f, c in acq.quality.current.items() if c}
        return EngineStatus(
            connected=bool(inlet is not None and inlet.connected),
            stream_name=inlet.name if inlet is not None else (self.config.stream.name or ""),
            effective_sfreq=inlet.effective_sfreq if inlet is not None else 0.0,
            lost_samples=inlet.lost_samples if inlet is not None else 0,
            buffer_fill=ring.fill if ring is not None else 0.0,
            last_tick=self.clock.last_t if self.clock is not None else None,
            device=str(self.runner.device) if self.runner is not None else "",
            bundle=self.runner.name if self.runner is not None else "",
            n_frames=self.n_frames, n_skipped=self.n_skipped,
            message=self.sink.message if self.sink is not None else "",
            waiting_for=acq.waiting_for if acq is not None else "",
            streams=streams,
            clock=self.clock.mode if self.clock is not None else "",
            n_reconnects=sum(s.n_reconnects for s in (inlet, self._marker_inlet,
                                                      self._measured_inlet) if s is not None),
            bad_channels=quality,
            measured=mi.note if mi is not None else "",
            measured_regions=(mi.match.n_common if mi is not None and mi.match is not None
                              else None),
            measured_counts=(dict(acq.measured.counts) if acq is not None
                             and acq.measured is not None else {}),
            artifacts=self.artifact_status.line() if self.artifact_status is not None else "",
            calibration=self.calibration.line() if self.calibration is not None else "")

    @property
    def artifact_status(self):
        """:class:`rtbold.artifacts.ArtifactStatus` of the MR-artefact correction (None: off)."""
        acq = self.acquisition
        corr = acq.pre.corrector if acq is not None else None
        return corr.status() if corr is not None else None

    # -- setup ----------------------------------------------------------------------------------
    def _set_threads(self) -> None:
        n = self.config.worker.torch_threads
        if n and str(self.runner.device) == "cpu":
            import torch

            if torch.get_num_threads() != n:
                torch.set_num_threads(n)

    def _connect_markers(self, eeg: str) -> None:
        tc, clock_sync = self.config.trigger, self.config.stream.clock_sync
        names = [tc.name] if tc.name else [f"{eeg}-markers", f"{eeg}-annotations"]
        info = try_resolve_any(names, tc.source_id, timeout=tc.resolve_timeout_s)
        self._marker_inlet = MarkerInlet(info, names=names, source_id=tc.source_id,
                                         clock_sync=clock_sync)
        if info is not None:
            self.sink.event("clock", None, f"TR ticks from marker stream {describe_stream(info)}, "
                            f"marker {tc.marker!r}", status=True)
            return
        reason = (f"marker stream {' or '.join(repr(n) for n in names)} not found within "
                  f"{tc.resolve_timeout_s:g} s")
        self.clock.fall_back(reason)
        self.sink.event("trigger_fallback", None, f"{reason}; using the internal TR clock "
                        f"(every {self.tr:g} s of stream time, frames not scanner-aligned) and "
                        "still looking for it", warn=True)

    def _connect_measured(self, eeg: str) -> None:
        mc = self.config.measured
        names = [mc.name or f"{eeg}-measured-bold"]
        info = try_resolve_any(names, None, timeout=mc.resolve_timeout_s)
        # regions are matched by name (the inlet says how, and why not when none match)
        self._measured_inlet = ValueInlet(info, roi_names=self.roi_names,
                                          atlas=self.runner.atlas, names=names,
                                          clock_sync=self.config.stream.clock_sync)
        if info is not None:
            self.sink.event("measured", None, f"measured BOLD from {describe_stream(info)}")

    # -- events and status ----------------------------------------------------------------------
    def _error(self, err: BaseException) -> None:
        logger.error("%s", err)
        if self.sink is not None:
            self.sink.message = f"error: {err}"
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

    # -- benchmarks ---------------------------------------------------------------------------------
    @property
    def acq_busy_s(self) -> float:
        return self.acquisition.acq_busy_s if self.acquisition is not None else 0.0

    @property
    def acq_cpu_s(self) -> float:
        return self.acquisition.acq_cpu_s if self.acquisition is not None else 0.0

    @property
    def acq_iterations(self) -> int:
        return self.acquisition.acq_iterations if self.acquisition is not None else 0


def default_session_dir(root: str | Path = "sessions") -> Path:
    """``root/<YYYYmmdd-HHMMSS>``."""
    return Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")


__all__ = ["LiveEngine", "default_session_dir"]
