"""Evaluation report (figures + JSON) and ``rtbold evaluate`` / ``rtbold info`` end to end."""

import json

import numpy as np
import pytest

from rtbold.atlas import load_atlas
from rtbold.metrics import evaluate_predictions
from rtbold.report import write_report
from test_train import make_tiny_bids, tiny_config


def _png_is_nontrivial(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    # a real figure: many distinct colours, not a blank canvas
    assert len(np.unique(img[..., :3].reshape(-1, 3), axis=0)) > 50
    return img


def test_report_writes_all_figures_and_strict_json(tmp_path, rng):
    atlas = load_atlas(64)
    trues, preds = [], []
    for _ in range(3):
        t = rng.standard_normal((80, 64))
        trues.append(t)
        preds.append(0.6 * t + rng.standard_normal((80, 64)))
    preds[0][:, 5] = 0.0                         # a constant region must not break anything
    per, agg = evaluate_predictions(preds, trues, ["a", "b", "c"], networks=atlas.networks)
    other = {"ridge": agg, "mean": {k: {"mean": None, "std": None, "n": 0} for k in agg
                                    if isinstance(agg[k], dict) and "mean" in agg[k]}}
    files = write_report(tmp_path / "rep", scans=per, aggregate=agg, preds=preds, trues=trues,
                         roi_names=atlas.roi_names, networks=atlas.networks, tr=2.1,
                         model_label="UnEBOLT", comparison=other,
                         ceiling={"tcorr": 0.7, "pixcorr": float("nan")})
    for key in ("region_r", "network_r", "fc", "traces", "comparison"):
        _png_is_nontrivial(files[key])
    data = json.loads(files["metrics"].read_text())   # strict JSON: NaN written as null
    assert data["aggregate"]["tcorr"]["n"] == 3
    assert data["scans"][0]["region_r"][5] is None
    assert data["ceiling"]["pixcorr"] is None
    assert "| UnEBOLT |" in files["summary"].read_text()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from rtbold.training import load_train_config, train

    base = tmp_path_factory.mktemp("eval")
    root = make_tiny_bids(base / "ds", sim_derivatives=True)
    cfg = load_train_config(tiny_config(base, root))
    return root, train(cfg).bundle


def test_evaluate_cli_with_baselines_and_ceiling(trained, tmp_path, capsys):
    from rtbold.cli import main

    root, bundle = trained
    out = tmp_path / "report"
    rc = main(["evaluate", str(bundle), str(root), "--out", str(out), "--baselines",
               "--device", "cpu"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| UnEBOLT |" in printed and "| ridge baseline |" in printed and "ceiling" in printed
    data = json.loads((out / "metrics.json").read_text())
    test_scans = [s["name"] for s in data["scans"]]
    bundle_assign = data["comparison"]
    assert set(bundle_assign) == {"ridge baseline", "mean baseline"}
    # the tiny dataset: 3 subjects -> exactly one held-out test subject
    assert len(test_scans) == 1 and test_scans[0].startswith("sub-")
    assert data["ceiling"]["tcorr"] == pytest.approx(np.mean([0.9] * 8 + [0.2] * 56))
    assert data["comparison"]["mean baseline"]["tcorr"]["mean"] is None   # constant: undefined r
    for name in ("region_r.png", "network_r.png", "fc_true_vs_pred.png", "traces.png",
                 "comparison.png", "summary.md"):
        assert (out / name).is_file(), name
    _png_is_nontrivial(out / "comparison.png")


def test_evaluate_never_tests_on_training_scans(trained, tmp_path):
    from rtbold.evaluate import evaluate_bundle
    from rtbold.models import read_bundle_meta

    root, bundle = trained
    meta = read_bundle_meta(bundle)
    train_scans = set(meta.training["assignment"]["train"])
    res = evaluate_bundle(bundle, root, out=tmp_path / "r", device="cpu")
    assert not {s["name"] for s in res["scans"]} & train_scans
    # every window of its own training dataset would be in-sample: refused, naming the fix
    with pytest.raises(ValueError, match="trained on.*--split test"):
        evaluate_bundle(bundle, root, out=tmp_path / "r2", split="all", device="cpu")


def test_bundles_compared_on_held_out_data_and_baselines_fit_on_training_data(trained, tmp_path,
                                                                             capsys):
    """Several bundles in one table on a dataset none of them saw; --baselines fits ridge on the
    first bundle's own training scans, so it equals a ridge bundle trained on the same split (a
    baseline fitted on the evaluated data would not)."""
    from rtbold.cli import main
    from rtbold.training import load_train_config, train

    root, bundle = trained
    cfg = load_train_config(tiny_config(tmp_path, root, model="ridge"))
    ridge = train(cfg).bundle
    held = make_tiny_bids(tmp_path / "held", n_subjects=2, seed=7)
    out = tmp_path / "cmp"
    assert main(["evaluate", str(bundle), str(ridge), str(held), "--out", str(out),
                 "--baselines", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "2 scans (every window" in printed
    for row in ("| UnEBOLT |", "| ridge |", "| ridge baseline |", "| mean baseline |"):
        assert row in printed, row
    assert str(root) in printed and str(held) not in printed.split("baselines:")[1]
    for sub in ("UnEBOLT", "ridge"):
        data = json.loads((out / sub / "metrics.json").read_text())
        assert len(data["scans"]) == 2 and "res_tcorr" in data["aggregate"]
    table = (out / "comparison.md").read_text()
    ridge_row = next(line for line in table.splitlines() if line.startswith("| ridge baseline |"))
    bundle_row = next(line for line in table.splitlines() if line.startswith("| ridge |"))
    assert ridge_row.split("|")[2:] == bundle_row.split("|")[2:]


def test_info_prints_metadata(trained, capsys):
    from rtbold.cli import main

    _, bundle = trained
    assert main(["info", str(bundle)]) == 0
    text = capsys.readouterr().out
    assert "unebolt" in text.lower() and "26" in text
    assert main(["info", str(bundle), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["training"]["protocol"] == "cross_subject"
    assert "semi-synthetic" in meta["notes"]


def test_read_ceiling_uses_the_evaluated_scans_columns(tmp_path):
    from rtbold.evaluate import read_ceiling

    d = tmp_path / "derivatives" / "rtbold-sim"
    d.mkdir(parents=True)
    (d / "ceiling.tsv").write_text(
        "region\tnetwork\tceiling_r\toracle_r\tsub-01_run-01\tsub-02_run-01\n"
        "A\tVisual\t0.5\t0.3\t0.4\t0.6\n"
        "B\tDefault\t0.3\tnan\t0.2\t0.4\n")
    c = read_ceiling(tmp_path, ["sub-02_task-rest_run-01"])
    assert c["region_r"] == {"A": 0.6, "B": 0.4} and c["tcorr"] == pytest.approx(0.5)
    assert c["oracle_tcorr"] == pytest.approx(0.3)
    assert read_ceiling(tmp_path)["tcorr"] == pytest.approx(0.4)      # mean column
    assert read_ceiling(tmp_path / "nothing") is None


def test_finetune_cli_starts_from_the_bundle(trained, tmp_path):
    from rtbold.cli import main
    from rtbold.models import read_bundle_meta

    root, bundle = trained
    out = tmp_path / "ft"
    rc = main(["finetune", str(bundle), str(root), "--out", str(out), "--epochs", "1",
               "--device", "cpu", "--batch-size", "32", "--max-windows-per-scan", "36"])
    assert rc == 0
    meta = read_bundle_meta(out / "bundle.safetensors")
    assert meta.model_name == "unebolt" and meta.model_size == "tiny"
    assert "fine-tuned from" in meta.notes
    assert meta.roi_names == read_bundle_meta(bundle).roi_names
