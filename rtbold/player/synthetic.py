"""Synthetic EEG + volume markers (+ measured BOLD) over LSL, for tests and benchmarks.

:class:`SyntheticSource`
    pushes from a thread of this process with explicit stream timestamps (sample ``k`` at
    ``t0 + k / sfreq``) at any speed, like ``rtbold replay``.
:class:`SourceProcess`
    the same in a separate process (``python -m rtbold.player.synthetic``), paced by the LSL
    clock like an amplifier: sample ``k`` is pushed once ``local_clock() >= t0 + k / sfreq``, so a
    process restarted with the same ``t0`` continues the stream-time axis with a gap of the time it
    was down. Tests kill it with SIGKILL and start it again. Each process publishes any of the
    EEG, marker and measured-BOLD streams, so one stream can restart while the others go on.

:func:`make_runner` (a random-weight model), :func:`live_config` (settings for a source) and
:func:`run_replay` (a replay into a live engine) complete what the live tests and benchmarks need.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pylsl

from ..atlas import SUPPORTED_N_REGIONS, load_atlas


def montage_channels() -> list[str]:
    from rtbold.montage import load_montage

    return list(load_montage().ch_names)


def unique_id(prefix: str = "rtbold-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def eeg_info(name: str, source_id: str, ch_names, sfreq: float, *, ch_types=None,
             unit: str = "microvolts") -> pylsl.StreamInfo:
    info = pylsl.StreamInfo(name, "EEG", len(ch_names), float(sfreq), "float32", source_id)
    chans = info.desc().append_child("channels")
    for i, ch in enumerate(ch_names):
        node = chans.append_child("channel")
        node.append_child_value("label", ch)
        node.append_child_value("unit", unit)
        node.append_child_value("type", (ch_types[i] if ch_types else "EEG"))
    return info


def synthetic_eeg(n_channels: int, n_times: int, sfreq: float, seed: int = 0) -> np.ndarray:
    """(C, n) float32 µV: alpha-band sines with per-channel phase plus pink-ish noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) / sfreq
    freqs = rng.uniform(6, 14, size=(n_channels, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n_channels, 1))
    slow = np.sin(2 * np.pi * 0.05 * t + phase)  # slow drift so windows differ
    x = 15 * np.sin(2 * np.pi * freqs * t + phase) * (1 + 0.5 * slow)
    x += np.cumsum(rng.normal(0, 1.0, size=(n_channels, n_times)), axis=1) * 0.05
    x += rng.normal(0, 3.0, size=(n_channels, n_times))
    return x.astype(np.float32)


