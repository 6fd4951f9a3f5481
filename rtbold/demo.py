"""``rtbold demo``: the whole live path on a simulated recording, nothing to download or configure.

A held-out simulated subject (its EEG driven by a real resting-state fMRI scan that the demo model
never saw) is replayed as LSL streams on this machine: EEG, volume markers and the measured
region series. The live engine predicts every TR with the packaged demo model; the window shows
predicted against measured BOLD (``--headless`` prints one line per TR and the final correlation).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from importlib.resources import files
from pathlib import Path

import numpy as np

from . import __version__

logger = logging.getLogger(__name__)

#: Packaged demo model (trained by `configs/train_demo.toml`, see README).
DEMO_BUNDLE_NAME = "demo_unebolt_bp.safetensors"
#: Simulated subject index of the demo recording: the first subject of the held-out benchmark set
#: (``rtbold simulate --subject-offset 200 --bold-scans 17-22``). Its simulated parameters and its
#: real BOLD (packaged scan 17) were never used for training or model selection (subjects 0-33 on
#: real scans 0-16).
DEMO_SUBJECT = 200
DEMO_BOLD_SCANS = "17-22"
DEMO_VOLUMES = 200
#: EEG pushed at once when the replay starts, so the first 16 s window exists right away.
DEMO_PREROLL_S = 18.0


def demo_bundle_path() -> Path:
    """The packaged demo model bundle."""
    return Path(str(files("rtbold.data").joinpath(DEMO_BUNDLE_NAME)))


def cache_dir() -> Path:
    """Where generated demo data lives (``RTBOLD_CACHE`` or ``~/.cache/rtbold``)."""
    root = os.environ.get("RTBOLD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rtbold")
    return Path(root)


def demo_recording(root: Path | None = None) -> Path:
    """The demo recording (BrainVision + measured region series), made once and cached.

    It is simulated from packaged data with fixed settings, so every machine makes the same file
    (about 3 s); nothing is downloaded.
    """
    from .simulator import SimulatorConfig, simulate_dataset

    root = (root or cache_dir()) / f"demo-{__version__}-sub{DEMO_SUBJECT}-{DEMO_VOLUMES}"
    vhdr = root / f"sub-{DEMO_SUBJECT + 1:02d}" / "eeg" / \
        f"sub-{DEMO_SUBJECT + 1:02d}_task-rest_run-01_eeg.vhdr"
    if vhdr.is_file():
        return vhdr
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="demo-", dir=root.parent))
    try:
        simulate_dataset(tmp / "data", SimulatorConfig(n_subjects=1, subject_offset=DEMO_SUBJECT,
                                                       bold_scans=DEMO_BOLD_SCANS,
                                                       n_volumes=DEMO_VOLUMES, seed=0),
                         progress=False)
        if root.exists():  # another process made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            (tmp / "data").rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return vhdr


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="replay a simulated recording and predict its fMRI live (no set-up needed)",
        description=__doc__.splitlines()[0] + " Uses loopback-only LSL unless --lsl-config is "
                    "given before the subcommand.")
    p.add_argument("--headless", action="store_true",
                   help="no window: print one line per TR and the final predicted-vs-measured r")
    p.add_argument("--speed", type=float, default=1.0,
                   help="replay speed (1 = real time, one TR every 2.1 s)")
    p.add_argument("--n-trs", type=int, default=None, metavar="N",
                   help="headless: stop after N predicted TRs (default: the whole recording)")
    p.add_argument("--bundle", type=Path, default=None, help="model bundle (default: demo model)")
    p.add_argument("--recording", type=Path, default=None,
                   help="recording to replay (default: the simulated demo recording)")
    p.add_argument("--session-dir", type=Path, default=None,
                   help="session folder (default: sessions/<date-time>)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=run_demo)


def build_live_config(stream: str, *, bundle: Path, device: str = "auto",
                      session_dir: Path | None = None):
    """Live settings for a replayed stream: markers and measured BOLD found by its name."""
    from .stream.config import LiveConfig, StreamConfig

    return LiveConfig(bundle=bundle, device=device, session_dir=session_dir,
                      stream=StreamConfig(name=stream, source_id=stream))


def start_replay(*, bundle: Path | None = None, recording: Path | None = None,
                 speed: float = 1.0, device: str = "auto", session_dir: Path | None = None):
    """Start replaying the demo recording; return the replay and the live settings for it."""
    from .player.replay import Replayer

    bundle = bundle or demo_bundle_path()
    if not bundle.is_file():
        raise FileNotFoundError(f"Model bundle {bundle} does not exist.")
    recording = recording or demo_recording()
    name = f"rtbold-demo-{uuid.uuid4().hex[:8]}"
    replay = Replayer(recording, name=name, source_id=name, speed=speed,
                      preroll_s=DEMO_PREROLL_S, consumer_grace_s=3.0)
    cfg = build_live_config(name, bundle=bundle, device=device, session_dir=session_dir)
    print(f"rtbold demo: replaying {recording} as LSL stream {name!r} at {speed:g}x; "
          f"model {bundle.name}", flush=True)
    replay.start()
    return replay, cfg


def run_demo(args: argparse.Namespace) -> int:
    from .lslconfig import apply_lsl_config

    if getattr(args, "lsl_config", None) is None and "LSLAPICFG" not in os.environ:
        apply_lsl_config("loopback")  # the demo talks to itself: keep LSL on this machine
    replay, cfg = start_replay(bundle=args.bundle, recording=args.recording, speed=args.speed,
                               device=args.device, session_dir=args.session_dir)
    try:
        if args.headless:
            return _run_headless(cfg, replay, args.n_trs)
        return int(demo_window(cfg))
    finally:
        replay.stop()


def demo_window(cfg, *, exec_loop: bool = True):
    """The main window driving a live engine on ``cfg``; returns the window if not ``exec_loop``.

    The window's remembered choices go to a throw-away file, so the demo never changes the
    settings of the user's own sessions.
    """
    from .gui.cli import run_window
    from .stream.engine import LiveEngine

    def factory(settings, **callbacks):
        return LiveEngine(cfg, **callbacks)

    settings_path = Path(tempfile.mkdtemp(prefix="rtbold-demo-")) / "gui-session.toml"
    return run_window(factory, autostart=True, settings_path=settings_path, discover=False,
                      exec_loop=exec_loop)


class _Comparison:
    """Predicted vs measured BOLD over the frames seen so far (Tcorr: mean over the measured
    regions of r; regions the measured stream lacks are NaN in the frames and left out)."""

    def __init__(self) -> None:
        self.pred: list[np.ndarray] = []
        self.meas: list[np.ndarray] = []

    def add(self, frame) -> None:
        if frame.measured is not None and not frame.flags:
            self.pred.append(np.asarray(frame.values, dtype=float))
            self.meas.append(np.asarray(frame.measured, dtype=float))

    def tcorr(self) -> tuple[float, int, int]:
        """(mean r, TRs, regions compared)."""
        if not self.pred:
            return float("nan"), 0, 0
        meas = np.array(self.meas)
        regions = np.isfinite(meas).all(axis=0)
        if len(self.pred) < 3 or not regions.any():
            return float("nan"), len(self.pred), int(regions.sum())
        from .metrics import tcorr

        r = tcorr(np.array(self.pred)[:, regions], meas[:, regions])
        return float(np.nanmean(r)), len(self.pred), int(regions.sum())


def _why_no_comparison(notices, engine) -> str:
    """Why no predicted-vs-measured correlation exists (for the headless lines)."""
    if notices.measured:
        return notices.measured
    status = engine.status()
    return status.measured or ("no measured-bold stream was found (it is published by "
                               "`rtbold replay` next to BIDS region series)")


def _run_headless(cfg, replay, n_trs: int | None) -> int:
    from .stream.engine import LiveEngine
    from .stream.run import StatusNotices, status_line

    done = threading.Event()
    comparison = _Comparison()
    holder: dict = {}
    last_frame = [time.monotonic()]
    n_frames = [0]  # predicted frames (a stale TR may be skipped, so not frame.index)

    notices = StatusNotices("rtbold demo")

    def on_frame(frame):
        comparison.add(frame)
        last_frame[0] = time.monotonic()
        r, n, k = comparison.tcorr()
        if n == 0:
            r_text = "n/a (" + ("the measured regions do not match the model's, see above"
                                if notices.measured else "no measured BOLD yet") + ")"
        else:
            r_text = ("n/a" if np.isnan(r) else f"{r:+.2f}") + f" over {n} TRs" + (
                f", {k} of {len(frame.values)} regions" if k < len(frame.values) else "")
        print(f"{status_line(frame, holder['engine'])}  r(pred, meas)={r_text}", flush=True)
        if n_trs is not None and n_frames[0] + 1 >= n_trs:
            done.set()
        n_frames[0] += 1

    def on_error(err):
        print(f"rtbold demo: {err}", file=sys.stderr, flush=True)

    engine = LiveEngine(cfg, on_frame=on_frame, on_error=on_error, on_status=notices)
    holder["engine"] = engine
    try:
        engine.start()
        while not done.wait(0.2):
            # The recording is over and no frame came for 2 TRs: all volumes are predicted.
            if replay.is_done and time.monotonic() - last_frame[0] > 2 * (engine.tr or 2.1):
                break
    except KeyboardInterrupt:
        print("\nrtbold demo: stopping (Ctrl-C)", flush=True)
    finally:
        if engine.worker is not None:
            engine.stop()
    r, n, k = comparison.tcorr()
    st = engine.status()
    print(f"rtbold demo: {st.n_frames} TRs predicted, {st.n_skipped} skipped, {st.lost_samples} "
          f"lost samples; session folder {engine.session_dir}", flush=True)
    if n == 0 or k == 0:
        print("rtbold demo: no correlation between predicted and measured BOLD: "
              f"{_why_no_comparison(notices, engine)}", flush=True)
    else:
        of = "" if k == len(engine.roi_names) else f" of {len(engine.roi_names)}"
        print(f"rtbold demo: correlation between predicted and measured BOLD (mean over "
              f"{k}{of} regions, {n} TRs): r = {r:+.3f}", flush=True)
    return 0
