"""Append-only session recording that survives a crash (``kill -9``) with at most one TR lost.

A session folder holds

``session.json``
    written once at the start: ROI names, atlas, TR, model bundle info, EEG channel info, rtbold
    version, start time, and the list of files below with their columns.
``predictions.tsv``
    one row per TR: ``index``, ``t`` (stream time of the window end), ``flags`` (``|``-joined, empty
    when clean), ``feedback``, then one column per region named by the region.
``predictions.json``
    BIDS-style sidecar describing the predictions columns (roi names, atlas, tr, bundle, units).
``measured.tsv``
    (only when measured BOLD came) ``index``, ``t`` (the frame's) and the region columns, one row
    per frame that has a measured volume. A volume that came after its frame was emitted is
    appended when it comes, so rows may be out of index order; :func:`read_measured` sorts them.
``latency.tsv``
    one row per TR: ``index``, ``t`` and one column per stage (seconds since the tick).
``events.tsv``
    ``onset`` (stream time, n/a when unknown), ``wall_time`` (Unix s), ``kind`` (marker, gap,
    reconnect, skipped_tick, warning, session_start, session_end, ...), ``description``, ``info``
    (JSON).
``eeg.bin`` / ``eeg_times.bin`` / ``eeg.json``
    the raw EEG as received: float32 little-endian, sample-major (n_times x n_channels), the LSL
    timestamps as float64 little-endian, and a JSON header (channel names, types, units, nominal
    rate) written once at the start. A sample is complete when both its values and its timestamp are
    on disk; a reader keeps the common prefix, so a write cut by a crash costs only that tail.
    :func:`export_raw_fif` converts it to FIF (with the markers as annotations).

Every file is opened in append mode and nothing is ever rewritten. Rows are written as whole lines
and flushed to the OS on every write (a ``kill -9`` cannot lose what the OS has); :meth:`flush` (called
once per TR by :meth:`SessionRecorder.write_frame`) also ``fsync``s, which protects against power
loss. Readers (:func:`read_tsv`, :func:`read_raw_eeg`) ignore a trailing partial line or sample.

The writers may be called from several threads (acquisition writes EEG and gap events, the inference
worker writes frames); one lock serialises them. With ``fsync=True`` a TR costs about 1 ms (a few ms
at worst) on an SSD; pass ``fsync=False`` where that matters more than power-loss safety.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import threading
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

from .frames import STAGES as LATENCY_STAGES  # stage -> seconds since the tick, pipeline order
_VOLTAGE_TYPES = ("eeg", "eog", "ecg", "emg", "seeg", "ecog", "bio")


def _cell(value) -> str:
    """One TSV cell: tabs/newlines cannot appear inside a cell (they would break the row)."""
    if value is None:
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return "n/a" if not math.isfinite(value) else repr(float(value))
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


class _AppendTsv:
    """A TSV file opened for appending whole lines, header written once."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns
        new = not path.exists() or path.stat().st_size == 0
        # Line buffering is not used: each row is one write() of a complete line, then flushed.
        self._fid = path.open("a", encoding="utf-8", newline="\n")
        if new:
            self.write_row(columns)

    def write_row(self, cells) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.path.name}: row has {len(cells)} cells for "
                             f"{len(self.columns)} columns.")
        self._fid.write("\t".join(_cell(c) for c in cells) + "\n")
        self._fid.flush()

    def fsync(self) -> None:
        os.fsync(self._fid.fileno())

    def close(self) -> None:
        if not self._fid.closed:
            self._fid.flush()
            self._fid.close()


