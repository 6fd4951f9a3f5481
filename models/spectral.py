"""Multi-scale spectral (MSS) EEG encoder (MODEL.md section 3).

Each channel is cut into non-overlapping rectangular windows at four scales (0.5, 1, 2, 4 s); the
FFT magnitudes of every scale are embedded, mapped to a common number of tokens and summed. Each
channel's tokens get a learned channel vector (indexed by input order) and a sinusoidal position
code that restarts for every channel; all channels' tokens then go through a transformer with the
"efficient" softmax-kernel linear attention (Shen et al. 2021, as in lucidrains'
linear-attention-transformer 0.19.1), and the output is the mean over all tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SpectralConfig", "SpectralEncoder", "LinearAttention", "sinusoidal_encoding"]


@dataclass
class SpectralConfig:
    """Sizes of the MSS encoder. Defaults are NeuroBOLT's."""

    embed_dim: int = 200
    base_window: int = 100         # samples of the finest FFT window (0.5 s at 200 Hz)
    n_levels: int = 4              # windows base_window * 2**l, l = 0 .. n_levels - 1
    n_samples: int = 3200          # input length; fixes the frame counts of the level maps
    depth: int = 4
    num_heads: int = 8
    ff_mult: int = 4
    attn_out_dropout: float = 0.2  # after each attention output projection
    pe_dropout: float = 0.1        # after adding channel vectors and position codes

    @property
    def n_tokens(self) -> int:
        return self.n_samples // self.base_window


def sinusoidal_encoding(n_positions: int, dim: int) -> torch.Tensor:
    """Standard sin/cos position code, base 10000: (n_positions, dim)."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n_positions, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return pe


class LinearAttention(nn.Module):
    """Non-causal efficient attention: softmax over features for q, over positions for k.

    Per head: ``out = (softmax_d(q) * d**-0.5) @ (softmax_n(k)^T @ v)``, cost O(n d^2).
    """

    def __init__(self, dim: int, num_heads: int, out_dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"spectral embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(out_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, h, d // h).transpose(1, 2)           # (B, h, n, dh)

        q, k, v = heads(self.to_q(x)), heads(self.to_k(x)), heads(self.to_v(x))
        q = q.softmax(dim=-1) * (d // h) ** -0.5
        k = k.softmax(dim=-2)
        context = k.transpose(-2, -1) @ v                               # (B, h, dh, dh)
        out = (q @ context).transpose(1, 2).reshape(b, n, d)
        return self.dropout(self.to_out(out))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * mult)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LinearTransformerLayer(nn.Module):
    """x + Attn(LN(x)), then x + FF(LN(x)); LayerNorm eps 1e-5, no final norm."""

    def __init__(self, cfg: SpectralConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim)
        self.attn = LinearAttention(cfg.embed_dim, cfg.num_heads, cfg.attn_out_dropout)
        self.norm2 = nn.LayerNorm(cfg.embed_dim)
        self.ff = FeedForward(cfg.embed_dim, cfg.ff_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


class SpectralEncoder(nn.Module):
    """MSS encoder: (B, C, n_samples) -> (B, embed_dim).

    Parameters
    ----------
    cfg : SpectralConfig
        Sizes.
    n_channels : int
        Rows of the channel table: the number of channels the model is built for.
    """

    def __init__(self, cfg: SpectralConfig, n_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.n_tokens
        windows = [cfg.base_window * 2 ** level for level in range(cfg.n_levels)]
        bad = [w for w in windows if cfg.n_samples % w]
        if bad:
            raise ValueError(f"spectral windows {bad} do not divide n_samples={cfg.n_samples}")
        self.windows = windows
        self.freq_embed = nn.ModuleList(nn.Linear(w // 2 + 1, cfg.embed_dim) for w in windows)
        self.frame_map = nn.ModuleList(nn.Linear(cfg.n_samples // w, n) for w in windows)
        # nn.Embedding keeps its N(0, 1) default init, as in NeuroBOLT.
        self.channel_tokens = nn.Embedding(n_channels, cfg.embed_dim)
        self.register_buffer("channel_index", torch.arange(n_channels), persistent=False)
        self.register_buffer("pos_code", sinusoidal_encoding(n, cfg.embed_dim), persistent=False)
        self.pe_drop = nn.Dropout(cfg.pe_dropout)
        self.layers = nn.ModuleList(LinearTransformerLayer(cfg) for _ in range(cfg.depth))

    def forward(self, x: torch.Tensor, ch_index: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a batch of windows.

        Parameters
        ----------
        x : Tensor, shape (B, C, n_samples)
        ch_index : Tensor of int, shape (C,), optional
            Rows of the channel table for the C input rows (default: 0 .. C-1).
        """
        b, c, L = x.shape
        if L != self.cfg.n_samples:
            raise ValueError(f"spectral encoder needs {self.cfg.n_samples} samples, got {L}")
        fused = 0
        for w, embed, fmap in zip(self.windows, self.freq_embed, self.frame_map):
            # rectangular window, hop = window: a reshape and a one-sided FFT magnitude
            spec = torch.fft.rfft(x.reshape(b, c, L // w, w), dim=-1).abs()   # (B, C, T_l, F_l)
            tok = embed(spec)                                                   # (B, C, T_l, D)
            fused = fused + fmap(tok.transpose(-1, -2)).transpose(-1, -2)       # (B, C, n, D)
        if ch_index is None:
            if c != self.channel_index.numel():
                raise ValueError(f"spectral encoder was built for {self.channel_index.numel()} "
                                 f"channels, got {c}; pass ch_index for a channel subset")
            idx = self.channel_index
        else:
            idx = ch_index
        fused = fused + self.channel_tokens(idx)[None, :, None, :] + self.pos_code
        h = self.pe_drop(fused).reshape(b, c * self.cfg.n_tokens, -1)
        for layer in self.layers:
            h = layer(h)
        return h.mean(dim=1)
