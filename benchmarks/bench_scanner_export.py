"""Cost of ``rtbold scanner-export`` per volume with the real DiFuMo-64 maps (tests/data).

The maps (2 mm MNI) are resampled once to a 3 mm 64 x 76 x 64 EPI grid (``--reference``), then
each volume is read from disk (uncompressed NIfTI) and turned into 64 region values. Prints the
one-off preparation time and the median and 95th percentile time per volume.

    python benchmarks/bench_scanner_export.py [--volumes 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from rtbold.atlas import load_atlas
from rtbold.scanner.export import ScannerExport
from rtbold.scanner.volumes import read_volume

MAPS = Path(__file__).resolve().parents[1] / "tests" / "data" / "difumo64_2mm_maps.nii.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = nib.load(MAPS).affine[:3, 3]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "export").mkdir()
        vol = tmp / "vol.nii"
        nib.save(nib.Nifti1Image((500 + 100 * rng.random((64, 76, 64))).astype(np.float32),
                                 affine), vol)
        t0 = time.perf_counter()
        export = ScannerExport(tmp / "export", MAPS, roi_names=list(load_atlas(64).roi_names),
                               atlas="DiFuMo64", tr=2.1, markers="none", resolve_timeout_s=0,
                               reference=vol)
        prepare = time.perf_counter() - t0
        times = []
        for _ in range(args.volumes):
            t0 = time.perf_counter()
            export.region_values(read_volume(vol), vol)
            times.append(time.perf_counter() - t0)
    print(f"maps resampled to 64x76x64 (3 mm) and fit precomputed: {prepare:.1f} s")
    print(f"per volume (read + 64 region values): median {1e3 * np.median(times):.1f} ms, "
          f"p95 {1e3 * np.percentile(times, 95):.1f} ms over {args.volumes} volumes")


if __name__ == "__main__":
    main()
