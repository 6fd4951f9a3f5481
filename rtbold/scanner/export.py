"""Measured BOLD from the scanner's real-time export folder, published over LSL.

``rtbold scanner-export WATCH_DIR --maps MAPS.nii.gz --markers STREAM --name STREAM`` watches the
folder the scanner writes each reconstructed volume to, turns every new volume into region values
with nilearn's maps masker on the atlas maps given by path, pairs it with its volume marker and
publishes the values as an LSL stream of region values (labels = region names, type ``fMRI``),
which ``rtbold run`` reads as its measured-BOLD stream (``[live.measured] name``).

Pairing
-------
Volume ``k`` is the file numbered ``first_volume + k`` (the last group of digits of its name,
:func:`rtbold.scanner.volumes.volume_number`). Marker ``k`` is the ``k``-th volume marker
(``marker``, e.g. ``R128``) received on the marker stream after the command started, once the
first ``skip_markers`` are passed (dummy volumes that send a trigger but no file). Volume ``k`` is
published when both its file and its marker are there, stamped with the marker's time (LSL
stream time), so a consumer pairs it with what happened at that trigger however late the file
came. Start the command before the scan: files already in the folder are taken as an earlier
run's and not read, and a marker sent before the start is not counted.

Flags (each logged as a warning naming the volume and file, counted in :attr:`ScannerExport.counts`
and listed in :attr:`ScannerExport.events`; none stops the watcher, and nothing already published
is taken back):

``late``
    the volume was read more than ``late_s`` after its marker (LSL clock); it is still
    published with its marker's time.
``out_of_order``
    its number is lower than that of a volume read before it; still published.
``missing``
    no file came within ``missing_s`` of its marker. A file that comes later is still
    published (and flagged ``late``).
``corrupt``
    the file could not be read as a 3-D volume (NIfTI, or a DICOM mosaic/multi-frame file)
    within ``corrupt_after_s`` of its first sighting (truncated, unreadable, a single DICOM slice,
    other geometry than the first volume); not published.
``duplicate``
    a second file with a number already read; not published.
``unpaired``
    a volume waits for its marker more than ``missing_s`` (more files than markers: a missed
    trigger, a wrong ``--marker`` or ``--first-volume``); published if its marker comes.

What this online path does not do
---------------------------------
No motion correction (no realignment), no slice-timing correction, no
spatial smoothing, no registration: the volumes must already be in the atlas's space (MNI for
DiFuMo), as the scanner or an upstream real-time pipeline writes them. No confound regression
(motion, physiology, global signal). The region value of a volume is the least-squares fit of
the atlas maps to its voxel intensities, as nilearn's ``NiftiMapsMasker`` computes it: the
masker resamples the maps once to the grid of ``reference`` (else of the first volume), and its
least-squares solution for that grid is precomputed (its ``transform`` takes seconds per volume,
the precomputed one milliseconds). Then, by default, the causal normalisation of
:class:`rtbold.scanner.normalise.OnlineTargetNormaliser` (running linear detrend, running mean and
95th percentile of |x|), the online counterpart of the offline target normalisation; the engine
itself does not normalise a measured stream. Volume files are NIfTI or DICOM (one whole volume
per file: a Siemens mosaic or a multi-frame file; :func:`rtbold.scanner.volumes.read_volume`).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .normalise import OnlineTargetNormaliser
from .volumes import ExportFolder, VolumeError, VolumeFile, read_volume

logger = logging.getLogger(__name__)

__all__ = ["ScannerExport", "VolumeEvent", "add_parser"]

FLAGS = ("late", "out_of_order", "missing", "corrupt", "duplicate", "unpaired")


@dataclass
class VolumeEvent:
    """One flagged volume (see the module notes)."""

    kind: str
    volume: int  # k, counted from first_volume
    file: str  # file name ("" for a missing volume)
    text: str


@dataclass
class Published:
    """One published volume."""

    volume: int
    t: float  # its marker's stream time (the sample's timestamp)
    values: np.ndarray  # (P,) as published
    flags: tuple[str, ...]


class ScannerExport:
    """Watch an export folder, pair volumes with markers, publish region values over LSL.

    Parameters
    ----------
    folder : path-like
        The scanner's real-time export folder.
    maps : path-like
        Atlas maps, 4-D probabilistic (e.g. DiFuMo's ``maps.nii.gz``), in the volumes' space.
    roi_names : list of str
        The atlas's region names, in order (the stream's channel labels).
    atlas : str
        Atlas name written to the stream's ``desc/atlas`` (e.g. ``"DiFuMo64"``).
    tr : float
        Repetition time (s): the stream's nominal rate and the defaults of the deadlines.
    markers : str
        Name of the marker stream carrying the volume triggers.
    markers_source_id : str | None
    marker : str
        Value of a volume marker (:func:`rtbold.io.eeg.marker_matches`).
    name, source_id : str
        The published stream's name and source id (default ``<name>-<folder name>``).
    first_volume : int
        Number of the run's first volume file.
    skip_markers : int
        Volume markers at the start that have no file (dummies).
    late_s, missing_s : float | None
        Deadlines after the marker (default 2 TR and 4 TR).
    corrupt_after_s : float
        How long an unreadable file is retried (it may still be being written).
    normalise, lowpass : bool
        Publish the causal target normalisation (:class:`OnlineTargetNormaliser`), with or
        without its causal low-pass; ``normalise=False`` publishes the masker's values.
    reference : path-like | None
        A volume of the run's protocol (same grid), to resample the maps before the first
        volume comes; without it the first volume waits for the resampling (seconds to a
        minute for 2 mm DiFuMo maps) and comes late.
    min_coverage : float
        Regions with a smaller share of their map inside the volumes' field of view are NaN.
    pattern, settle_s, poll_s : see :class:`ExportFolder`; seconds between polls.
    resolve_timeout_s : float
        Wait this long for the marker stream at start (it is looked for all along afterwards).
    """

    def __init__(self, folder: str | Path, maps: str | Path, *, roi_names: list[str], atlas: str,
                 tr: float, markers: str, markers_source_id: str | None = None,
                 marker: str = "R128", name: str = "scanner-bold", source_id: str | None = None,
                 first_volume: int = 1, skip_markers: int = 0, late_s: float | None = None,
                 missing_s: float | None = None, corrupt_after_s: float = 2.0,
                 normalise: bool = True, lowpass: bool = False,
                 reference: str | Path | None = None,
                 min_coverage: float = 0.5, pattern: str = "*", settle_s: float = 0.1,
                 poll_s: float = 0.05, resolve_timeout_s: float = 2.0) -> None:
        if not tr > 0:
            raise ValueError(f"TR must be positive, got {tr!r}.")
        self.maps = Path(maps)
        if not self.maps.is_file():
            raise FileNotFoundError(f"Atlas maps {self.maps} do not exist; pass the atlas maps "
                                    "file (e.g. DiFuMo's maps.nii.gz) with --maps.")
        self.folder = ExportFolder(folder, pattern=pattern, settle_s=settle_s)
        self.roi_names, self.atlas, self.tr = list(roi_names), atlas, float(tr)
        self.marker, self.first_volume, self.skip_markers = marker, int(first_volume), int(
            skip_markers)
        self.late_s = 2 * self.tr if late_s is None else float(late_s)
        self.missing_s = 4 * self.tr if missing_s is None else float(missing_s)
        self.corrupt_after_s, self.poll_s = float(corrupt_after_s), float(poll_s)
        self.min_coverage = float(min_coverage)
        self.normaliser = (OnlineTargetNormaliser(len(self.roi_names), self.tr, lowpass=lowpass)
                           if normalise else None)
        self.name = name
        self.source_id = source_id or f"{name}-{Path(folder).resolve().name}"
        self.counts = {"published": 0, **{f: 0 for f in FLAGS}}
        self.events: list[VolumeEvent] = []
        self.published: list[Published] = []
        self.marker_times: list[float] = []
        self._n_volume_markers = 0
        self._projector = self._voxels = None
        self._outside = np.empty(0, dtype=int)
        self._geometry: tuple | None = None
        self._pending: dict[int, tuple[VolumeFile, np.ndarray, float]] = {}  # k -> file, values
        self._seen: set[int] = set()  # volumes read (published or waiting for their marker)
        self._failed: set[int] = set()  # corrupt volumes (not missing, not read)
        self._reported_missing: set[int] = set()
        self._reported_unpaired: set[int] = set()
        self._highest = -1
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        if reference is not None:
            self.prepare(read_volume(reference), f"the reference volume {reference}")
        self._connect(markers, markers_source_id, resolve_timeout_s)

    # -- LSL ---------------------------------------------------------------------------------------
    def _connect(self, markers: str, source_id: str | None, timeout: float) -> None:
        from ..stream.inlet import MarkerInlet, describe_stream, try_resolve_any
        from ..stream.outlets import BoldOutlet

        info = try_resolve_any([markers], source_id, timeout=timeout)
        self.markers = MarkerInlet(info, names=[markers], source_id=source_id)
        if info is None:
            logger.warning("Marker stream %r not found within %g s; still looking for it (no "
                           "volume is published before its marker).", markers, timeout)
        else:
            logger.info("Volume markers %r from %s", self.marker, describe_stream(info))
        self.outlet = BoldOutlet(self.roi_names, tr=self.tr, name=self.name, stype="fMRI",
                                 source_id=self.source_id, atlas=self.atlas,
                                 model=f"scanner-export {self.folder.folder}",
                                 unit="normalised" if self.normaliser else "a.u.",
                                 timestamp="volume marker time in stream time")

    # -- the loop ---------------------------------------------------------------------------------
    def start(self) -> "ScannerExport":
        """Run :meth:`step` every ``poll_s`` in a thread (``rtbold-scanner-export``)."""
        self._thread = threading.Thread(target=self._run, name="rtbold-scanner-export",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the watcher never stops on one bad volume
                logger.exception("scanner export: error in a poll; going on")
            self._halt.wait(self.poll_s)

    def step(self) -> None:
        """One poll: new markers, new files, publish what is paired, deadlines."""
        import pylsl

        self._pull_markers()
        for vf in self.folder.poll():
            self._read(vf)
        self._publish_paired(pylsl.local_clock())
        self._check_deadlines(pylsl.local_clock())

    def _pull_markers(self) -> None:
        from ..io.eeg import marker_matches

        for desc, t in self.markers.pull():
            if not marker_matches(desc, self.marker):
                continue
            self._n_volume_markers += 1
            if self._n_volume_markers > self.skip_markers:
                self.marker_times.append(t)
        while self.markers.events:
            kind, text = self.markers.events.popleft()
            (logger.warning if kind in ("disconnected", "silent", "warning") else logger.info)(
                "marker stream: %s", text)

    # -- volumes -----------------------------------------------------------------------------------
    def _flag(self, kind: str, k: int, file: str, text: str) -> None:
        self.counts[kind] += 1
        self.events.append(VolumeEvent(kind, k, file, text))
        logger.warning("scanner export: %s", text)

    def _label(self, k: int) -> str:
        return f"volume {k + self.first_volume}"

    def _read(self, vf: VolumeFile) -> None:
        import pylsl

        k, name = vf.number - self.first_volume, vf.path.name
        if k < 0:
            logger.warning("scanner export: %s is numbered before the first volume (%d); "
                           "skipped (set --first-volume)", vf.path, self.first_volume)
            return
        if k in self._seen or k in self._failed:
            self._flag("duplicate", k, name, f"{self._label(k)}: {vf.path} has the number of a "
                       "volume already read; not published")
            return
        try:
            img = read_volume(vf.path)
            values = self.region_values(img, vf.path)
        except (VolumeError, ValueError) as err:  # ValueError: maps that do not fit it
            if time.monotonic() - vf.seen_wall < self.corrupt_after_s:
                self.folder.retry(vf)  # perhaps still being written
                return
            self._failed.add(k)
            self._flag("corrupt", k, name, f"{self._label(k)}: {err}; not published "
                       f"({self.counts['corrupt'] + 1} corrupt so far)")
            return
        if k < self._highest:
            self._flag("out_of_order", k, name, f"{self._label(k)} ({name}) came after "
                       f"{self._label(self._highest)}")
        self._highest = max(self._highest, k)
        self._seen.add(k)
        self._pending[k] = (vf, values, pylsl.local_clock())

    def prepare(self, img, what: str) -> None:
        """Resample the maps to ``img``'s grid (nilearn's maps masker) and precompute the
        masker's least-squares solution for that grid (costly: seconds to a minute)."""
        from ..io.fmri import atlas_masker

        t0 = time.perf_counter()
        masker, self._outside = atlas_masker(self.maps, img, self.roi_names,
                                             min_coverage=self.min_coverage, what=what,
                                             detrend=False, standardize=None)
        masker.fit(img)  # the maps are resampled to this grid here, once
        maps = np.asarray(masker.maps_img_.get_fdata(dtype=np.float32))
        maps = maps.reshape(-1, maps.shape[-1])
        # NiftiMapsMasker.transform solves lstsq(maps, voxels) for each image; voxels outside
        # every map add nothing to it, and its solution is pinv(maps) @ voxels: computed once.
        self._voxels = np.flatnonzero(np.any(maps != 0, axis=1))
        self._projector = np.linalg.pinv(maps[self._voxels].astype(np.float64))
        self._geometry = (img.shape, np.round(img.affine, 4).tobytes())
        logger.info("scanner export: maps %s resampled to the grid of %s %s in %.1f s",
                    self.maps, what, img.shape, time.perf_counter() - t0)

    def region_values(self, img, path: Path) -> np.ndarray:
        """Region values of one volume (NaN outside the field of view)."""
        if self._geometry is None:
            self.prepare(img, f"the first volume {path}")
        elif (img.shape, np.round(img.affine, 4).tobytes()) != self._geometry:
            raise VolumeError(f"{path}: shape {img.shape} or affine differs from the first "
                              f"volume's {self._geometry[0]}; the maps were resampled to that "
                              "grid")
        data = np.asarray(img.dataobj, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(data[self._voxels])):
            raise VolumeError(f"{path}: NaN or infinite voxel values inside the atlas maps")
        values = self._projector @ data[self._voxels]
        values[self._outside] = np.nan
        return values

    def _publish_paired(self, now: float) -> None:
        for k in sorted(self._pending):
            if k >= len(self.marker_times):
                continue
            vf, values, read_t = self._pending.pop(k)
            t = self.marker_times[k]
            flags = tuple(e.kind for e in self.events if e.volume == k
                          and e.kind in ("out_of_order", "missing", "unpaired"))
            if read_t - t > self.late_s:
                flags += ("late",)
                self._flag("late", k, vf.path.name, f"{self._label(k)} ({vf.path.name}) read "
                           f"{read_t - t:.2f} s after its marker (deadline {self.late_s:g} s)")
            out = self.normaliser.update(values) if self.normaliser is not None else values
            self.outlet.push(out, t)
            self.counts["published"] += 1
            self.published.append(Published(k, t, np.asarray(out, dtype=np.float32), flags))
            logger.info("scanner export: %s (%s) published at marker time %.3f s, read %.2f s "
                        "after it%s", self._label(k), vf.path.name, t, read_t - t,
                        f" [{', '.join(flags)}]" if flags else "")

    def _check_deadlines(self, now: float) -> None:
        for k, t in enumerate(self.marker_times):
            if (now - t > self.missing_s and k not in self._seen and k not in self._failed
                    and k not in self._reported_missing):
                self._reported_missing.add(k)
                self._flag("missing", k, "", f"{self._label(k)}: no file in "
                           f"{self.folder.folder} {now - t:.1f} s after its marker")
        for k, (vf, _, read_t) in self._pending.items():
            if now - read_t > self.missing_s and k not in self._reported_unpaired:
                self._reported_unpaired.add(k)
                self._flag("unpaired", k, vf.path.name, f"{self._label(k)} ({vf.path.name}) "
                           f"has no marker: {len(self.marker_times)} volume marker(s) "
                           f"{self.marker!r} so far (check --marker, --first-volume, "
                           "--skip-markers)")

    @property
    def n_accounted(self) -> int:
        """Volumes published, or flagged missing or corrupt (each counted once)."""
        return len({p.volume for p in self.published} | self._reported_missing | self._failed)

    def summary(self) -> str:
        """One line: volumes published and each flag's count."""
        c = self.counts
        return (f"{c['published']} volume(s) published on {self.name!r}; "
                + ", ".join(f"{c[f]} {f.replace('_', ' ')}" for f in FLAGS))


