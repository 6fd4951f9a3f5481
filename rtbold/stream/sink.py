"""Where everything the engine produces goes: LSL outlets and the session recorder.

:class:`FrameSink` is the single owner of the outputs. The inference worker calls
:meth:`~FrameSink.publish` then :meth:`~FrameSink.record` for a frame and :meth:`~FrameSink.skip`
for a TR that gave none; acquisition calls :meth:`~FrameSink.eeg`, :meth:`~FrameSink.markers`,
:meth:`~FrameSink.event`, and :meth:`~FrameSink.measured` / :meth:`~FrameSink.measured_dropped`
for measured-BOLD vectors that came after their frame (:mod:`rtbold.stream.pairing`). One lock
serialises the recorder's writers.

Flagged frames
--------------
* ``"nonfinite"`` (the model gave NaN/inf): nothing is pushed on ``rtbold-bold`` or
  ``rtbold-feedback`` for that TR, so a feedback display keeps showing the last valid value
  (hold); the frame is recorded with its flag and ``n/a`` values.
* any other quality flag (``gap``, ``nan``, ``flat``, ``clipped``, ``saturated``,
  ``amplitude``, ``constant``): published as usual, but kept out of the feedback baseline.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .frames import Frame
from .quality import EpisodeLog

logger = logging.getLogger(__name__)

#: Flags that do not keep a frame out of the feedback baseline.
_CLEAN_FLAGS = frozenset({"internal_clock", "late"})


@dataclass
class Skip:
    """A tick that produced no frame."""

    index: int
    t: float
    #: "stale" | "queue_full" | "not_covered" | "gap" | "timeout" | "error" | "stopped"
    reason: str
    detail: str = ""


class FrameSink:
    """LSL outlets + session recorder, fed by the worker and the acquisition thread.

    Parameters
    ----------
    bold, feedback : BoldOutlet | FeedbackOutlet | None
        The outlets (None: not published).
    recorder : SessionRecorder | None
        Set now or later with :meth:`attach_recorder` (events until then are kept and written
        when it comes).
    """

    def __init__(self, *, bold=None, feedback=None, recorder=None) -> None:
        self.bold, self.feedback = bold, feedback
        self.recorder = None
        self.events: deque[tuple[str, float | None, str]] = deque(maxlen=10_000)
        self.skips: deque[Skip] = deque(maxlen=10_000)  # the recorder keeps the full list
        self.n_skipped = 0
        self.n_frames = 0
        self.n_markers = 0
        self.message = ""
        self._lock = threading.RLock()
        self._log = EpisodeLog(logger, every_s=10.0)
        self.on_error = None
        #: ``callable(index, t, values)``: a measured vector paired with an emitted frame.
        self.on_measured = None
        if recorder is not None:
            self.attach_recorder(recorder)

    @property
    def session_dir(self) -> Path | None:
        return self.recorder.folder if self.recorder is not None else None

    def attach_recorder(self, recorder) -> None:
        with self._lock:
            self.recorder = recorder
            for kind, t, text in list(self.events):  # events from before the recorder existed
                self._write("write_event", kind, onset=t, description=text)

    # -- frames -----------------------------------------------------------------------------------
    def publish(self, frame: Frame) -> None:
        """Push the frame on the outlets (not when ``"nonfinite"``) and set its feedback value."""
        if "nonfinite" in frame.flags:
            frame.feedback = None
            return
        if self.bold is not None:
            self.bold.push(frame.values, frame.t)
        if self.feedback is not None:
            clean = not (set(frame.flags) - _CLEAN_FLAGS)
            frame.feedback = self.feedback.push(frame.values, frame.t, update_baseline=clean)

    def record(self, frame: Frame) -> None:
        """Write the frame (append-only, durable) before anyone displays it."""
        self.n_frames += 1
        self._write("write_frame", frame)

    def skip(self, skip: Skip) -> None:
        """Count and record a TR without a frame; the log is rate-limited per reason."""
        self.n_skipped += 1
        self.skips.append(skip)
        text = f"TR {skip.index} at {skip.t:.3f} s skipped: {skip.reason}" + (
            f" ({skip.detail})" if skip.detail else "")
        if skip.reason == "not_covered":
            logger.info(text)
        else:
            self._log.warning(f"skip-{skip.reason}", "%s", text)
        self._write("write_event", "skipped_tick", onset=skip.t,
                    description=f"TR {skip.index}: {skip.reason}", index=skip.index,
                    reason=skip.reason, detail=skip.detail)

    def measured(self, index: int, t: float, values, *, late: bool = True) -> None:
        """Measured BOLD of the already emitted frame ``index`` (tick time ``t``): recorded in
        ``measured.tsv`` with the frame's index and time, then handed to ``on_measured``."""
        self._write("write_measured", index, t, values)
        if self.on_measured is not None:
            try:
                self.on_measured(index, t, values)
            except Exception as err:  # noqa: BLE001 - a display bug must not stop acquisition
                logger.exception("on_measured callback failed for TR %d", index)
                self.error(err)

    def measured_dropped(self, stamp: float, reason: str, detail: str) -> None:
        """A measured vector not paired with any frame (``reason`` "late" or "unpaired"):
        recorded in events.tsv (``measured_late`` / ``measured_unpaired``), logged (rate-limited)."""
        self.event(f"measured_{reason}", stamp, f"measured BOLD stamped {stamp:.3f} s not "
                   f"paired: {reason}: {detail}", reason=reason)

    # -- acquisition side -------------------------------------------------------------------------
    def eeg(self, raw, times) -> None:
        """Raw EEG as received: ``raw`` (n_channels, n) µV and its LSL times."""
        if self.recorder is not None:
            self._write("write_eeg", raw, times)

    def markers(self, markers: list[tuple[str, float]]) -> None:
        """Every marker received, volume or not."""
        self.n_markers += len(markers)
        if self.recorder is not None:
            with self._lock:
                for desc, t in markers:
                    self._write("write_event", "marker", onset=t, description=desc)

    def event(self, kind: str, t: float | None, text: str, *, warn: bool = False,
              status: bool | None = None, log_every: bool = False, **info) -> None:
        """Record an event; ``warn`` logs it as a warning and shows it as the status message.

        ``log_every=False`` logs events of one kind at most once per 10 s (all are recorded).
        """
        self.events.append((kind, t, text))
        if log_every or self._log.allow(f"event-{kind}"):
            (logger.warning if warn else logger.info)(text)
        if warn if status is None else status:
            self.message = text
        self._write("write_event", kind, onset=t, description=text, **info)

    def error(self, err: BaseException) -> None:
        logger.error("%s", err)
        self.message = f"error: {err}"
        if self.on_error is not None:
            try:
                self.on_error(err)
            except Exception:  # noqa: BLE001 - a failing callback must not kill a thread
                logger.exception("on_error callback failed")

    def _write(self, method: str, *args, **kwargs) -> None:
        if self.recorder is None:
            return
        try:
            with self._lock:
                getattr(self.recorder, method)(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - reported; the session goes on
            if self._log.warning(f"rec-{method}", "Recording failed (%s): %s", method, err):
                self.error(err)

    def close(self, **summary) -> None:
        """Write the stop event, close the recorder and the outlets."""
        if self.recorder is not None:
            with self._lock:
                self._write("write_event", "engine_stop", description="stopped", **summary)
                self.recorder.close()
        for out in (self.bold, self.feedback):
            if out is not None:
                out.close()


def open_sink(config, runner, inlet, tr: float) -> FrameSink:
    """The outlets and (when ``config.output.record``) the recorder for a session."""
    oc = config.output
    atlas = runner.atlas or f"DiFuMo{len(runner.roi_names)}"
    bold = feedback = None
    if oc.bold_outlet or oc.feedback_outlet:
        from .outlets import BoldOutlet, FeedbackOutlet

        sid = oc.source_id
        if oc.bold_outlet:
            bold = BoldOutlet(runner.roi_names, tr=tr, name=f"{oc.name}-bold",
                              source_id=f"{sid}-bold" if sid else None, atlas=atlas,
                              model=runner.name)
        if oc.feedback_outlet:
            feedback = FeedbackOutlet(
                oc.feedback_target, tr=tr, atlas=runner.roi_names,
                baseline_trs=oc.feedback_baseline_trs, baseline=oc.feedback_baseline,
                name=f"{oc.name}-feedback", source_id=f"{sid}-feedback" if sid else None)
    return FrameSink(bold=bold, feedback=feedback)


def open_recorder(config, runner, inlet, tr: float, session_dir: Path):
    """The session recorder for ``session_dir`` (the raw EEG as the inlet receives it, in µV)."""
    from .config import resolve_bundle
    from .recorder import SessionRecorder

    atlas = runner.atlas or f"DiFuMo{len(runner.roi_names)}"
    info = inlet.full_info
    return SessionRecorder(
        session_dir, roi_names=runner.roi_names, tr=tr, atlas=atlas,
        bundle={"path": str(resolve_bundle(config.bundle).resolve()) if config.bundle else None,
                "name": runner.name,
                "ch_names": runner.ch_names, "device": str(runner.device)},
        eeg_ch_names=inlet.ch_names, eeg_ch_types=inlet.ch_types, eeg_sfreq=inlet.sfreq,
        eeg_unit="uV",
        stream_info={"eeg": {"name": inlet.name, "type": inlet.stype,
                             "source_id": inlet.source_id, "hostname": info.hostname(),
                             "units": sorted(set(inlet.ch_units)), "scale_to_uv": inlet.scale,
                             "mapping": inlet.mapping.describe()},
                     "config": _config_dict(config)},
        fsync=config.output.fsync)


def _config_dict(cfg) -> dict:
    from ..config import to_dict

    try:
        return to_dict(cfg)
    except Exception:  # noqa: BLE001
        return {}
