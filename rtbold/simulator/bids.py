"""Write simulated scans as a BIDS-like EEG-fMRI dataset (layout in .dev/CONTRACT.md).

Nothing written carries a timestamp, so the same seed gives the same bytes.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..atlas import NETWORK_ORDER, load_atlas
from .bold import load_bold_source, select_scans
from .config import SimulatorConfig, knobs_dict
from .core import ScanResult, ScanSimulator
from .projection import RegionProjection, region_projection
from .scanner import ECG_NAME, ScannerArtifacts

logger = logging.getLogger(__name__)

#: Above this many values (channels x samples) the .eeg file is streamed block by block
#: instead of handing one array to pybv (which makes float64 copies of it).
PYBV_MAX_VALUES = 20_000_000
#: Added to the dataset README in the in-scanner mode.
IN_SCANNER_README = (
    "In-scanner mode: the EEG is raw, as a BrainAmp MR records it inside a 3 T scanner, with the "
    "gradient artefact, the ballistocardiogram and an ECG channel (ECG); markers as the scanner "
    "sent them (dropped and doubled triggers included). derivatives/rtbold-sim/sub-*/eeg holds "
    "the clean EEG (desc-clean), the gradient artefact (desc-gradient) and the BCG (desc-bcg) "
    "alone, and desc-scanner.npz the true volumes, triggers and R-peaks.\n")
#: Where the simulator writes its ground truth (knobs, ceiling, explainable BOLD) under a root.
SIM_DERIVATIVES = Path("derivatives") / "rtbold-sim"


@dataclass
class SimulationSummary:
    """What :func:`simulate_dataset` wrote."""

    out_dir: Path
    files: list[Path]
    n_scans: int
    scan_duration_s: float
    ceiling_mean: float
    ceiling_by_network: dict[str, float]
    oracle_mean: float
    seconds: float = 0.0
    per_scan_ceiling: dict[str, float] = field(default_factory=dict)

    def format(self) -> str:
        nets = ", ".join(f"{k} {v:.2f}" for k, v in self.ceiling_by_network.items())
        oracle = "n/a (scans < 100 volumes)" if np.isnan(self.oracle_mean) else f"{self.oracle_mean:.3f}"
        return (f"Wrote {len(self.files)} files for {self.n_scans} scan(s) to {self.out_dir} "
                f"in {self.seconds:.1f} s.\n"
                f"Scan duration: {self.scan_duration_s:.1f} s of EEG per scan.\n"
                f"Ceiling (upper bound, corr(BOLD, HRF * EEG-visible drive)) mean R = "
                f"{self.ceiling_mean:.3f}\n  by network: {nets}\n"
                f"Noisy oracle (ridge from the true source envelopes, held-out) mean R = {oracle}")


def _marker(cfg: SimulatorConfig) -> tuple[str, int]:
    m = re.fullmatch(r"([SR])\s*(\d+)", cfg.marker)
    return ("Response" if m.group(1) == "R" else "Stimulus"), int(m.group(2))


def _write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _write_tsv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "n/a" if np.isnan(v) else f"{float(v):.6g}"
        return str(v)

    lines = ["\t".join(header)] + ["\t".join(fmt(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _savez_deterministic(path: Path, **arrays: np.ndarray) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps (same seed, same bytes)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, np.asanyarray(arr), allow_pickle=False)


def write_brainvision(sim: ScanSimulator, folder: Path, base: str,
                      max_in_memory: int = PYBV_MAX_VALUES) -> tuple[list[Path], np.ndarray | None]:
    """Write the scan's EEG (µV, float32) with one marker per volume.

    Small recordings go through ``pybv.write_brainvision``; large ones (e.g. 20 min at 5 kHz)
    are streamed block by block into a file of the same format (multiplexed little-endian
    float32, resolution 0.1 µV, the header and marker text pybv writes) so memory stays at one
    block plus the internal-rate neural signals. Returns the paths and the data if it was held.
    """
    import pybv

    folder.mkdir(parents=True, exist_ok=True)
    ch_names = list(sim.result(None).ch_names)
    mtype, mval = _marker(sim.cfg)
    samples = sim.volume_samples
    if len(ch_names) * sim.n_times <= max_in_memory:
        data = np.concatenate(list(sim.blocks()), axis=1)
        events = [{"onset": int(s), "duration": 1, "description": mval, "type": mtype}
                  for s in samples]
        pybv.write_brainvision(data=data.astype(np.float64) * 1e-6, sfreq=sim.cfg.sfreq,
                               ch_names=ch_names, fname_base=base, folder_out=folder,
                               events=events, overwrite=True, unit="µV", resolution=0.1)
        return [folder / f"{base}.{e}" for e in ("vhdr", "vmrk", "eeg")], data
    writer = StreamedBrainVision(folder, base, ch_names, sim.cfg.sfreq)
    for block in sim.blocks():
        writer.write(block)
    return writer.close(samples, mtype, mval), None


class StreamedBrainVision:
    """Write a BrainVision recording block by block (µV, float32, resolution 0.1 µV).

    The same multiplexed little-endian float32 data, header and marker text that pybv writes,
    so memory stays at one block however long the recording.
    """

    def __init__(self, folder: Path, base: str, ch_names: list[str], sfreq: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.base, self.ch_names, self.sfreq = folder, base, list(ch_names), sfreq
        self.eeg = folder / f"{base}.eeg"
        self._fid = self.eeg.open("wb")

    def write(self, block: np.ndarray) -> None:
        """Append (n_channels, m) samples in µV."""
        (np.asarray(block, dtype=np.float32) / np.float32(0.1)).astype("<f4").T.tofile(self._fid)

    def close(self, samples, mtype: str, mval: int) -> list[Path]:
        """Write the marker file (one marker per sample index) and the header."""
        import pybv

        self._fid.close()
        eeg, folder, base = self.eeg, self.folder, self.base
        width = len(str(mval))
        code = f"{mtype[0]}{mval:>{width}}"
        vmrk = folder / f"{base}.vmrk"
        lines = ["Brain Vision Data Exchange Marker File, Version 1.0",
                 f"; Exported using pybv {pybv.__version__} (streamed by rtbold {__version__})", "",
                 "[Common Infos]", "Codepage=UTF-8", f"DataFile={eeg.name}", "", "[Marker Infos]",
                 "; Each entry: Mk<Marker number>=<Type>,<Description>,<Position in data points>,",
                 ";             <Size in data points>, <Channel number (0 = marker is related to all channels)>",
                 ";             <Date (YYYYMMDDhhmmssuuuuuu)>",
                 "; Fields are delimited by commas, some fields might be omitted (empty).",
                 r'; Commas in type or description text are coded as "\1".']
        # BrainVision positions are 1-based
        lines += [f"Mk{i + 1}={mtype},{code},{int(s) + 1},1,0" for i, s in enumerate(samples)]
        vmrk.write_text("\n".join(lines) + "\n", encoding="utf-8")
        vhdr = folder / f"{base}.vhdr"
        lines = ["Brain Vision Data Exchange Header File Version 1.0",
                 f"; Written using pybv {pybv.__version__} (streamed by rtbold {__version__})", "",
                 "[Common Infos]", "Codepage=UTF-8", f"DataFile={eeg.name}", f"MarkerFile={vmrk.name}",
                 "DataFormat=BINARY", "; Data orientation: MULTIPLEXED=ch1,pt1, ch2,pt1 ...",
                 "DataOrientation=MULTIPLEXED", f"NumberOfChannels={len(self.ch_names)}",
                 "; Sampling interval in microseconds", f"SamplingInterval={1e6 / self.sfreq}", "",
                 "[Binary Infos]", "BinaryFormat=IEEE_FLOAT_32", "", "[Channel Infos]",
                 "; Each entry: Ch<Channel number>=<Name>,<Reference channel name>,",
                 '; <Resolution in "Unit">,<Unit>, Future extensions..',
                 "; Fields are delimited by commas, some fields might be omitted (empty).",
                 r'; Commas in channel names are coded as "\1".']
        lines += [f"Ch{i + 1}={n},,0.1,µV" for i, n in enumerate(self.ch_names)]
        lines += ["", "[Comment]", ""]
        vhdr.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return [vhdr, vmrk, eeg]


def write_in_scanner(sim: ScanSimulator, eeg_dir: Path, deriv_dir: Path, base: str,
                     seed: tuple[int, int, int]) -> tuple[list[Path], np.ndarray]:
    """Write the raw in-scanner recording and its ground truth, block by block.

    ``eeg_dir/<base>_eeg``: clean EEG + gradient artefact + BCG on the 26 channels and the ECG
    (with its own gradient artefact), the markers as the scanner sent them (dropped and doubled
    triggers included). ``deriv_dir/<base>_desc-{clean,gradient,bcg}_eeg``: each part alone, same
    channels, one marker per true volume; ``<base>_desc-scanner.npz``: volume onsets, artefact
    jitter, missing and doubled triggers, R-peaks, beat amplitudes, per-channel amplitudes.
    Returns the files and the marker samples written.
    """
    cfg = sim.cfg
    art = ScannerArtifacts(cfg.scanner, cfg.sfreq, sim.n_times, sim.volume_samples, sim.tr,
                           sim.params.heart_rate, seed)
    names = list(sim.result(None).ch_names) + [ECG_NAME]
    parts = ("raw", "clean", "gradient", "bcg")
    writers = {p: StreamedBrainVision(eeg_dir if p == "raw" else deriv_dir,
                                      f"{base}_eeg" if p == "raw" else f"{base}_desc-{p}_eeg",
                                      names, cfg.sfreq) for p in parts}
    i0 = 0
    for block in sim.blocks():
        m = block.shape[1]
        ga, bcg, ecg = art.block(i0, i0 + m)
        clean = np.vstack([block, ecg[None]])
        bcg_full = np.vstack([bcg, np.zeros((1, m))])
        writers["raw"].write(clean + ga + bcg_full)
        writers["clean"].write(clean)
        writers["gradient"].write(ga)
        writers["bcg"].write(bcg_full)
        i0 += m
    mtype, mval = _marker(cfg)
    truth = art.truth()
    files = []
    for p, w in writers.items():
        files += w.close(truth.marker_samples if p == "raw" else truth.volume_samples, mtype, mval)
    npz = deriv_dir / f"{base}_desc-scanner.npz"
    _savez_deterministic(
        npz, sfreq=np.float64(cfg.sfreq), volume_samples=truth.volume_samples,
        marker_samples=truth.marker_samples, dropped_volumes=truth.dropped,
        doubled_volumes=truth.doubled, jitter_samples=truth.jitter_samples,
        r_peaks_s=truth.r_peaks, bcg_scale=truth.bcg_scale, ga_ptp_uv=truth.ga_ptp_uv,
        bcg_ptp_uv=truth.bcg_ptp_uv, ch_names=np.array(names))
    files.append(npz)
    return files, truth.marker_samples


def _scan_files(root: Path, res: ScanResult, sim: ScanSimulator, sub: str, run: str,
                cfg: SimulatorConfig) -> list[Path]:
    """Write one scan: EEG and its sidecars, the P-region targets, the ground truth."""
    base = f"sub-{sub}_task-rest_run-{run}"
    eeg_dir, func_dir = root / f"sub-{sub}" / "eeg", root / f"sub-{sub}" / "func"
    deriv = root / SIM_DERIVATIVES / f"sub-{sub}"
    scanner = cfg.scanner.enabled
    if scanner:
        files, marker_samples = write_in_scanner(sim, eeg_dir, deriv / "eeg", base,
                                                 (cfg.seed, sim.subject_index, sim.scan_index))
    else:
        files, _ = write_brainvision(sim, eeg_dir, f"{base}_eeg")
        marker_samples = res.volume_samples
    duration = sim.n_times / cfg.sfreq
    sidecar = {
        "TaskName": "rest", "TaskDescription": "simulated eyes-closed rest (rtbold simulate)",
        "SamplingFrequency": cfg.sfreq, "EEGChannelCount": len(res.ch_names), "EOGChannelCount": 0,
        "ECGChannelCount": int(scanner), "EMGChannelCount": 0, "MiscChannelCount": 0,
        "TriggerChannelCount": 0,
        "EEGReference": "average", "PowerLineFrequency": cfg.line_freq if cfg.line_freq else "n/a",
        "SoftwareFilters": "n/a", "RecordingType": "continuous",
        "RecordingDuration": round(duration, 6), "Manufacturer": "rtbold simulator",
        "ManufacturersModelName": f"rtbold {__version__}", "CapManufacturer": "n/a",
        "EEGPlacementScheme": "10-20 (NeuroBOLT 26-channel subset)",
        "VolumeMarker": cfg.marker, "RepetitionTime": res.tr,
    }
    if scanner:
        sidecar["TaskDescription"] = ("simulated eyes-closed rest inside a 3 T scanner: raw EEG "
                                      "with gradient and pulse artefacts (rtbold simulate "
                                      "--in-scanner)")
        sidecar["MRAcquisition"] = {"Slices": cfg.scanner.slices,
                                    "MultibandFactor": cfg.scanner.multiband,
                                    "SilentGap": cfg.scanner.silent_s}
    files.append(_write_json(eeg_dir / f"{base}_eeg.json", sidecar))
    rows = [[n, "EEG", "µV", cfg.sfreq, "good"] for n in res.ch_names]
    if scanner:
        rows.append([ECG_NAME, "ECG", "µV", cfg.sfreq, "good"])
    files.append(_write_tsv(eeg_dir / f"{base}_channels.tsv",
                            ["name", "type", "units", "sampling_frequency", "status"], rows))
    files.append(_write_tsv(eeg_dir / f"{base}_events.tsv",
                            ["onset", "duration", "sample", "trial_type", "value"],
                            ([[float(s) / cfg.sfreq, 0.0, int(s), "volume", cfg.marker]
                              for s in marker_samples] if scanner else
                             [[float(o), 0.0, int(s), "volume", cfg.marker]
                              for o, s in zip(res.volume_onsets, res.volume_samples)])))
    atlas = load_atlas(len(res.roi_names))
    projection = res.extras.get("projection")
    tsv = func_dir / f"{base}_atlas-{atlas.name}_timeseries.tsv"
    func_dir.mkdir(parents=True, exist_ok=True)
    with tsv.open("w", encoding="utf-8", newline="\n") as fid:
        fid.write("\t".join(atlas.roi_names) + "\n")
        for row in res.bold:
            fid.write("\t".join(repr(float(v)) for v in row) + "\n")
    files.append(tsv)
    source = (f"real region series {res.source_scan} (NeuroBOLT VU, CC-BY-4.0), first "
              f"{res.bold.shape[0]} volumes" if cfg.mode == "semi"
              else "synthetic (group FC, 1/f latent drive convolved with the HRF)")
    if projection is None:
        source += ", unchanged" if cfg.mode == "semi" else ""
    else:
        source = f"derived from the DiFuMo-64 {source}: {projection.describe()}"
    files.append(_write_json(tsv.with_suffix(".json"), {
        "RepetitionTime": res.tr, "Atlas": atlas.name, "NumberOfVolumes": int(res.bold.shape[0]),
        "FirstVolumeOnsetInEEG": float(res.volume_onsets[0]), "Source": source,
    }))
    deriv.mkdir(parents=True, exist_ok=True)
    npz = deriv / f"{base}_desc-latent.npz"
    _savez_deterministic(
        npz, times=res.latent_times.astype(np.float64), u_eeg=res.latent,
        vigilance=res.vigilance, explainable_bold=res.explainable.astype(np.float32),
        ceiling=res.ceiling, deconv_fit=res.deconv_fit, oracle_r=res.oracle_r,
        hrf_peaks=res.subject.hrf_peaks, visibility=res.subject.visibility,
        source_pos=res.subject.source_pos, coupling=res.subject.weights.astype(np.float32),
        volume_onsets=res.volume_onsets, roi_names=np.array(res.roi_names),
        # the generator's per-region arrays (u_eeg, hrf_peaks, visibility, coupling,
        # deconv_fit) stay DiFuMo-64 when the targets are derived at another resolution
        **({} if projection is None else
           {"latent_roi_names": np.array(load_atlas(64).roi_names)}),
    )
    files.append(npz)
    return files


def _projection_files(deriv: Path, projection: RegionProjection) -> Path:
    """The DiFuMo-64 -> P map and how it was made, beside the ground truth."""
    deriv.mkdir(parents=True, exist_ok=True)
    _savez_deterministic(deriv / "projection.npz", matrix=projection.matrix,
                         roi_names=np.array(projection.roi_names),
                         source_roi_names=np.array(load_atlas(64).roi_names))
    return _write_json(deriv / "projection.json", {
        "Atlas": projection.atlas.name, "SourceAtlas": "DiFuMo64",
        "Method": projection.describe(), "Masker": projection.masker,
        "SourceMaps": projection.source_maps.name, "TargetMaps": projection.target_maps.name,
        "SmoothingFWHM_mm": projection.smoothing_fwhm_mm, "Rank": projection.rank,
        "Approximation": "the derived series are linear combinations of the 64 real series "
                         "(rank <= 64); what the DiFuMo-64 maps did not capture of the real "
                         "voxels is missing, so they are smoother across regions than a real "
                         f"{projection.atlas.name} extraction would be.",
        "matrix": "projection.npz: target = source @ matrix.T before z-scoring",
    })


def simulate_dataset(out_dir: str | Path, config: SimulatorConfig | None = None, *,
                     overwrite: bool = False, progress: bool = True) -> SimulationSummary:
    """Simulate ``n_subjects x scans_per_subject`` scans and write them under ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Dataset root; must be empty or absent unless ``overwrite``.
    config : SimulatorConfig | None
        Knobs (defaults when None).
    overwrite : bool
        Allow writing into a non-empty folder (files of the same name are replaced).
    progress : bool
        Show a tqdm bar over scans.
    """
    import time

    from tqdm import tqdm

    cfg = config if config is not None else SimulatorConfig()
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a folder.")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise ValueError(f"{root} is not empty; choose an empty folder or pass --overwrite.")
    t0 = time.perf_counter()
    source = (select_scans(load_bold_source(cfg.bold_from or None, tr=cfg.tr), cfg.bold_scans)
              if cfg.mode == "semi" else None)
    projection = (region_projection(cfg.source_maps, cfg.target_maps, cfg.n_regions,
                                    smoothing_fwhm_mm=cfg.target_smoothing_mm)
                  if cfg.n_regions != 64 else None)
    atlas = load_atlas(cfg.n_regions)
    root.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    ceilings, oracles, scan_cols, participants = [], [], [], []
    jobs = [(s, k) for s in range(cfg.subject_offset, cfg.subject_offset + cfg.n_subjects)
            for k in range(cfg.scans_per_subject)]
    duration = 0.0
    scan_sources: dict[str, str] = {}
    for s, k in tqdm(jobs, desc="simulate", unit="scan", disable=not progress):
        sim = ScanSimulator(cfg, s, k, source)
        res = sim.result(None, projection)
        sub, run = f"{s + 1:02d}", f"{k + 1:02d}"
        files += _scan_files(root, res, sim, sub, run, cfg)
        del sim
        duration = res.n_times / cfg.sfreq
        ceilings.append(res.ceiling)
        oracles.append(res.oracle_r)
        scan_cols.append(f"sub-{sub}_run-{run}")
        scan_sources[scan_cols[-1]] = res.source_scan
        if k == 0:
            p = res.subject
            participants.append([f"sub-{sub}", round(float(np.mean(p.hrf_peaks)), 3),
                                 round(p.iaf, 3), round(p.heart_rate, 1), res.source_scan])
    files.append(_write_tsv(root / "participants.tsv",
                            ["participant_id", "hrf_peak_mean_s", "iaf_hz", "heart_rate_bpm",
                             "bold_source_first_run"], participants))
    files.append(_write_json(root / "participants.json", {
        "hrf_peak_mean_s": {"Description": "mean over regions of the simulated HRF peak time", "Units": "s"},
        "iaf_hz": {"Description": "individual alpha frequency of the simulated subject", "Units": "Hz"},
        "heart_rate_bpm": {"Description": "heart rate of the residual ballistocardiogram", "Units": "1/min"},
        "bold_source_first_run": {"Description": "real scan whose region series drive run 1 (semi-synthetic mode)"},
    }))
    files.append(_write_json(root / "dataset_description.json", {
        "Name": "rtbold simulated simultaneous EEG-fMRI (rest)", "BIDSVersion": "1.9.0",
        "DatasetType": "raw", "License": "CC-BY-4.0",
        "GeneratedBy": [{"Name": "rtbold simulate", "Version": __version__}],
        "SourceDatasets": [{"URL": "https://huggingface.co/datasets/NeurdyLab/NeuroBOLT",
                            "Description": "real DiFuMo-64 region series (semi-synthetic mode)"}],
    }))
    readme = root / "README"
    readme.write_text(
        "Simulated simultaneous EEG-fMRI made by `rtbold simulate` (seed "
        f"{cfg.seed}, mode {cfg.mode}).\nEEG: BrainVision, µV, 26 channels, one '{cfg.marker}' "
        f"marker per fMRI volume. BOLD: DiFuMo-{cfg.n_regions} region series under func/"
        + (".\n" if projection is None else
           f", derived from the DiFuMo-64 series ({projection.describe()}); the EEG is the one "
           "of the 64-region simulation with the same seed.\n") +
        "derivatives/rtbold-sim holds the knobs, the per-region ceiling (an upper bound on the "
        "EEG-explainable correlation) and the latent drive of every scan.\n"
        + (IN_SCANNER_README if cfg.scanner.enabled else ""), encoding="utf-8")
    files.append(readme)
    C, O = np.array(ceilings), np.array(oracles)
    deriv = root / SIM_DERIVATIVES
    files.append(_write_json(deriv / "dataset_description.json", {
        "Name": "rtbold simulator ground truth", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "rtbold simulate", "Version": __version__}]}))
    knobs = knobs_dict(cfg)
    if projection is None:  # the default 64-region output stays byte-identical to earlier ones
        for key in ("n_regions", "source_maps", "target_maps", "target_smoothing_mm"):
            knobs.pop(key)
    else:
        files.append(_projection_files(deriv, projection))
    files.append(_write_json(deriv / "knobs.json", {
        "rtbold_version": __version__, "config": knobs,
        "bold_source": (source.origin if source is not None else "synthetic"),
        "scan_sources": scan_sources,
        "assignment": "semi-synthetic: simulated scan i (subject-major order) uses real scan "
                      "i modulo the number of real scans selected by bold_scans, in the file's order",
    }))
    files.append(_write_tsv(
        deriv / "ceiling.tsv",
        ["region", "network", "ceiling_r", "oracle_r", *scan_cols],
        [[atlas.roi_names[r], atlas.networks[r], float(C[:, r].mean()),
          float(np.nanmean(O[:, r])) if np.isfinite(O[:, r]).any() else float("nan"),
          *[float(c) for c in C[:, r]]] for r in range(atlas.n_regions)]))
    files.append(_write_json(deriv / "ceiling.json", {
        "ceiling_r": "per region, mean over scans of corr(measured BOLD, HRF * u_eeg) where u_eeg "
                     "is the part of the drive that enters the EEG envelopes. An UPPER BOUND: it "
                     "ignores envelope noise, volume conduction and sensor noise. It is per "
                     "region; a model that pools regions can in principle exceed it slightly."
                     + ("" if projection is None else
                        f" Targets and HRF * u_eeg are both DiFuMo-{atlas.n_regions} series "
                        "derived from the 64 generating regions through the maps (see "
                        "projection.json)."),
        "oracle_r": "noisy oracle: ridge from the true source log-envelopes (HRF-convolved), "
                    "trained on the first 70 % of each scan, R on the last part after a 20 s gap; "
                    "n/a for scans under 100 volumes.",
        "ceiling_mean": float(C.mean()),
    }))
    nets = {n: float(C[:, atlas.regions_in(n)].mean()) for n in dict.fromkeys(atlas.networks)}
    order = [n for n in NETWORK_ORDER if n in nets]
    return SimulationSummary(
        out_dir=root, files=files, n_scans=len(jobs), scan_duration_s=duration,
        ceiling_mean=float(C.mean()), ceiling_by_network={n: nets[n] for n in order},
        oracle_mean=float(np.nanmean(O)) if np.isfinite(O).any() else float("nan"),
        seconds=time.perf_counter() - t0,
        per_scan_ceiling={n: float(c.mean()) for n, c in zip(scan_cols, C)},
    )
