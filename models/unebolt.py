"""UnEBOLT: one model for all regions (MODEL.md section 4.2).

On top of the NeuroBOLT encoders:

1. Gated adaptive fusion (GAF): ``g = sigmoid(W2 GELU(W1 [h_T; h_S]))``,
   ``r = g * h_T + (1 - g) * h_S``.
2. Learnable ROI lookup table (LROI-LUT): region i gets ``e_i = [r; t_i]`` with a trainable
   ``t_i`` of width ``d_r`` (= P by default).
3. ROI representation embedder (RRE), an adapter shared by all regions:
   ``e_i <- alpha * up(dropout(relu(down(e_i)))) + e_i`` with a learnable scalar ``alpha``.
4. ROI-specific linear heads ``y_i = w_i . e_i + b_i``, computed as one einsum.

Each part can be switched off for ablations (``no_gaf``, ``no_lut``, ``no_rre``,
``no_roi_heads``); the structure of the module changes accordingly (switched-off parts have no
parameters).

rtbold's addition (``bandpower_branch = true``, the registry variant ``unebolt_bp``): a
channel-resolved log band-power branch (:class:`~rtbold.models.bandpower.BandPowerBranch`) whose
output is added to the region heads'. The encoders' mean-pooled embeddings do not say which
channel carried the power; without this branch the model learns little beyond the global signal on
unseen subjects (see the README's ablation table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .bandpower import BandPowerBranch, BandPowerConfig
from .neurobolt import EEGToBOLT, NeuroBOLTConfig

__all__ = ["UnEBOLTConfig", "UnEBOLT", "GatedFusion", "ROIEmbedder"]


@dataclass
class UnEBOLTConfig(NeuroBOLTConfig):
    """UnEBOLT configuration. Unstated details of the paper are fields (MODEL.md section 7.14)."""

    gate_hidden: int | None = None     # GAF hidden width; None = embed_dim
    gate_mode: str = "vector"          # "vector": one gate per feature; "scalar": one per sample
    lut_dim: int | None = None         # d_r; None = n_rois
    rre_bottleneck: int = 128
    rre_dropout: float = 0.1
    rre_alpha_init: float = 0.1
    no_gaf: bool = False               # plain sum h_T + h_S
    no_lut: bool = False               # no ROI table: every region sees the same representation
    no_rre: bool = False               # no adapter
    no_roi_heads: bool = False         # one head shared by all regions
    bandpower_branch: bool = False     # add the channel-resolved log band-power branch
    bandpower: BandPowerConfig = field(default_factory=BandPowerConfig)
    bandpower_hidden: int = 16         # width of its channel-shared MLP (0 = linear only)
    bandpower_dropout: float = 0.1
    bandpower_context: bool = False    # its MLP also sees the across-channel mean (brain state)


class GatedFusion(nn.Module):
    """``g * h_t + (1 - g) * h_s`` with ``g = sigmoid(fc2(GELU(fc1([h_t; h_s]))))``."""

    def __init__(self, dim: int, hidden: int, mode: str) -> None:
        super().__init__()
        if mode not in ("vector", "scalar"):
            raise ValueError(f"gate_mode must be 'vector' or 'scalar', got {mode!r}")
        self.fc1 = nn.Linear(2 * dim, hidden)
        self.fc2 = nn.Linear(hidden, dim if mode == "vector" else 1)

    def forward(self, h_t: torch.Tensor, h_s: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.fc2(F.gelu(self.fc1(torch.cat([h_t, h_s], dim=-1)))))
        return g * h_t + (1.0 - g) * h_s


class ROIEmbedder(nn.Module):
    """LoRA-like residual adapter shared across regions, with a learnable scalar gain."""

    def __init__(self, dim: int, bottleneck: int, dropout: float, alpha_init: float) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim)
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.alpha * self.up(self.drop(F.relu(self.down(e)))) + e


class UnEBOLT(EEGToBOLT):
    """UnEBOLT: forward (B, C, 3200) -> (B, n_rois)."""

    model_name = "unebolt"

    def __init__(self, cfg: UnEBOLTConfig, n_rois: int, ch_names: Sequence[str]) -> None:
        super().__init__(cfg, n_rois, ch_names)
        dim, p = cfg.embed_dim, self.n_rois
        self.fusion = (None if cfg.no_gaf else
                       GatedFusion(dim, cfg.gate_hidden or dim, cfg.gate_mode))
        d_r = cfg.lut_dim or p
        # N(0, 1) like an nn.Embedding: the paper only says "random init".
        self.roi_table = None if cfg.no_lut else nn.Parameter(torch.randn(p, d_r))
        width = dim if cfg.no_lut else dim + d_r
        self.rre = (None if cfg.no_rre else
                    ROIEmbedder(width, cfg.rre_bottleneck, cfg.rre_dropout, cfg.rre_alpha_init))
        # Same init as the rest of the model (timm/LaBraM): truncated normal(0.02), zero bias.
        for part in (self.fusion, self.rre):
            for m in part.modules() if part is not None else ():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
        if not cfg.no_roi_heads:
            self.roi_weight = nn.Parameter(torch.empty(p, width))
            self.roi_bias = nn.Parameter(torch.zeros(p))
            nn.init.trunc_normal_(self.roi_weight, std=0.02)
            with torch.no_grad():
                self.roi_weight.mul_(cfg.head_init_scale)
            self.shared_head = None
        else:
            self.roi_weight = self.roi_bias = None
            # With the ROI table, one (width -> 1) head scores every region's own vector. Without
            # it all regions share one vector, so the only sensible shared head is width -> P.
            self.shared_head = nn.Linear(width, 1 if not cfg.no_lut else p)
            nn.init.trunc_normal_(self.shared_head.weight, std=0.02)
            nn.init.zeros_(self.shared_head.bias)
            with torch.no_grad():
                self.shared_head.weight.mul_(cfg.head_init_scale)
        self.bandpower = None
        if cfg.bandpower_branch:
            if cfg.bandpower.n_samples != cfg.n_samples:
                raise ValueError(f"bandpower.n_samples = {cfg.bandpower.n_samples} but the model "
                                 f"takes windows of {cfg.n_samples} samples")
            self.bandpower = BandPowerBranch(cfg.bandpower, len(self.ch_names), p,
                                             hidden=cfg.bandpower_hidden,
                                             dropout=cfg.bandpower_dropout,
                                             context=cfg.bandpower_context)

    def forward(self, x: torch.Tensor, ch_index: torch.Tensor | None = None,
                feature_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Predict BOLD for every region: (B, C, n_samples) -> (B, n_rois).

        ``ch_index`` selects a channel subset as in :meth:`NeuroBOLT.forward`; ``feature_stats``
        are the session statistics of the band-power branch (see
        :func:`rtbold.models.bandpower.session_features`).
        """
        y = self._heads(x, ch_index)
        if self.bandpower is not None:
            if ch_index is not None:
                raise ValueError("the band-power branch needs every model channel (its readout "
                                 "is per channel); ch_index subsets are not supported")
            y = y + self.bandpower(x, feature_stats)
        return y

    def _heads(self, x: torch.Tensor, ch_index: torch.Tensor | None) -> torch.Tensor:
        """The paper's UnEBOLT: encoders -> fusion -> ROI table -> RRE -> ROI heads."""
        h_t, h_s = self.encode(x, ch_index)
        r = h_t + h_s if self.fusion is None else self.fusion(h_t, h_s)     # (B, D)
        b, p = r.shape[0], self.n_rois
        if self.cfg.no_lut and self.cfg.no_roi_heads:
            e = r if self.rre is None else self.rre(r)
            return self.shared_head(e)
        if self.roi_table is None:
            e = r[:, None, :].expand(b, p, -1)                               # (B, P, D)
        else:
            e = torch.cat([r[:, None, :].expand(b, p, -1),
                           self.roi_table[None].expand(b, -1, -1)], dim=-1)   # (B, P, D + d_r)
        if self.rre is not None:
            e = self.rre(e)
        if self.shared_head is not None:
            return self.shared_head(e).squeeze(-1)
        return torch.einsum("bpe,pe->bp", e, self.roi_weight) + self.roi_bias
