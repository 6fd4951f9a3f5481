"""Accuracy benchmark on held-out subjects: every model trained on the same data, several seeds.

Each training config (``configs/bench/*.toml``) is trained once per seed (``[train] seed``; the
subject split stays fixed), or its existing bundle is reused; every bundle is then evaluated on a
held-out dataset whose real fMRI scans and simulated subject parameters no training or model
selection saw (``rtbold evaluate``, every window). The table gives, per model, the mean over seeds
of the per-scan means, with the standard deviation over seeds in brackets, beside the simulator's
ceiling; per-seed tables, ``results.json`` and ``results.md`` go to ``OUT``.

The benchmark data (README "Benchmarks")::

    rtbold simulate runs/sim_train --subjects 34 --bold-scans 0-16 --seed 0
    rtbold simulate runs/sim_heldout --subjects 6 --subject-offset 200 --bold-scans 17-22 --seed 0

Example::

    python benchmarks/bench_accuracy.py --configs configs/bench/ridge.toml \\
        configs/bench/unebolt_bp_tiny.toml configs/bench/unebolt_tiny.toml \\
        --seeds 0 1 2 --heldout runs/sim_heldout --out runs/bench

Nothing here tunes the simulator toward a model: every model is reported as it lands.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("bench_accuracy")

#: Metrics of the table, in order.
METRICS = ("tcorr", "pixcorr", "res_tcorr", "res_pixcorr", "global_share", "mean_fc", "connmse",
           "f1_25", "f1_50")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", required=True, help="training TOMLs, one per model")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="training seeds (ridge is deterministic and trained once)")
    p.add_argument("--heldout", required=True, help="held-out dataset root (never trained on)")
    p.add_argument("--out", default="runs/bench", help="output folder")
    p.add_argument("--epochs", type=int, default=None, help="override [train] epochs")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--retrain", action="store_true", help="train again even if a bundle exists")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training-TOML key, value in TOML syntax (repeatable), e.g. "
                        "train.bandpower_pretrain_epochs=4 or "
                        "'model.overrides={bandpower_context = false}'")
    p.add_argument("--name", default=None,
                   help="row label and output subfolder (default: the config's file name); "
                        "one config only, for ablations of it made with --set")
    args = p.parse_args(argv)
    if args.name is not None and len(args.configs) != 1:
        p.error("--name labels one config; give one --configs entry with it")
    try:
        args.overrides = parse_sets(args.sets)
    except ValueError as err:
        p.error(str(err))
    return args


def parse_sets(sets: list[str]) -> dict:
    """``["train.lr=1e-3", ...]`` as nested override tables (values parsed as TOML)."""
    import tomllib

    from rtbold.training.config import deep_update

    out: dict = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=0")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"--set {item!r}: the value is not valid TOML ({err}); quote "
                             "strings, e.g. train.loss='mse'") from None
        node: dict = parsed
        for part in reversed(key.strip().split(".")):
            node = {part: node}
        out = deep_update(out, node)
    return out


def train_one(cfg_path: Path, seed: int, out: Path, args) -> tuple[Path, float]:
    """Bundle of ``cfg_path`` at ``seed`` under ``out`` (trained unless it exists)."""
    from rtbold.training import load_train_config, train

    bundle = out / "bundle.safetensors"
    timing = out / "bench_seconds.json"
    if bundle.is_file() and not args.retrain:
        logger.info("reusing %s", bundle)
        secs = json.loads(timing.read_text())["seconds"] if timing.is_file() else float("nan")
        return bundle, secs
    from rtbold.training.config import deep_update

    overrides = {"train": {"seed": seed, "device": args.device},
                 "output": {"dir": str(out.resolve())}}  # relative dirs follow the config file
    if args.epochs is not None:
        overrides["train"]["epochs"] = args.epochs
    cfg = load_train_config(cfg_path, deep_update(args.overrides, overrides))
    t0 = time.perf_counter()
    res = train(cfg)
    secs = time.perf_counter() - t0
    timing.write_text(json.dumps({"seconds": secs}))
    return res.bundle, secs


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "configs" /
                                           "lsl-local.cfg"))
    args = parse_args(argv)
    from rtbold.evaluate import evaluate_bundles
    from rtbold.models import read_bundle_meta

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[tuple[int, Path, float]]] = {}
    for cfg in map(Path, args.configs):
        from rtbold.training import load_train_config

        name = args.name or cfg.stem
        deterministic = load_train_config(cfg, args.overrides).model.name.startswith("ridge")
        for seed in (args.seeds[:1] if deterministic else args.seeds):
            bundle, secs = train_one(cfg, seed, out / name / f"seed{seed}", args)
            runs.setdefault(name, []).append((seed, bundle, secs))

    per_seed: dict[str, list[dict]] = {name: [] for name in runs}
    ceiling = None
    for k, seed in enumerate(args.seeds):
        bundles = {name: r[min(k, len(r) - 1)][1] for name, r in runs.items()}
        res = evaluate_bundles(list(bundles.values()), args.heldout, out=out / f"eval_seed{seed}",
                               device=args.device, labels=list(bundles))
        ceiling = res["ceiling"]
        print(f"\n## seed {seed}: {len(res['scans'])} held-out scans\n\n{res['table']}", flush=True)
        for name in runs:
            if len(runs[name]) > k or k == 0:
                per_seed[name].append({m: (res["models"][name].get(m) or {}).get("mean")
                                       for m in METRICS})

    rows = []
    summary = {}
    for name, vals in per_seed.items():
        seconds = [s for _, _, s in runs[name]]
        meta = read_bundle_meta(runs[name][0][1])
        entry = {"n_seeds": len(vals), "train_seconds": float(np.nanmean(seconds)),
                 "model": meta.model_name, "size": meta.model_size,
                 "variant": meta.model_variant}
        cells = []
        for m in METRICS:
            v = np.array([x[m] for x in vals if x[m] is not None], dtype=float)
            entry[m] = {"mean": float(v.mean()) if v.size else None,
                        "std": float(v.std()) if v.size > 1 else None}
            cells.append("n/a" if not v.size else
                         f"{v.mean():.3f}" + (f" ({v.std():.3f})" if v.size > 1 else ""))
        summary[name] = entry
        rows.append(f"| {name} | {len(vals)} | {entry['train_seconds'] / 60:.0f} min | "
                    + " | ".join(cells) + " |")
    head = ("| model | seeds | training | " + " | ".join(METRICS) + " |\n"
            + "|" + " --- |" * (len(METRICS) + 3))
    if ceiling:
        rows.append("| ceiling (simulator) | | | " + " | ".join(
            f"{ceiling[m]:.3f}" if ceiling.get(m) is not None else "n/a" for m in METRICS) + " |")
    table = head + "\n" + "\n".join(rows)
    text = (f"# Held-out accuracy ({args.heldout}), mean (std over seeds) of per-scan means\n\n"
            f"{table}\n")
    (out / "results.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(json.dumps({"models": summary, "ceiling": ceiling,
                                                  "seeds": args.seeds, "heldout": args.heldout},
                                                 indent=1))
    print("\n" + text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
