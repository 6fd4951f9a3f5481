"""Calibration during a live session: a separate process, a verdict, a model swap.

:class:`LiveCalibration` runs beside the live engine in its own thread (``rtbold-calibration``):

1. it counts the paired frames the session folder holds (rows of ``measured.tsv``, whether they
   were paired on time or late);
2. once ``after_min`` minutes of them exist (then every ``every_min`` more), or when asked
   (:meth:`request`, the GUI's button), it starts ``rtbold calibrate SESSION_DIR`` as a separate
   process at low priority with ``threads`` torch threads, so acquisition and inference never
   wait on it;
3. when that process ends, it reads its ``calibration.json``; when the verdict is *accepted*
   (held-out Tcorr of the calibrated bundle above the current one's) it loads the subject bundle
   and swaps it into the running model (:meth:`rtbold.stream.worker.ModelRunner.swap_bundle`);
   either way both numbers go to ``events.tsv`` (kind ``calibration``), the log and the status.

The next calibration starts from the bundle in use.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .config import FINETUNE_KEYS, CalibrationConfig

logger = logging.getLogger(__name__)

__all__ = ["LiveCalibration"]


class LiveCalibration(threading.Thread):
    """Calibrate the live model in a separate process (see the module notes).

    Parameters
    ----------
    config : CalibrationConfig
    session_dir : Path
        The session being recorded.
    runner : rtbold.stream.worker.ModelRunner
        The running model; accepted bundles are swapped into it.
    bundle : Path
        The bundle the session started with.
    tr : float
    sink : rtbold.stream.sink.FrameSink
        Where events go (``events.tsv``, log, status message).
    poll_s : float
        How often the thread looks at the session folder and the process.
    """

    def __init__(self, config: CalibrationConfig, session_dir: Path, runner: Any, bundle: Path,
                 tr: float, sink: Any, poll_s: float = 0.5) -> None:
        super().__init__(name="rtbold-calibration", daemon=True)
        self.config, self.session_dir, self.runner = config, Path(session_dir), runner
        self.bundle = Path(bundle).resolve()
        self.tr, self.sink, self.poll_s = float(tr), sink, float(poll_s)
        self.n_paired = 0
        self.n_runs = 0
        self.results: list[dict] = []
        self.state = "idle"
        self._offset = 0
        self._proc: subprocess.Popen | None = None
        self._out: Path | None = None
        self._requested = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._next_due = config.after_min if config.after_min > 0 else None

    # -- public ---------------------------------------------------------------------------------
    @property
    def paired_minutes(self) -> float:
        return self.n_paired * self.tr / 60.0

    @property
    def running(self) -> bool:
        return self._proc is not None

    def request(self) -> str:
        """Ask for a calibration now (the GUI's button); returns what will happen."""
        with self._lock:
            if self._proc is not None:
                return "a calibration is already running"
            self._requested = True
        return "calibration requested"

    def line(self) -> str:
        """One status line: what the calibration is doing and its last verdict."""
        with self._lock:
            state, results = self.state, list(self.results)
        head = f"{self.paired_minutes:.1f} min paired"
        if state == "running":
            return f"{head}; calibrating ({self.config.params}) in a separate process"
        if results:
            return f"{head}; last: {results[-1]['line']}"
        if self._next_due is not None:
            return f"{head}; first calibration at {self._next_due:g} min"
        return f"{head}; calibration on request"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; a calibration still running is ended (re-run it offline with
        ``rtbold calibrate``)."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
            self._event(f"calibration stopped with the session (re-run it with `rtbold "
                        f"calibrate {self.session_dir}`)", warn=True)
        if self.ident is not None:
            self.join(timeout)

    # -- thread ---------------------------------------------------------------------------------
    def run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            try:
                self._step()
            except Exception as err:  # noqa: BLE001 - calibration must never end the session
                logger.exception("calibration")
                self._event(f"calibration failed: {err}", warn=True)
                with self._lock:
                    self._proc, self.state = None, "idle"

    def _step(self) -> None:
        self._count_paired()
        if self._proc is not None:
            if self._proc.poll() is not None:
                self._finish()
            return
        due = self._next_due is not None and self.paired_minutes >= self._next_due
        if self._requested or due:
            self._requested = False
            self._launch()

    def _count_paired(self) -> None:
        """Count new rows of measured.tsv (whole lines only; the header is not a frame)."""
        path = self.session_dir / "measured.tsv"
        if not path.is_file():
            return
        with path.open("rb") as fid:
            fid.seek(self._offset)
            chunk = fid.read()
        end = chunk.rfind(b"\n") + 1
        if end:
            new = chunk[:end].count(b"\n") - (1 if self._offset == 0 else 0)
            self.n_paired += max(new, 0)
            self._offset += end

    def _launch(self) -> None:
        cfg = self.config
        self.n_runs += 1
        out = self.session_dir / "calibration" / f"{self.n_runs:02d}-{time.strftime('%H%M%S')}"
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "rtbold.cli", "calibrate", str(self.session_dir),
               "--bundle", str(self.bundle), "--out", str(out), "--no-progress"]
        for key in FINETUNE_KEYS:
            value = getattr(cfg, key)
            if value is not None:
                cmd += [f"--{key.replace('_', '-')}", str(value)]
        log = (out / "calibrate.log").open("w", encoding="utf-8")
        kwargs: dict = {}
        if os.name == "posix":
            kwargs["preexec_fn"] = _lower_priority
        elif hasattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS"):  # Windows
            kwargs["creationflags"] = subprocess.BELOW_NORMAL_PRIORITY_CLASS
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        log.close()
        with self._lock:
            self._proc, self._out, self.state = proc, out, "running"
        self._event(f"calibration {self.n_runs} started on {self.paired_minutes:.1f} min of "
                    f"paired frames ({cfg.params}, last {cfg.holdout_min:g} min held out), "
                    f"in process {proc.pid}", status=True)

    def _finish(self) -> None:
        proc, out = self._proc, self._out
        with self._lock:
            self._proc, self.state = None, "idle"
        if self.config.every_min > 0:
            self._next_due = self.paired_minutes + self.config.every_min
        else:
            self._next_due = None
        report = out / "calibration.json"
        if proc.returncode != 0 or not report.is_file():
            tail = ""
            log = out / "calibrate.log"
            if log.is_file():
                lines = [ln for ln in log.read_text(encoding="utf-8").splitlines() if ln.strip()]
                tail = lines[-1] if lines else ""
            self._event(f"calibration {self.n_runs} failed (exit {proc.returncode}): {tail} "
                        f"(log: {out / 'calibrate.log'})", warn=True)
            return
        res = json.loads(report.read_text(encoding="utf-8"))
        b, a = res["before"], res["after"]
        verdict = "accepted" if res["accepted"] else "kept the current model"
        line = (f"held-out Tcorr {b['tcorr']:.3f} -> {a['tcorr']:.3f} (residual "
                f"{b['res_tcorr']:.3f} -> {a['res_tcorr']:.3f}) on {res['n_holdout']} TRs; "
                f"{verdict}")
        info = {"before": b, "after": a, "accepted": res["accepted"], "bundle": res["bundle"],
                "n_calibration": res["n_calibration"], "n_holdout": res["n_holdout"]}
        if res["accepted"]:
            self.runner.swap_bundle(res["bundle"])
            self.bundle = Path(res["bundle"]).resolve()
            line += f"; now running {Path(res['bundle']).parent.name}/subject.safetensors"
        with self._lock:
            self.results.append({"line": line, **info})
        self._event(f"calibration {self.n_runs}: {line}", status=True, **info)

    def _event(self, text: str, *, warn: bool = False, status: bool | None = None,
               **info) -> None:
        if self.sink is not None:
            self.sink.event("calibration", None, text, warn=warn, status=status,
                            log_every=True, **info)
        else:
            (logger.warning if warn else logger.info)(text)


def _lower_priority() -> None:  # pragma: no cover - runs in the child
    try:
        os.nice(10)
    except OSError:
        pass
