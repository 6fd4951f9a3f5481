"""``rtbold evaluate BUNDLE [BUNDLE ...] DATA`` and ``rtbold info BUNDLE``.

Evaluation runs bundles on the same windows of a dataset, computes every metric of MODEL.md 6.2 and
6.2b per scan (Tcorr beside the residual Tcorr/Pixcorr, global share and mean FC that a
global-only prediction cannot win), adds the simulator's ceiling when the data root is simulator
output (``derivatives/rtbold-sim``), and writes one report per bundle (``metrics.json`` and the
figures of :func:`rtbold.report.write_report`) and one comparison table.

Which windows are scored (:func:`evaluation_items`): on a dataset the bundles were not trained on,
every window; on a bundle's own training dataset, the test part of its stored split. No bundle is
ever scored on a scan it was trained or selected on, and baselines are never fitted on the scored
data: ``--baselines`` fits ridge and the mean on the first bundle's own training scans. The fair
way to compare with ridge is a ridge bundle trained on the same data (``[model] name = "ridge"``),
passed as another bundle.
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


def fit_baselines(scans: list, train_items: list, ch_names: Sequence[str], *,
                  max_windows: int | None = None, session_prior_windows: float | None = None
                  ) -> dict:
    """Ridge band-power and per-region-mean baselines fitted on ``train_items`` only.

    The ridge is the trainer's fit (:mod:`rtbold.training.ridge`, CV folds by scan), on
    session-normalised features when ``session_prior_windows`` is given (the input normalisation
    of a ``unebolt_bp`` bundle). Both are returned as models with the bundle interface, keyed
    ``"ridge baseline"`` and ``"mean baseline"`` (a ridge module with zero weights whose bias is
    each region's training mean).
    """
    import torch

    from rtbold.models import create_model

    from .training import fit_ridge
    from .training.ridge import fit_session_ridge

    n_rois = len(scans[train_items[0][0]].roi_names)
    if session_prior_windows is None:
        ridge = create_model("ridge", n_rois=n_rois, ch_names=list(ch_names))
        est = fit_ridge(scans, train_items, max_windows=max_windows)
    else:
        ridge = create_model("ridge_sn", n_rois=n_rois, ch_names=list(ch_names),
                             bandpower={"session_prior_windows": float(session_prior_windows)})
        est, prior_mean, prior_scale, _ = fit_session_ridge(
            scans, train_items, [s for s, _ in train_items], session_prior_windows,
            max_windows=max_windows)
        ridge.features.set_standardisation(prior_mean, prior_scale, prior=True)
    ridge.load_estimator(est)
    mean = create_model("ridge", n_rois=est.coef_.shape[1], ch_names=list(ch_names))
    with torch.no_grad():
        mean.readout.bias.copy_(torch.as_tensor(est.intercept_, dtype=torch.float32))
    return {"ridge baseline": ridge.eval(), "mean baseline": mean.eval()}


def data_config_for(meta, data: str | Path, *, missing_channels: str = "refuse",
                    marker: str | None = None, artifacts=None):
    """How to read a dataset for a bundle: its marker, regions and EEG high-pass (the same
    preprocessing the model was trained with; the live engine applies it too), and the
    MR-artefact correction of raw in-scanner recordings (``artifacts``)."""
    from .artifacts import ArtifactConfig
    from .training import DataConfig

    n = len(meta.roi_names)
    return DataConfig(root=Path(data), marker=marker or meta.marker or "R149",
                      n_regions=n if n in (64, 128, 256) else 64,
                      missing_channels=missing_channels, highpass=meta.eeg_highpass_hz,
                      artifacts=artifacts or ArtifactConfig())


def _same_root(a: str | Path | None, b: str | Path | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _seen_scans(meta) -> set[str]:
    """Scan ids a bundle was trained or selected on (train + val parts of its split)."""
    assignment = meta.training.get("assignment") or {}
    if meta.training.get("protocol") == "intra_scan":
        return set()  # every scan is seen, but only in time windows; handled by the split
    return {x for part in ("train", "val") for x in assignment.get(part, [])}


def evaluation_items(meta, scans: list, data: Path, split: str
                     ) -> tuple[list[tuple[int, int]], str, str]:
    """Which windows to score for a bundle: ``(items, protocol, description)``.

    ``split``: ``"auto"`` scores every window of a dataset the bundle was not trained on, and the
    bundle's own test part of its training dataset; ``"test"`` always the test part; ``"all"``
    every window, refused on the bundle's training dataset (no in-sample numbers).
    """
    from .training import make_split, scan_id

    training = meta.training
    own_data = _same_root(training.get("data_root"), data)
    protocol = training.get("protocol", "cross_subject")
    if split not in ("auto", "test", "all"):
        raise ValueError(f"--split must be auto, test or all, got {split!r}.")
    if split == "all" and own_data:
        raise ValueError(f"{data} is the dataset the bundle was trained on: --split all would "
                         "score its training windows. Use --split test (its held-out part) or "
                         "evaluate on a held-out dataset.")
    if split == "auto":
        split = "test" if own_data else "all"
    if split == "all":
        items = [(i, int(k)) for i, s in enumerate(scans) for k in np.flatnonzero(s.valid)]
        return items, protocol, "every window (a dataset the bundle was not trained on)"
    assignment = training.get("assignment") if protocol == "cross_subject" and own_data else None
    n_subjects = len({s.spec.subject for s in scans})
    if protocol == "cross_subject" and assignment is None and n_subjects < 3:
        protocol = "intra_scan"  # too few subjects to hold any out: split each scan in time
    parts = make_split(scans, protocol, split_seed=int(training.get("split_seed", 0)),
                       ratios=training.get("split_ratios", (3, 1, 1)), assignment=assignment)
    items = parts.items["test"]
    if not items:
        raise ValueError(f"The {protocol} split of {data} has no test windows (the bundle was "
                         "trained with no test part); evaluate on a held-out dataset instead.")
    return items, protocol, f"the test part of the bundle's {protocol} split"


def evaluate_bundles(bundles: Sequence[str | Path], data: str | Path, *,
                     out: str | Path | None = None, split: str = "auto", baselines: bool = False,
                     device: str = "auto", missing_channels: str = "refuse", batch_size: int = 64,
                     max_windows_per_scan: int | None = None,
                     labels: Sequence[str] | None = None, marker: str | None = None,
                     artifacts=None) -> dict:
    """Evaluate one or more bundles on the same windows of a dataset; one report each and one
    comparison table.

    Parameters
    ----------
    bundles : sequence of paths
        Model bundles (``.safetensors``): UnEBOLT, NeuroBOLT, ridge, ... They must predict the
        same regions. The first one fixes which windows are scored (:func:`evaluation_items`).
    data : path
        Dataset root (BIDS, NeuroBOLT release, simulator output).
    out : path | None
        Report folder (default ``<first bundle's folder>/eval_<data name>``); with several
        bundles each gets ``out/<label>/`` and ``out/comparison.md`` holds the table.
    split : {"auto", "test", "all"}
        See :func:`evaluation_items`. No bundle is ever scored on windows it was trained or
        selected on: a scored scan in a bundle's train/val assignment is an error.
    baselines : bool
        Also fit ridge and per-region-mean baselines on the *first bundle's own training
        scans* (read from its recorded data root and split), never on the scored data.
    device, missing_channels, batch_size, max_windows_per_scan
        Run options.
    labels : sequence of str | None
        Names of the bundles in the reports (default: model name, or the file's folder name
        when two bundles share one).
    marker : str | None
        Volume marker of the evaluated data (default: the first bundle's).
    artifacts : rtbold.artifacts.ArtifactConfig | None
        MR-artefact correction of the evaluated data (raw in-scanner recordings).

    Returns
    -------
    dict
        ``models`` (label -> aggregate), ``ceiling``, ``scans`` (scored scan ids), ``out``,
        ``reports`` (label -> report folder), ``split`` (description).
    """
    from rtbold.models import load_bundle, read_bundle_meta, select_device

    from .metrics import aggregate, scan_metrics
    from .report import markdown_table, write_report
    from .training import load_scans, networks_for, per_scan, predict_items, scan_id

    bundles = [Path(b) for b in bundles]
    if not bundles:
        raise ValueError("give at least one bundle to evaluate.")
    data = Path(data)
    dev = select_device(device)
    metas = [read_bundle_meta(b) for b in bundles]
    roi_names = list(metas[0].roi_names)
    for b, m in zip(bundles[1:], metas[1:]):
        if list(m.roi_names) != roi_names:
            raise ValueError(f"{b} predicts {len(m.roi_names)} regions that differ from "
                             f"{bundles[0]}'s {len(roi_names)}; compare bundles of one atlas "
                             "and region list.")
    labels = list(labels) if labels else _labels(bundles, metas)
    if len(labels) != len(bundles):
        raise ValueError(f"{len(labels)} labels for {len(bundles)} bundles.")
    networks = networks_for(roi_names, len(roi_names) if len(roi_names) in (64, 128, 256) else 64)

    cache: dict[tuple, list] = {}

    def scans_for(meta, root: Path, max_windows: int | None = max_windows_per_scan) -> list:
        scored = root == data  # the evaluated data may be raw in-scanner recordings
        cfg = data_config_for(meta, root, missing_channels=missing_channels,
                              marker=marker if scored else None,
                              artifacts=artifacts if scored else None)
        key = (str(root), tuple(meta.ch_names), cfg.highpass, cfg.marker, max_windows,
               cfg.artifacts.summary())
        if key not in cache:
            cache[key] = load_scans(cfg, list(meta.ch_names), roi_names, max_windows)
        return cache[key]

    scans0 = scans_for(metas[0], data)
    items, protocol, described = evaluation_items(metas[0], scans0, data, split)
    scored = sorted({scan_id(scans0[s]) for s, _ in items})
    for b, m in zip(bundles, metas):
        leak = sorted(_seen_scans(m) & set(scored)) if _same_root(
            m.training.get("data_root"), data) else []
        if leak:
            raise ValueError(f"{b} was trained or selected on {len(leak)} of the scored scans "
                             f"({leak[:3]}); in-sample numbers are not reported. Evaluate it on "
                             "a held-out dataset, or compare bundles trained on one split.")

    def score(pred: np.ndarray, scans: list):
        groups = per_scan(items, pred, np.stack([scans[s].targets[k] for s, k in items]))
        names, ps, ts = [], [], []
        for s in sorted(groups):
            names.append(scan_id(scans[s]))
            ps.append(groups[s][0])
            ts.append(groups[s][1])
        sm = [scan_metrics(p, t, name=n, networks=networks) for p, t, n in zip(ps, ts, names)]
        return sm, aggregate(sm), ps, ts

    results: dict[str, dict] = {}
    per_model: dict[str, tuple] = {}
    for b, m, label in zip(bundles, metas, labels):
        scans = scans_for(m, data)
        model, _ = load_bundle(b, device=str(dev))
        pred = predict_items(model, scans, items, device=dev, batch_size=batch_size)
        per_model[label] = score(pred, scans)
        results[label] = per_model[label][1]
    baseline_note = None
    if baselines:
        fitted, baseline_note = _baselines_on_training_data(metas[0], bundles[0], scans_for,
                                                            roi_names)
        for name, bl in fitted.items():
            pred = predict_items(bl, scans0, items, device="cpu", batch_size=batch_size)
            results[name] = score(pred, scans0)[1]
    ceiling, ceil = _ceiling(data, scans0, items, roi_names, networks, score)

    out = Path(out) if out is not None else bundles[0].parent / f"eval_{data.name}"
    reports = {}
    tr = float(np.median([s.tr for s in scans0]))
    for label, m, b in zip(labels, metas, bundles):
        sm, agg, preds, trues = per_model[label]
        folder = out if len(bundles) == 1 else out / _slug(label)
        others = {k: v for k, v in results.items() if k != label}
        write_report(folder, scans=sm, aggregate=agg, preds=preds, trues=trues,
                     roi_names=roi_names, networks=networks, tr=tr, model_label=label,
                     comparison=others, ceiling=ceiling,
                     ceiling_region_r=ceil["region_r"] if ceil else None,
                     extra={"bundle": str(b), "data_root": str(data), "split": described,
                            "protocol": protocol, "n_windows": len(items),
                            "ceiling_detail": ceil, "bundle_notes": m.notes,
                            "baselines": baseline_note})
        reports[label] = str(folder)
    table = markdown_table(results, ceiling)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(
        f"# {data.name}: {len(scored)} scans, {len(items)} windows ({described})\n\n{table}\n"
        + (f"\nBaselines: {baseline_note}\n" if baseline_note else ""), encoding="utf-8")
    return {"models": results, "ceiling": ceiling, "scans": scored, "out": str(out),
            "reports": reports, "split": described, "table": table, "baselines": baseline_note}


def _labels(bundles: Sequence[Path], metas: Sequence) -> list[str]:
    names = {"unebolt": "UnEBOLT", "neurobolt": "NeuroBOLT", "ridge": "ridge"}
    labels = []
    for b, m in zip(bundles, metas):
        base = names.get(m.model_name, m.model_name)
        variant = m.model_variant or ""
        base = {"unebolt_bp": "UnEBOLT-BP", "ridge_sn": "ridge-SN"}.get(variant, base)
        labels.append(base)
    if len(set(labels)) < len(labels):  # same model twice: say which file
        labels = [f"{lab} ({b.parent.name or b.stem})" for lab, b in zip(labels, bundles)]
    return labels


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def _baselines_on_training_data(meta, bundle: Path, scans_for, roi_names) -> tuple[dict, str]:
    """Fit the baselines on the bundle's own training scans (its recorded data root and split)."""
    from .training import make_split, scan_id

    training = meta.training
    root = training.get("data_root")
    if not root or not Path(root).is_dir():
        raise ValueError(f"--baselines fits the baselines on {bundle}'s training data, recorded as "
                         f"{root!r}, which is not here. Train a ridge bundle on that data "
                         "([model] name = \"ridge\") and pass it as another bundle instead.")
    # the same windows as the bundle's training run (its recorded quick-run limit)
    recorded = ((training.get("config") or {}).get("train") or {})
    scans = scans_for(meta, Path(root), recorded.get("max_windows_per_scan"))
    protocol = training.get("protocol", "cross_subject")
    parts = make_split(scans, protocol, split_seed=int(training.get("split_seed", 0)),
                       ratios=training.get("split_ratios", (3, 1, 1)),
                       assignment=training.get("assignment") if protocol == "cross_subject"
                       else None)
    train_items = parts.items["train"]
    n_scans = len({s for s, _ in train_items})
    note = (f"ridge and mean fitted on the training part of {bundle.name}'s split of {root} "
            f"({n_scans} scans, {len(train_items)} windows; e.g. "
            f"{scan_id(scans[train_items[0][0]])})")
    bp = meta.model_config.get("bandpower") or {}
    prior = bp.get("session_prior_windows") if bp.get("session_norm") else None
    if prior is not None:
        note += "; session-normalised features, as the bundle's"
    return fit_baselines(scans, train_items, meta.ch_names,
                         max_windows=recorded.get("ridge_max_windows"),
                         session_prior_windows=prior), note


def _ceiling(data: Path, scans: list, items: list, roi_names, networks, score
             ) -> tuple[dict | None, dict | None]:
    """The simulator's bounds for the scored scans: per-region ceiling, and every metric of the
    explainable BOLD used as a prediction (residual ones included)."""
    from .training import per_scan, scan_id

    ceil = read_ceiling(data, [scan_id(scans[s]) for s in sorted({s for s, _ in items})],
                        roi_names)
    if ceil is None:
        return None, None
    ceiling = {"tcorr": ceil["tcorr"]}
    ex = explainable_predictions(data, scans, items)
    if ex is not None:
        pred = np.zeros((len(items), len(roi_names)), np.float32)
        rows = per_scan(items, np.arange(len(items)))
        for s, (idx,) in rows.items():
            pred[idx] = ex[s]
        _, cagg, _, _ = score(pred, scans)
        ceiling.update({k: (cagg.get(k) or {}).get("mean") for k in
                        ("pixcorr", "connmse", "f1_25", "f1_50", "res_tcorr", "res_pixcorr",
                         "global_share", "mean_fc")})
    return ceiling, ceil


def evaluate_bundle(bundle: str | Path, data: str | Path, **kwargs) -> dict:
    """:func:`evaluate_bundles` for one bundle; returns its ``metrics.json`` content."""
    label = kwargs.pop("label", None)
    res = evaluate_bundles([bundle], data, labels=[label] if label else None, **kwargs)
    out = Path(next(iter(res["reports"].values())))
    result = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    result["out"] = str(out)
    return result


def describe(bundle: str | Path) -> str:
    """Readable summary of a bundle (``rtbold info``): the models package's description plus the
    training split and the metrics the trainer stored."""
    from rtbold import models

    from .metrics import METRIC_NAMES
    from .report import markdown_table

    meta = models.read_bundle_meta(bundle)
    text = [str(models.describe_bundle(bundle))]
    training = meta.training
    split = training.get("split") or {}
    for part in ("train", "val", "test"):
        if isinstance(split.get(part), dict):
            p = split[part]
            text.append(f"{part:<14} {len(p.get('scans', []))} scans, "
                        f"{len(p.get('subjects', []))} subjects, {p.get('n_windows', 0)} windows")
    if training.get("best_epoch"):
        text.append(f"best epoch     {training['best_epoch']} of {training.get('epochs')} "
                    f"(selected on validation {training.get('select_on', '?')})")
    agg = meta.metrics.get("test_aggregate")
    if agg:
        text.append("test metrics (mean (std) over test scans):")
        text.append(markdown_table({meta.model_name: agg}, None, METRIC_NAMES))
    return "\n".join(text)


# ----------------------------------------------------------------------------- CLI
def add_parser(subparsers) -> None:
    from .artifacts.config import add_artifact_args

    p = subparsers.add_parser("evaluate", help="evaluate model bundles on a dataset",
                              description="Per-scan Tcorr, Pixcorr, ConnMSE, F1@25/50%, residual "
                                          "(global-removed) Tcorr and Pixcorr, global share, mean "
                                          "FC, network Tcorr; figures and metrics.json per bundle, "
                                          "one comparison table. Example: rtbold evaluate "
                                          "a.safetensors b.safetensors runs/sim_heldout")
    p.add_argument("paths", nargs="+", metavar="BUNDLE... DATA",
                   help="one or more model bundles (.safetensors), then the dataset root")
    p.add_argument("--out", default=None, help="report folder (default next to the first bundle)")
    p.add_argument("--split", default="auto", choices=("auto", "test", "all"),
                   help="auto: every window of a dataset the bundles were not trained on, the "
                        "test part of their own training dataset")
    p.add_argument("--baselines", action="store_true",
                   help="also fit ridge and mean predictors on the first bundle's own training "
                        "scans (its recorded data root), never on the evaluated data")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--missing-channels", default="refuse",
                   choices=("refuse", "interpolate", "zero"))
    p.add_argument("--max-windows-per-scan", type=int, default=None)
    p.add_argument("--label", action="append", default=None, dest="labels",
                   help="name of a bundle in the reports (repeat once per bundle, in order)")
    p.add_argument("--marker", default=None,
                   help="volume marker of the data (default: the bundle's, e.g. R149)")
    add_artifact_args(p)
    p.set_defaults(func=_cmd_evaluate)

    i = subparsers.add_parser("info", help="print a model bundle's metadata")
    i.add_argument("bundle")
    i.add_argument("--json", action="store_true", help="full metadata as JSON")
    i.set_defaults(func=_cmd_info)


def _cmd_evaluate(args) -> int:
    from .artifacts.config import artifact_config_from_args

    if len(args.paths) < 2:
        raise SystemExit("rtbold evaluate: give at least one bundle and then the dataset root.")
    *bundles, data = args.paths
    res = evaluate_bundles(bundles, data, out=args.out, split=args.split,
                           baselines=args.baselines, device=args.device,
                           missing_channels=args.missing_channels,
                           max_windows_per_scan=args.max_windows_per_scan, labels=args.labels,
                           marker=args.marker, artifacts=artifact_config_from_args(args))
    print(f"{len(res['scans'])} scans ({res['split']}):")
    print(res["table"])
    if res["baselines"]:
        print(f"baselines: {res['baselines']}")
    print(f"report: {res['out']}")
    return 0


def _cmd_info(args) -> int:
    if args.json:
        from rtbold.models import read_bundle_meta

        print(json.dumps(read_bundle_meta(args.bundle).to_dict(), indent=1, default=str))
    else:
        print(describe(args.bundle))
    return 0
