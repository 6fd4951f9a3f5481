"""Fine-tune a bundle on one recorded session and keep it only if it predicts held-out minutes
better (in-session calibration, ``rtbold calibrate SESSION_DIR``).

The session's paired frames (window, measured BOLD) are split in time:

- **held out**: the last ``holdout_min`` minutes; never seen by the fine-tuning, used only for the
  verdict;
- **calibration**: everything up to ``gap_s`` before the held-out part (no EEG window and little
  BOLD autocorrelation shared). Its last ``select_fraction`` (after another gap) picks the epoch
  to keep, epoch 0 (the starting bundle) included, by mean per-region r.

The verdict compares, on the held-out frames, the mean per-region Pearson r (Tcorr) of the
starting bundle and of the calibrated one; the calibrated bundle is *accepted* only when it is
higher by more than ``min_gain``. Both numbers, with residual Tcorr (global signal removed) and
Pixcorr, go to ``calibration.json`` and the log; the subject bundle is saved either way with its
provenance, under ``SESSION_DIR/calibration/<time>/``.

Which parameters move is ``params``: ``heads`` (the region read-outs: ROI heads and table, the
band-power branch's read-outs), ``last`` (also the adapter, the fusion gate, the band-power MLP
and the last block of each encoder) or ``all`` (everything, with a small learning rate). Every
moved weight is pulled towards its starting value (L2-SP, weight ``anchor``), the usual guard when
a few minutes of one person's data fine-tune a group model.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import CalibrationConfig

logger = logging.getLogger(__name__)

__all__ = ["CalibrationResult", "calibrate_session", "trainable_names"]

#: Name prefixes of the region read-outs (UnEBOLT/NeuroBOLT heads, UnEBOLT-BP's band-power
#: read-outs, the ridge bundle's read-out).
_HEADS = ("roi_weight", "roi_bias", "roi_table", "shared_head.", "head.", "bandpower.linear.",
          "bandpower.mlp_readout.", "readout.")
_LAST = ("rre.", "fusion.", "bandpower.mlp.", "labram.fc_norm.", "mss_module.norm.")


@dataclass
class CalibrationResult:
    """What a calibration did and found (also written to ``calibration.json``)."""

    accepted: bool
    #: Held-out metrics of the starting and of the calibrated bundle (tcorr, res_tcorr, pixcorr).
    before: dict
    after: dict
    #: Per-region held-out r, in ``roi_names`` order.
    region_r_before: list
    region_r_after: list
    roi_names: list
    networks: list
    bundle: str
    base_bundle: str
    folder: str
    n_calibration: int
    n_selection: int
    n_holdout: int
    #: What the selection picked: ``{"epoch": k}`` (fine-tuning) or ``{"alpha": a}`` (read-out
    #: ridge; None = no change).
    selected: dict
    seconds: float
    settings: dict
    history: list = field(default_factory=list)

    @property
    def gain(self) -> float:
        return float(self.after["tcorr"] - self.before["tcorr"])

    def line(self) -> str:
        """One line for logs and the status panel."""
        verdict = "accepted" if self.accepted else "kept the current model"
        return (f"calibration on {self.n_calibration} TRs, held-out {self.n_holdout} TRs: "
                f"Tcorr {self.before['tcorr']:.3f} -> {self.after['tcorr']:.3f} "
                f"(residual {self.before['res_tcorr']:.3f} -> {self.after['res_tcorr']:.3f}); "
                f"{verdict}")

    def to_json(self) -> dict:
        return asdict(self)


def trainable_names(model, params: str) -> list[str]:
    """Names of the parameters that ``params`` (readout, heads, last, all) moves in ``model``."""
    names = [n for n, _ in model.named_parameters()]
    if params == "all":
        return names
    if params == "readout":
        layer = _readout_layer(model)
        return [n for n, p in model.named_parameters()
                if layer is not None and any(p is q for q in layer.parameters())]
    prefixes = list(_HEADS)
    if params == "last":
        prefixes += list(_LAST)
        for enc, key in (("labram", "blocks"), ("mss_module", "layers")):
            ids = {int(n.split(".")[2]) for n in names if n.startswith(f"{enc}.{key}.")}
            if ids:
                prefixes.append(f"{enc}.{key}.{max(ids)}.")
    elif params != "heads":
        raise ValueError(f"params must be 'readout', 'heads', 'last' or 'all', got {params!r}")
    chosen = [n for n in names if n.startswith(tuple(prefixes))]
    if not chosen:
        raise ValueError(f"{type(model).__name__} has no parameters in the set {params!r}; "
                         "use params = 'all'.")
    return chosen


def _split(t: np.ndarray, usable: np.ndarray, cfg: CalibrationConfig, tr: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame positions (time order) of the calibration, selection and held-out parts."""
    pos = np.flatnonzero(usable)
    if not len(pos):
        return (np.zeros(0, int),) * 3
    t_end = t[pos[-1]] + 0.5 * tr
    hold = pos[t[pos] > t_end - cfg.holdout_min * 60.0]
    if not len(hold):
        return pos, np.zeros(0, int), hold
    calib = pos[t[pos] < t[hold[0]] - cfg.gap_s]
    n_sel = int(math.ceil(cfg.select_fraction * len(calib)))
    sel = calib[len(calib) - n_sel:] if n_sel else np.zeros(0, int)
    if len(sel):
        fit = calib[t[calib] < t[sel[0]] - cfg.gap_s]
    else:
        fit = calib
    return fit, sel, hold


