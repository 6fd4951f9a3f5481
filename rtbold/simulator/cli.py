"""``rtbold simulate``: write a simulated EEG-fMRI dataset (BIDS layout)."""

from __future__ import annotations

import argparse

from .config import load_simulator_config


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate", help="write a semi-synthetic simultaneous EEG-fMRI dataset (BIDS)",
        description="Simulate EEG (BrainVision, 26 channels, one volume marker per TR) driven by "
                    "real or synthetic DiFuMo-64 BOLD region series (targets at 64 regions, or at "
                    "128/256 derived through the DiFuMo maps), with the per-region ceiling "
                    "and the generator's ground truth under derivatives/rtbold-sim.")
    p.add_argument("out_dir", help="dataset root to create (must be empty unless --overwrite)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="TOML file with a [simulate] table (see configs/simulate.toml)")
    p.add_argument("--subjects", type=int, default=None, dest="n_subjects", metavar="N")
    p.add_argument("--subject-offset", type=int, default=None, metavar="I",
                   help="index of the first subject (make held-out subjects alone)")
    p.add_argument("--scans-per-subject", type=int, default=None, dest="scans_per_subject",
                   metavar="K")
    p.add_argument("--n-volumes", type=int, default=None, dest="n_volumes", metavar="T",
                   help="volumes per scan (semi-synthetic: the first T of the real series)")
    p.add_argument("--sfreq", type=float, default=None, metavar="HZ", help="EEG amplifier rate")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--bold-from", default=None, dest="bold_from", metavar="PATH",
                   help="region TSV (header = DiFuMo names) or npz; default: packaged real scans")
    p.add_argument("--bold-scans", default=None, dest="bold_scans", metavar="SEL",
                   help="real scans that drive the simulation, 0-based: '0-16', '17-22', "
                        "'0,3,5-7' (default all); keep training and held-out sets disjoint")
    p.add_argument("--mode", choices=("semi", "synthetic"), default=None)
    p.add_argument("--coupling", type=float, default=None, metavar="KAPPA",
                   help="global EEG-BOLD coupling scale")
    p.add_argument("--snr", type=float, default=None, help="neural / sensor-noise RMS ratio")
    p.add_argument("--n-regions", type=int, choices=(64, 128, 256), default=None,
                   dest="n_regions",
                   help="regions of the BOLD targets; 128 and 256 are derived from the real "
                        "64-region series through the DiFuMo maps (an approximation of rank "
                        "<= 64; the EEG is the same as at 64). Default 64")
    p.add_argument("--source-maps", default=None, dest="source_maps", metavar="NII",
                   help="DiFuMo-64 probabilistic maps (4-D NIfTI), with --n-regions 128/256")
    p.add_argument("--target-maps", default=None, dest="target_maps", metavar="NII",
                   help="DiFuMo-128 maps (4-D) or DiFuMo-256 label image (3-D), with "
                        "--n-regions 128/256")
    p.add_argument("--marker", default=None, help="volume marker (default R149; R128 in-scanner)")
    p.add_argument("--in-scanner", action="store_true",
                   help="raw EEG as recorded inside a 3 T scanner: gradient artefact, BCG and an "
                        "ECG channel at 5 kHz (unless --sfreq), R128 markers, the clean EEG and "
                        "each artefact under derivatives/ ([simulate.scanner] knobs)")
    p.add_argument("--dropped-triggers", type=int, default=None, metavar="N",
                   help="in-scanner: volume triggers left out per scan")
    p.add_argument("--doubled-triggers", type=int, default=None, metavar="N",
                   help="in-scanner: volume triggers doubled per scan")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty OUT_DIR")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..config import load_toml
    from .bids import simulate_dataset
    from .config import in_scanner_config

    overrides = {k: getattr(args, k) for k in ("n_subjects", "subject_offset", "scans_per_subject", "n_volumes",
                                              "sfreq", "seed", "bold_from", "bold_scans", "mode", "coupling",
                                              "snr", "marker", "n_regions", "source_maps",
                                              "target_maps")}
    scanner = {k: v for k, v in (("dropped_triggers", args.dropped_triggers),
                                 ("doubled_triggers", args.doubled_triggers)) if v is not None}
    if args.in_scanner:
        table = load_toml(args.config).get("simulate", {}) if args.config else {}
        cfg = in_scanner_config(table, scanner=scanner, **overrides)
    else:
        if scanner:
            overrides["scanner"] = scanner  # refused below unless the config enables the mode
        cfg = load_simulator_config(args.config, **overrides)
        if scanner and not cfg.scanner.enabled:
            raise SystemExit("rtbold simulate: --dropped-triggers/--doubled-triggers need "
                             "--in-scanner.")
    summary = simulate_dataset(args.out_dir, cfg, overwrite=args.overwrite,
                               progress=not args.no_progress)
    print(summary.format())
    return 0