# -- CLI -------------------------------------------------------------------------------------------
def add_parser(subparsers) -> None:
    """Register ``rtbold scanner-export``."""
    p = subparsers.add_parser(
        "scanner-export",
        help="publish region values of the scanner's real-time export folder as an LSL stream",
        description="Watch the scanner's real-time export folder (NIfTI or DICOM volumes), pair the "
                    "k-th volume with the k-th volume marker, and publish its region values "
                    "(nilearn maps masker on the atlas maps given by path) as an LSL stream "
                    "stamped with the marker's time, for `rtbold run`'s [live.measured] name. "
                    "No motion or slice-timing correction; see the README.")
    p.add_argument("folder", type=Path, help="the folder the scanner writes volumes to")
    p.add_argument("--maps", type=Path, required=True,
                   help="atlas maps (4-D, e.g. DiFuMo 64 maps.nii.gz) in the volumes' space; "
                        "nothing is fetched")
    p.add_argument("--reference", type=Path, default=None, metavar="VOLUME",
                   help="a 3-D volume on the run's grid: the maps are resampled to it at start "
                        "(else at the first volume, which then comes late)")
    p.add_argument("--n-regions", type=int, default=64, choices=(64, 128, 256),
                   help="DiFuMo dimension, for the region names (default 64)")
    p.add_argument("--markers", required=True, metavar="NAME[:SOURCE_ID]",
                   help="LSL marker stream with the volume triggers")
    p.add_argument("--marker", default="R128", help="value of a volume marker (default R128)")
    p.add_argument("--name", default="scanner-bold",
                   help="published stream name (default scanner-bold); set it as "
                        "[live.measured] name for rtbold run")
    p.add_argument("--source-id", default=None, help="published source id")
    p.add_argument("--tr", type=float, required=True, help="repetition time in s")
    p.add_argument("--first-volume", type=int, default=1,
                   help="number in the file name of the run's first volume (default 1)")
    p.add_argument("--skip-markers", type=int, default=0,
                   help="volume markers at the start without a file (default 0)")
    p.add_argument("--late", type=float, default=None, metavar="S",
                   help="flag a volume read more than S after its marker (default 2 TR)")
    p.add_argument("--missing", type=float, default=None, metavar="S",
                   help="flag a volume with no file S after its marker (default 4 TR)")
    p.add_argument("--pattern", default="*", help="glob of the volume files (default *)")
    p.add_argument("--no-normalise", action="store_true",
                   help="publish the masker's values, not the causal target normalisation")
    p.add_argument("--lowpass", action="store_true",
                   help="add the targets' low-pass, run causally (about a TR of delay)")
    p.add_argument("--min-coverage", type=float, default=0.5, metavar="SHARE",
                   help="regions with less of their map in the field of view are n/a "
                        "(default 0.5)")
    p.add_argument("--volumes", type=int, default=None, metavar="N",
                   help="stop once N volumes are published or flagged missing/corrupt "
                        "(default: run until Ctrl-C)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..atlas import load_atlas

    atlas = load_atlas(args.n_regions)
    name, _, source_id = args.markers.partition(":")
    export = ScannerExport(args.folder, args.maps, roi_names=list(atlas.roi_names),
                           atlas=atlas.name, tr=args.tr, markers=name,
                           markers_source_id=source_id or None, marker=args.marker,
                           name=args.name, source_id=args.source_id,
                           first_volume=args.first_volume, skip_markers=args.skip_markers,
                           late_s=args.late, missing_s=args.missing,
                           normalise=not args.no_normalise, lowpass=args.lowpass,
                           reference=args.reference, min_coverage=args.min_coverage,
                           pattern=args.pattern)
    print(f"Watching {args.folder} for volumes; publishing {atlas.name} region values as LSL "
          f"stream {args.name!r} at the {args.marker!r} markers of {name!r}", flush=True)
    export.start()
    shown = 0
    try:
        while True:
            time.sleep(0.2)
            for p in export.published[shown:]:
                print(f"volume {p.volume + export.first_volume}: t={p.t:.3f}"
                      + (f" [{', '.join(p.flags)}]" if p.flags else ""), flush=True)
            shown = len(export.published)
            if args.volumes is not None and export.n_accounted >= args.volumes:
                break
    except KeyboardInterrupt:
        pass
    finally:
        export.stop()
        print(export.summary(), flush=True)
    return 0
