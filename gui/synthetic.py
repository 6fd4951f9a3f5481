"""Synthetic frames for demos without an engine, the GUI tests and the GUI benchmark.

The values are an AR(1) process whose spatial covariance is the real group FC of the VU scans
(``rtbold.atlas.load_group_fc``), so the FC view shows a realistic network structure. This is test
input for the display, not a model of the brain.
"""

from __future__ import annotations

import numpy as np

from rtbold.atlas import load_atlas, load_group_fc

try:  # the engine's dataclass when present; same fields otherwise
    from rtbold.stream.frames import Frame
except ImportError:  # pragma: no cover - only before rtbold.stream.frames exists
    from dataclasses import dataclass, field

    @dataclass
    class Frame:  # type: ignore[no-redef]
        index: int
        t: float
        values: np.ndarray
        feedback: float | None = None
        flags: tuple = ()
        latency: dict = field(default_factory=dict)
        measured: np.ndarray | None = None


class SyntheticFrames:
    """Generate plausible frames one TR at a time.

    Parameters
    ----------
    n_regions : int
        P (64 uses the group FC; other sizes use independent regions with a shared component).
    tr : float
        Seconds between frames (stream time).
    measured : bool
        Also produce a noisy "measured" series correlated with the prediction.
    seed : int
    """

    def __init__(self, n_regions: int = 64, tr: float = 2.1, measured: bool = True,
                 seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_regions, self.tr, self.with_measured = n_regions, tr, measured
        if n_regions == 64:
            fc = load_group_fc()
            w, v = np.linalg.eigh((fc + fc.T) / 2)
            w[-1] *= 0.3  # damp the global mode so that maps show both signs
            self.mix = v * np.sqrt(np.clip(w, 1e-6, None))
        else:
            shared = np.ones((n_regions, n_regions)) / np.sqrt(n_regions)
            self.mix = 0.8 * np.eye(n_regions) + 0.45 * shared
        self.state = np.zeros(n_regions)
        self.index = 0
        self.roi_names = list(load_atlas(n_regions).roi_names)

    def next(self) -> Frame:
        """The next frame."""
        a = 0.8  # lag-1 autocorrelation close to the real ROI series (~0.7)
        drive = self.mix @ self.rng.standard_normal(self.n_regions)
        self.state = a * self.state + np.sqrt(1 - a * a) * drive
        values = self.state.astype(np.float32)
        meas = None
        if self.with_measured:
            noise = self.rng.standard_normal(self.n_regions)
            meas = (0.6 * values + 0.8 * noise).astype(np.float32)
        lat = {"window_ready": 0.0008 + 0.0004 * self.rng.random(),
               "inference_start": 0.0012, "inference_end": 0.030 + 0.01 * self.rng.random()}
        lat["published"] = lat["inference_end"] + 0.0005
        lat["recorded"] = lat["published"] + 0.0008
        frame = Frame(index=self.index, t=1000.0 + self.index * self.tr, values=values,
                      feedback=float(values[:8].mean() * 2), flags=(), latency=lat, measured=meas)
        self.index += 1
        return frame


class SyntheticEngine:
    """An engine-shaped producer of :class:`SyntheticFrames` on its own thread.

    Same surface as :class:`rtbold.stream.engine.LiveEngine` as far as the GUI is concerned
    (``start``, ``stop``, ``roi_names``, ``networks``, callbacks called from a worker thread);
    for showing the window without EEG and for GUI tests and benchmarks.

    Parameters
    ----------
    interval_s : float
        Wall time between frames (a real session has one per TR).
    """

    def __init__(self, n_regions: int = 64, interval_s: float = 0.05, *, on_frame=None,
                 on_status=None, on_error=None, seed: int = 0) -> None:
        import threading

        self.source = SyntheticFrames(n_regions, seed=seed)
        self.roi_names = self.source.roi_names
        self.networks = list(load_atlas(n_regions).networks)
        self.interval_s = float(interval_s)
        self.on_frame, self.on_status, self.on_error = on_frame, on_status, on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import threading

        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="synthetic-engine")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        from rtbold.stream.frames import EngineStatus

        while not self._stop.wait(self.interval_s):
            frame = self.source.next()
            if self.on_frame is not None:
                self.on_frame(frame)
            if self.on_status is not None and frame.index % 5 == 0:
                self.on_status(EngineStatus(
                    connected=True, stream_name="synthetic", effective_sfreq=200.0,
                    buffer_fill=1.0, last_tick=frame.t, device="cpu", bundle="(synthetic)",
                    n_frames=frame.index + 1, message="synthetic frames"))
