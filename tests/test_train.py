"""Offline trainer: chunk sampler, config errors, a 1-epoch run, resume, DDP (gloo, 2 processes).

The dataset is hand-built here: three subjects, one BrainVision run each (pybv, µV, one "R149"
marker per volume) and a DiFuMo-64 region TSV whose first regions follow an EEG band envelope.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtbold.atlas import load_atlas
from rtbold.config import ConfigError
from rtbold.montage import load_montage

TR = 2.1
N_VOL = 40
LEAD_S = 17.0  # first volume 17 s into the EEG, so every volume has a full 16-s window
EEG_SFREQ = 100.0


def make_tiny_bids(root: Path, n_subjects: int = 3, n_vol: int = N_VOL, seed: int = 0,
                   sim_derivatives: bool = False) -> Path:
    """Write a tiny BIDS EEG-fMRI dataset (BrainVision + DiFuMo-64 TSV) under ``root``."""
    import pybv
    from scipy.signal import butter, filtfilt

    rng = np.random.default_rng(seed)
    ch = list(load_montage().ch_names)
    names = load_atlas(64).roi_names
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "tiny rtbold test", "BIDSVersion": "1.8.0"}))
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"sub-{i + 1:02d}\n" for i in range(n_subjects)))
    n = int((LEAD_S + n_vol * TR + 1.0) * EEG_SFREQ)
    t = np.arange(n) / EEG_SFREQ
    b, a = butter(4, [8 / 50, 12 / 50], btype="band")
    for i in range(n_subjects):
        sub = f"sub-{i + 1:02d}"
        drive = filtfilt(*butter(2, 0.05 / 50), rng.standard_normal(n)) * 40 + 1
        alpha = filtfilt(b, a, rng.standard_normal((len(ch), n)), axis=1)
        eeg = 10 * rng.standard_normal((len(ch), n)) + 20 * alpha * np.exp(drive)[None]
        onsets = (LEAD_S + np.arange(n_vol) * TR) * EEG_SFREQ
        eeg_dir = root / sub / "eeg"
        eeg_dir.mkdir(parents=True, exist_ok=True)
        pybv.write_brainvision(
            data=eeg, sfreq=EEG_SFREQ, ch_names=ch, fname_base=f"{sub}_task-rest_run-01_eeg",
            folder_out=str(eeg_dir), overwrite=True,
            events=[{"onset": int(o), "description": 149, "type": "Response"} for o in onsets])
        # BOLD: the drive sampled at the volumes, lagged ~5 s, mixed into the first 8 regions
        vol_t = onsets / EEG_SFREQ
        lagged = np.interp(vol_t - 5.0, t, drive)
        y = rng.standard_normal((n_vol, 64))
        y[:, :8] += 3 * (lagged - lagged.mean())[:, None] / (lagged.std() + 1e-9)
        func = root / sub / "func"
        func.mkdir(parents=True, exist_ok=True)
        stem = f"{sub}_task-rest_run-01_atlas-DiFuMo64_timeseries"
        with open(func / f"{stem}.tsv", "w", encoding="utf-8") as fid:
            fid.write("\t".join(names) + "\n")
            for row in y:
                fid.write("\t".join(f"{v:.6f}" for v in row) + "\n")
        (func / f"{stem}.json").write_text(json.dumps({"RepetitionTime": TR, "Atlas": "DiFuMo64"}))
    if sim_derivatives:  # the simulator's ceiling table: one row per region, one column per scan
        d = root / "derivatives" / "rtbold-sim"
        d.mkdir(parents=True, exist_ok=True)
        scans = [f"sub-{i + 1:02d}_run-01" for i in range(n_subjects)]
        rows = ["\t".join(["region", "network", "ceiling_r", "oracle_r", *scans])]
        for k, nm in enumerate(names):
            r = 0.9 if k < 8 else 0.2
            rows.append("\t".join([nm, "x", str(r), "nan", *[str(r)] * n_subjects]))
        (d / "ceiling.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def tiny_config(tmp_path: Path, data_root: Path, model: str = "unebolt", **train) -> Path:
    """TOML for a tiny 1-epoch run."""
    t = {"protocol": "cross_subject", "epochs": 1, "batch_size": 32, "warmup_epochs": 0.0,
         "max_windows_per_scan": 36, "progress": False, "eval_batch_size": 16,
         "device": "cpu", **train}
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return repr(v)
    lines = ["[data]", f'root = "{data_root}"',
             "[model]", f'name = "{model}"', 'size = "tiny"',
             "[train]", *[f"{k} = {val(v)}" for k, v in t.items()],
             "[output]", f'dir = "{tmp_path / "run"}"']
    path = tmp_path / "train.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_bids(tmp_path_factory):
    return make_tiny_bids(tmp_path_factory.mktemp("bids") / "ds", sim_derivatives=True)


# ------------------------------------------------------------------ sampler and schedule
def test_chunk_sampler_never_mixes_scans_and_keeps_order():
    from rtbold.training import ChunkBatchSampler, runs_by_scan

    # items as (scan, volume): scan 0 has volumes 0..9 and 12..20 (a hole), scan 1 has 0..14
    items = [(0, k) for k in [*range(10), *range(12, 21)]] + [(1, k) for k in range(15)]
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(items))              # dataset order need not be time order
    items = [items[i] for i in perm]
    runs = runs_by_scan(items)
    sampler = ChunkBatchSampler(runs, 4, shuffle=True, jitter=True, seed=3)
    orders = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 2 + 2 + 3   # jitter never costs a chunk
        for batch in batches:
            assert len(batch) == 4
            scans = {items[i][0] for i in batch}
            assert len(scans) == 1                   # never mixes scans
            vols = [items[i][1] for i in batch]
            assert vols == list(range(vols[0], vols[0] + 4))   # consecutive, in time order
        orders.append([tuple(b) for b in batches])
    assert len({tuple(o) for o in orders}) > 1       # reshuffled across epochs
    sampler.set_epoch(1)
    assert [tuple(b) for b in sampler] == orders[1]  # same epoch, same batches (resume)


def test_chunk_sampler_ranks_are_disjoint_and_equal():
    from rtbold.training import ChunkBatchSampler

    runs = [list(range(0, 50)), list(range(50, 83))]
    s0 = ChunkBatchSampler(runs, 5, seed=1, rank=0, world_size=2)
    s1 = ChunkBatchSampler(runs, 5, seed=1, rank=1, world_size=2)
    b0, b1 = list(s0), list(s1)
    assert len(b0) == len(b1) == 8                   # 16 chunks dealt evenly
    assert not {tuple(b) for b in b0} & {tuple(b) for b in b1}


def test_lr_schedule_matches_model_md():
    from rtbold.training import lr_schedule

    total, warm = 3180, 795
    assert lr_schedule(0, total, warm, 3e-4, 1e-6) == 0.0
    assert lr_schedule(warm - 1, total, warm, 3e-4, 1e-6) == pytest.approx(3e-4)
    assert lr_schedule(total, total, warm, 3e-4, 1e-6) == pytest.approx(1e-6)
    mid = warm + (total - warm) // 2
    assert lr_schedule(mid, total, warm, 3e-4, 1e-6) == pytest.approx(
        1e-6 + 0.5 * (3e-4 - 1e-6), rel=1e-3)


# ------------------------------------------------------------------ config errors
@pytest.mark.parametrize("section, body, key", [
    ("train", "batch_size = 8", "train.batch_size"),           # UnEBOLT needs >= 32
    ("train", 'protocol = "loso"', "train.protocol"),
    ("train", "lr = -1.0", "train.lr"),
    ("train", "alpha = 0.95\nbeta = 0.1", "train.alpha"),
    ("model", 'size = "huge"', "model.size"),
    ("train", "epoch = 3", "epoch"),                            # typo: unknown key named
    ("data", "n_regions = 100", "data.n_regions"),
])
def test_bad_config_names_the_key(tmp_path, section, body, key):
    from rtbold.training import load_train_config

    path = tmp_path / "bad.toml"
    path.write_text(f"[{section}]\n{body}\n")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_train_config(path)


def test_shipped_configs_load():
    from rtbold.training import load_train_config

    root = Path(__file__).resolve().parents[1] / "configs"
    paths = [root / "train_demo.toml", root / "train_unebolt_base.toml",
             *sorted(root.glob("bench*/*.toml"))]
    assert len(paths) >= 9
    for path in paths:
        cfg = load_train_config(path)
        assert cfg.train.batch_size >= 32 or cfg.model.name.startswith("ridge"), path.name
        if path.parent.name.startswith("bench"):  # bench/ -> 64, bench128/ -> 128
            n = int(path.parent.name[5:] or 64)
            assert cfg.data.n_regions == n and str(cfg.data.root).endswith(
                f"sim_train{'' if n == 64 else n}"), path
    # the P = 128 recipe is the demo recipe with another resolution and folders
    demo, p128 = (load_train_config(p) for p in (root / "train_demo.toml",
                                                  root / "bench128" / "unebolt_bp_tiny.toml"))
    assert (demo.model, demo.train) == (p128.model, p128.train)


def test_intra_scan_split_uses_each_scan_chronologically():
    from types import SimpleNamespace

    from rtbold.training import make_split

    scans = [SimpleNamespace(spec=SimpleNamespace(subject=f"sub-0{i}", scan="run-01",
                                                  name=f"sub-0{i}_run-01"),
                             valid=np.r_[np.zeros(8, bool), np.ones(567, bool)], tr=2.1)
             for i in range(2)]
    split = make_split(scans, "intra_scan")
    train = [k for s, k in split.items["train"] if s == 0]
    val = [k for s, k in split.items["val"] if s == 0]
    test = [k for s, k in split.items["test"] if s == 0]
    assert (len(train), len(val), len(test)) == (453, 46, 48)
    assert max(train) + 10 < min(val) and max(val) + 10 < min(test)
    assert min(train) == 8                           # invalid volumes never used


# ------------------------------------------------------------------ end to end
def test_one_epoch_run_writes_complete_bundle_and_resumes(tiny_bids, tmp_path):
    from rtbold.models import load_bundle
    from rtbold.training import load_train_config, train

    cfg_path = tiny_config(tmp_path, tiny_bids)
    cfg = load_train_config(cfg_path)
    res = train(cfg)
    out = tmp_path / "run"
    assert res.bundle is not None and res.bundle.exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["epoch"] == 1
    assert log[0]["val"]["n_windows"] > 0 and np.isfinite(log[0]["val"]["mse"])
    assert "tcorr" in log[0]["val"] and np.isfinite(log[0]["train_loss"])
    model, meta = load_bundle(res.bundle)
    # one schema: every field the trainer writes is a BundleMeta field, none lands in "extra"
    assert meta.extra == {} and meta.eeg_highpass_hz is None and meta.marker == "R149"
    assert meta.model_variant == "unebolt" and meta.window_samples == 3200
    md = meta if isinstance(meta, dict) else getattr(meta, "__dict__", {})
    flat = json.dumps(md, default=str)
    for key in ("ch_names", "roi_names", "tr", "sfreq", "target_normalisation", "atlas",
                "training", "metrics", "semi-synthetic"):
        assert key in flat, key
    x = np.zeros((2, 26, 3200), np.float32)
    import torch

    with torch.no_grad():
        assert tuple(model(torch.from_numpy(x)).shape) == (2, 64)

    # resume: a second epoch continues from the checkpoint, not from scratch
    cfg2 = load_train_config(cfg_path, {"train": {"epochs": 2}})
    res2 = train(cfg2, resume=True)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert log[1]["iteration"] == 2 * log[0]["iteration"]
    assert len(res2.history) == 2
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1


def test_ddp_two_cpu_processes_end_identical(tiny_bids, tmp_path):
    # NeuroBOLT + MSE so that batches of 8 give each rank two steps on the one training scan
    cfg_path = tiny_config(tmp_path, tiny_bids, model="neurobolt", batch_size=8)
    # rank 1 sees a different seed (seed + rank): identical weights prove DDP synchronised them
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29500 + os.getpid() % 1000), "-m", "rtbold.cli", "train",
           str(cfg_path), "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    digests = summary["ddp"]["weight_digests"]
    assert summary["ddp"]["world_size"] == 2 and len(digests) == 2
    assert digests[0] == digests[1]


def test_resume_without_checkpoint_says_where(tiny_bids, tmp_path):
    from rtbold.training import load_train_config, train

    cfg = load_train_config(tiny_config(tmp_path, tiny_bids))
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        train(cfg, resume=True)


def test_bf16_autocast_agrees_with_float32():
    """bf16 autocast (CUDA, or CPU: native with AVX-512 BF16/AMX, emulated elsewhere) gives the
    float32 predictions and loss within a stated tolerance: r > 0.99, loss within 5 %."""
    import torch

    from rtbold.models import create_model, unebolt_loss
    from rtbold.training import autocast, bf16_available

    torch.manual_seed(0)
    model = create_model("unebolt_bp", size="tiny", n_rois=16,
                         ch_names=list(load_montage().ch_names))
    with torch.no_grad():   # a readout that is not ~0, so the comparison means something
        model.bandpower.mlp_readout.weight.normal_(0, 0.05)
        model.roi_weight.normal_(0, 0.05)
    model.eval()
    x = torch.randn(32, 26, 3200) * 0.3
    y = torch.randn(32, 16)
    cpu = torch.device("cpu")
    with torch.no_grad():
        p32 = model(x)
        with autocast(cpu, True):
            p16 = model(x).float()
    r = np.corrcoef(p32.numpy().ravel(), p16.numpy().ravel())[0, 1]
    assert r > 0.99
    l32, l16 = float(unebolt_loss(p32, y)), float(unebolt_loss(p16, y))
    assert abs(l16 - l32) / l32 < 0.05
    assert isinstance(bf16_available(cpu), bool) and bf16_available(torch.device("meta")) is False


def test_ridge_model_trains_in_closed_form_and_runs_like_a_bundle(tiny_bids, tmp_path):
    """[model] name = "ridge": fitted on the training scans only, saved as a bundle, scored on
    validation and test, and it learns the planted alpha-envelope relation."""
    import torch

    from rtbold.models import load_bundle
    from rtbold.training import load_train_config, train

    cfg = load_train_config(tiny_config(tmp_path, tiny_bids, model="ridge",
                                         max_windows_per_scan=60))
    res = train(cfg)
    assert res.best_epoch == 0 and len(res.history) == 1
    model, meta = load_bundle(res.bundle)
    assert meta.model_name == "ridge" and meta.model_config["alpha"] > 0
    assert meta.training["split"]["train"]["n_windows"] > 0
    test = meta.metrics["test"]
    assert test["tcorr"] is not None and "res_tcorr" in test and "global_share" in test
    x = torch.from_numpy(np.zeros((2, 26, 3200), np.float32))
    with torch.no_grad():
        assert tuple(model(x).shape) == (2, 64)
    with pytest.raises(ValueError, match="refitted, not fine-tuned"):
        train(cfg, init_bundle=res.bundle)


def test_bandpower_branch_starts_from_the_training_ridge(tiny_bids, tmp_path):
    """unebolt_bp: the branch is initialised from the ridge fitted on the training windows, the
    initial model is validated before any epoch (epoch 0 in the log) and competes in selection."""
    import torch

    from rtbold.training import load_train_config, train
    from rtbold.training.loop import _setup
    from rtbold.training.ridge import fit_session_ridge

    cfg = load_train_config(tiny_config(tmp_path, tiny_bids, model="unebolt_bp"))
    run = _setup(cfg, None)
    feats = run.model.bandpower.features
    all_scans = sorted({s for part in run.split.items.values() for s, _ in part})
    est, prior_mean, _, table = fit_session_ridge(run.split.scans, run.split.items["train"],
                                                  all_scans, feats.cfg.session_prior_windows)
    np.testing.assert_allclose(run.model.bandpower.linear.weight.detach().numpy(), est.coef_.T,
                               rtol=1e-4, atol=1e-6)
    # the session prior is the training windows' raw feature mean; every scan has statistics
    np.testing.assert_allclose(feats.prior_mean.numpy(), prior_mean, rtol=1e-5, atol=1e-5)
    assert len(run.session.row) == sum(len(p) for p in run.split.items.values())
    scans_used = {s for s, _ in run.split.items["train"]}
    assert scans_used.isdisjoint({s for s, _ in run.split.items["val"]})
    # the readout's lr is scaled down in its own optimizer group
    lin = run.model.bandpower.linear.weight
    group = next(g for g in run.optimizer.param_groups if any(p is lin for p in g["params"]))
    assert group["lr_scale"] == pytest.approx(cfg.train.ridge_readout_lr_scale)
    assert cfg.train.layer_decay is None  # from scratch: no layer decay by default
    assert all(g["lr_scale"] in (1.0, pytest.approx(0.1)) for g in run.optimizer.param_groups)

    res = train(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text()
           .splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    assert "ridge" in log[0]["note"] and log[0]["val"]["score"] is not None
    assert res.best_epoch in (0, 1)
    with torch.no_grad():
        assert torch.isfinite(res.model(torch.zeros(1, 26, 3200))).all()


def test_selection_default_is_not_won_by_the_global_signal():
    from rtbold.training import TrainSection

    assert TrainSection().select_on == "composite"


def test_bandpower_pretraining_keeps_its_best_validated_state(tiny_bids, tmp_path):
    """train.bandpower_pretrain_epochs: the branch alone trains on cached features before the
    end-to-end epochs; the ridge readout stays (lr scale 0), the kept state is the one with the
    best validation score, and scoring it through the model's own forward pass (raw windows,
    not the cache) gives that score again."""
    import torch

    from rtbold.metrics import evaluate_predictions, selection_score
    from rtbold.training import load_train_config, train
    from rtbold.training.data import per_scan, targets_of
    from rtbold.training.loop import _setup
    from rtbold.training.ridge import fit_session_ridge

    cfg = load_train_config(tiny_config(tmp_path, tiny_bids, model="unebolt_bp",
                                        bandpower_pretrain_epochs=3, bandpower_pretrain_lr=3e-3,
                                        ridge_readout_lr_scale=0.0))
    run = _setup(cfg, None)
    branch = run.model.bandpower
    hist = run.pretrain_history
    assert [r["epoch"] for r in hist] == [0, 1, 2, 3]
    est, *_ = fit_session_ridge(run.split.scans, run.split.items["train"],
                                sorted({s for p in run.split.items.values() for s, _ in p}),
                                branch.features.cfg.session_prior_windows)
    np.testing.assert_allclose(branch.linear.weight.detach().numpy(), est.coef_.T, rtol=1e-4,
                               atol=1e-6)
    items = run.split.items["val"]
    x = torch.from_numpy(np.stack([run.split.scans[s].window(k) for s, k in items]))
    rows = run.session.rows(items)
    stats = (torch.from_numpy(run.session.mean[rows]), torch.from_numpy(run.session.scale[rows]))
    branch.eval()
    with torch.no_grad():
        pred = branch(x, stats).numpy()
    groups = per_scan(items, pred, targets_of(run.split.scans, items))
    _, agg = evaluate_predictions([p for p, _ in groups.values()], [t for _, t in groups.values()],
                                  [str(s) for s in groups])
    score = selection_score({k: agg[k]["mean"] for k in ("tcorr", "res_tcorr", "pixcorr")})
    assert score == pytest.approx(max(r["val"]["score"] for r in hist), abs=1e-5)
    if max(range(len(hist)), key=lambda i: hist[i]["val"]["score"]) > 0:
        assert branch.mlp_readout.weight.abs().sum() > 0  # a trained MLP was kept

    res = train(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text()
           .splitlines()]
    assert "pre-trained 3 epochs" in log[0]["note"] and len(log[0]["pretrain"]) == 4
    assert res.best_epoch in (0, 1)


def test_zero_epochs_saves_the_data_initialised_model_and_refuses_a_model_without_one(
        tiny_bids, tmp_path):
    """train.epochs = 0 (the pre-training-only ablation): the bundle is the ridge start plus the
    pre-trained branch, scored as epoch 0; the paper's UnEBOLT has no such start and is refused
    with a message naming the key."""
    from rtbold.models import load_bundle
    from rtbold.training import load_train_config, train

    cfg = load_train_config(tiny_config(tmp_path, tiny_bids, model="unebolt_bp", epochs=0,
                                        bandpower_pretrain_epochs=2, ridge_readout_lr_scale=0.0))
    res = train(cfg)
    assert res.best_epoch == 0 and len(res.history) == 1
    assert "pre-trained 2 epochs" in res.history[0]["note"]
    model, _ = load_bundle(res.bundle)
    assert model.bandpower.linear.weight.abs().sum() > 0  # the ridge readout, not zeros

    bad = load_train_config(tiny_config(_mkdir(tmp_path / "paper"), tiny_bids, model="unebolt", epochs=0))
    with pytest.raises(ValueError, match=r"train\.epochs = 0 keeps the data-initialised model"):
        train(bad)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
