"""Accuracy benchmark: UnEBOLT vs NeuroBOLT-64 vs ridge vs mean, beside the simulator ceiling.

Simulates a cross-subject dataset (or uses ``--data``), trains UnEBOLT and a 64-region NeuroBOLT
with the same recipe and split, fits the ridge band-power and mean baselines on the same training
scans, evaluates everything on the same held-out subjects and prints one markdown table (mean (std)
over test scans), also written to ``OUT/results.md`` with ``OUT/comparison.png`` and
``OUT/results.json``.

Examples::

    python benchmarks/bench_accuracy.py --quick --out runs/bench_quick          # smoke run, minutes
    python benchmarks/bench_accuracy.py --n-subjects 10 --n-volumes 575 \\
        --unebolt-size base --neurobolt-size base --epochs 20 --device cuda --out runs/bench
    python benchmarks/bench_accuracy.py --data /path/to/bids --out runs/bench_real

The simulator knobs used are saved with the results (``derivatives/rtbold-sim/knobs.json`` of the
simulated dataset) so the numbers can be reproduced. Nothing here tunes the simulator toward any
model: every model is reported as it lands.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("bench_accuracy")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_accuracy", help="output folder")
    p.add_argument("--data", default=None, help="existing dataset root (skip simulation)")
    p.add_argument("--n-subjects", type=int, default=10)
    p.add_argument("--scans-per-subject", type=int, default=1)
    p.add_argument("--n-volumes", type=int, default=300)
    p.add_argument("--sim-seed", type=int, default=0)
    p.add_argument("--unebolt-size", default="small", choices=("base", "small", "tiny"))
    p.add_argument("--neurobolt-size", default="small", choices=("base", "small", "tiny"))
    p.add_argument("--models", default="unebolt,neurobolt",
                   help="comma-separated subset of unebolt,neurobolt")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-windows-per-scan", type=int, default=None)
    p.add_argument("--labram-weights", default=None)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 5 tiny subjects x 60 volumes, tiny models, 1 epoch")
    args = p.parse_args(argv)
    if args.quick:
        args.n_subjects, args.n_volumes, args.epochs = 5, 60, 1
        args.unebolt_size = args.neurobolt_size = "tiny"
        args.batch_size, args.max_windows_per_scan = 32, 32
    return args


def simulate(out: Path, args) -> Path:
    from rtbold.simulator import SimulatorConfig, simulate_dataset

    root = out / "sim"
    if (root / "derivatives" / "rtbold-sim" / "ceiling.tsv").is_file():
        logger.info("Reusing simulated dataset %s", root)
        return root
    cfg = SimulatorConfig(n_subjects=args.n_subjects, scans_per_subject=args.scans_per_subject,
                          n_volumes=args.n_volumes, seed=args.sim_seed)
    summary = simulate_dataset(root, cfg, overwrite=True, progress=False)
    logger.info("%s", summary.format())
    return root


def train_one(name: str, size: str, root: Path, out: Path, args) -> Path:
    from rtbold.config import from_dict
    from rtbold.training import TrainConfig, train, validate_config

    raw = {
        "data": {"root": str(root), "highpass": 0.5},
        "model": {"name": name, "size": size},
        "train": {"protocol": "cross_subject", "epochs": args.epochs,
                  "batch_size": args.batch_size, "seed": args.seed, "device": args.device,
                  "bf16": args.bf16, "warmup_epochs": min(5.0, max(args.epochs / 4, 0.0)),
                  "loss": "unebolt" if name == "unebolt" else "mse", "progress": False},
        "output": {"dir": str(out / name)},
    }
    if args.max_windows_per_scan:
        raw["train"]["max_windows_per_scan"] = args.max_windows_per_scan
    if args.labram_weights:
        raw["train"]["labram_weights"] = args.labram_weights
    cfg = validate_config(from_dict(TrainConfig, raw, "bench"), "bench")
    t0 = time.perf_counter()
    res = train(cfg)
    logger.info("%s (%s) trained in %.0f s, best epoch %d", name, size,
                time.perf_counter() - t0, res.best_epoch)
    return res.bundle


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from rtbold.evaluate import evaluate_bundle
    from rtbold.metrics import METRIC_NAMES
    from rtbold.report import markdown_table, plot_comparison

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.data).resolve() if args.data else simulate(out, args)
    labels = {"unebolt": "UnEBOLT", "neurobolt": "NeuroBOLT"}
    sizes = {"unebolt": args.unebolt_size, "neurobolt": args.neurobolt_size}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    results: dict = {}
    baselines: dict = {}
    ceiling = None
    timings = {}
    for i, name in enumerate(models):
        t0 = time.perf_counter()
        bundle = train_one(name, sizes[name], root, out, args)
        timings[name] = round(time.perf_counter() - t0, 1)
        label = f"{labels[name]} ({sizes[name]})"
        res = evaluate_bundle(bundle, root, out=out / f"eval_{name}", baselines=(i == 0),
                              device=args.device, max_windows_per_scan=args.max_windows_per_scan,
                              label=label)
        results[label] = res["aggregate"]
        if i == 0:
            baselines = {f"{k}": v for k, v in (res.get("comparison") or {}).items()}
            ceiling = res.get("ceiling")
            test_scans = [s["name"] for s in res["scans"]]
    results.update({"ridge (band power)": baselines.get("ridge"),
                    "mean": baselines.get("mean")})
    results = {k: v for k, v in results.items() if v}
    table = markdown_table(results, ceiling, METRIC_NAMES)
    plot_comparison(results, out / "comparison.png", ceiling=ceiling,
                    title=f"Cross-subject accuracy, mean ± std over {len(test_scans)} held-out "
                          "scans")
    header = (f"# rtbold accuracy benchmark\n\n"
              f"data: `{root}`{' (simulated, knobs in derivatives/rtbold-sim/knobs.json)' if not args.data else ''}\n"
              f"protocol: cross-subject, test scans: {', '.join(test_scans)}\n"
              f"epochs {args.epochs}, batch {args.batch_size}, max windows/scan "
              f"{args.max_windows_per_scan or 'all'}, device {args.device}, "
              f"train+eval seconds {timings}\n\n"
              "Values are mean (std) over test scans. The ceiling is the simulator's upper bound "
              "(corr of the BOLD with HRF * the EEG-visible drive); Tcorr ceiling is per-region "
              "mean, FC ceilings use the explainable BOLD as a prediction. The mean predictor is "
              "constant in time, so its correlations are undefined (n/a).\n\n")
    (out / "results.md").write_text(header + table + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(
        {"results": results, "ceiling": ceiling, "args": vars(args), "timings_s": timings,
         "test_scans": test_scans}, indent=1, default=str), encoding="utf-8")
    print(table)
    print(f"\nwritten: {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