class SyntheticSource:
    """Push synthetic EEG (and volume markers) over LSL with explicit stream timestamps.

    Sample ``k`` is stamped ``t0 + k / sfreq`` whatever the pacing (``speed`` x real time),
    like ``rtbold replay``; markers ``"R149"`` at ``t0 + first_marker_s + i * tr`` go out after
    the samples they fall on.

    Parameters
    ----------
    skip_chunks : set of int
        Chunk indices that are not pushed (lost samples).
    nan_chunks : set of int
        Chunk indices whose values are all NaN on channel 0.
    restart : tuple (at_s, gap_s, pause_wall_s) | None
        At stream second ``at_s`` destroy the EEG outlet, wait ``pause_wall_s`` of wall time,
        recreate it (same source id) and continue ``gap_s`` stream seconds later.
    marker_restarts : sequence of (at_s, pause_wall_s)
        At stream second ``at_s`` destroy the marker outlet and recreate it ``pause_wall_s``
        later (wall time) while the EEG goes on; markers due meanwhile are not sent.
    measured_rois : int
        Publish ``<name>-measured-bold`` with this many channels (random values, one sample per
        marker), labelled with the DiFuMo names of that size and its atlas when there is one.
    measured_names : sequence of str | None
        Channel labels of the measured-BOLD stream instead (``()`` with ``measured_rois``: no
        labels).
    measured_atlas : str | None
        Its ``desc/atlas`` value.
    measured_delay_trs : int | sequence of int
        Volume ``i``'s measured vector (stamped with its marker's time) is pushed with the marker
        of volume ``i + delay`` (a scanner export that delivers volumes late); those due after
        the last marker are pushed at the end.
    """

    def __init__(self, ch_names, sfreq: float, duration_s: float, *, name: str | None = None,
                 source_id: str | None = None, tr: float = 1.0, first_marker_s: float = 1.0,
                 markers: bool = True, marker: str = "R149", speed: float = 1.0,
                 chunk_s: float = 0.02, seed: int = 0, skip_chunks=(), nan_chunks=(),
                 restart=None, marker_restarts=(), ch_types=None, data: np.ndarray | None = None,
                 wait_consumers_s: float = 20.0, measured_rois: int = 0,
                 measured_names=None, measured_atlas: str | None = None,
                 block_s: float | None = None, measured_delay_trs=0) -> None:
        self.ch_names = list(ch_names)
        self.sfreq = float(sfreq)
        self.name = name or unique_id("rtbold-synth")
        self.source_id = unique_id("sid") if source_id is None else source_id
        self.n_times = int(round(duration_s * sfreq))
        # Long runs (soak) cycle through at most block_s of generated data.
        n_gen = self.n_times if block_s is None else min(self.n_times, int(block_s * sfreq))
        self.data = synthetic_eeg(len(self.ch_names), n_gen, sfreq, seed) \
            if data is None else np.asarray(data, dtype=np.float32)
        self.tr, self.speed, self.marker = float(tr), float(speed), marker
        self.chunk = max(1, int(round(chunk_s * sfreq)))
        self.skip_chunks, self.nan_chunks = set(skip_chunks), set(nan_chunks)
        for c in self.nan_chunks:
            self.data[0, c * self.chunk:(c + 1) * self.chunk] = np.nan
        self.restart = sorted(restart) if restart and isinstance(restart[0], tuple) else (
            [restart] if restart else [])
        self.marker_restarts = sorted(marker_restarts)
        #: Wall times (time.monotonic) at which restarted outlets existed again.
        self.back_walls: list[tuple[str, float]] = []
        self.ch_types = ch_types
        self.onsets = np.arange(first_marker_s, duration_s - 1e-9, tr)
        self.wait_consumers_s = wait_consumers_s
        self._info = eeg_info(self.name, self.source_id, self.ch_names, sfreq, ch_types=ch_types)
        self.eeg = pylsl.StreamOutlet(self._info, 0, 3600)
        self.markers = None
        if markers:
            self._minfo = pylsl.StreamInfo(f"{self.name}-markers", "Markers", 1, 0, "string",
                                           f"{self.source_id}-markers")
            self.markers = pylsl.StreamOutlet(self._minfo, 0, 36000)
        self.measured = None
        if measured_names:
            measured_rois = len(measured_names)
        if measured_rois:
            binfo = pylsl.StreamInfo(f"{self.name}-measured-bold", "fMRI", measured_rois, 1 / tr,
                                     "float32", f"{self.source_id}-measured-bold")
            if measured_names is None and measured_rois in SUPPORTED_N_REGIONS:
                measured_names = load_atlas(measured_rois).roi_names  # as rtbold replay labels
                measured_atlas = measured_atlas or f"DiFuMo{measured_rois}"
            if measured_names:  # () publishes unlabelled channels
                chans = binfo.desc().append_child("channels")
                for roi in measured_names:
                    chans.append_child("channel").append_child_value("label", str(roi))
            if measured_atlas:
                binfo.desc().append_child_value("atlas", measured_atlas)
            self.measured = pylsl.StreamOutlet(binfo, 0, 3600)
            self.measured_values = np.random.default_rng(seed + 1).normal(
                size=(len(self.onsets), measured_rois)).astype(np.float32)
        self.measured_delay_trs = np.broadcast_to(
            np.asarray(measured_delay_trs, dtype=int), self.onsets.shape)
        self.t0: float | None = None
        self.n_sent = 0
        self.n_markers_sent = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="synthetic-eeg")
        self.error: BaseException | None = None

    @property
    def marker_times(self) -> np.ndarray:
        return self.t0 + self.onsets

    def times(self) -> np.ndarray:
        return self.t0 + np.arange(self.n_times) / self.sfreq

    def __enter__(self) -> "SyntheticSource":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "SyntheticSource":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pushing and destroy the outlets (frees their LSL ports at once)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)
        self.eeg = self.markers = self.measured = None

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._push()
        except BaseException as err:  # noqa: BLE001 - re-raised by join()
            self.error = err
        finally:
            self.done.set()

    def _push(self) -> None:
        if not self.eeg.wait_for_consumers(self.wait_consumers_s):
            raise RuntimeError(f"no consumer for {self.name}")
        for extra in (self.markers, self.measured):
            if extra is not None:
                extra.wait_for_consumers(2.0)
        time.sleep(0.05)
        self.t0 = t0 = pylsl.local_clock()
        ev = np.floor(self.onsets * self.sfreq + 1e-9).astype(int)
        restarts = list(self.restart)
        marker_restarts = list(self.marker_restarts)
        markers_back_at = None  # wall time when the marker outlet is recreated
        k = 0
        c = 0
        while k < self.n_times and not self._stop.is_set():
            if restarts and k >= int(restarts[0][0] * self.sfreq):
                at_s, gap_s, pause = restarts.pop(0)
                self.eeg = None  # destroys the outlet: consumers lose the stream
                time.sleep(pause)
                self.eeg = pylsl.StreamOutlet(self._info, 0, 3600)
                self.back_walls.append(("eeg", time.monotonic()))
                # liblsl needs a moment to recover the inlet; wait so the loss is exactly gap_s.
                self.eeg.wait_for_consumers(self.wait_consumers_s)
                k += int(round(gap_s * self.sfreq))
                # Markers stay aligned on stream time, so emit those falling in the gap too.
                continue
            if marker_restarts and k >= int(marker_restarts[0][0] * self.sfreq):
                _, pause = marker_restarts.pop(0)
                self.markers = None
                markers_back_at = time.monotonic() + pause
            if markers_back_at is not None and time.monotonic() >= markers_back_at:
                self.markers = pylsl.StreamOutlet(self._minfo, 0, 36000)
                self.back_walls.append(("markers", time.monotonic()))
                markers_back_at = None
            stop = min(k + self.chunk, self.n_times)
            due = t0 + (stop - 1) / (self.sfreq * self.speed)
            delay = due - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            if c not in self.skip_chunks:
                stamps = t0 + np.arange(k, stop) / self.sfreq
                m = self.data.shape[1]
                block = self.data[:, k:stop] if stop <= m else \
                    np.take(self.data, np.arange(k, stop) % m, axis=1)
                self.eeg.push_chunk(np.ascontiguousarray(block.T), stamps.tolist())
                self.n_sent += stop - k
            if self.markers is not None:
                lo, hi = np.searchsorted(ev, [k, stop], side="left")
                for i in range(lo, hi):
                    self.markers.push_sample([self.marker], t0 + float(self.onsets[i]))
                    self.n_markers_sent += 1
                    self._push_measured(np.flatnonzero(
                        np.arange(len(self.onsets)) + self.measured_delay_trs == i))
            k, c = stop, c + 1
        if not self._stop.is_set():  # volumes due after the last marker
            self._push_measured(np.flatnonzero(
                np.arange(len(self.onsets)) + self.measured_delay_trs >= len(self.onsets)))

    def _push_measured(self, volumes) -> None:
        if self.measured is None:
            return
        for i in volumes:
            self.measured.push_sample(self.measured_values[i], self.t0 + float(self.onsets[i]))


