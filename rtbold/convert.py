"""Preparing fMRI targets as region-series TSV files.

``rtbold convert-neurobolt`` turns the NeuroBOLT release's pickled tables into TSV once;
``rtbold extract-regions`` makes a region-series TSV from a 4-D NIfTI BOLD image and an atlas image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .io.fmri import convert_neurobolt_pickles, extract_region_series, write_region_tsv


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert-neurobolt",
        help="convert a NeuroBOLT release's fMRI pickles to TSV (needs --trust-pickle)",
        description="Read fMRI_difumo64/*.pkl of a NeuroBOLT release (pickled pandas tables) and "
                    "write one TSV + JSON sidecar per scan. Unpickling runs code from the files: "
                    "only do it for files you trust.",
    )
    p.add_argument("root", type=Path, help="release folder holding fMRI_difumo64/ (or fMRI_difumo/)")
    p.add_argument("out", type=Path, nargs="?", default=None,
                   help="output folder (default: ROOT/fMRI_difumo64_tsv, found by rtbold train)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="confirm that the pickles come from a source you trust")
    p.add_argument("--tr", type=float, default=2.1, help="repetition time in s (default 2.1)")
    p.set_defaults(func=_run)

    e = subparsers.add_parser(
        "extract-regions",
        help="region-series TSV from a 4-D NIfTI BOLD image and an atlas image",
        description="Extract DiFuMo (or any atlas) region time series with nilearn: detrended, "
                    "standardised, with motion confounds regressed out, as NeuroBOLT did.",
    )
    e.add_argument("bold", type=Path, help="4-D BOLD NIfTI")
    e.add_argument("atlas", type=Path, help="atlas maps (4-D probabilistic, e.g. DiFuMo 64 maps) "
                                            "or a 3-D label image with --labels")
    e.add_argument("out", type=Path, help="output TSV (a JSON sidecar is written beside it)")
    e.add_argument("--n-regions", type=int, default=64, choices=(64, 128, 256),
                   help="DiFuMo dimension, for the region names (default 64)")
    e.add_argument("--confounds", type=Path, default=None,
                   help="motion parameters, one row per volume (e.g. AFNI volreg .1D)")
    e.add_argument("--tr", type=float, default=None, help="TR in s (default: NIfTI header)")
    e.add_argument("--labels", action="store_true", help="the atlas is a 3-D label image")
    e.add_argument("--min-coverage", type=float, default=0.5, metavar="SHARE",
                   help="regions with a smaller share of their map inside the image's field of "
                        "view are written as n/a (default 0.5)")
    e.set_defaults(func=_run_extract)


def _run_extract(args: argparse.Namespace) -> int:
    from .atlas import load_atlas

    atlas = load_atlas(args.n_regions)
    series = extract_region_series(args.bold, args.atlas, list(atlas.roi_names),
                                   confounds=args.confounds, tr=args.tr, labels=args.labels,
                                   min_coverage=args.min_coverage)
    write_region_tsv(args.out, series, Atlas=atlas.name, Source=args.bold.name)
    empty = int(np.isnan(series.data).all(axis=0).sum())
    print(f"Wrote {series.n_volumes} volumes x {len(series.roi_names)} regions "
          f"(TR {series.tr:g} s) to {args.out}"
          + (f"; {empty} regions outside the image's field of view are n/a" if empty else ""))
    return 0


def _run(args: argparse.Namespace) -> int:
    out = args.out or args.root / "fMRI_difumo64_tsv"
    written = convert_neurobolt_pickles(args.root, out, trust_pickle=args.trust_pickle, tr=args.tr)
    print(f"Wrote {len(written)} region-series tables to {out}")
    return 0
