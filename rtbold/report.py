"""Evaluation report: figures and a metrics JSON in one folder.

:func:`write_report` takes per-scan predictions and targets (plus optional results of other models
for a comparison) and writes::

    OUT/metrics.json            per-scan and aggregate metrics (and the comparison table)
    OUT/region_r.png            per-region r, sorted, coloured by Yeo-7 network
    OUT/network_r.png           r of network-averaged series per network
    OUT/fc_true_vs_pred.png     measured vs predicted FC (mean over scans), ordered by network
    OUT/traces.png              measured vs predicted series of the best, median and worst regions
    OUT/comparison.png          models side by side (only when several are given)
    OUT/summary.md              the same numbers as a markdown table

Figures use matplotlib's Agg backend (no display needed) and are written at 150 dpi.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .metrics import METRIC_LABELS, METRIC_NAMES, ScanMetrics, fc_matrix, format_mean_std

logger = logging.getLogger(__name__)

#: One colour per Yeo-7 network (Yeo 2011 palette, "other" grey).
NETWORK_COLORS: dict[str, str] = {
    "Visual": "#781286",
    "Somatomotor": "#4682B4",
    "Dorsal attention": "#00760E",
    "Salience/ventral attention": "#C43AFA",
    "Limbic": "#B8CC8C",
    "Frontoparietal control": "#E69422",
    "Default": "#CD3E4E",
    "Subcortical/other": "#8C8C8C",
}
#: Compact network labels for matrix axes.
_FC_LABELS: dict[str, str] = {
    "Salience/ventral attention": "Sal./ventral att.",
    "Frontoparietal control": "Frontoparietal",
    "Subcortical/other": "Subcort./other",
}
#: Model colours for the comparison figure (others cycle through the tab10 palette).
MODEL_COLORS: dict[str, str] = {
    "UnEBOLT": "#1f77b4", "NeuroBOLT": "#ff7f0e", "ridge": "#2ca02c", "mean": "#7f7f7f",
    "ceiling": "#000000",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
        "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 150,
        "savefig.dpi": 150, "savefig.bbox": "tight",
    })
    return plt


def _color(net: str) -> str:
    return NETWORK_COLORS.get(net, "#444444")


def _network_sort(networks: Sequence[str]) -> np.ndarray:
    from .atlas import NETWORK_ORDER

    rank = {n: i for i, n in enumerate(NETWORK_ORDER)}
    return np.array(sorted(range(len(networks)),
                           key=lambda i: (rank.get(networks[i], len(rank)), i)))


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def plot_region_r(region_r: np.ndarray, roi_names: Sequence[str], networks: Sequence[str],
                  path: Path, title: str = "",
                  ceiling: Mapping[str, float] | None = None) -> Path:
    """Per-region r sorted in decreasing order, bars coloured by network, with a legend.

    ``ceiling`` (region name -> r) adds the simulator's per-region ceiling as black ticks.
    """
    plt = _plt()
    r = np.asarray(region_r, dtype=float)
    order = np.argsort(-np.nan_to_num(r, nan=-np.inf), kind="stable")
    p = len(r)
    height = max(4.0, 0.13 * p + 1.0)
    fig, ax = plt.subplots(figsize=(6.0, height))
    y = np.arange(p)
    ax.barh(y, np.nan_to_num(r[order]), color=[_color(networks[i]) for i in order], height=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([_short(roi_names[i]) for i in order], fontsize=6 if p <= 64 else 4)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.6)
    mean = np.nanmean(r) if np.isfinite(r).any() else np.nan
    if np.isfinite(mean):
        ax.axvline(mean, color="k", ls="--", lw=0.8)
        ax.text(mean, -1.2, f" mean r = {mean:.3f}", fontsize=7, va="bottom")
    if ceiling:
        cy = [j for j, i in enumerate(order) if roi_names[i] in ceiling]
        cx = [ceiling[roi_names[order[j]]] for j in cy]
        ax.scatter(cx, cy, marker="|", s=40, color="k", lw=1.2, zorder=3,
                   label="simulator ceiling")
    ax.set_xlabel("Pearson r (predicted vs measured, mean over scans)")
    ax.set_ylim(p - 0.5, -2.0)
    ax.set_title(title or "Per-region temporal correlation")
    present = [n for n in NETWORK_COLORS if n in set(networks)]
    from matplotlib.patches import Patch

    handles = [Patch(color=_color(n), label=n) for n in present]
    if ceiling:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="|", color="k", ls="none", markersize=8,
                              label="simulator ceiling"))
    # outside the axes: bars and ceiling ticks can reach any corner
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              title="Yeo-7 network", title_fontsize=8)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_network_r(network_r: Mapping[str, Mapping], path: Path, title: str = "") -> Path:
    """Bars of network-level r (mean ± std over scans)."""
    plt = _plt()
    names = list(network_r)
    means = np.array([network_r[n]["mean"] if network_r[n]["mean"] is not None else np.nan
                      for n in names], dtype=float)
    stds = np.array([network_r[n]["std"] or 0.0 for n in names], dtype=float)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.4))
    x = np.arange(len(names))
    ax.bar(x, np.nan_to_num(means), yerr=stds, color=[_color(n) for n in names], capsize=3,
           error_kw={"lw": 0.8})
    ax.set_xticks(x)
    ax.set_xticklabels([n.replace("/", "/\n").replace(" ", "\n", 1) if len(n) > 12 else n
                        for n in names], fontsize=7)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("Pearson r of network-mean series")
    ax.set_title(title or "Network-level temporal correlation (mean ± std over scans)")
    for xi, m, s in zip(x, means, stds):
        if np.isfinite(m):  # value above the error bar so the two never overlap
            off = s + 0.01
            ax.text(xi, m + (off if m >= 0 else -off), f"{m:.2f}", ha="center",
                    va="bottom" if m >= 0 else "top", fontsize=7)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_calibration(r_before: np.ndarray, r_after: np.ndarray, networks: Sequence[str],
                     path: Path, title: str = "", labels: tuple[str, str] = ("group bundle",
                                                                           "calibrated")) -> Path:
    """Per-region r before vs after a calibration (scatter, by network) and the mean r of each
    network's regions before and after (paired bars)."""
    plt = _plt()
    rb, ra = np.asarray(r_before, dtype=float), np.asarray(r_after, dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.0, 4.0),
                                   gridspec_kw={"width_ratios": [1.0, 1.6]})
    lo = float(np.nanmin(np.concatenate([rb, ra, [0.0]]))) - 0.05
    hi = float(np.nanmax(np.concatenate([rb, ra, [0.0]]))) + 0.05
    ax1.plot([lo, hi], [lo, hi], color="k", lw=0.6)
    ax1.scatter(rb, ra, s=14, c=[_color(n) for n in networks], edgecolors="none")
    ax1.set_xlim(lo, hi)
    ax1.set_ylim(lo, hi)
    ax1.set_aspect("equal")
    ax1.set_xlabel(f"r, {labels[0]}")
    ax1.set_ylabel(f"r, {labels[1]}")
    ax1.set_title(f"per region: mean {np.nanmean(rb):.3f} -> {np.nanmean(ra):.3f}, "
                  f"higher in {int(np.sum(ra > rb))}/{len(rb)}", fontsize=8)
    from .atlas import NETWORK_ORDER

    names = [n for n in NETWORK_ORDER if n in set(networks)]
    names += [n for n in dict.fromkeys(networks) if n not in names]
    net = np.array(networks)
    mb = np.array([np.nanmean(rb[net == n]) for n in names])
    ma = np.array([np.nanmean(ra[net == n]) for n in names])
    x = np.arange(len(names))
    ax2.bar(x - 0.2, mb, width=0.4, color=[_color(n) for n in names], alpha=0.45,
            label=labels[0])
    ax2.bar(x + 0.2, ma, width=0.4, color=[_color(n) for n in names], label=labels[1])
    for xi, a in zip(x, ma):
        ax2.text(xi + 0.2, a + (0.01 if a >= 0 else -0.01), f"{a:.2f}", ha="center",
                 va="bottom" if a >= 0 else "top", fontsize=6)
    ax2.set_xticks(x)
    ax2.set_xticklabels([n.replace("/", "/\n").replace(" ", "\n", 1) if len(n) > 12 else n
                         for n in names], fontsize=7)
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_ylabel("mean r of the network's regions")
    ax2.legend(frameon=False, loc="upper right")
    ax2.set_title("per network (pale: before, solid: after)", fontsize=8)
    fig.suptitle(title or "Held-out per-region r before and after calibration")
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_fc(fc_true: np.ndarray, fc_pred: np.ndarray, networks: Sequence[str], path: Path,
            title: str = "") -> Path:
    """Measured and predicted FC side by side, regions ordered by network, with boundaries."""
    plt = _plt()
    order = _network_sort(networks)
    nets = [networks[i] for i in order]
    bounds = [i for i in range(1, len(nets)) if nets[i] != nets[i - 1]]
    starts = [0, *bounds]
    ends = [*bounds, len(nets)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.9), constrained_layout=True)
    im = None
    for ax, fc, label in zip(axes, (fc_true, fc_pred), ("Measured FC", "Predicted FC")):
        m = np.array(fc, dtype=float)[np.ix_(order, order)]
        np.fill_diagonal(m, np.nan)
        im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        for b in bounds:
            ax.axhline(b - 0.5, color="k", lw=0.6)
            ax.axvline(b - 0.5, color="k", lw=0.6)
        centres = [(s + e - 1) / 2 for s, e in zip(starts, ends)]
        labels = [_FC_LABELS.get(nets[s], _short(nets[s], 18)) for s in starts]
        ax.set_yticks(centres)
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_xticks(centres)
        ax.set_xticklabels(labels, fontsize=7, rotation=45, ha="right")
        for s, e in zip(starts, ends):  # colour strip marking each network
            ax.add_patch(plt.Rectangle((-0.5 - 1.5, s - 0.5), 1.5, e - s, color=_color(nets[s]),
                                       clip_on=False))
        ax.set_title(label)
        ax.tick_params(length=0, pad=7)
        for sp in ax.spines.values():
            sp.set_visible(True)
    fig.colorbar(im, ax=axes, shrink=0.8, label="Pearson r")
    if title:
        fig.suptitle(title)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_traces(pred: np.ndarray, true: np.ndarray, region_r: np.ndarray,
                roi_names: Sequence[str], networks: Sequence[str], tr: float, path: Path,
                scan_name: str = "") -> Path:
    """Measured vs predicted series of the best, median and worst regions (by mean r)."""
    plt = _plt()
    r = np.asarray(region_r, dtype=float)
    finite = np.where(np.isfinite(r))[0]
    if finite.size == 0:
        finite = np.arange(len(r))
        r = np.zeros_like(r)
    ranked = finite[np.argsort(-r[finite], kind="stable")]
    picks = [("best", ranked[0]), ("median", ranked[len(ranked) // 2]), ("worst", ranked[-1])]
    t = np.arange(pred.shape[0]) * tr
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.2), sharex=True, constrained_layout=True)
    for ax, (label, i) in zip(axes, picks):
        # z-score both series: r is scale-free, and a model that predicts the right shape at a
        # small amplitude (common early in training) would otherwise look flat
        sd_t, sd_p = np.std(true[:, i]), np.std(pred[:, i])
        zt = (true[:, i] - true[:, i].mean()) / (sd_t if sd_t > 0 else 1.0)
        zp = (pred[:, i] - pred[:, i].mean()) / (sd_p if sd_p > 0 else 1.0)
        ax.plot(t, zt, color="k", lw=1.0, label="measured")
        ax.plot(t, zp, color=_color(networks[i]), lw=1.2, label="predicted")
        local = np.corrcoef(pred[:, i], true[:, i])[0, 1] if sd_p > 0 and sd_t > 0 else np.nan
        ratio = sd_p / sd_t if sd_t > 0 else np.nan
        ax.set_title(f"{label}: {roi_names[i]} ({networks[i]}), r = {local:.2f} in this scan, "
                     f"{r[i]:.2f} mean over scans; SD predicted/measured = {ratio:.2f}",
                     loc="left", fontsize=8)
        ax.set_ylabel("z-score")
    axes[0].legend(loc="upper right", frameon=False, ncol=2)
    axes[-1].set_xlabel("time from the first evaluated volume (s)")
    if scan_name:
        fig.suptitle(f"Example traces, scan {scan_name}", fontsize=10)
    fig.savefig(path)
    plt.close(fig)
    return path


def _model_color(name: str, j: int, cmap):
    """Fixed colour per model family (``"UnEBOLT (small)"`` is UnEBOLT), else tab10."""
    for key, col in MODEL_COLORS.items():
        if name.lower().startswith(key.lower()):
            return col
    return cmap(j % 10)


def plot_comparison(results: Mapping[str, Mapping], path: Path,
                    ceiling: Mapping[str, float] | None = None, title: str = "") -> Path:
    """Grouped bars (mean ± std over scans) of every model for each metric.

    ``results`` maps a model label to an :func:`rtbold.metrics.aggregate` dict. ``ceiling`` maps
    metric names to the simulator's noise ceiling, drawn as a black tick per metric.
    """
    plt = _plt()
    models = list(results)
    # the residual metrics and global share beside Tcorr: Tcorr alone is won by a global-only
    # prediction (MODEL.md 6.2b)
    panels = [("tcorr", "pixcorr", "res_tcorr", "res_pixcorr", "f1_25", "f1_50"),
              ("connmse", "global_share")]
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.6), width_ratios=[6, 2],
                             constrained_layout=True)
    cmap = plt.get_cmap("tab10")
    width = 0.8 / max(len(models), 1)
    for ax, metrics in zip(axes, panels):
        x = np.arange(len(metrics))
        for j, mname in enumerate(models):
            agg = results[mname]
            means = [(agg.get(k) or {}).get("mean") for k in metrics]
            stds = [(agg.get(k) or {}).get("std") or 0.0 for k in metrics]
            means = np.array([np.nan if v is None else v for v in means], dtype=float)
            xs = x - 0.4 + width * (j + 0.5)
            ax.bar(xs, np.nan_to_num(means), width, yerr=stds,
                   capsize=2, color=_model_color(mname, j, cmap), label=mname,
                   error_kw={"lw": 0.7})
            for xj, m in zip(xs, means):  # undefined (e.g. constant predictor): say so
                if not np.isfinite(m):
                    ax.text(xj, 0.01, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
        if ceiling:
            for xi, k in zip(x, metrics):
                c = ceiling.get(k)
                if c is not None and np.isfinite(c):
                    ax.hlines(c, xi - 0.45, xi + 0.45, color="k", lw=1.5, ls="--",
                              label="ceiling" if (k == metrics[0] and ax is axes[0]) else None)
        ax.set_xticks(x)
        ax.set_xticklabels([METRIC_LABELS[k] for k in metrics])
        ax.axhline(0, color="k", lw=0.6)
    axes[0].set_ylabel("higher is better")
    axes[1].set_ylabel("lower is better (global share: vs truth)")
    axes[0].legend(frameon=False, ncol=min(len(models) + 1, 6), loc="upper center",
                   bbox_to_anchor=(0.5, -0.1))
    fig.suptitle(title or "Model comparison (mean ± std over test scans)")
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown_table(results: Mapping[str, Mapping], ceiling: Mapping[str, float] | None = None,
                   metrics: Sequence[str] = METRIC_NAMES) -> str:
    """Markdown table: one row per model, ``mean (std)`` per metric, ceiling last."""
    head = "| model | " + " | ".join(METRIC_LABELS[m] for m in metrics) + " |"
    lines = [head, "|" + " --- |" * (len(metrics) + 1)]
    for name, agg in results.items():
        lines.append(f"| {name} | " + " | ".join(format_mean_std(agg, m) for m in metrics) + " |")
    if ceiling:
        cells = [f"{ceiling[m]:.3f}" if ceiling.get(m) is not None else "n/a" for m in metrics]
        lines.append("| ceiling (simulator) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out_dir: str | Path, *, scans: Sequence[ScanMetrics], aggregate: Mapping,
                 preds: Sequence[np.ndarray], trues: Sequence[np.ndarray],
                 roi_names: Sequence[str], networks: Sequence[str], tr: float,
                 model_label: str = "model", comparison: Mapping[str, Mapping] | None = None,
                 ceiling: Mapping[str, float] | None = None,
                 ceiling_region_r: Mapping[str, float] | None = None,
                 extra: Mapping | None = None) -> dict[str, Path]:
    """Write the report folder for one model (and a comparison when others are given).

    Parameters
    ----------
    out_dir : path
        Created if missing.
    scans, aggregate : list of ScanMetrics and its :func:`rtbold.metrics.aggregate`
    preds, trues : list of (T_i, P) arrays
        Predictions and targets of the same scans, for FC matrices and traces.
    roi_names, networks : sequences of P str
    tr : float
        Repetition time (s), for the time axis of the traces.
    model_label : str
        Name of the evaluated model in titles and in the comparison.
    comparison : dict | None
        Other models' aggregates (label -> aggregate), shown beside this one.
    ceiling : dict | None
        Simulator ceiling per metric name (same keys as METRIC_NAMES).
    ceiling_region_r : dict | None
        Simulator ceiling per region name, drawn on the per-region figure.
    extra : dict | None
        More JSON fields (bundle metadata summary, data root, split...).

    Returns
    -------
    dict
        Name -> path of every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    region_r = np.array([np.nan if v is None else v for v in aggregate["region_r"]], dtype=float)
    written["region_r"] = plot_region_r(region_r, roi_names, networks, out / "region_r.png",
                                        title=f"{model_label}: per-region temporal correlation "
                                              f"({aggregate['n_scans']} scan"
                                              f"{'s' if aggregate['n_scans'] != 1 else ''})",
                                        ceiling=ceiling_region_r)
    if aggregate.get("network_r"):
        written["network_r"] = plot_network_r(
            aggregate["network_r"], out / "network_r.png",
            title=f"{model_label}: network-level r (mean ± std over scans)")
    fc_t = np.nanmean(np.stack([fc_matrix(t) for t in trues]), axis=0)
    with np.errstate(all="ignore"):
        fcs = np.stack([fc_matrix(p) for p in preds])
        fc_p = _nanmean_axis0(fcs)
    written["fc"] = plot_fc(fc_t, fc_p, networks, out / "fc_true_vs_pred.png",
                            title=f"{model_label}: FC averaged over {len(trues)} "
                                  f"scan{'s' if len(trues) != 1 else ''} "
                                  f"(Pixcorr {format_mean_std(aggregate, 'pixcorr')})")
    # traces from the scan whose Tcorr is the median, so the example is typical
    tc = np.array([s.values.get("tcorr", np.nan) for s in scans], dtype=float)
    k = int(np.argsort(np.nan_to_num(tc, nan=-np.inf))[len(tc) // 2])
    written["traces"] = plot_traces(preds[k], trues[k], region_r, roi_names, networks, tr,
                                    out / "traces.png", scan_name=scans[k].name)
    results = {model_label: aggregate, **(comparison or {})}
    if len(results) > 1:
        n = aggregate["n_scans"]
        written["comparison"] = plot_comparison(
            results, out / "comparison.png", ceiling=ceiling,
            title=f"Model comparison (mean ± std over {n} test scan{'s' if n != 1 else ''})")
    table = markdown_table(results, ceiling)
    (out / "summary.md").write_text(f"# Evaluation: {model_label}\n\n{table}\n", encoding="utf-8")
    written["summary"] = out / "summary.md"
    payload = {
        "model": model_label,
        "aggregate": aggregate,
        "scans": [s.to_dict() for s in scans],
        "roi_names": list(roi_names),
        "networks": list(networks),
        "comparison": {k: v for k, v in (comparison or {}).items()},
        "ceiling": dict(ceiling) if ceiling else None,
        **(dict(extra) if extra else {}),
    }
    (out / "metrics.json").write_text(json.dumps(_clean(payload), indent=1, allow_nan=False,
                                                 default=_json_default),
                                      encoding="utf-8")
    written["metrics"] = out / "metrics.json"
    logger.info("Report written to %s (%d files)", out, len(written))
    return written


def _nanmean_axis0(a: np.ndarray) -> np.ndarray:
    finite = np.isfinite(a)
    cnt = finite.sum(axis=0)
    return np.where(cnt > 0, np.where(finite, a, 0).sum(axis=0) / np.maximum(cnt, 1), np.nan)


def _clean(o):
    """Replace NaN/inf floats by None, recursively, so the JSON is strict."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    return o


def _json_default(o):
    if isinstance(o, np.ndarray):
        return [None if not np.isfinite(v) else float(v) for v in o.ravel()]
    if isinstance(o, (np.floating, np.integer)):
        v = float(o)
        return v if np.isfinite(v) else None
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"Not JSON serialisable: {type(o).__name__}")