def make_runner(ch_names=None, size: str = "tiny", n_rois: int = 64, seed: int = 0, tr=1.0):
    """A real (random-weight) UnEBOLT model wrapped for the engine (tests, benchmarks)."""
    import torch

    from rtbold.models.registry import create_model
    from rtbold.stream.worker import ModelRunner

    ch_names = list(ch_names or montage_channels())
    torch.manual_seed(seed)
    model = create_model("unebolt", size=size, n_rois=n_rois, ch_names=ch_names)
    roi = list(load_atlas(n_rois).roi_names)
    return ModelRunner(model=model, ch_names=ch_names, roi_names=roi, tr=tr, name=f"unebolt-{size}",
                       atlas=f"DiFuMo{n_rois}")


def live_config(source, tmp_path=None, **over):
    """A LiveConfig reading ``source`` (anything with ``name``, ``source_id``, ``tr``,
    ``measured``) with timeouts for tests and benchmarks; ``section__key=value`` overrides."""
    from rtbold.stream.config import LiveConfig

    cfg = LiveConfig()
    cfg.stream.name = source.name
    cfg.stream.source_id = source.source_id
    cfg.stream.resolve_timeout_s = 10.0
    cfg.trigger.tr = source.tr
    cfg.trigger.resolve_timeout_s = 2.0
    cfg.measured.resolve_timeout_s = 1.0 if source.measured is not None else 0.0
    cfg.worker.warmup = 1
    # Replays run faster than real time on a shared machine: process every tick unless a test
    # checks stale skipping.
    cfg.worker.skip_stale = False
    cfg.output.fsync = False
    # liblsl's unicast discovery only reaches ports BasePort..BasePort+31 on this machine; the
    # engine's own outlets are switched off unless a test needs them, to leave ports to others.
    cfg.output.bold_outlet = cfg.output.feedback_outlet = False
    cfg.output.source_id = unique_id("out")
    cfg.output.name = unique_id("rtbold")
    if tmp_path is not None:
        cfg.session_dir = tmp_path / "session"
    else:
        cfg.output.record = False
    for key, value in over.items():
        section, _, attr = key.partition("__")
        if attr:
            setattr(getattr(cfg, section), attr, value)
        else:
            setattr(cfg, section, value)
    return cfg


