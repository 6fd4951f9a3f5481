"""The scanner's real-time export folder: new volume files, their numbers, reading them.

:class:`ExportFolder` lists the folder at each poll and hands back, in order of volume number,
the files that are new and complete. A file counts as complete once its size has not changed
for ``settle_s`` (a scanner writes a volume in pieces). Volume numbers come from the file name:
the last group of digits of the name without its extension (``001_000007_000012.nii`` -> 12,
``vol0012.nii.gz`` -> 12), the scheme of Siemens' real-time export and of OpenNFT.

Formats: 3-D NIfTI (``.nii``, ``.nii.gz``; a 4-D file with one volume is taken as 3-D) and
DICOM (``.dcm``, ``.ima``) with one whole volume per file: a Siemens mosaic (what Siemens'
real-time export writes for EPI) or an enhanced multi-frame file, read with nibabel's DICOM
support (:mod:`nibabel.nicom.dicomwrappers`, on pydicom), which also gives the volume's affine
(scanner space, RAS+). A single-slice DICOM file (classic storage: one file per slice) is refused,
naming the file: those slices must be stacked by a converter (e.g. dcm2niix) first.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["ExportFolder", "VolumeFile", "VolumeError", "read_volume", "volume_number"]

_DIGITS = re.compile(r"(\d+)")
#: Seconds an empty file must stay empty before it is handed back (and found corrupt).
_EMPTY_S = 2.0
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".ima")


class VolumeError(ValueError):
    """A volume file that cannot be used (corrupt, unsupported, wrong shape)."""


@dataclass
class VolumeFile:
    """A complete file of the export folder and its volume number."""

    path: Path
    number: int
    seen_wall: float = field(default=0.0)  # time.monotonic() when it was first listed


def _stem(name: str) -> str:
    low = name.lower()
    for suffix in (".nii.gz", *NIFTI_SUFFIXES, *DICOM_SUFFIXES):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def volume_number(path: str | Path) -> int | None:
    """The volume number in a file name (its last group of digits), or None."""
    found = _DIGITS.findall(_stem(Path(path).name))
    return int(found[-1]) if found else None


def read_volume(path: str | Path):
    """Read one 3-D volume as a nibabel image (data loaded, so a truncated file fails here).

    Raises
    ------
    VolumeError
        The file is not a readable 3-D NIfTI volume (the message names the file and why).
    """
    import nibabel as nib

    path = Path(path)
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return _read_dicom(path)
    try:
        img = nib.load(path)
        data = img.get_fdata(dtype="float32")
    except Exception as err:  # noqa: BLE001 - any reader error means this file is unusable
        raise VolumeError(f"{path}: not a readable NIfTI volume ({type(err).__name__}: {err})"
                          ) from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(f"{path}: a volume must be 3-D, this file has shape {data.shape}.")
    return nib.Nifti1Image(data, img.affine)


def _read_dicom(path: Path):
    """One DICOM volume (Siemens mosaic or multi-frame) as a NIfTI image in scanner RAS+."""
    import warnings

    import nibabel as nib

    try:
        from nibabel.nicom import dicomwrappers
    except ImportError as err:  # pydicom missing
        raise VolumeError(f"{path}: reading DICOM needs pydicom ({err}); install it "
                          "(`pip install pydicom`) or export NIfTI.") from err
    try:
        with warnings.catch_warnings():  # nibabel calls its DICOM readers experimental
            warnings.simplefilter("ignore", UserWarning)
            wrapper = dicomwrappers.wrapper_from_file(str(path))
            data = np.asarray(wrapper.get_data(), dtype=np.float32)
            affine = wrapper.affine
    except Exception as err:  # noqa: BLE001 - any reader error means this file is unusable
        raise VolumeError(f"{path}: not a readable DICOM volume ({type(err).__name__}: {err})"
                          ) from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or data.shape[2] == 1:
        raise VolumeError(f"{path}: a DICOM file of shape {data.shape}, not a whole volume "
                          "(one slice per file?); export mosaics or multi-frame files, or stack "
                          "the slices into NIfTI first (e.g. dcm2niix).")
    # nibabel's DICOM affine maps voxels to DICOM's LPS patient space; NIfTI is RAS+
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    return nib.Nifti1Image(data, lps_to_ras @ affine)


class ExportFolder:
    """New complete volume files of a folder, in order of volume number.

    Parameters
    ----------
    folder : path-like
        The scanner's real-time export folder (must exist).
    pattern : str
        Glob of the volume files (default: every file; non-volume files are skipped).
    settle_s : float
        A file is complete once its size has not changed for this long.
    ignore_existing : bool
        Files already there at start belong to an earlier run: listed once in the log, never
        read.
    """

    def __init__(self, folder: str | Path, *, pattern: str = "*", settle_s: float = 0.1,
                 ignore_existing: bool = True) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"Export folder {self.folder} does not exist; give the folder "
                                    "the scanner writes its real-time volumes to.")
        self.pattern, self.settle_s = pattern, float(settle_s)
        self._done: set[str] = set()
        self._sizes: dict[str, tuple[int, float, float]] = {}  # name -> size, changed, first seen
        self.skipped: list[str] = []  # files without a volume number or of another kind
        if ignore_existing:
            old = [p.name for p in self.folder.glob(pattern) if p.is_file()]
            self._done.update(old)
            if old:
                logger.warning("Export folder %s already holds %d file(s) (e.g. %s); they are "
                               "taken as an earlier run's and not read.", self.folder, len(old),
                               sorted(old)[0])

    def poll(self) -> list[VolumeFile]:
        """New complete files since the last call, sorted by volume number."""
        now = time.monotonic()
        ready = []
        for p in self.folder.glob(self.pattern):
            name = p.name
            if name in self._done or name.startswith("."):
                continue
            low = name.lower()
            if not low.endswith((*NIFTI_SUFFIXES, *DICOM_SUFFIXES)):
                if name not in self.skipped:
                    self.skipped.append(name)
                    logger.info("Export folder: %s is not a volume file (.nii, .nii.gz, .dcm, "
                                ".ima); skipped",
                                p)
                continue
            try:
                size = p.stat().st_size
            except FileNotFoundError:  # removed between listing and stat
                continue
            prev = self._sizes.get(name)
            if prev is None or prev[0] != size:
                self._sizes[name] = (size, now, prev[2] if prev else now)
                continue
            # an empty file is usually one the scanner has only opened: give it longer
            if now - prev[1] < (self.settle_s if size else max(self.settle_s, _EMPTY_S)):
                continue
            number = volume_number(p)
            self._done.add(name)
            self._sizes.pop(name, None)
            if number is None:
                self.skipped.append(name)
                logger.warning("Export folder: %s has no volume number in its name; skipped", p)
                continue
            ready.append(VolumeFile(p, number, prev[2]))
        return sorted(ready, key=lambda v: v.number)

    def retry(self, volume: VolumeFile) -> None:
        """List ``volume`` again at a later poll (it failed to read while perhaps still being
        written)."""
        self._done.discard(volume.path.name)
        self._sizes[volume.path.name] = (-1, time.monotonic(), volume.seen_wall)

    def pending(self) -> list[str]:
        """Files seen but not complete yet (still being written, or empty)."""
        return sorted(self._sizes)
