"""LaBraM-style spatiotemporal EEG encoder (MODEL.md section 2).

The input window (B, C, n_patches * patch_size) is cut into one-second patches, each patch becomes
a token through a small temporal convolution stack, every token gets the embedding of its electrode
(looked up by 10-20 name in LaBraM's fixed channel list, so any subset of those electrodes works)
and of its patch position, and a pre-norm transformer with QK-LayerNorm and layer scale mixes all
tokens. The output is the LayerNorm of the mean over the patch tokens (the CLS token takes part in
attention but not in the mean).

Parameter names follow the official LaBraM code so that the pretrained LaBraM-base checkpoint maps
onto this module by stripping a prefix (see :mod:`rtbold.models.labram_import`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LABRAM_CHANNELS",
    "N_POS_ROWS",
    "LaBraMConfig",
    "LaBraMEncoder",
    "labram_input_chans",
]

#: LaBraM's fixed electrode list. Row ``i + 1`` of the spatial table belongs to ``LABRAM_CHANNELS[i]``
#: (row 0 is the CLS token's). Names are compared upper-cased; only the first
#: ``N_POS_ROWS - 1`` = 128 names have a row in the table (the bipolar names at the end do not).
LABRAM_CHANNELS: tuple[str, ...] = (
    "FP1", "FPZ", "FP2",
    "AF9", "AF7", "AF5", "AF3", "AF1", "AFZ", "AF2", "AF4", "AF6", "AF8", "AF10",
    "F9", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8", "F10",
    "FT9", "FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "FT10",
    "T9", "T7", "C5", "C3", "C1", "CZ", "C2", "C4", "C6", "T8", "T10",
    "TP9", "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "TP10",
    "P9", "P7", "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "P10",
    "PO9", "PO7", "PO5", "PO3", "PO1", "POZ", "PO2", "PO4", "PO6", "PO8", "PO10",
    "O1", "OZ", "O2", "O9", "CB1", "CB2",
    "IZ", "O10", "T3", "T5", "T4", "T6", "M1", "M2", "A1", "A2",
    "CFC1", "CFC2", "CFC3", "CFC4", "CFC5", "CFC6", "CFC7", "CFC8",
    "CCP1", "CCP2", "CCP3", "CCP4", "CCP5", "CCP6", "CCP7", "CCP8",
    "T1", "T2", "FTT9H", "TTP7H", "TPP9H", "FTT10H", "TPP8H", "TPP10H",
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
    "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
)

#: Rows of the spatial table of LaBraM-base: CLS + 128 electrodes.
N_POS_ROWS = 129

_CHANNEL_ROW = {name: i for i, name in enumerate(LABRAM_CHANNELS)}


def labram_input_chans(ch_names: Sequence[str], n_pos_rows: int = N_POS_ROWS) -> list[int]:
    """Rows of the spatial table for a recording's channels, CLS row first.

    Parameters
    ----------
    ch_names : sequence of str
        Channel names in input order (case-insensitive 10-20 names such as ``"Fp1"``).
    n_pos_rows : int
        Number of rows of the spatial table (129 for LaBraM-base).

    Returns
    -------
    list of int
        ``[0] + [1 + index of each name in LABRAM_CHANNELS]``.
    """
    rows = [0]
    unknown, no_row = [], []
    for name in ch_names:
        key = str(name).strip().upper()
        if key not in _CHANNEL_ROW:
            unknown.append(str(name))
            continue
        row = _CHANNEL_ROW[key] + 1
        if row >= n_pos_rows:
            no_row.append(str(name))
            continue
        rows.append(row)
    if unknown or no_row:
        parts = []
        if unknown:
            parts.append(f"not in LaBraM's 10-20 channel list: {unknown}")
        if no_row:
            parts.append(f"beyond the {n_pos_rows - 1} rows of the spatial table: {no_row}")
        raise ValueError(
            "Cannot place channels on the LaBraM spatial embedding ("
            + "; ".join(parts)
            + "). Rename channels to 10-20 names (e.g. 'Fp1' -> 'FP1', T3 -> T7) or drop them."
        )
    return rows


@dataclass
class LaBraMConfig:
    """Sizes of the LaBraM-style encoder. Defaults are LaBraM-base as used by NeuroBOLT."""

    patch_size: int = 200          # samples per token (1 s at 200 Hz)
    n_patches: int = 16            # rows of the temporal table = longest window in seconds
    out_chans: int = 8             # channels of the temporal convs; token width = out_chans * 25
    norm_groups: int = 4           # GroupNorm groups in the patch encoder
    depth: int = 12
    num_heads: int = 10
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    qk_norm: bool = True
    init_values: float = 0.1       # layer-scale init
    drop_rate: float = 0.1         # after the embeddings, after attention proj and after the MLP
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1    # stochastic depth, linearly increasing to this value
    n_pos_rows: int = N_POS_ROWS

    @property
    def embed_dim(self) -> int:
        # conv1 (kernel 15, stride 8, padding 7) maps patch_size samples to this many steps
        steps = (self.patch_size + 2 * 7 - 15) // 8 + 1
        return self.out_chans * steps


class TemporalConv(nn.Module):
    """Patch encoder: three time-only convolutions, each followed by GroupNorm and GELU.

    The GroupNorm runs on the (B, out_chans, C * A, steps) tensor, so its statistics couple all
    patches and channels of a sample, as in LaBraM.
    """

    def __init__(self, out_chans: int = 8, norm_groups: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, out_chans, kernel_size=(1, 15), stride=(1, 8), padding=(0, 7))
        self.norm1 = nn.GroupNorm(norm_groups, out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, kernel_size=(1, 3), padding=(0, 1))
        self.norm2 = nn.GroupNorm(norm_groups, out_chans)
        self.conv3 = nn.Conv2d(out_chans, out_chans, kernel_size=(1, 3), padding=(0, 1))
        self.norm3 = nn.GroupNorm(norm_groups, out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, A, patch) -> (B, 1, C*A, patch), channel-major token order
        b, c, a, t = x.shape
        x = x.reshape(b, 1, c * a, t)
        x = F.gelu(self.norm1(self.conv1(x)))
        x = F.gelu(self.norm2(self.conv2(x)))
        x = F.gelu(self.norm3(self.conv3(x)))
        # (B, K, C*A, S) -> (B, C*A, S*K): feature index = step * K + conv channel
        return x.permute(0, 2, 3, 1).reshape(b, c * a, -1)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample during training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head softmax self-attention with LayerNorm on queries and keys (per head)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, qk_norm: bool,
                 attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        # scaled_dot_product_attention scales by head_dim ** -0.5, as LaBraM does
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm transformer block with per-channel layer scale (gamma_1, gamma_2)."""

    def __init__(self, dim: int, cfg: LaBraMConfig, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias, cfg.qk_norm,
                              cfg.attn_drop_rate, cfg.drop_rate)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), cfg.drop_rate)
        self.gamma_1 = nn.Parameter(cfg.init_values * torch.ones(dim))
        self.gamma_2 = nn.Parameter(cfg.init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


class LaBraMEncoder(nn.Module):
    """Spatiotemporal encoder: (B, C, A * patch_size) -> (B, embed_dim).

    Parameters
    ----------
    cfg : LaBraMConfig
        Sizes.
    ch_names : sequence of str
        Channel names in input order; each must be in :data:`LABRAM_CHANNELS`.
    """

    def __init__(self, cfg: LaBraMConfig, ch_names: Sequence[str]) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.embed_dim = dim
        self.patch_embed = TemporalConv(cfg.out_chans, cfg.norm_groups)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_pos_rows, dim))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.n_patches, dim))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.depth).tolist() if cfg.depth else []
        self.blocks = nn.ModuleList(Block(dim, cfg, r) for r in rates)
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        # Derived from ch_names, so not saved with the weights.
        self.register_buffer("input_chans", torch.tensor(labram_input_chans(ch_names, cfg.n_pos_rows)),
                             persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for p in (self.cls_token, self.pos_embed, self.time_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Residual branches scaled down with depth (timm/BEiT recipe).
        with torch.no_grad():
            for i, blk in enumerate(self.blocks):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * (i + 1)))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * (i + 1)))

    def forward(self, x: torch.Tensor, ch_index: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a batch of windows.

        Parameters
        ----------
        x : Tensor, shape (B, C, A * patch_size)
            EEG in units of 100 µV.
        ch_index : Tensor of int, shape (C,), optional
            Which of the constructor's channels the C input rows are (for a channel subset).

        Returns
        -------
        Tensor, shape (B, embed_dim)
        """
        b, c, n = x.shape
        p = self.cfg.patch_size
        a = n // p
        if a * p != n or a > self.cfg.n_patches:
            raise ValueError(f"LaBraM encoder needs a multiple of {p} samples, at most "
                             f"{self.cfg.n_patches * p}; got {n}")
        tokens = self.patch_embed(x.reshape(b, c, a, p))              # (B, C*A, D)
        rows = self.input_chans[1:] if ch_index is None else self.input_chans[1:][ch_index]
        space = self.pos_embed[0, rows]                                 # (C, D)
        time = self.time_embed[0, :a]                                   # (A, D)
        tokens = tokens + (space[:, None, :] + time[None, :, :]).reshape(1, c * a, -1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        x = self.pos_drop(torch.cat([cls, tokens], dim=1))
        for blk in self.blocks:
            x = blk(x)
        return self.fc_norm(x[:, 1:].mean(dim=1))
