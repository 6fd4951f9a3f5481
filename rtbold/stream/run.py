"""``rtbold run``: the live engine from the command line.

``rtbold run --config configs/live.toml --headless`` connects to the EEG stream, prints one status
line per TR (stream time, lost samples, latency, strongest region, and with a measured-BOLD stream
the running r of predicted vs measured BOLD for the feedback target and the median over regions,
:mod:`rtbold.stream.validation`) and records the session; Ctrl-C
(SIGINT) or SIGTERM stops it cleanly with the session folder complete.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run the live engine on an LSL EEG stream",
        description="Predict BOLD live from an LSL EEG stream: one frame per TR, published on LSL "
                    "(<name>-bold, <name>-feedback) and recorded in a session folder.")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="TOML file with a [live] table (see configs/live.toml)")
    p.add_argument("--headless", action="store_true",
                   help="no window: print one status line per TR")
    p.add_argument("--bundle", type=Path, default=None, metavar="PATH", help="model bundle")
    p.add_argument("--stream", default=None, metavar="NAME", help="EEG stream name")
    p.add_argument("--source-id", default=None, metavar="ID", help="EEG stream source id")
    p.add_argument("--session-dir", type=Path, default=None, metavar="DIR",
                   help="session folder to create (default sessions/<date-time>)")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"),
                   help="inference device (default: config, else auto)")
    p.add_argument("--tr", type=float, default=None, help="TR in seconds (default: bundle's)")
    p.add_argument("--marker", default=None, help="volume marker value (default R149)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after this many seconds of wall time")
    p.set_defaults(func=run_cli)


def build_config(args: argparse.Namespace):
    """LiveConfig from --config plus the command-line overrides."""
    from .config import load_live_config

    cfg = load_live_config(args.config)
    if args.bundle is not None:
        cfg.bundle = args.bundle
    if args.stream is not None:
        cfg.stream.name = args.stream
    if args.source_id is not None:
        cfg.stream.source_id = args.source_id
    if args.session_dir is not None:
        cfg.session_dir = args.session_dir
    if args.device is not None:
        cfg.device = args.device
    if args.tr is not None:
        cfg.trigger.tr = args.tr
    if args.marker is not None:
        cfg.trigger.marker = args.marker
    cfg.check()
    return cfg


def status_line(frame, engine, validation=None) -> str:
    """One line per TR: index, stream time, lost samples, latency, strongest region, flags,
    the running r of predicted vs measured BOLD (``validation``, a :class:`LineValidation`) and
    the MR-artefact correction's state when it runs."""
    values = np.asarray(frame.values)
    k = int(np.argmax(np.abs(values))) if values.size else 0
    roi = engine.roi_names[k] if engine.roi_names else str(k)
    lost = engine.inlet.lost_samples if engine.inlet is not None else 0
    lat = frame.latency.get("published", float("nan")) * 1e3
    fb = "" if frame.feedback is None else f" fb={frame.feedback:+.2f}"
    flags = f" [{','.join(frame.flags)}]" if frame.flags else ""
    art = engine.artifact_status
    mr = f"  MR: {art.line()}" if art is not None else ""
    val = f"  {validation.text()}" if validation is not None else ""
    return (f"TR {frame.index:5d}  t={frame.t:12.3f}  lost={lost}  latency={lat:6.1f} ms  "
            f"strongest={roi} ({values[k]:+.2f}){fb}{flags}{val}{mr}")


