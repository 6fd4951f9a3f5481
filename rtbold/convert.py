"""``rtbold convert-neurobolt``: turn the NeuroBOLT release's pickled tables into TSV once."""

from __future__ import annotations

import argparse
from pathlib import Path

from .io.fmri import convert_neurobolt_pickles


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


def _run(args: argparse.Namespace) -> int:
    out = args.out or args.root / "fMRI_difumo64_tsv"
    written = convert_neurobolt_pickles(args.root, out, trust_pickle=args.trust_pickle, tr=args.tr)
    print(f"Wrote {len(written)} region-series tables to {out}")
    return 0