def _locked(method):
    """Run a writer under the recorder's lock (writers are called from several threads)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class SessionRecorder:
    """Record a live session into ``folder`` (created; must not already hold a session).

    Parameters
    ----------
    folder : path-like
        Session folder to create.
    roi_names : sequence of str
        Region names (prediction columns).
    tr : float | None
        Repetition time in seconds.
    atlas : str
        Atlas name, e.g. ``DiFuMo64``.
    bundle : dict | None
        Model bundle information (path, model name, metrics, ...); must be JSON-serialisable.
    eeg_ch_names, eeg_ch_types : sequence of str | None
        Channels of the raw EEG as received (types mne-style; default all ``eeg``). Without names,
        :meth:`write_eeg` is not available.
    eeg_sfreq : float | None
        Nominal rate of the EEG stream.
    eeg_unit : str
        Unit of the EEG values as received (``"uV"`` or ``"V"``); :func:`export_raw_fif` converts.
    stream_info : dict | None
        Anything else worth keeping about the input streams (names, source ids, hosts).
    latency_stages : sequence of str
        Latency columns; stages a frame does not report are written as ``n/a``.
    fsync : bool
        ``fsync`` every file once per TR (crash-proof against power loss, not only ``kill -9``).
    """

    def __init__(self, folder, *, roi_names, tr: float | None = None, atlas: str = "DiFuMo64",
                 bundle: dict | None = None, eeg_ch_names=None, eeg_ch_types=None,
                 eeg_sfreq: float | None = None, eeg_unit: str = "uV",
                 stream_info: dict | None = None, latency_stages=LATENCY_STAGES,
                 fsync: bool = True) -> None:
        self.folder = Path(folder)
        if (self.folder / "session.json").exists():
            raise FileExistsError(f"{self.folder} already holds a recorded session; choose a new "
                                  "folder (recordings are never overwritten).")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.roi_names = [str(r) for r in roi_names]
        self.latency_stages = [str(s) for s in latency_stages]
        self.do_fsync = bool(fsync)
        self.n_frames = 0
        self.n_eeg_samples = 0
        self._closed = False
        self._lock = threading.RLock()
        if eeg_unit not in ("uV", "V"):
            raise ValueError(f"eeg_unit must be 'uV' or 'V', got {eeg_unit!r}.")

        self.eeg_ch_names = None if eeg_ch_names is None else [str(c) for c in eeg_ch_names]
        if self.eeg_ch_names is not None:
            types = ["eeg"] * len(self.eeg_ch_names) if eeg_ch_types is None else \
                [str(t).lower() for t in eeg_ch_types]
            if len(types) != len(self.eeg_ch_names):
                raise ValueError(f"{len(types)} channel types for {len(self.eeg_ch_names)} "
                                 "EEG channels.")
            eeg_header = {"ch_names": self.eeg_ch_names, "ch_types": types,
                          "unit": eeg_unit, "sfreq": eeg_sfreq, "dtype": "<f4",
                          "layout": "sample-major (n_times, n_channels)",
                          "times": "eeg_times.bin, float64 little-endian LSL timestamps"}
            _write_json_once(self.folder / "eeg.json", eeg_header)
            self._eeg = (self.folder / "eeg.bin").open("ab")
            self._eeg_times = (self.folder / "eeg_times.bin").open("ab")
        else:
            self._eeg = self._eeg_times = None

        from rtbold import __version__

        meta = {
            "rtbold_version": __version__, "start_wall_time": time.time(),
            "start_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "roi_names": self.roi_names, "atlas": atlas, "tr": tr, "bundle": bundle or {},
            "eeg": {"ch_names": self.eeg_ch_names, "sfreq": eeg_sfreq, "unit": eeg_unit},
            "streams": stream_info or {},
            "files": {
                "predictions.tsv": ["index", "t", "flags", "feedback", *self.roi_names],
                "latency.tsv": ["index", "t", *self.latency_stages],
                "events.tsv": ["onset", "wall_time", "kind", "description", "info"],
            },
        }
        _write_json_once(self.folder / "session.json", meta)
        sidecar = {
            "Description": "rtbold predicted BOLD, one row per TR (window end = volume time).",
            "RepetitionTime": tr, "Atlas": atlas, "roi_names": self.roi_names,
            "bundle": bundle or {},
            "channels": {"eeg": self.eeg_ch_names, "sfreq": eeg_sfreq},
            "index": {"Description": "TR counter from session start"},
            "t": {"Description": "stream time (LSL clock) of the window end", "Units": "s"},
            "flags": {"Description": "'|'-joined frame flags (gap, late, ...); empty when clean"},
            "feedback": {"Description": "z-scored feedback value sent on rtbold-feedback"},
            "Units": "normalised (as the model was trained)",
        }
        _write_json_once(self.folder / "predictions.json", sidecar)
        self._pred = _AppendTsv(self.folder / "predictions.tsv",
                                ["index", "t", "flags", "feedback", *self.roi_names])
        self._lat = _AppendTsv(self.folder / "latency.tsv", ["index", "t", *self.latency_stages])
        self._events = _AppendTsv(self.folder / "events.tsv",
                                  ["onset", "wall_time", "kind", "description", "info"])
        self._measured: _AppendTsv | None = None
        self.write_event("session_start", description=str(self.folder))

    # -- writers ----------------------------------------------------------------------------
    @_locked
    def write_eeg(self, data, timestamps) -> None:
        """Append raw EEG as received: ``data`` (n_channels, n) and its ``timestamps`` (n,)."""
        if self._eeg is None:
            raise RuntimeError(f"SessionRecorder {self.folder} was created without EEG channel "
                               "names; pass eeg_ch_names to record the raw EEG.")
        arr = np.asarray(data)
        ts = np.asarray(timestamps, dtype="<f8").ravel()
        if arr.ndim != 2 or arr.shape[0] != len(self.eeg_ch_names) or arr.shape[1] != ts.size:
            raise ValueError(f"write_eeg expects data ({len(self.eeg_ch_names)}, n) with n "
                             f"timestamps; got data {arr.shape} and {ts.size} timestamps.")
        if ts.size == 0:
            return
        # Values first, timestamps second: a sample counts only once its timestamp is written.
        self._eeg.write(np.ascontiguousarray(arr.T, dtype="<f4").tobytes())
        self._eeg.flush()
        self._eeg_times.write(ts.tobytes())
        self._eeg_times.flush()
        self.n_eeg_samples += ts.size

    @_locked
    def write_prediction(self, index: int, t: float, values, *, flags=(), feedback=None,
                         measured=None) -> None:
        """Append one TR of predictions (and of measured BOLD when given)."""
        vals = np.asarray(values, dtype=np.float64).ravel()
        if vals.size != len(self.roi_names):
            raise ValueError(f"{self.folder / 'predictions.tsv'}: {vals.size} values for "
                             f"{len(self.roi_names)} regions.")
        flag_text = "|".join(str(f) for f in flags) if flags else ""
        self._pred.write_row([int(index), float(t), flag_text, feedback, *vals.tolist()])
        if measured is not None:
            self.write_measured(index, t, measured)

    @_locked
    def write_measured(self, index: int, t: float, measured) -> None:
        """Append the measured BOLD of frame ``index`` (on time with its prediction, or later
        when the volume came after the frame: rows are then not in index order)."""
        if self._measured is None:
            self._measured = _AppendTsv(self.folder / "measured.tsv",
                                        ["index", "t", *self.roi_names])
        meas = np.asarray(measured, dtype=np.float64).ravel()
        if meas.size != len(self.roi_names):
            raise ValueError(f"{self.folder / 'measured.tsv'}: {meas.size} values for "
                             f"{len(self.roi_names)} regions.")
        self._measured.write_row([int(index), float(t), *meas.tolist()])

    @_locked
    def write_latency(self, index: int, t: float, latency: dict) -> None:
        """Append one TR of stage times (seconds since the tick); unknown stages are logged once."""
        extra = set(latency) - set(self.latency_stages)
        if extra:
            logger.debug("latency stages %s are not columns of %s; not written", sorted(extra),
                         self._lat.path)
        self._lat.write_row([int(index), float(t),
                             *[latency.get(s) for s in self.latency_stages]])

    @_locked
    def write_event(self, kind: str, *, onset: float | None = None, description: str = "",
                    **info) -> None:
        """Append an event: a marker, gap, reconnection, skipped tick, warning, ...

        ``onset`` is stream time when known; ``info`` is stored as JSON.
        """
        self._events.write_row([onset, time.time(), kind, description,
                                json.dumps(info, default=str) if info else ""])

    @_locked
    def write_frame(self, frame) -> None:
        """Record one engine frame (predictions, measured, latency) and make everything durable.

        ``frame`` is an :class:`rtbold.stream.Frame` or anything with ``index``, ``t``, ``values``,
        ``feedback``, ``flags``, ``latency`` and optionally ``measured``.
        """
        self.write_prediction(frame.index, frame.t, frame.values, flags=frame.flags,
                              feedback=frame.feedback, measured=getattr(frame, "measured", None))
        self.write_latency(frame.index, frame.t, dict(frame.latency or {}))
        self.n_frames += 1
        self.flush()

    @_locked
    def flush(self) -> None:
        """Flush every file to the OS and, with ``fsync``, to disk (called once per TR)."""
        files = [self._pred, self._lat, self._events] + ([self._measured] if self._measured else [])
        for f in files:
            f._fid.flush()
            if self.do_fsync:
                f.fsync()
        if self._eeg is not None:
            for fid in (self._eeg, self._eeg_times):
                fid.flush()
                if self.do_fsync:
                    os.fsync(fid.fileno())

    @_locked
    def close(self) -> None:
        """Write the end event, flush and close every file (idempotent)."""
        if self._closed:
            return
        self.write_event("session_end", n_frames=self.n_frames, n_eeg_samples=self.n_eeg_samples)
        self.flush()
        for f in (self._pred, self._lat, self._events, self._measured):
            if f is not None:
                f.close()
        for fid in (self._eeg, self._eeg_times):
            if fid is not None:
                fid.close()
        self._closed = True

    def __enter__(self) -> "SessionRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _write_json_once(path: Path, obj: dict) -> None:
    """Write a JSON file atomically (temp file + rename) so a crash never leaves half of it."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fid:
        json.dump(obj, fid, indent=2, ensure_ascii=False, default=str)
        fid.flush()
        os.fsync(fid.fileno())
    os.replace(tmp, path)