class LineValidation:
    """The running r of the headless lines, fed from the engine's threads: predictions and
    on-time measured BOLD with each frame, late measured BOLD from ``on_measured``."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self._rc = None
        self._lock = threading.Lock()

    @property
    def rc(self):
        """The :class:`~rtbold.stream.validation.RunningCorrelation` (made at the first use,
        once the engine knows its model)."""
        with self._lock:
            if self._rc is None:
                from .validation import RunningCorrelation

                self._rc = RunningCorrelation.for_engine(self.engine)
            return self._rc

    def on_frame(self, frame) -> None:
        self.rc.add_predicted(frame.index, frame.values)
        if frame.measured is not None:
            self.rc.add_measured(frame.index, frame.measured)

    def on_measured(self, index: int, t: float, values) -> None:
        self.rc.add_measured(index, values)

    def text(self) -> str:
        """"r(fb)=+0.41 r(median)=+0.32 over 30 TRs" ("" without a measured stream)."""
        if self.engine.config.measured.enabled is False:
            return ""
        return self.rc.summary()


class StatusNotices:
    """What the headless commands print when the engine's status changes (once per change):
    why no TR comes, how the measured-BOLD stream's regions match the model's, and what the
    in-session calibration does (started, its verdict)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._said: dict[str, str] = {"waiting": "", "measured": "", "calibration": ""}

    def __call__(self, status) -> None:
        # Never silent: when no TR comes, say why (once per reason).
        why = status.waiting_for.partition(": ")[2]  # without "no TR for N s"
        if why != self._said["waiting"]:
            self._said["waiting"] = why
            if why:
                print(f"{self.prefix}: {status.waiting_for}", flush=True)
        measured = getattr(status, "measured", "")
        if measured != self._said["measured"]:
            self._said["measured"] = measured
            if measured:
                print(f"{self.prefix}: {measured}", flush=True)
        # "<minutes> paired; <state>": news are a calibration starting and its verdict, not
        # the growing minutes or "on request"
        calibration = getattr(status, "calibration", "").partition("; ")[2]
        if calibration != self._said["calibration"]:
            self._said["calibration"] = calibration
            if calibration.startswith(("calibrating", "last:")):
                print(f"{self.prefix}: calibration: {calibration}", flush=True)

    @property
    def measured(self) -> str:
        """The last measured-BOLD note printed ("" before any)."""
        return self._said["measured"]


def run_cli(args: argparse.Namespace) -> int:
    if not args.headless:
        print("rtbold run: the window is started with `rtbold gui`; use --headless here.",
              file=sys.stderr)
        return 2
    from .engine import LiveEngine

    cfg = build_config(args)
    done = threading.Event()
    holder = {}

    def on_frame(frame):
        holder["validation"].on_frame(frame)
        print(status_line(frame, holder["engine"], holder["validation"]), flush=True)

    def on_error(err):
        print(f"rtbold run: {err}", file=sys.stderr, flush=True)

    engine = LiveEngine(cfg, on_frame=on_frame, on_error=on_error,
                        on_status=StatusNotices("rtbold run"))
    holder["engine"] = engine
    holder["validation"] = validation = LineValidation(engine)
    engine.on_measured = validation.on_measured
    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        done.set()

    # SIGINT handled like SIGTERM: a script that starts `rtbold run ... &` leaves SIGINT ignored
    # in it (no job control), so Python would never raise KeyboardInterrupt and `kill -INT`
    # would not stop the session.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        engine.start()
        print(f"rtbold run: {engine.status().bundle} on {engine.status().device}; EEG "
              f"{engine.inlet.name!r} at {engine.inlet.sfreq:g} Hz; TR {engine.tr:g} s "
              f"({engine.clock.mode} clock); session {engine.session_dir}", flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not done.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                break
        if signal.SIGINT in received:
            print("\nrtbold run: stopping (Ctrl-C)", flush=True)
    except KeyboardInterrupt:  # Ctrl-C before the handler was installed
        print("\nrtbold run: stopping (Ctrl-C)", flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if engine.worker is not None:  # started (start() cleans up after itself on failure)
            engine.stop()
    st = engine.status()
    print(f"rtbold run: {st.n_frames} frames, {st.n_skipped} skipped TRs, {st.lost_samples} "
          f"lost samples; session folder {engine.session_dir}", flush=True)
    if st.measured_counts:
        c = st.measured_counts
        print(f"rtbold run: measured volumes: {c['on_time']} on time, {c['late']} paired after "
              f"their frame, {c['too_late']} too late and {c['unpaired']} without a frame (see "
              "events.tsv)", flush=True)
    return 0
