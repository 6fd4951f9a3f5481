"""``rtbold evaluate BUNDLE DATA`` and ``rtbold info BUNDLE``.

Evaluation runs a bundle on a dataset's test scans (or all scans), computes every metric of
MODEL.md 6.2 per scan, optionally fits the ridge band-power and mean baselines on the training
scans, adds the simulator's ceiling when the data root is simulator output
(``derivatives/rtbold-sim``), and writes ``metrics.json`` plus the figures of
:func:`rtbold.report.write_report`.

Which scans are "test": when the dataset holds the scans the bundle was trained on (same scan ids),
the bundle's stored split is reused, so test scans are never ones it trained on. On another dataset
the bundle's protocol and split seed are applied afresh; the model has seen none of it, but the
baselines are fitted on that split's training part, so both are compared on the same test scans.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Windows used to fit a baseline at most (evenly subsampled; 2000 windows x 26 x 3200 float32
#: is 0.67 GB). Ridge on band power saturates well before this.
MAX_BASELINE_WINDOWS = 2000
CEILING_FILE = "ceiling.tsv"


def read_ceiling(root: str | Path, scan_names: Sequence[str] | None = None,
                 roi_names: Sequence[str] | None = None) -> dict | None:
    """Read the simulator's per-region ceiling under ``root/derivatives/rtbold-sim``.

    The simulator writes ``ceiling.tsv`` with one row per region: ``region``, ``network``,
    ``ceiling_r`` (mean over scans), ``oracle_r`` and one column per scan (``sub-01_run-01``...).
    When ``scan_names`` are given and such per-scan columns match them (same BIDS entities), only
    those scans are averaged, so the ceiling refers to the evaluated scans.

    Returns
    -------
    dict | None
        ``{"tcorr": mean r, "region_r": {name: r}, "scans": [...], "oracle_tcorr": r | None,
        "source": path}``; None when the data root is not simulator output.
    """
    from .simulator import SIM_DERIVATIVES

    base = Path(root) / SIM_DERIVATIVES
    if not base.is_dir():
        return None
    path = base / CEILING_FILE
    if not path.is_file():
        logger.warning("%s has no %s; no ceiling in the report.", base, CEILING_FILE)
        return None
    with open(path, encoding="utf-8") as fid:
        rows = list(csv.DictReader(fid, delimiter="\t"))
    if not rows or "region" not in rows[0]:
        logger.warning("%s has no 'region' column; no ceiling in the report.", path)
        return None
    cols = [c for c in rows[0] if _entities(c).get("sub")]
    used = []
    if scan_names:
        for name in scan_names:
            ent = _entities(name)
            used += [c for c in cols if c not in used
                     and all(ent.get(k) == v for k, v in _entities(c).items())]
    value_cols = used or [next((c for c in ("ceiling_r", "ceiling", "r") if c in rows[0]), None)]
    if value_cols[0] is None:
        logger.warning("%s has no ceiling column; no ceiling in the report.", path)
        return None
    region_r = {}
    for row in rows:
        v = np.array([_float(row[c]) for c in value_cols])
        if np.isfinite(v).any():
            region_r[row["region"]] = float(np.nanmean(v))
    if roi_names:
        region_r = {k: v for k, v in region_r.items() if k in set(roi_names)}
    if not region_r:
        return None
    oracle = [_float(r.get("oracle_r")) for r in rows if r["region"] in region_r]
    oracle = [o for o in oracle if np.isfinite(o)]
    return {"tcorr": float(np.mean(list(region_r.values()))), "region_r": region_r,
            "scans": used or "all", "oracle_tcorr": float(np.mean(oracle)) if oracle else None,
            "source": str(path)}


def _entities(name: str) -> dict[str, str]:
    return dict(re.findall(r"([a-zA-Z]+)-([a-zA-Z0-9]+)", str(name)))


def _norm(s: str) -> str:
    return "".join(ch for ch in str(s).lower() if ch.isalnum())


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def explainable_predictions(root: str | Path, scans: list, items) -> dict[int, np.ndarray] | None:
    """Simulator's explainable BOLD (HRF * EEG-carried drive) per test scan, when saved.

    Looks for ``derivatives/rtbold-sim/**/<scan>*.npz`` holding ``explainable_bold`` (T, P);
    it is normalised like the targets and used as the "prediction" of a perfect EEG model, giving
    ceiling values for the FC metrics too. Returns None when not available.
    """
    from .preprocessing import preprocess_targets
    from .simulator import SIM_DERIVATIVES
    from .training import per_scan

    base = Path(root) / SIM_DERIVATIVES
    if not base.is_dir():
        return None
    npzs = sorted(base.rglob("*.npz"))
    out: dict[int, np.ndarray] = {}
    vols = per_scan(items, np.array([k for _, k in items]))
    for s, (ks,) in vols.items():
        sc = scans[s]
        key = _norm(sc.spec.name)
        cand = [p for p in npzs if _norm(p.stem).startswith(key) or key in _norm(p.stem)]
        for p in cand:
            with np.load(p, allow_pickle=False) as z:
                key_ex = next((k for k in ("explainable_bold", "explainable") if k in z.files), None)
                if key_ex is None:
                    continue
                ex = np.asarray(z[key_ex], dtype=np.float64)
                names = [str(n) for n in z["roi_names"]] if "roi_names" in z.files else None
            if ex.ndim != 2 or ex.shape[0] != sc.targets.shape[0]:
                continue
            if names is not None and list(names) != list(sc.roi_names):
                if not set(sc.roi_names) <= set(names):
                    continue
                ex = ex[:, [names.index(r) for r in sc.roi_names]]
            elif ex.shape[1] != sc.targets.shape[1]:
                continue
            norm, _ = preprocess_targets(ex, sc.tr)
            out[s] = norm[ks]
            break
    return out if len(out) == len(vols) else None


def _subsample(items: list, n_max: int) -> list:
    if len(items) <= n_max:
        return items
    idx = np.linspace(0, len(items) - 1, n_max).round().astype(int)
    return [items[i] for i in idx]


def _windows(scans: list, items: list) -> tuple[np.ndarray, np.ndarray]:
    X = np.stack([scans[s].window(k) for s, k in items]).astype(np.float32)
    Y = np.stack([scans[s].targets[k] for s, k in items]).astype(np.float32)
    return X, Y


def fit_baselines(scans: list, train_items: list, *, max_windows: int = MAX_BASELINE_WINDOWS
                  ) -> dict:
    """Fit the ridge band-power and mean baselines on (a subsample of) the training windows.

    Windows are taken in time order per scan (the ridge's blocked CV relies on it).
    """
    from rtbold.models import MeanPredictor, RidgeBandPower

    items = _subsample(sorted(train_items), max_windows)
    X, Y = _windows(scans, items)
    return {"ridge": RidgeBandPower().fit(X, Y), "mean": MeanPredictor().fit(X, Y)}


def predict_baseline(model, scans: list, items: list, chunk: int = 256) -> np.ndarray:
    out = []
    for i in range(0, len(items), chunk):
        X, _ = _windows(scans, items[i:i + chunk])
        out.append(model.predict(X))
    return np.concatenate(out).astype(np.float32)


def data_config_for(meta: dict, data: str | Path, *, missing_channels: str = "refuse"):
    """How to read a dataset for a bundle: its marker, regions and EEG high-pass (the same
    preprocessing the model was trained with; the live engine applies it too)."""
    from .training import DataConfig

    n = len(meta["roi_names"])
    return DataConfig(root=Path(data), marker=meta.get("marker", "R149"),
                      n_regions=n if n in (64, 128, 256) else 64,
                      missing_channels=missing_channels, highpass=meta.get("eeg_highpass_hz"))


def evaluate_bundle(bundle: str | Path, data: str | Path, *, out: str | Path | None = None,
                    split: str = "test", baselines: bool = False, device: str = "auto",
                    missing_channels: str = "refuse", batch_size: int = 64,
                    max_windows_per_scan: int | None = None, label: str | None = None) -> dict:
    """Evaluate a bundle on a dataset and write the report.

    Parameters
    ----------
    bundle : path
        Model bundle (``.safetensors``).
    data : path
        Dataset root (BIDS, NeuroBOLT release, simulator output).
    out : path | None
        Report folder (default ``<bundle folder>/eval_<data name>``).
    split : {"test", "all"}
        Which scans/windows: the test part of the split, or every valid window of every scan.
    baselines : bool
        Also fit and evaluate the ridge band-power and mean predictors on the training part.
    device, missing_channels, batch_size, max_windows_per_scan, label
        Run options; ``label`` names the model in the report (default: its model name).

    Returns
    -------
    dict
        The ``metrics.json`` content.
    """
    from rtbold.models import load_bundle, select_device

    from .metrics import aggregate, scan_metrics
    from .report import write_report
    from .training import (load_scans, make_split, meta_dict, networks_for, per_scan,
                           predict_items, scan_id, targets_of)

    if split not in ("test", "all"):
        raise ValueError(f"--split must be 'test' or 'all', got {split!r}.")
    bundle = Path(bundle)
    dev = select_device(device)
    model, bmeta = load_bundle(bundle, device=str(dev))
    meta = meta_dict(bmeta)
    ch_names, roi_names = list(meta["ch_names"]), list(meta["roi_names"])
    model_label = label or {"unebolt": "UnEBOLT", "neurobolt": "NeuroBOLT"}.get(
        meta.get("model_name", ""), meta.get("model_name", "model"))
    data = Path(data)
    dcfg = data_config_for(meta, data, missing_channels=missing_channels)
    scans = load_scans(dcfg, ch_names, roi_names, max_windows_per_scan)
    training = meta.get("training") or {}
    protocol = training.get("protocol", "cross_subject")
    assignment = training.get("assignment") if protocol == "cross_subject" else None
    ids = {scan_id(s) for s in scans}
    if assignment and not ids & {x for v in assignment.values() for x in v}:
        logger.info("%s holds none of the bundle's training scans; applying a fresh %s split.",
                    data, protocol)
        assignment = None
    n_subjects = len({s.spec.subject for s in scans})
    if protocol == "cross_subject" and assignment is None and n_subjects < 3:
        protocol = "intra_scan"  # too few subjects to hold any out: split each scan in time
    parts = make_split(scans, protocol, split_seed=int(training.get("split_seed", 0)),
                       ratios=training.get("split_ratios", (3, 1, 1)), assignment=assignment)
    if split == "all":
        items = [(i, int(k)) for i, s in enumerate(scans) for k in np.flatnonzero(s.valid)]
    else:
        items = parts.items["test"]
        if not items:
            raise ValueError(f"The {protocol} split of {data} has no test windows; use --split all.")
    networks = networks_for(roi_names, dcfg.n_regions)
    true = targets_of(scans, items)
    pred = predict_items(model, scans, items, device=dev, batch_size=batch_size)

    def per_scan_metrics(p_all):
        groups = per_scan(items, p_all, true)
        names, ps, ts = [], [], []
        for s in sorted(groups):
            p, t = groups[s]
            names.append(scan_id(scans[s]))
            ps.append(p)
            ts.append(t)
        sm = [scan_metrics(p, t, name=n, networks=networks) for p, t, n in zip(ps, ts, names)]
        return sm, aggregate(sm), ps, ts

    scans_m, agg, preds, trues = per_scan_metrics(pred)
    comparison: dict = {}
    if baselines:
        if split == "all":
            logger.warning("--baselines with --split all: the baselines are fitted on the training "
                           "part, so their numbers on 'all' include their own training windows.")
        fitted = fit_baselines(scans, parts.items["train"])
        for name, bl in fitted.items():
            _, bagg, _, _ = per_scan_metrics(predict_baseline(bl, scans, items))
            comparison[name] = bagg
    ceiling = None
    ceil = read_ceiling(data, [scan_id(scans[s]) for s in sorted({s for s, _ in items})],
                        roi_names)
    if ceil is not None:
        ceiling = {"tcorr": ceil["tcorr"]}
        ex = explainable_predictions(data, scans, items)
        if ex is not None:
            groups = per_scan(items, true)
            cm = [scan_metrics(ex[s], groups[s][0], name=scan_id(scans[s]), networks=networks)
                  for s in sorted(groups)]
            cagg = aggregate(cm)
            ceiling.update({k: (cagg.get(k) or {}).get("mean") for k in
                            ("pixcorr", "connmse", "f1_25", "f1_50")})
    out = Path(out) if out is not None else bundle.parent / f"eval_{data.name}"
    extra = {
        "bundle": str(bundle), "data_root": str(data), "split": split, "protocol": protocol,
        "n_windows": len(items), "ceiling_detail": ceil,
        "bundle_notes": meta.get("notes", ""),
        "baseline_fit": {"max_windows": MAX_BASELINE_WINDOWS} if baselines else None,
    }
    write_report(out, scans=scans_m, aggregate=agg, preds=preds, trues=trues,
                 roi_names=roi_names, networks=networks, tr=float(np.median([s.tr for s in scans])),
                 model_label=model_label, comparison=comparison, ceiling=ceiling,
                 ceiling_region_r=ceil["region_r"] if ceil else None, extra=extra)
    result = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    result["out"] = str(out)
    return result


def describe(bundle: str | Path) -> str:
    """Readable summary of a bundle (``rtbold info``): the models package's description plus the
    training split and the metrics the trainer stored."""
    from rtbold import models

    from .metrics import METRIC_NAMES
    from .report import markdown_table
    from .training import meta_dict

    meta = meta_dict(models.read_bundle_meta(bundle))
    text = [str(models.describe_bundle(bundle))]
    training = meta.get("training") or {}
    split = training.get("split") or {}
    for part in ("train", "val", "test"):
        if isinstance(split.get(part), dict):
            p = split[part]
            text.append(f"{part:<14} {len(p.get('scans', []))} scans, "
                        f"{len(p.get('subjects', []))} subjects, {p.get('n_windows', 0)} windows")
    if training.get("best_epoch"):
        text.append(f"best epoch     {training['best_epoch']} of {training.get('epochs')} "
                    f"(selected on validation {training.get('select_on', '?')})")
    agg = (meta.get("metrics") or {}).get("test_aggregate")
    if agg:
        text.append("test metrics (mean (std) over test scans):")
        text.append(markdown_table({meta.get("model_name", "model"): agg}, None, METRIC_NAMES))
    return "\n".join(text)


# ----------------------------------------------------------------------------- CLI
def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a model bundle on a dataset",
                              description="Per-scan Tcorr, Pixcorr, ConnMSE, F1@25/50%, network "
                                          "Tcorr; figures and metrics.json in --out.")
    p.add_argument("bundle", help="model bundle (.safetensors)")
    p.add_argument("data", help="dataset root (BIDS, NeuroBOLT release or simulator output)")
    p.add_argument("--out", default=None, help="report folder (default next to the bundle)")
    p.add_argument("--split", default="test", choices=("test", "all"))
    p.add_argument("--baselines", action="store_true",
                   help="also fit ridge band-power and mean predictors on the training part")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--missing-channels", default="refuse",
                   choices=("refuse", "interpolate", "zero"))
    p.add_argument("--max-windows-per-scan", type=int, default=None)
    p.add_argument("--label", default=None, help="model name in the report")
    p.set_defaults(func=_cmd_evaluate)

    i = subparsers.add_parser("info", help="print a model bundle's metadata")
    i.add_argument("bundle")
    i.add_argument("--json", action="store_true", help="full metadata as JSON")
    i.set_defaults(func=_cmd_info)


def _cmd_evaluate(args) -> int:
    from .metrics import METRIC_NAMES
    from .report import markdown_table

    res = evaluate_bundle(args.bundle, args.data, out=args.out, split=args.split,
                          baselines=args.baselines, device=args.device,
                          missing_channels=args.missing_channels,
                          max_windows_per_scan=args.max_windows_per_scan, label=args.label)
    results = {res["model"]: res["aggregate"], **(res.get("comparison") or {})}
    print(markdown_table(results, res.get("ceiling"), METRIC_NAMES))
    print(f"report: {res['out']}")
    return 0


def _cmd_info(args) -> int:
    if args.json:
        from rtbold.models import read_bundle_meta

        from .training import meta_dict

        print(json.dumps(meta_dict(read_bundle_meta(args.bundle)), indent=1, default=str))
    else:
        print(describe(args.bundle))
    return 0
