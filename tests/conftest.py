"""Test-wide settings: loopback-only LSL, offscreen Qt, paths to the real reference data."""

import os
from pathlib import Path

# Before anything imports pylsl/mne_lsl: LSL discovery must stay on this machine.
_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(_ROOT / "configs" / "lsl-local.cfg"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MNE_LOGGING_LEVEL", "WARNING")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: Real EEG recordings shipped as test fixtures (see tests/data/README.md for credits).
DATA_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _release_lsl_outlets():
    """Collect garbage after each test: LSL outlets caught in reference cycles (threads, engine
    callbacks) are destroyed promptly, so their ports are free for the next test's streams."""
    yield
    import gc

    gc.collect()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def eeg_files() -> dict[str, Path]:
    """The three real EEG recordings: EDF (EEGMMIDB, EEGMAT) and EEGLAB."""
    files = {
        "eegmmidb": DATA_DIR / "eegmmidb_S001R01_eyes_open.edf",
        "eegmat": DATA_DIR / "eegmat_Subject00_1_rest_excerpt.edf",
        "eeglab": DATA_DIR / "eeglab_data.set",
    }
    for path in files.values():
        assert path.is_file(), f"missing test fixture {path}"
    return files


def write_bids_scan(root: Path, subject: str, run: int, eeg_uv: np.ndarray, sfreq: float,
                    ch_names: list[str], volume_onsets_s: np.ndarray, bold: np.ndarray,
                    roi_names: list[str], tr: float, marker: str = "R149",
                    sidecar_tr: float | None = None) -> tuple[Path, Path]:
    """Write one scan in rtbold's BIDS layout with pybv (BrainVision) and a TSV + JSON sidecar."""
    import json

    import pybv

    stem = f"sub-{subject}_task-rest_run-{run:02d}"
    eeg_dir = root / f"sub-{subject}" / "eeg"
    func_dir = root / f"sub-{subject}" / "func"
    eeg_dir.mkdir(parents=True, exist_ok=True)
    func_dir.mkdir(parents=True, exist_ok=True)
    onsets = np.round(np.asarray(volume_onsets_s) * sfreq).astype(int)
    events = np.column_stack([onsets, np.full(len(onsets), int(marker[1:]))])
    pybv.write_brainvision(data=np.asarray(eeg_uv) * 1e-6, sfreq=sfreq, ch_names=list(ch_names),
                           fname_base=f"{stem}_eeg", folder_out=eeg_dir, events=events,
                           unit="µV", fmt="binary_float32", overwrite=True)  # data in V
    # pybv writes stimulus markers "S..."; rewrite as responses "R..." like the scanner trigger.
    vmrk = eeg_dir / f"{stem}_eeg.vmrk"
    text = vmrk.read_text(encoding="utf-8")
    vmrk.write_text(text.replace("=Stimulus,S", "=Response,R"), encoding="utf-8")
    tsv = func_dir / f"{stem}_atlas-DiFuMo64_timeseries.tsv"
    lines = ["\t".join(roi_names)] + ["\t".join(f"{v:.6f}" for v in row) for row in bold]
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tsv.with_suffix(".json").write_text(
        json.dumps({"RepetitionTime": sidecar_tr if sidecar_tr is not None else tr}),
        encoding="utf-8")
    return eeg_dir / f"{stem}_eeg.vhdr", tsv