def _summary(pred: np.ndarray, true: np.ndarray) -> dict:
    """Held-out metrics (:func:`rtbold.metrics.scan_metrics`) over the measured regions (the
    columns of ``true`` without NaN): Tcorr, residual Tcorr (global signal removed), Pixcorr
    (FC matrices) and the prediction's global share; the last three are NaN for fewer than 3
    regions."""
    from ..metrics import scan_metrics

    cols = np.isfinite(true).all(axis=0)
    v = scan_metrics(pred[:, cols], true[:, cols]).values
    return {k: float(v[k]) for k in ("tcorr", "res_tcorr", "pixcorr", "global_share")}


def _finetune(base, predict, scans, fit, sel, table, cfg: CalibrationConfig, device,
              progress: bool):
    """Gradient fine-tuning of the ``cfg.params`` set (Adam, MSE, L2-SP towards the start); the
    epoch with the best selection score is kept, epoch 0 (the start) included. ``predict(model,
    positions)`` gives a model's outputs for frame positions."""
    import torch

    scan = scans[0]
    model = copy.deepcopy(base).to(device)
    chosen = set(trainable_names(model, cfg.params))
    start = {}
    for name, p in model.named_parameters():
        p.requires_grad_(name in chosen)
        if name in chosen:
            start[name] = p.detach().clone()
    trainable = [p for n, p in model.named_parameters() if n in chosen]
    n_weights = sum(p.numel() for p in trainable)
    opt = torch.optim.AdamW(trainable, lr=cfg.resolved_lr, weight_decay=0.0)

    from torch.utils.data import DataLoader

    from ..datasets import WindowDataset
    from ..training.predict import model_inputs
    from ..training.ridge import SessionWindowDataset

    items = [(0, int(k)) for k in fit]
    ds = (WindowDataset(scans, items) if table is None
          else SessionWindowDataset(scans, items, table))
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=gen, num_workers=0)
    sel_pos = sel if len(sel) >= 10 else fit

    def score_sel(m) -> float:
        return _score(predict(m, sel_pos), scan.targets[sel_pos])

    best_score, best_epoch = score_sel(model), 0
    best_state = copy.deepcopy(model.state_dict())
    history = [{"epoch": 0, "select_score": best_score}]
    from ..training.loop import progress_bar

    bar = progress_bar(range(1, cfg.epochs + 1), progress, "calibration")
    for epoch in bar:
        model.train()
        losses = []
        for batch in loader:
            x, kwargs = model_inputs(batch, device)
            y = batch[-1].to(device)
            known = torch.isfinite(y)  # regions the measured stream lacks are NaN
            loss = ((model(x, **kwargs) - y)[known] ** 2).mean()
            if cfg.anchor > 0:
                drift = sum(((p - start[n]) ** 2).sum() for n, p in model.named_parameters()
                            if n in chosen)
                loss = loss + cfg.anchor * drift / n_weights
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        model.eval()
        score = score_sel(model)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                        "select_score": score})
        bar.set_postfix(loss=f"{np.mean(losses):.4f}", select=f"{score:.3f}")
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
    bar.close()
    model.load_state_dict(best_state)
    return model, {"epoch": best_epoch}, history


def _readout_layer(model):
    """The linear read-out on band-power features that a closed-form calibration updates:
    UnEBOLT-BP's ``bandpower.linear`` or a ridge bundle's ``readout`` (None: the model has none)."""
    branch = getattr(model, "bandpower", None)
    if branch is not None and hasattr(branch, "linear"):
        return branch.linear
    readout = getattr(model, "readout", None)
    return readout if readout is not None and hasattr(readout, "weight") else None


#: Ridge penalties of the read-out calibration, per calibration window (lambda = alpha x n).
READOUT_ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)


