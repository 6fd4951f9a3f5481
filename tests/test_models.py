"""rtbold.models architecture: sizes, parameter counts, shapes, gradients, channel handling."""

import pytest
import torch

from rtbold.models import (
    LABRAM_CHANNELS, build_config, create_model, labram_input_chans, list_models, list_sizes,
)
from rtbold.models.labram import TemporalConv
from rtbold.models.spectral import LinearAttention

VU = ["FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7",
      "P8", "FPZ", "FZ", "CZ", "PZ", "POZ", "OZ", "FT9", "FT10", "TP9", "TP10"]
# A 10-20 subset of 19 channels (no FPZ, POZ, OZ, FT9, FT10, TP9, TP10).
SUB19 = ["FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8",
         "P7", "P8", "FZ", "CZ", "PZ"]


def n_trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_channel_list_and_input_chans():
    assert len(LABRAM_CHANNELS) == 136
    assert LABRAM_CHANNELS[:3] == ("FP1", "FPZ", "FP2")
    assert labram_input_chans(VU) == [0, 1, 3, 18, 22, 40, 44, 62, 66, 81, 83, 16, 24, 38, 46, 60,
                                      68, 2, 20, 42, 64, 75, 82, 26, 36, 48, 58]
    # case-insensitive
    assert labram_input_chans(["Fp1", "fpz"]) == [0, 1, 2]
    with pytest.raises(ValueError, match="XYZ"):
        labram_input_chans(["FP1", "XYZ"])
    with pytest.raises(ValueError, match="P4-O2"):   # a bipolar name has no row in the table
        labram_input_chans(["P4-O2"])


def test_neurobolt_base_parameter_counts_and_forward():
    model = create_model("neurobolt", size="base", n_rois=1, ch_names=VU)
    assert n_trainable(model) == 7_906_985
    assert n_trainable(model.labram) == 5_819_936
    assert n_trainable(model.mss_module) == 2_086_848
    model.eval()
    with torch.inference_mode():
        y = model(torch.randn(1, 26, 3200))
    assert y.shape == (1, 1)
    # head scaled by 1e-3 at init: first predictions are about zero
    assert y.abs().max() < 0.05
    assert n_trainable(create_model("neurobolt", n_rois=64, ch_names=VU)) == 7_919_648


def test_sizes_are_ordered():
    counts = {s: n_trainable(create_model("unebolt", size=s, n_rois=8, ch_names=VU))
              for s in ("tiny", "small", "base")}
    assert counts["tiny"] < counts["small"] < counts["base"]
    assert list_models() == ["neurobolt", "ridge", "unebolt", "ridge_sn", "unebolt_bp"]
    assert set(list_sizes()) == {"base", "small", "tiny"}


@pytest.mark.parametrize("name", ["neurobolt", "unebolt"])
def test_tiny_forward_shapes(name):
    model = create_model(name, size="tiny", n_rois=5, ch_names=VU)
    y = model(torch.randn(2, 26, 3200))
    assert y.shape == (2, 5) and y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_patch_encoder_token_layout():
    """Tokens are channel-major and features are time-major / conv-channel-minor."""
    enc = TemporalConv(8, 4)
    x = torch.randn(2, 3, 4, 200)
    out = enc(x)
    assert out.shape == (2, 12, 200)
    h = x.reshape(2, 1, 12, 200)
    for conv, norm in ((enc.conv1, enc.norm1), (enc.conv2, enc.norm2), (enc.conv3, enc.norm3)):
        h = torch.nn.functional.gelu(norm(conv(h)))
    # token 5 = channel 1, patch 1; feature t*8 + c
    torch.testing.assert_close(out[:, 5].reshape(2, 25, 8), h[:, :, 5, :].transpose(1, 2))
    # GroupNorm couples tokens: changing one channel's data changes other channels' tokens
    x2 = x.clone()
    x2[:, 0] *= 10
    assert not torch.allclose(enc(x2)[:, 11], out[:, 11])


def test_linear_attention_matches_formula():
    attn = LinearAttention(16, 2, 0.0).eval()
    x = torch.randn(1, 7, 16)
    q = attn.to_q(x).reshape(1, 7, 2, 8).transpose(1, 2).softmax(-1) * 8 ** -0.5
    k = attn.to_k(x).reshape(1, 7, 2, 8).transpose(1, 2).softmax(-2)
    v = attn.to_v(x).reshape(1, 7, 2, 8).transpose(1, 2)
    ref = torch.einsum("bhnd,bhde->bhne", q, torch.einsum("bhnd,bhne->bhde", k, v))
    ref = attn.to_out(ref.transpose(1, 2).reshape(1, 7, 16))
    torch.testing.assert_close(attn(x), ref)


def test_unebolt_gradients_reach_every_parameter():
    model = create_model("unebolt", size="tiny", n_rois=4, ch_names=VU).eval()  # no dropout
    y = model(torch.randn(2, 26, 3200))
    y.square().sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