# -- readers --------------------------------------------------------------------------------------
def _num(v: str) -> float:
    return math.nan if v == "n/a" else float(v)


def read_tsv(path) -> tuple[list[str], list[list[str]]]:
    """Read a session TSV: (header, rows), without a trailing partial line left by a crash."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    # The last element is "" when the file ends with a newline, else a partial line: drop either.
    lines = lines[:-1]
    if not lines:
        raise ValueError(f"{path} has no header line; the session was cut before it started.")
    header = lines[0].split("\t")
    rows = [ln.split("\t") for ln in lines[1:]]
    bad = [i for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise ValueError(f"{path}: rows {bad[:5]} do not have {len(header)} cells.")
    return header, rows


def read_predictions(folder) -> dict:
    """Read ``predictions.tsv`` of a session.

    Returns
    -------
    dict
        ``index`` (n,) int, ``t`` (n,) float, ``flags`` list of tuples, ``feedback`` (n,) float
        (NaN for n/a), ``values`` (n, P) float, ``roi_names`` list.
    """
    header, rows = read_tsv(Path(folder) / "predictions.tsv")
    roi = header[4:]

    return {
        "index": np.array([int(r[0]) for r in rows], dtype=int),
        "t": np.array([_num(r[1]) for r in rows]),
        "flags": [tuple(f for f in r[2].split("|") if f) for r in rows],
        "feedback": np.array([_num(r[3]) for r in rows]),
        "values": np.array([[_num(v) for v in r[4:]] for r in rows]).reshape(len(rows), len(roi)),
        "roi_names": roi,
    }


def read_measured(folder) -> dict:
    """Read ``measured.tsv`` of a session, sorted by frame index.

    Volumes that came after their frame were appended when they came (rows out of index order);
    each frame has at most one row.

    Returns
    -------
    dict
        ``index`` (n,) int, ``t`` (n,) float (the frames' tick times), ``values`` (n, P) float
        (NaN for n/a: regions the measured stream lacks), ``roi_names`` list.
    """
    path = Path(folder) / "measured.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the session recorded no measured BOLD "
                                "(no measured-bold stream, or none of its regions matched).")
    header, rows = read_tsv(path)
    roi = header[2:]
    rows.sort(key=lambda r: int(r[0]))

    return {"index": np.array([int(r[0]) for r in rows], dtype=int),
            "t": np.array([_num(r[1]) for r in rows]),
            "values": np.array([[_num(v) for v in r[2:]] for r in rows]).reshape(len(rows),
                                                                               len(roi)),
            "roi_names": roi}


def read_raw_eeg(folder) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read the raw EEG of a session: (data (n_channels, n) float32, timestamps (n,), header).

    Keeps the samples whose values and timestamps are both complete on disk.
    """
    folder = Path(folder)
    header_path = folder / "eeg.json"
    if not header_path.is_file():
        raise FileNotFoundError(f"{folder} has no eeg.json; the session recorded no raw EEG.")
    header = json.loads(header_path.read_text(encoding="utf-8"))
    n_ch = len(header["ch_names"])
    n_data = (folder / "eeg.bin").stat().st_size // (4 * n_ch)
    n_ts = (folder / "eeg_times.bin").stat().st_size // 8
    n = min(n_data, n_ts)
    data = np.fromfile(folder / "eeg.bin", dtype="<f4", count=n * n_ch).reshape(n, n_ch).T
    times = np.fromfile(folder / "eeg_times.bin", dtype="<f8", count=n)
    return data, times, header


def read_markers(folder) -> list[tuple[float, str]]:
    """The markers a session recorded (``events.tsv`` rows of kind ``marker`` with an onset):
    ``(stream time, description)`` in file order; empty without ``events.tsv``."""
    path = Path(folder) / "events.tsv"
    if not path.is_file():
        return []
    header, rows = read_tsv(path)
    col = {c: i for i, c in enumerate(header)}
    return [(float(r[col["onset"]]), r[col["description"]]) for r in rows
            if r[col["kind"]] == "marker" and r[col["onset"]] != "n/a"]


def export_raw_fif(folder, fname=None, *, overwrite: bool = False) -> Path:
    """Convert a session's raw EEG to a FIF file mne reads; markers become annotations.

    Parameters
    ----------
    folder : path-like
        Session folder.
    fname : path-like | None
        Output file; default ``<folder>/eeg_raw.fif``.
    overwrite : bool
        Replace an existing output file.

    Returns
    -------
    Path
        The FIF file. Sample 0 is the first recorded sample; its LSL timestamp is stored in the
        description (``first_lsl_time=...``). The rate is the stream's nominal rate (or the
        measured one when the header has none); gaps are not filled (see ``events.tsv``).
    """
    import mne

    folder = Path(folder)
    data, times, header = read_raw_eeg(folder)
    if data.shape[1] == 0:
        raise ValueError(f"{folder} holds no EEG samples to export.")
    sfreq = header.get("sfreq")
    if not sfreq:
        if times.size < 2:
            raise ValueError(f"{folder}: cannot infer the EEG rate from {times.size} sample(s).")
        sfreq = (times.size - 1) / (times[-1] - times[0])
    types = header["ch_types"]
    known = set(mne.io.get_channel_type_constants())
    types = [t if t in known else "misc" for t in types]
    scale = np.array([(1e-6 if header["unit"] == "uV" else 1.0) if t in _VOLTAGE_TYPES else 1.0
                      for t in types])
    info = mne.create_info(header["ch_names"], float(sfreq), types)
    info["description"] = f"rtbold session {folder.name}; first_lsl_time={times[0]!r}"
    raw = mne.io.RawArray(data.astype(np.float64) * scale[:, None], info, verbose="error")
    onsets, descs = [], []
    for t, desc in read_markers(folder):
        onset = t - times[0]
        if 0 <= onset <= times[-1] - times[0]:
            onsets.append(onset)
            descs.append(desc or "marker")
    if onsets:
        raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), descs))
    out = Path(fname) if fname is not None else folder / "eeg_raw.fif"
    raw.save(out, overwrite=overwrite, verbose="error")
    return out