def _calibrate_readout(base, predict, targets, fit, sel, device, gap: int, n_folds: int = 5):
    """Closed-form read-out calibration: a ridge of the group model's residual on the inputs of
    its linear read-out, shrunk towards the group read-out (W = 0), added to the read-out.

    The penalty is chosen by blocked cross-validation over the calibration frames (``fit`` and
    ``sel``: ``n_folds`` contiguous blocks, each predicted by a ridge fitted on the others less
    ``gap`` frames on either side), with no change as a candidate; the ridge is then refitted
    on every calibration frame. (A ridge costs milliseconds, so every frame can serve both
    fitting and selection, unlike gradient fine-tuning's single selection block.)
    """
    import torch

    model = copy.deepcopy(base).to(device).eval()
    layer = _readout_layer(model)
    if layer is None:
        raise ValueError(f"{type(base).__name__} has no linear band-power read-out; calibrate "
                         "it with params = 'heads', 'last' or 'all'.")
    pos = np.sort(np.concatenate([fit, sel]))
    captured: list = []
    hook = layer.register_forward_hook(lambda mod, inp, out: captured.append(
        inp[0].detach().float().cpu().numpy()))
    try:
        pred = predict(model, pos).astype(np.float64)
    finally:
        hook.remove()
    X = np.concatenate(captured).astype(np.float64).reshape(len(pos), -1)
    y = targets[pos].astype(np.float64)
    cols = np.flatnonzero(np.isfinite(y).all(axis=0))  # measured regions
    resid = (y - pred)[:, cols]
    n = len(pos)

    def ridge(rows, lam):
        A = X[rows]
        return np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ resid[rows])

    blocks = np.array_split(np.arange(n), n_folds)
    best_score, best_alpha = _score(pred, y), None
    history = [{"alpha": None, "cv_score": best_score}]
    for alpha in READOUT_ALPHAS:
        cv = pred.copy()
        for blk in blocks:
            train = np.setdiff1d(np.arange(n), np.arange(blk[0] - gap, blk[-1] + gap + 1))
            cv[np.ix_(blk, cols)] += X[blk] @ ridge(train, alpha * len(train))
        score = _score(cv, y)
        history.append({"alpha": alpha, "cv_score": score})
        if score > best_score:
            best_score, best_alpha = score, alpha
    if best_alpha is not None:
        W = ridge(np.arange(n), best_alpha * n)
        with torch.no_grad():
            layer.weight[torch.as_tensor(cols)] += torch.as_tensor(
                W.T, dtype=layer.weight.dtype, device=layer.weight.device)
    return model, {"alpha": best_alpha}, history


def _score(pred: np.ndarray, true: np.ndarray) -> float:
    """Selection score: mean of Tcorr and residual Tcorr (global signal removed), so fitting
    the global signal alone does not win it."""
    m = _summary(pred, true)
    if not np.isfinite(m["res_tcorr"]):  # fewer than 3 measured regions: Tcorr alone
        return m["tcorr"]
    return 0.5 * (m["tcorr"] + m["res_tcorr"])