@pytest.mark.parametrize("switch, gone, added", [
    ("no_gaf", "fusion.", None),
    ("no_lut", "roi_table", None),
    ("no_rre", "rre.", None),
    ("no_roi_heads", "roi_weight", "shared_head.weight"),
])
def test_ablation_switches_change_structure(switch, gone, added):
    ref = create_model("unebolt", size="tiny", n_rois=6, ch_names=VU)
    abl = create_model("unebolt", size="tiny", n_rois=6, ch_names=VU, **{switch: True})
    ref_names = {n for n, _ in ref.named_parameters()}
    abl_names = {n for n, _ in abl.named_parameters()}
    assert any(n.startswith(gone) for n in ref_names)
    assert not any(n.startswith(gone) for n in abl_names)
    if added:
        assert added in abl_names and added not in ref_names
    assert abl(torch.randn(2, 26, 3200)).shape == (2, 6)


def test_all_ablations_together():
    model = create_model("unebolt", size="tiny", n_rois=3, ch_names=VU, no_gaf=True, no_lut=True,
                         no_rre=True, no_roi_heads=True)
    assert model(torch.randn(2, 26, 3200)).shape == (2, 3)


def test_lut_width_follows_n_rois():
    model = create_model("unebolt", size="tiny", n_rois=7, ch_names=VU)
    assert model.roi_table.shape == (7, 7)
    assert model.roi_weight.shape == (7, 100 + 7)


def test_channel_subset_model_and_index():
    sub_model = create_model("unebolt", size="tiny", n_rois=2, ch_names=SUB19)
    assert sub_model(torch.randn(2, 19, 3200)).shape == (2, 2)
    full = create_model("unebolt", size="tiny", n_rois=2, ch_names=VU).eval()
    x = torch.randn(2, 26, 3200)
    idx = full.channel_index(SUB19)
    with torch.no_grad():
        y_sub = full(x[:, idx], ch_index=idx)
        assert y_sub.shape == (2, 2)
        # the full index in model order reproduces the plain forward
        torch.testing.assert_close(full(x, ch_index=full.channel_index(VU)), full(x))
    with pytest.raises(ValueError, match="XX"):
        full.channel_index(["FP1", "XX"])


def test_input_shape_errors():
    model = create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU)
    with pytest.raises(ValueError, match="26, 3200"):
        model(torch.randn(2, 25, 3200))
    with pytest.raises(ValueError, match="26, 3200"):
        model(torch.randn(2, 26, 3000))
    with pytest.raises(ValueError, match="batch"):
        model(torch.randn(26, 3200))


def test_registry_errors_and_overrides():
    with pytest.raises(ValueError, match="unknown model"):
        create_model("bolt", n_rois=1, ch_names=VU)
    with pytest.raises(ValueError, match="unknown size"):
        create_model("unebolt", size="huge", n_rois=1, ch_names=VU)
    with pytest.raises(ValueError, match="no_gaf"):   # UnEBOLT option on NeuroBOLT
        create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU, no_gaf=True)
    with pytest.raises(ValueError, match="labram.*dept"):
        create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU, labram={"dept": 2})
    with pytest.raises(ValueError, match="same width"):
        create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU, spectral={"embed_dim": 200})
    with pytest.raises(ValueError, match="duplicate"):
        create_model("neurobolt", size="tiny", n_rois=1, ch_names=["FP1", "Fp1"])
    cfg = build_config("unebolt", "small", labram={"drop_path_rate": 0.0}, head_activation="none")
    assert cfg.labram.depth == 4 and cfg.labram.drop_path_rate == 0.0
    assert cfg.head_activation == "none"
    assert build_config("unebolt", "base").labram.depth == 12   # presets are not mutated


def test_neurobolt_head_activation_switch():
    m = create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU, head_activation="none")
    assert isinstance(m.head_act, torch.nn.Identity)
    with pytest.raises(ValueError, match="head_activation"):
        create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU, head_activation="relu")


def test_spectral_levels_are_rectangular_stft_magnitudes():
    """The inputs of the 4 frequency embeddings are |STFT| with a rectangular window, hop = window."""
    model = create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU).eval()
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
             for m in model.mss_module.freq_embed]
    x = torch.randn(2, 26, 3200)
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert [tuple(s.shape) for s in seen] == [(2, 26, 32, 51), (2, 26, 16, 101), (2, 26, 8, 201),
                                              (2, 26, 4, 401)]
    for w, s in zip((100, 200, 400, 800), seen):
        ref = torch.stft(x[:, 3], n_fft=w, hop_length=w, center=False, onesided=True,
                         window=torch.ones(w), return_complex=True).abs()      # (B, F, T)
        torch.testing.assert_close(s[:, 3], ref.transpose(1, 2), rtol=1e-4, atol=1e-4)


def test_labram_pools_patch_tokens_without_cls():
    model = create_model("neurobolt", size="tiny", n_rois=1, ch_names=VU).eval()
    out = {}
    model.labram.blocks[-1].register_forward_hook(lambda m, a, o: out.setdefault("x", o))
    x = torch.randn(2, 26, 3200)
    with torch.no_grad():
        h_t, _ = model.encode(x)
    tokens = out["x"]
    assert tokens.shape == (2, 1 + 26 * 16, 100)
    torch.testing.assert_close(h_t, model.labram.fc_norm(tokens[:, 1:].mean(1)))
