"""Inference worker: one thread that turns TR ticks into predicted BOLD frames.

For each tick it waits (on the ring buffer's condition, never polling the acquisition thread)
until the EEG covers the tick's window in stream time, takes the window with
:func:`rtbold.preprocessing.extract_window`, runs the model, publishes the frame on LSL, records
it, and only then hands it to ``on_frame`` (the GUI). Ticks arrive through a bounded queue; when
the worker falls behind, stale ticks are skipped and recorded as such, so acquisition never waits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .frames import Frame
from .ringbuffer import RingBuffer
from .sink import Skip
from .trclock import Tick

logger = logging.getLogger(__name__)


@dataclass
class ModelRunner:
    """A loaded model and what the engine needs to know about it.

    Build with :meth:`from_bundle` (a saved bundle) or directly from a torch module.
    """

    model: Any  # torch.nn.Module
    ch_names: list[str]
    roi_names: list[str]
    tr: float | None = None
    sfreq: float = 200.0
    name: str = ""
    device: Any = "cpu"
    atlas: str = ""
    #: EEG high-pass (Hz) the model was trained with; the live chain applies the same filter.
    highpass_hz: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: running statistics of a session-normalised model (rtbold.models.SessionNormaliser):
    #: every predicted window updates them, as the offline evaluator's causal statistics do
    _session: Any = field(default=None, repr=False)
    _session_features: Any = field(default=None, repr=False)

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "auto") -> "ModelRunner":
        """Load a bundle (no unpickling) onto the selected device."""
        from rtbold.models import load_bundle, select_device

        dev = select_device(device)
        model, meta = load_bundle(path, device=dev)
        from ..preprocessing import EEG_SCALE, SFREQ, WINDOW_S

        try:  # what the live chain feeds: 200 Hz, 16-s windows, µV / 100
            meta.check_compatible(sfreq=SFREQ)
        except ValueError as err:
            raise ValueError(f"Model bundle {path}: {err}. Retrain or convert it.") from None
        for key, want in (("window_s", WINDOW_S), ("eeg_scale", EEG_SCALE)):
            got = getattr(meta, key)
            if abs(float(got) - want) > 1e-9:
                raise ValueError(f"Model bundle {path} expects {key}={got}; the live engine feeds "
                                 f"{key}={want:g} (rtbold.preprocessing). Retrain or convert it.")
        return cls(model=model, ch_names=list(meta.ch_names), roi_names=list(meta.roi_names),
                   tr=float(meta.tr) if meta.tr else None, sfreq=SFREQ,
                   name=f"{meta.model_name}-{meta.model_size} ({Path(path).name})",
                   device=dev, atlas=meta.atlas or "", highpass_hz=meta.eeg_highpass_hz)

    def __post_init__(self) -> None:
        import torch

        self.model.eval()
        self.device = torch.device(self.device) if not isinstance(self.device, torch.device) \
            else self.device
        self.model.to(self.device)
        from rtbold.models import session_features

        self._session_features = session_features(self.model)
        self._session = (self._session_features.session_normaliser()
                         if self._session_features is not None else None)

    @property
    def session_windows(self) -> int | None:
        """Windows in the session statistics so far (None: the model has no session norm)."""
        return None if self._session is None else self._session.n

    def reset_session(self) -> None:
        """Start the session statistics afresh (a new recording or participant)."""
        if self._session is not None:
            with self._lock:
                self._session.reset()

    def swap_bundle(self, path: str | Path) -> None:
        """Replace the model by another bundle for the same channels, regions and preprocessing
        (a participant's calibrated bundle), between two TRs.

        The new model is loaded and warmed up first; only the swap itself holds the lock, so no
        TR waits on the loading. The session statistics of a session-normalised model go on
        (the calibrated bundle keeps its start's band-power features and prior).

        Raises
        ------
        ValueError
            The bundle predicts other regions, takes other channels, or was trained with another
            high-pass.
        """
        new = ModelRunner.from_bundle(path, device=str(self.device))
        for key in ("ch_names", "roi_names", "highpass_hz"):
            if getattr(new, key) != getattr(self, key):
                raise ValueError(f"Bundle {path}: its {key} differ from the running model's; "
                                 "only a bundle calibrated from it can be swapped in live.")
        if (new._session is None) != (self._session is None):
            raise ValueError(f"Bundle {path}: session normalisation differs from the running "
                             "model's; it cannot take over the session statistics.")
        new.warmup(1)
        with self._lock:
            self.model, self._session_features = new.model, new._session_features
            self.name = new.name

    def predict(self, window: np.ndarray, *, update_session: bool = True) -> np.ndarray:
        """(C, n) float32 window -> (P,) float32 prediction.

        A session-normalised model first adds the window's band power to the session statistics
        (``update_session=False`` uses them without adding, e.g. for a warm-up).
        """
        import torch

        with self._lock, torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None]
            x = x.to(self.device)
            kwargs = {}
            if self._session is not None:
                f = self._session_features.log_power(x)[0].reshape(-1).cpu().numpy()
                mean, scale = (self._session.update(f) if update_session
                               else self._session.stats())
                kwargs["feature_stats"] = tuple(
                    torch.as_tensor(v, dtype=torch.float32, device=self.device)[None]
                    for v in (mean, scale))
            y = self.model(x, **kwargs)
            return y[0].detach().to("cpu").numpy().astype(np.float32, copy=False)

    def warmup(self, n: int, n_samples: int = 3200) -> float:
        """Run ``n`` forward passes on zeros; returns the last one's duration (s). The session
        statistics are not touched."""
        x = np.zeros((len(self.ch_names), n_samples), dtype=np.float32)
        dt = 0.0
        for _ in range(n):
            t0 = time.perf_counter()
            self.predict(x, update_session=False)
            dt = time.perf_counter() - t0
        return dt


class InferenceWorker(threading.Thread):
    """Consume ticks from ``ticks``; see the module docstring.

    Parameters
    ----------
    ring : RingBuffer
    runner : ModelRunner
    ticks : queue.Queue of Tick
    tr : float
        Stream-time TR. A frame published more than one TR after its volume (LSL clock) is
        flagged ``"late"``; with ``skip_stale`` a tick more than one TR in the past is skipped
        when a newer one waits. Both compare with the LSL clock, so a replay running ahead of
        real time (10x, fast) is never late nor stale: its speed changes no flag.
    sink : FrameSink | None
        Publishes and records frames, records skips.
    measured : callable(index, t) -> array | None
        Measured BOLD of the frame ``index`` at stream time ``t`` when it is already in (a
        measured-bold stream is present; :meth:`rtbold.stream.pairing.MeasuredPairing.claim`).
    on_frame, on_error : callables
    skip_stale : bool
    max_wait_s : float
    extra_flags : callable(tick) -> tuple of str
        Flags from the engine's state (``internal_clock``, ``amplitude``).
    output_check : OutputCheck | None
        Flags of the prediction itself (``nonfinite``, ``constant``).
    """

    def __init__(self, ring: RingBuffer, runner: ModelRunner, ticks: "queue.Queue[Tick]", *,
                 tr: float, sink=None, measured: Callable | None = None,
                 on_frame: Callable | None = None, on_error: Callable | None = None,
                 skip_stale: bool = True, max_wait_s: float = 5.0,
                 extra_flags: Callable[[Tick], tuple[str, ...]] | None = None,
                 output_check=None) -> None:
        super().__init__(name="rtbold-inference", daemon=True)
        from .quality import OutputCheck
        from .sink import FrameSink

        self.ring, self.runner, self.ticks, self.tr = ring, runner, ticks, float(tr)
        self.sink = sink if sink is not None else FrameSink()
        self._measured, self._on_frame, self._on_error = measured, on_frame, on_error
        self._extra_flags = extra_flags
        self.output_check = output_check if output_check is not None else OutputCheck()
        self.skip_stale, self.max_wait_s = skip_stale, float(max_wait_s)
        self.stop_event = threading.Event()
        self.n_frames = 0
        self.last_frame: Frame | None = None
        #: Stream time of the tick being handled (None when idle): acquisition does not overwrite
        #: its window (back-pressure).
        self.busy_t: float | None = None
        #: Optional ``callable(tick, window)`` called with every model input (parity tests).
        self.window_hook: Callable | None = None

    @property
    def n_skipped(self) -> int:
        return self.sink.n_skipped

    @property
    def skips(self) -> list[Skip]:
        return list(self.sink.skips)

    def stop(self) -> None:
        self.stop_event.set()
        with self.ring.cond:
            self.ring.cond.notify_all()

    def skip(self, tick: Tick, reason: str, detail: str = "") -> None:
        try:
            self.sink.skip(Skip(tick.index, tick.t, reason, detail))
        except Exception:  # noqa: BLE001 - reported, worker goes on
            logger.exception("Recording a skipped TR failed")

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                tick = self.ticks.get(timeout=0.1)
            except queue.Empty:
                continue
            self.busy_t = tick.t
            try:
                self._handle(tick)
            except Exception as err:  # noqa: BLE001 - one bad TR must not end the session
                logger.exception("TR %d at %.3f s failed", tick.index, tick.t)
                self.skip(tick, "error", str(err))
                if self._on_error is not None:
                    self._on_error(err)
            finally:
                self.busy_t = None

    def _wait_covered(self, t: float) -> bool:
        deadline = time.monotonic() + self.max_wait_s
        with self.ring.cond:
            while not self.ring.covers(t):
                left = deadline - time.monotonic()
                if left <= 0 or self.stop_event.is_set():
                    return False
                self.ring.cond.wait(min(left, 0.1))
        return True

    def _too_early(self, tick: Tick) -> str | None:
        """Skip reason when the window's start is already before the oldest buffered sample."""
        ring = self.ring
        oldest = ring.oldest_time()
        if oldest is None:
            return None
        start = tick.t - ring.window_samples / ring.sfreq
        if start >= oldest - 0.5 / ring.sfreq:
            return None
        # A wrapped buffer lost the window's start to newer data; otherwise the session (or the
        # segment after a clock jump) started less than a window before the tick.
        return "stale" if ring.n_written > ring.capacity else "not_covered"

    def _handle(self, tick: Tick) -> None:
        import pylsl

        reason = self._too_early(tick)
        if reason is not None:
            start = tick.t - self.ring.window_samples / self.ring.sfreq
            self.skip(tick, reason, f"window starts at {start:.3f} s, before the oldest "
                      f"buffered EEG ({self.ring.oldest_time():.3f} s)")
            return
        if self.skip_stale and not self.ticks.empty():
            behind = pylsl.local_clock() - tick.t
            if behind > self.tr:
                self.skip(tick, "stale", f"{behind:.2f} s behind real time, newer TRs waiting")
                return
        if not self._wait_covered(tick.t):
            if self.stop_event.is_set():
                self.skip(tick, "stopped", "the engine stopped before its EEG came")
            else:
                self.skip(tick, "timeout", f"no EEG up to {tick.t:.3f} s within "
                          f"{self.max_wait_s:g} s")
            return
        lat: dict[str, float] = {"window_ready": time.perf_counter() - tick.wall}
        try:
            window = self.ring.window(tick.t)
        except ValueError as err:
            msg = str(err)
            self.skip(tick, "gap" if "gap" in msg else "not_covered", msg)
            return
        if self.window_hook is not None:
            self.window_hook(tick, window)
        flags = list(self.ring.flags(tick.t))
        if self._extra_flags is not None:
            flags.extend(self._extra_flags(tick))
        lat["inference_start"] = time.perf_counter() - tick.wall
        values = self.runner.predict(window)
        lat["inference_end"] = time.perf_counter() - tick.wall
        flags.extend(self.output_check.flags(values))
        frame = Frame(index=tick.index, t=tick.t, values=values, flags=tuple(flags), latency=lat,
                      measured=self._measured(tick.index, tick.t) if self._measured is not None else None)
        self.sink.publish(frame)
        lat["published"] = time.perf_counter() - tick.wall
        if pylsl.local_clock() - tick.t > self.tr:
            flags.append("late")
        frame.flags = tuple(dict.fromkeys(flags))
        self.sink.record(frame)
        lat["recorded"] = time.perf_counter() - tick.wall
        self.n_frames += 1
        self.last_frame = frame
        if self._on_frame is not None:
            try:
                self._on_frame(frame)
            except Exception as err:  # noqa: BLE001 - a display bug must not cost a frame
                logger.exception("on_frame callback failed for TR %d", tick.index)
                if self._on_error is not None:
                    self._on_error(err)