def calibrate_session(session_dir: str | Path, bundle: str | Path,
                      config: CalibrationConfig | None = None, *, out: str | Path | None = None,
                      progress: bool = True, figure: bool = True) -> CalibrationResult:
    """Calibrate ``bundle`` on the paired frames of a recorded session.

    Parameters
    ----------
    session_dir : path-like
        A folder ``rtbold run`` recorded into, with ``measured.tsv``.
    bundle : path-like
        The bundle to start from (normally the one the session ran).
    config : CalibrationConfig | None
    out : path-like | None
        Output folder; default ``session_dir/calibration/<YYYYmmdd-HHMMSS>``.
    progress : bool
        Show a progress bar (tqdm).
    figure : bool
        Write ``calibration.png`` (per-region and per-network r, before and after).

    Returns
    -------
    CalibrationResult

    Raises
    ------
    ValueError
        Too few paired frames for the held-out part and the calibration part.
    """
    import torch

    from rtbold.models import load_bundle, save_bundle, select_device, session_features

    from ..metrics import tcorr
    from ..training.data import networks_for
    from ..training.predict import predict_items
    from ..training.ridge import session_table
    from .session import normalise_part, read_session_frames, session_scan

    cfg = config or CalibrationConfig()
    t0 = time.perf_counter()
    session_dir, bundle = Path(session_dir), Path(bundle)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = select_device(cfg.device)
    base, meta = load_bundle(bundle, device="cpu")
    frames = read_session_frames(session_dir)
    if frames.roi_names != list(meta.roi_names):
        raise ValueError(f"{session_dir}: the session's regions are not those of {bundle} "
                         f"({len(frames.roi_names)} vs {meta.n_rois}); calibrate the bundle the "
                         "session ran.")
    scan = session_scan(session_dir, list(meta.ch_names), highpass=meta.eeg_highpass_hz,
                        frames=frames)
    usable = scan.valid & frames.paired
    fit, sel, hold = _split(frames.t, usable, cfg, frames.tr)
    need = max(2 * cfg.batch_size, 20)
    if len(hold) < 10 or len(fit) < need:
        raise ValueError(
            f"{session_dir}: {int(usable.sum())} usable paired frames "
            f"({frames.paired_minutes:.1f} min paired) give {len(fit)} calibration and "
            f"{len(hold)} held-out frames; need at least {need} and 10. Record longer, or lower "
            "holdout_min / gap_s / batch_size.")
    scans = [scan]
    targets = np.full(scan.targets.shape, np.nan, np.float32)
    cols = np.flatnonzero(frames.region_mask)  # the others stay NaN: never trained or scored
    for part in (np.concatenate([fit, sel]), hold):
        targets[np.ix_(part, cols)] = normalise_part(scan.targets[np.ix_(part, cols)],
                                                     frames.tr)
    scan.targets = targets
    feats = session_features(base)
    table = None
    if feats is not None:  # causal statistics over every frame, as live
        table = session_table(scans, [(0, int(k)) for k in scan.valid_indices], feats)

    def predict(model, pos):
        return predict_items(model, scans, [(0, int(k)) for k in pos], device=device,
                             session=table)

    if cfg.params == "readout":
        model, selected, history = _calibrate_readout(
            base, predict, scan.targets, fit, sel, device,
            gap=int(math.ceil(cfg.gap_s / frames.tr)))
    else:
        model, selected, history = _finetune(base, predict, scans, fit, sel, table, cfg,
                                             device, progress)
    model.eval()

    y_hold = scan.targets[hold]
    p_before, p_after = predict(base.to(device), hold), predict(model, hold)
    before, after = _summary(p_before, y_hold), _summary(p_after, y_hold)
    accepted = after["tcorr"] - before["tcorr"] > cfg.min_gain

    out = Path(out) if out is not None else (
        session_dir / "calibration" / time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    subject = out / "subject.safetensors"
    provenance = {
        "base_bundle": str(bundle.resolve()), "session": str(session_dir.resolve()),
        "frames": {"calibration": [int(frames.index[fit[0]]), int(frames.index[fit[-1]])],
                   "selection": ([int(frames.index[sel[0]]), int(frames.index[sel[-1]])]
                                 if len(sel) else None),
                   "holdout": [int(frames.index[hold[0]]), int(frames.index[hold[-1]])]},
        "settings": asdict(cfg), "selected": selected, "holdout_before": before,
        "holdout_after": after, "accepted": bool(accepted),
        "changed_weights": int(sum(
            int((a != b).sum()) for a, b in zip(base.state_dict().values(),
                                                model.state_dict().values())
            if a.dtype.is_floating_point)),
    }
    md = {k: v for k, v in asdict(meta).items() if k not in ("format_version", "created")}
    md["training"] = dict(md.get("training") or {}, calibration=provenance)
    md["notes"] = "; ".join(x for x in (md.get("notes") or "", (
        f"calibrated for the participant of session {session_dir.name} "
        f"({cfg.params}, {len(fit)} TRs)")) if x)
    save_bundle(subject, model.cpu(), md)
    networks = networks_for(frames.roi_names, len(frames.roi_names))
    result = CalibrationResult(
        accepted=bool(accepted), before=before, after=after,
        region_r_before=tcorr(p_before, y_hold).tolist(),
        region_r_after=tcorr(p_after, y_hold).tolist(), roi_names=list(frames.roi_names),
        networks=networks, bundle=str(subject), base_bundle=str(bundle), folder=str(out),
        # the read-out ridge is refitted on every calibration frame; fine-tuning fits on ``fit``
        n_calibration=len(fit) + (len(sel) if cfg.params == "readout" else 0),
        n_selection=len(sel), n_holdout=len(hold),
        selected=selected, seconds=round(time.perf_counter() - t0, 1),
        settings=asdict(cfg), history=history)
    (out / "calibration.json").write_text(json.dumps(result.to_json(), indent=1,
                                                     allow_nan=True), encoding="utf-8")
    if figure:
        from ..report import plot_calibration

        plot_calibration(result.region_r_before, result.region_r_after,
                         networks, out / "calibration.png",
                         title=f"{session_dir.name}: held-out {len(hold)} TRs, {cfg.params}")
    logger.info("%s: %s (%.0f s)", session_dir, result.line(), result.seconds)
    return result