# -- a source in its own process ------------------------------------------------------------------
def run_replay(replay, config, runner, *, timeout_s: float = 600.0, settle_s: float = 15.0):
    """Replay ``replay`` (a :class:`rtbold.player.replay.Replayer`) into a live engine until every
    volume marker has a frame or a skip (or ``settle_s`` after the replay ended).

    Returns the frames, the engine (stopped) and its status just before it stopped.
    """
    from rtbold.stream.engine import LiveEngine

    frames: list = []
    engine = LiveEngine(config, on_frame=frames.append, runner=runner)
    replay.start()  # outlets exist from here
    try:
        engine.start()
        replay.join(timeout_s)
        deadline = time.monotonic() + settle_s
        while (len(frames) + engine.n_skipped < len(replay.events)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        status = engine.status()
    finally:
        engine.stop()
        replay.stop()
    return frames, engine, status


def _serve(args: argparse.Namespace) -> int:
    """Body of ``python -m rtbold.player.synthetic``: push in real time until killed."""
    ch = montage_channels() if args.channels == "montage" else args.channels.split(",")
    sfreq, tr, t0 = args.sfreq, args.tr, args.t0
    streams = set(args.streams.split(","))
    period_n = int(round(args.block_s * sfreq))
    data = synthetic_eeg(len(ch), period_n, sfreq, args.seed).T.copy()  # (n, C), cycled
    if args.unit_scale != 1.0:
        data *= args.unit_scale
    outlets = {}
    if "eeg" in streams:
        outlets["eeg"] = pylsl.StreamOutlet(
            eeg_info(args.name, args.source_id, ch, sfreq, unit=args.unit), 0, 360)
    if "markers" in streams:
        info = pylsl.StreamInfo(f"{args.name}-markers", "Markers", 1, 0, "string",
                                f"{args.source_id}-markers")
        outlets["markers"] = pylsl.StreamOutlet(info, 0, 360)
    if "measured" in streams:
        info = pylsl.StreamInfo(f"{args.name}-measured-bold", "fMRI", args.n_rois, 1.0 / tr,
                                "float32", f"{args.source_id}-measured-bold")
        outlets["measured"] = pylsl.StreamOutlet(info, 0, 360)
    rng_meas = np.random.default_rng(args.seed + 1)
    measured = rng_meas.normal(size=(4096, args.n_rois)).astype(np.float32)
    print("ready", flush=True)
    if args.preroll_s > 0:  # pre-roll for a consumer, not into the void (like rtbold replay)
        for outlet in outlets.values():
            outlet.wait_for_consumers(60.0)
    now_k = int(np.floor((pylsl.local_clock() - t0) * sfreq))
    k = max(0, now_k - int(round(args.preroll_s * sfreq)))
    # Volume i at t0 + first_marker_s + i * tr; the first one not yet sent:
    vol = max(0, int(np.ceil((k / sfreq - args.first_marker_s) / tr - 1e-9)))
    chunk = max(1, int(round(0.02 * sfreq)))
    while True:
        now_k = int(np.floor((pylsl.local_clock() - t0) * sfreq)) + 1
        if now_k - k < chunk:
            time.sleep(0.005)
            continue
        stop = now_k
        if "eeg" in outlets:
            idx = np.arange(k, stop)
            outlets["eeg"].push_chunk(np.ascontiguousarray(data[idx % period_n]),
                                      (t0 + idx / sfreq).tolist())
        while args.first_marker_s + vol * tr < stop / sfreq:
            t_vol = t0 + args.first_marker_s + vol * tr
            if "markers" in outlets:
                outlets["markers"].push_sample([args.marker], t_vol)
            if "measured" in outlets:
                outlets["measured"].push_sample(measured[vol % len(measured)], t_vol)
            vol += 1
        k = stop


class SourceProcess:
    """A synthetic LSL source in a subprocess (see the module notes); kill it like a crash.

    Parameters
    ----------
    name, source_id : str
        EEG stream name and source id (markers and measured BOLD append ``-markers`` and
        ``-measured-bold``).
    streams : sequence of str
        Which of ``"eeg"``, ``"markers"``, ``"measured"`` this process publishes.
    t0 : float
        LSL time of sample 0 (shared by every process of one session).
    preroll_s : float
        Seconds before "now" pushed at once when it starts (a first full window right away).
    """

    def __init__(self, name: str, source_id: str, *, streams=("eeg", "markers"), t0: float,
                 sfreq: float = 250.0, tr: float = 1.0, preroll_s: float = 0.0,
                 first_marker_s: float = 1.0, marker: str = "R149", n_rois: int = 64,
                 unit: str = "microvolts", unit_scale: float = 1.0, seed: int = 0) -> None:
        self.name, self.source_id, self.streams = name, source_id, list(streams)
        self.t0, self.sfreq, self.tr = float(t0), float(sfreq), float(tr)
        self.preroll_s, self.first_marker_s, self.marker = preroll_s, first_marker_s, marker
        self.n_rois, self.unit, self.unit_scale, self.seed = n_rois, unit, unit_scale, seed
        self.proc: subprocess.Popen | None = None
        #: Wall time (time.monotonic) at which the outlets of the last start existed.
        self.ready_wall: float | None = None

    def start(self, preroll_s: float | None = None, timeout: float = 30.0) -> "SourceProcess":
        """Start the process; returns once its outlets exist.

        ``preroll_s`` defaults to the constructor's on the first start and to 0 on a restart
        (which goes on from "now", leaving a gap as long as the process was down).
        """
        if preroll_s is None:
            preroll_s = self.preroll_s if self.ready_wall is None else 0.0
        cmd = [sys.executable, "-m", "rtbold.player.synthetic", "--name", self.name,
               "--source-id", self.source_id, "--streams", ",".join(self.streams),
               "--t0", repr(self.t0), "--sfreq", repr(self.sfreq), "--tr", repr(self.tr),
               "--preroll-s", repr(preroll_s),
               "--first-marker-s", repr(self.first_marker_s), "--marker", self.marker,
               "--n-rois", str(self.n_rois), "--unit", self.unit,
               "--unit-scale", repr(self.unit_scale), "--seed", str(self.seed)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=dict(os.environ))
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line.startswith("ready"):
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"synthetic source {self.name} exited with "
                                   f"{self.proc.returncode}")
        if not line.startswith("ready"):
            self.kill()
            raise RuntimeError(f"synthetic source {self.name} did not start in {timeout:g} s")
        self.ready_wall = time.monotonic()
        return self

    def kill(self) -> None:
        """SIGKILL (no clean-up: the streams vanish as when a program crashes)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> "SourceProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Synthetic EEG/markers/measured BOLD over LSL, "
                                "in real time from a shared t0 (rtbold tests).")
    p.add_argument("--name", required=True)
    p.add_argument("--source-id", required=True)
    p.add_argument("--streams", default="eeg,markers")
    p.add_argument("--t0", type=float, required=True)
    p.add_argument("--sfreq", type=float, default=250.0)
    p.add_argument("--tr", type=float, default=1.0)
    p.add_argument("--preroll-s", type=float, default=0.0)
    p.add_argument("--first-marker-s", type=float, default=1.0)
    p.add_argument("--marker", default="R149")
    p.add_argument("--n-rois", type=int, default=64)
    p.add_argument("--channels", default="montage")
    p.add_argument("--unit", default="microvolts")
    p.add_argument("--unit-scale", type=float, default=1.0)
    p.add_argument("--block-s", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    return _serve(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
