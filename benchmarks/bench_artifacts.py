"""MR-artefact correction (``rtbold.artifacts``) on simulated raw in-scanner recordings.

For each seed, ``rtbold simulate --in-scanner`` writes one raw recording at 5 kHz (26 EEG channels
and an ECG, gradient artefact of 0.5-5 mV, BCG of 100 µV median peak-to-peak, R128 markers) and
its clean EEG and artefacts under ``derivatives/``. The figures (issue 10, section 3), all on the
part of the recording where the causal templates are full (from volume ``gradient_templates + 2``
to the end of the last volume):

* **gradient**: power at the slice-frequency harmonics (every harmonic up to 2.5 kHz, and those
  below 100 Hz) after the live gradient correction (AAS, 20 previous volumes), relative to before
  (dB, median over channels), beside MNE's offline ``remove_fmri_gradient_artifact`` with a
  ``(4, 4)`` window on the same file;
* **R-peaks**: the causal detector beside ``mne.preprocessing.find_ecg_events`` (offline, on the
  ECG resampled to 500 Hz) on the same ECG, gradient removed offline: share of true beats found
  (within 50 ms), false detections, lag median and SD;
* **EEG**: per-channel correlation of the corrected EEG (gradient + BCG) with the clean EEG at
  200 Hz (the model's chain: resampling and the demo model's high-pass), median over channels;
  what is left of the alpha power (8-12 Hz, corrected / clean: over-subtraction shows here);
* **BCG**: residual power in 1-10 Hz relative to the BCG's own (dB): beat-locked (the average of
  the residual over the true R-peaks, the locked residual) and in total;
* **model**: the packaged demo model's predictions (UnEBOLT-BP) on corrected vs clean EEG (per
  region r over the volumes whose windows the correction did not flag, mean over regions; target
  >= 0.95), and on uncorrected EEG;
* **CPU**: process CPU time of the correction (gradient AAS + BCG) for 32 channels and an ECG at
  5 kHz fed in 20-ms chunks with the markers arriving as a stream delivers them, as a share of one
  core (target <= 15 %); CPU time does not depend on the machine's other load;
* **latency** (unless ``--no-live``): one recording replayed over LSL (loopback) in real time into
  the live engine with correction, and its clean EEG without: tick -> published (median, wall
  clock, so it does depend on the machine's load).

Usage: ``python benchmarks/bench_artifacts.py [--seeds 1 2 3] [--volumes 60] [--bcg aas obs] [--no-live]``
(``--bcg`` with no method: the gradient, R-peak and latency figures only)
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import _live_common as common  # noqa: F401 - sets LSLAPICFG first
import mne
import numpy as np
from scipy import signal
from tqdm import tqdm

from rtbold.artifacts import ArtifactConfig, MRCorrector, RPeakDetector, correct_recording
from rtbold.datasets import discover_scans, prepare_scan
from rtbold.demo import demo_bundle_path
from rtbold.io.eeg import marker_matches, read_eeg
from rtbold.preprocessing import EEGPreprocessor, extract_window, window_end_index, WINDOW_SAMPLES
from rtbold.simulator import simulate_dataset
from rtbold.simulator.config import ScannerConfig, in_scanner_config
from rtbold.stream.worker import ModelRunner

MARKER = "R128"
FS = 5000.0


def _derivative(spec, desc: str) -> Path:
    sub = spec.eeg_path.parent.parent.name
    stem = spec.eeg_path.name.replace("_eeg.vhdr", "")
    root = spec.eeg_path.parents[2]
    return root / "derivatives" / "rtbold-sim" / sub / "eeg" / f"{stem}_desc-{desc}"


def simulate(root: Path, seed: int, n_volumes: int):
    simulate_dataset(root, in_scanner_config(n_subjects=1, n_volumes=n_volumes, lead_s=10.0,
                                             seed=seed), progress=False)
    (spec,) = discover_scans(root)
    return spec


def harmonic_power(x: np.ndarray, tr_samples: int, n_shots: int, fmax: float) -> np.ndarray:
    """Per-channel power summed over the slice-frequency harmonics up to ``fmax`` (Welch with
    segments of 4 volumes, so every harmonic falls on a bin)."""
    nper = 4 * tr_samples
    f, p = signal.welch(x, FS, nperseg=nper, noverlap=nper // 2, axis=1)
    step = 4 * n_shots  # bins between slice harmonics
    idx = np.arange(step, len(f), step)
    idx = idx[f[idx] <= fmax]
    return p[:, idx].sum(axis=1)


def gradient_figures(spec, raw, eeg_rows, n_templates: int, n_shots: int) -> dict:
    markers = np.array([a.onset for a in raw.annotations if marker_matches(a.description, MARKER)])
    tr_samples = int(round(np.median(np.diff(markers)) * FS))
    live, _ = correct_recording(raw, ArtifactConfig(gradient="aas"), MARKER)
    info = mne.create_info(list(raw.ch_names), FS, list(raw.ch_types))
    mraw = mne.io.RawArray(raw.data * 1e-6, info, verbose="error")
    events = np.rint(markers * FS).astype(int)
    off = mne.preprocessing.remove_fmri_gradient_artifact(mraw, events, window=(4, 4),
                                                          picks="all", verbose="error")
    offline = off.get_data() * 1e6
    a = events[n_templates + 2]
    b = events[-1]  # complete volumes (the recording may end inside the last one)
    out = {}
    for label, fmax in (("all", FS / 2), ("<100Hz", 100.0)):
        before = harmonic_power(raw.data[eeg_rows, a:b], tr_samples, n_shots, fmax)
        for name, x in (("live", live[eeg_rows, a:b]), ("mne44", offline[eeg_rows, a:b])):
            after = harmonic_power(x, tr_samples, n_shots, fmax)
            out[f"{name} {label}"] = float(np.median(10 * np.log10(after / before)))
    return out, offline


def rpeak_figures(raw, ecg_row: int, truth, mne_corrected: np.ndarray) -> dict:
    """The causal detector and ``mne.preprocessing.find_ecg_events`` on the same ECG (gradient
    removed offline by MNE, so that only the detection differs), against the true R-peaks."""
    ecg = mne_corrected[ecg_row]
    t = np.arange(len(ecg)) / FS
    ours = np.array([p for p, _ in RPeakDetector(FS).process(ecg, t)])
    # At 5 kHz find_ecg_events' 10-s FIR takes minutes: it gets the ECG at 500 Hz.
    info = mne.create_info(["ECG"], FS / 10, "ecg")
    low = signal.resample_poly(ecg, 1, 10)
    events, _, _ = mne.preprocessing.find_ecg_events(
        mne.io.RawArray(low[None] * 1e-6, info, verbose="error"), ch_name="ECG",
        verbose="error")
    theirs = events[:, 0] / (FS / 10)
    true = truth["r_peaks_s"]
    true = true[(true > 3.0) & (true < t[-1] - 0.5)]  # after the detectors' start-up
    out = {}
    for name, found in (("causal", ours), ("mne", theirs)):
        found = found[(found > 2.9) & (found < t[-1] - 0.4)]
        lag = np.array([min(found - r, key=abs) for r in true]) if len(found) else np.inf
        hit = np.abs(lag) < 0.05
        out[name] = (float(hit.mean()), int(len(found) - hit.sum()),
                     1000 * float(np.median(lag[hit])), 1000 * float(np.std(lag[hit])))
    return out


def band(x: np.ndarray, lo: float, hi: float, sfreq: float = 200.0) -> np.ndarray:
    sos = signal.butter(4, [lo, hi], "bandpass", fs=sfreq, output="sos")
    return signal.sosfiltfilt(sos, x, axis=1)


def predictions(runner, prep) -> np.ndarray:
    runner.reset_session()
    out = []
    for k in range(len(prep.volume_times)):
        if not prep.valid[k]:
            out.append(np.full(len(runner.roi_names), np.nan, np.float32))
            continue
        out.append(runner.predict(prep.window(k)))
    return np.array(out)


def region_r(a: np.ndarray, b: np.ndarray) -> float:
    r = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])]
    return float(np.nanmean(r))


def eeg_figures(spec, runner, cfg: ArtifactConfig, truth) -> dict:
    hp = runner.highpass_hz
    ch = runner.ch_names
    cor = prepare_scan(spec, ch, marker=MARKER, highpass=hp, artifacts=cfg)
    cln = prepare_scan(spec, ch, marker=MARKER, highpass=hp,
                       eeg=read_eeg(f"{_derivative(spec, 'clean_eeg')}.vhdr"))
    unc = prepare_scan(spec, ch, marker=MARKER, highpass=hp)
    bcg_rec = read_eeg(f"{_derivative(spec, 'bcg_eeg')}.vhdr")
    bcg, _ = EEGPreprocessor(FS, n_channels=len(ch), highpass_hz=hp).run(
        bcg_rec.data[[bcg_rec.ch_names.index(c) for c in ch]])
    vt = cor.volume_times
    t0, t1 = vt[cfg.gradient_templates + 2], vt[-1] + cor.tr
    seg = (cor.times >= t0) & (cor.times < t1)
    x, y, u = cor.eeg[:, seg], cln.eeg[:, seg], unc.eeg[:, seg]
    r = [np.corrcoef(x[c], y[c])[0, 1] for c in range(len(ch))]
    r_unc = [np.corrcoef(u[c], y[c])[0, 1] for c in range(len(ch))]
    f, px = signal.welch(x, 200.0, nperseg=800, axis=1)
    _, py = signal.welch(y, 200.0, nperseg=800, axis=1)
    alpha = (f >= 8) & (f <= 12)
    alpha_left = np.median(px[:, alpha].sum(1) / py[:, alpha].sum(1))
    # BCG: residual (corrected - clean) vs the BCG itself, 1-10 Hz, locked to the true R-peaks.
    res = band(cor.eeg - cln.eeg, 1, 10)
    b = band(bcg[:, :cor.eeg.shape[1]], 1, 10)
    n_ep = int(0.9 * 200)
    starts = [int(np.searchsorted(cor.times, p)) for p in truth["r_peaks_s"] if t0 <= p < t1 - 1]
    lock_res = np.mean([res[:, s:s + n_ep] for s in starts], axis=0)
    lock_bcg = np.mean([b[:, s:s + n_ep] for s in starts], axis=0)
    locked_db = np.median(10 * np.log10(np.mean(lock_res ** 2, 1) / np.mean(lock_bcg ** 2, 1)))
    total_db = np.median(10 * np.log10(np.mean(res[:, seg] ** 2, 1) / np.mean(b[:, seg] ** 2, 1)))
    # Model: windows that the correction did not flag.
    ok = np.array([cor.valid[k] and not cor.flags[k] for k in range(len(vt))])
    p_cor, p_cln, p_unc = (predictions(runner, p)[ok] for p in (cor, cln, unc))
    return {"r_eeg": float(np.median(r)), "r_eeg_unc": float(np.median(r_unc)),
            "alpha_left": float(alpha_left), "bcg_locked_db": float(locked_db),
            "bcg_total_db": float(total_db), "n_windows": int(ok.sum()),
            "r_model": region_r(p_cor, p_cln), "r_model_unc": region_r(p_unc, p_cln),
            "heart_bpm": 60.0 / float(np.median(np.diff(truth["r_peaks_s"])))}


def cpu_share(raw, eeg_rows, ecg_row, method: str, n_channels: int = 32, seconds: float = 60.0,
              chunk_s: float = 0.02, marker_delay_s: float = 0.01) -> dict:
    """CPU seconds per stream second: correction alone, and the resampler with and without it."""
    n = int(seconds * FS)
    rows = [eeg_rows[i % len(eeg_rows)] for i in range(n_channels)]
    x = raw.data[rows, :n].copy()
    x[len(eeg_rows):] = np.roll(x[len(eeg_rows):], 137, axis=1)  # not exact copies
    ecg = raw.data[ecg_row, :n]
    t = np.arange(n) / FS
    markers = [a.onset for a in raw.annotations if marker_matches(a.description, MARKER)]
    step = int(chunk_s * FS)
    out = {}
    for label, cfg in (("correction", ArtifactConfig(gradient="aas", bcg=method)),
                       ("resample only", None)):
        corr = None if cfg is None else MRCorrector(FS, n_channels, cfg, 2.1, has_ecg=True)
        pre = EEGPreprocessor(FS, n_channels=n_channels, highpass_hz=0.5, corrector=corr)
        pending = list(markers)
        c0 = time.process_time()
        for a in range(0, n, step):
            t_now = t[min(a + step, n) - 1]
            if corr is not None:
                while pending and pending[0] <= t_now - marker_delay_s:
                    corr.add_markers([pending.pop(0)])
                corr.set_horizon(t_now - 0.1)
            pre.process(x[:, a:a + step], t[a:a + step], ecg[a:a + step])
        out[label] = (time.process_time() - c0) / seconds
    return out


def live_latency(spec, runner_path: Path, cfg: ArtifactConfig) -> dict:
    """Median tick -> published (ms) replaying the raw file with correction and the clean file
    without, in real time into the live engine."""
    from rtbold.player.replay import Replayer
    from rtbold.player.synthetic import live_config, run_replay, unique_id

    out = {}
    for label, path, ac in (("raw + correction", spec.eeg_path, cfg),
                            ("clean, no correction",
                             Path(f"{_derivative(spec, 'clean_eeg')}.vhdr"), ArtifactConfig())):
        runner = ModelRunner.from_bundle(runner_path, device="cpu")
        replay = Replayer(path, name=unique_id("art"), source_id=unique_id("artsid"),
                          speed=1.0, marker=MARKER, measured=False)

        class _Src:
            name, source_id, tr, measured = replay.name, replay.source_id, 2.1, None

        lc = live_config(_Src, trigger__marker=MARKER)
        lc.artifacts = ac
        frames, _, _ = run_replay(replay, lc, runner)
        lat = [f.latency["published"] for f in frames if "published" in f.latency]
        ready = [f.latency["window_ready"] for f in frames if "window_ready" in f.latency]
        out[label] = (1000 * float(np.median(ready)), 1000 * float(np.median(lat)), len(lat))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--volumes", type=int, default=60)
    p.add_argument("--bcg", choices=("aas", "obs"), nargs="*", default=["aas", "obs"],
                   help="BCG methods measured (none: gradient, R-peaks and latency only)")
    p.add_argument("--no-live", action="store_true", help="skip the live latency replay")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runner = ModelRunner.from_bundle(demo_bundle_path(), device="cpu")
    grad, peaks, eeg = [], [], {m: [] for m in args.bcg}
    with tempfile.TemporaryDirectory() as tmp:
        first = None
        for seed in tqdm(args.seeds, desc="seeds"):
            spec = simulate(Path(tmp) / f"seed{seed}", seed, args.volumes)
            first = first or spec
            raw = read_eeg(spec.eeg_path)
            ecg_row = raw.ch_types.index("ecg")
            eeg_rows = [i for i in range(len(raw.ch_names)) if i != ecg_row]
            sc = ScannerConfig()
            truth = np.load(f"{_derivative(spec, 'scanner')}.npz")
            g, mne_corrected = gradient_figures(spec, raw, eeg_rows, 20,
                                                sc.slices // sc.multiband)
            grad.append(g)
            peaks.append(rpeak_figures(raw, ecg_row, truth, mne_corrected))
            del mne_corrected
            for m in args.bcg:
                eeg[m].append(eeg_figures(spec, runner, ArtifactConfig(gradient="aas", bcg=m),
                                          truth))
        raw = read_eeg(first.eeg_path)
        ecg_row = raw.ch_types.index("ecg")
        eeg_rows = [i for i in range(len(raw.ch_names)) if i != ecg_row]
        cpu = {m: cpu_share(raw, eeg_rows, ecg_row, m) for m in args.bcg}
        live = None
        if not args.no_live:
            short = simulate(Path(tmp) / "latency", args.seeds[0], 16)
            live = live_latency(short, demo_bundle_path(), ArtifactConfig(
                gradient="aas", bcg=args.bcg[0] if args.bcg else "aas"))

    print(f"\nSimulated in-scanner recordings: seeds {args.seeds}, {args.volumes} volumes "
          f"(TR 2.1 s) + 10 s, 26 EEG channels + ECG at 5 kHz; templates: 20 volumes, 20 beats")
    print("\nGradient: power at the slice-frequency harmonics after / before correction "
          "(dB, median over channels; mean over seeds)")
    for key in grad[0]:
        vals = [g[key] for g in grad]
        print(f"  {key:14s} {np.mean(vals):7.1f} dB   (per seed: "
              + ", ".join(f"{v:.1f}" for v in vals) + ")")
    print("\nR-peaks on the ECG (gradient removed offline): found / true, false, lag median and "
          "SD (ms)")
    for name in ("causal", "mne"):
        v = np.array([p[name] for p in peaks])
        print(f"  {'causal detector' if name == 'causal' else 'mne find_ecg_events':20s} "
              f"{100 * v[:, 0].mean():5.1f} %, {int(v[:, 1].sum())} false, "
              f"{v[:, 2].mean():+5.1f} ms +- {v[:, 3].mean():.1f} ms")
    for m, rows in eeg.items():
        def col(k):
            v = [r[k] for r in rows]
            return f"{np.mean(v):.3f} (" + ", ".join(f"{x:.3f}" for x in v) + ")"
        print(f"\nGradient AAS + BCG {m} (mean over seeds; per seed in brackets)")
        print(f"  EEG r corrected vs clean, 200 Hz (median channel): {col('r_eeg')}")
        print(f"  EEG r uncorrected vs clean:                         {col('r_eeg_unc')}")
        print(f"  alpha power left (corrected / clean):               {col('alpha_left')}")
        print(f"  BCG residual 1-10 Hz, beat-locked (dB vs BCG):      {col('bcg_locked_db')}")
        print(f"  BCG residual 1-10 Hz, total (dB vs BCG):            {col('bcg_total_db')}")
        print(f"  model r corrected vs clean (mean region):           {col('r_model')}  "
              f"target >= 0.95")
        print(f"  model r uncorrected vs clean:                       {col('r_model_unc')}")
        print(f"  windows compared per seed: {[r['n_windows'] for r in rows]}, heart rate "
              f"{np.mean([r['heart_bpm'] for r in rows]):.0f} bpm")
    if cpu:
        print("\nCPU, 32 channels + ECG at 5 kHz in 20-ms chunks (process CPU time per stream "
              "second, share of one core; target <= 15 %)")
    for m, c in cpu.items():
        print(f"  gradient AAS + BCG {m}: correction + resampling + high-pass "
              f"{100 * c['correction']:.1f} %, resampling + high-pass alone "
              f"{100 * c['resample only']:.1f} %")
    if live:
        print("\nLive engine, replay in real time over LSL (wall clock, shared machine): "
              "tick -> window ready / published, median ms (frames)")
        for label, (ready, pub, n) in live.items():
            print(f"  {label:22s} {ready:7.1f} / {pub:7.1f}  ({n})")


if __name__ == "__main__":
    main()
