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
from .trclock import Tick

logger = logging.getLogger(__name__)


def _meta_get(meta: Any, *names: str, default: Any = None) -> Any:
    """Field of a bundle's metadata (attribute or mapping), trying several names."""
    for name in names:
        if isinstance(meta, dict) and name in meta:
            return meta[name]
        if hasattr(meta, name):
            return getattr(meta, name)
    for sub in ("metadata", "extra"):
        inner = meta.get(sub) if isinstance(meta, dict) else getattr(meta, sub, None)
        if isinstance(inner, dict):
            for name in names:
                if name in inner:
                    return inner[name]
    return default


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

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "auto") -> "ModelRunner":
        """Load a bundle (no unpickling) onto the selected device."""
        from rtbold.models import load_bundle, select_device

        dev = select_device(device)
        model, meta = load_bundle(path, device=dev)
        ch_names = _meta_get(meta, "ch_names")
        roi_names = _meta_get(meta, "roi_names")
        if not ch_names or not roi_names:
            raise ValueError(f"Model bundle {path} does not name its channels and regions "
                             "(ch_names / roi_names); re-save it with rtbold's trainer.")
        from ..preprocessing import EEG_SCALE, SFREQ, WINDOW_S

        for key, want in (("sfreq", SFREQ), ("window_s", WINDOW_S), ("eeg_scale", EEG_SCALE)):
            got = _meta_get(meta, key, default=want)
            if got is not None and abs(float(got) - want) > 1e-9:
                raise ValueError(f"Model bundle {path} expects {key}={got}; the live engine feeds "
                                 f"{key}={want:g} (rtbold.preprocessing). Retrain or convert it.")
        tr = _meta_get(meta, "tr")
        name = _meta_get(meta, "model_name", "name", default="") or ""
        size = _meta_get(meta, "model_size", default="") or ""
        return cls(model=model, ch_names=list(ch_names), roi_names=list(roi_names),
                   tr=float(tr) if tr else None, sfreq=SFREQ,
                   name=f"{name}-{size} ({Path(path).name})" if name else Path(path).name,
                   device=dev, atlas=str(_meta_get(meta, "atlas", default="") or ""),
                   highpass_hz=_meta_get(meta, "eeg_highpass_hz"))

    def __post_init__(self) -> None:
        import torch

        self.model.eval()
        self.device = torch.device(self.device) if not isinstance(self.device, torch.device) \
            else self.device
        self.model.to(self.device)

    def predict(self, window: np.ndarray) -> np.ndarray:
        """(C, n) float32 window -> (P,) float32 prediction."""
        import torch

        with self._lock, torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None]
            y = self.model(x.to(self.device))
            return y[0].detach().to("cpu").numpy().astype(np.float32, copy=False)

    def warmup(self, n: int, n_samples: int = 3200) -> float:
        """Run ``n`` forward passes on zeros; returns the last one's duration (s)."""
        x = np.zeros((len(self.ch_names), n_samples), dtype=np.float32)
        dt = 0.0
        for _ in range(n):
            t0 = time.perf_counter()
            self.predict(x)
            dt = time.perf_counter() - t0
        return dt


@dataclass
class Skip:
    """A tick that produced no frame."""

    index: int
    t: float
    reason: str  # "stale" | "queue_full" | "not_covered" | "gap" | "timeout" | "error"
    detail: str = ""


class InferenceWorker(threading.Thread):
    """Consume ticks from ``ticks``; see the module docstring.

    Parameters
    ----------
    ring : RingBuffer
    runner : ModelRunner
    ticks : queue.Queue of Tick
    tr : float
        Stream-time TR (a frame published more than one TR after its tick is flagged "late").
    publish : callable(Frame) -> float | None
        Pushes the frame to the LSL outlets; returns the feedback value.
    record : callable(Frame) | None
        Writes the frame (append-only) before it is displayed.
    record_skip : callable(Skip) | None
    measured : callable(t) -> array | None
        Measured BOLD at stream time t, when a measured-bold stream is present.
    on_frame, on_error : callables
    skip_stale : bool
    max_wait_s : float
    """

    def __init__(self, ring: RingBuffer, runner: ModelRunner, ticks: "queue.Queue[Tick]", *,
                 tr: float, publish: Callable | None = None, record: Callable | None = None,
                 record_skip: Callable | None = None, measured: Callable | None = None,
                 on_frame: Callable | None = None, on_error: Callable | None = None,
                 skip_stale: bool = True, max_wait_s: float = 5.0,
                 extra_flags: Callable[[Tick], tuple[str, ...]] | None = None) -> None:
        super().__init__(name="rtbold-inference", daemon=True)
        self.ring, self.runner, self.ticks, self.tr = ring, runner, ticks, float(tr)
        self._publish, self._record, self._record_skip = publish, record, record_skip
        self._measured, self._on_frame, self._on_error = measured, on_frame, on_error
        self._extra_flags = extra_flags
        self.skip_stale, self.max_wait_s = skip_stale, float(max_wait_s)
        self.stop_event = threading.Event()
        self.n_frames = 0
        self.skips: list[Skip] = []
        self.last_frame: Frame | None = None
        #: Optional ``callable(tick, window)`` called with every model input (parity tests).
        self.window_hook: Callable | None = None

    @property
    def n_skipped(self) -> int:
        return len(self.skips)

    def stop(self) -> None:
        self.stop_event.set()
        with self.ring.cond:
            self.ring.cond.notify_all()

    def skip(self, tick: Tick, reason: str, detail: str = "") -> None:
        s = Skip(tick.index, tick.t, reason, detail)
        self.skips.append(s)
        if len(self.skips) > 10_000:  # bounded memory; the recorder keeps the full list
            del self.skips[:5000]
        log = logger.info if reason == "not_covered" else logger.warning
        log("TR %d at %.3f s skipped: %s%s", tick.index, tick.t, reason,
            f" ({detail})" if detail else "")
        if self._record_skip is not None:
            try:
                self._record_skip(s)
            except Exception:  # noqa: BLE001 - reported, worker goes on
                logger.exception("Recording a skipped TR failed")

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                tick = self.ticks.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._handle(tick)
            except Exception as err:  # noqa: BLE001 - one bad TR must not end the session
                logger.exception("TR %d at %.3f s failed", tick.index, tick.t)
                self.skip(tick, "error", str(err))
                if self._on_error is not None:
                    self._on_error(err)

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
        # segment after a reconnection) started less than a window before the tick.
        return "stale" if ring.n_written > ring.capacity else "not_covered"

    def _handle(self, tick: Tick) -> None:
        reason = self._too_early(tick)
        if reason is not None:
            start = tick.t - self.ring.window_samples / self.ring.sfreq
            self.skip(tick, reason, f"window starts at {start:.3f} s, before the oldest "
                      f"buffered EEG ({self.ring.oldest_time():.3f} s)")
            return
        if self.skip_stale and not self.ticks.empty():
            latest = self.ring.latest_time()
            if latest is not None and latest - tick.t > self.tr:
                self.skip(tick, "stale", f"{latest - tick.t:.2f} s behind the stream")
                return
        if not self._wait_covered(tick.t):
            if not self.stop_event.is_set():
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
        frame = Frame(index=tick.index, t=tick.t, values=values, flags=(), latency=lat,
                      measured=self._measured(tick.t) if self._measured is not None else None)
        if self._publish is not None:
            frame.feedback = self._publish(frame)
        lat["published"] = time.perf_counter() - tick.wall
        if lat["published"] > self.tr:
            flags.append("late")
        frame.flags = tuple(dict.fromkeys(flags))
        if self._record is not None:
            self._record(frame)
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
