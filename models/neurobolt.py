"""NeuroBOLT (Li et al., NeurIPS 2024): two EEG encoders and a linear head (MODEL.md section 4.1).

``y = W GELU(h_T + h_S) + b`` with ``h_T`` the LaBraM-style spatiotemporal embedding and ``h_S`` the
multi-scale spectral embedding. :class:`EEGToBOLT` holds what NeuroBOLT and UnEBOLT share: the two
encoders, the channel bookkeeping and input checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .bandpower import check_channels
from .labram import LaBraMConfig, LaBraMEncoder
from .spectral import SpectralConfig, SpectralEncoder

__all__ = ["NeuroBOLTConfig", "EEGToBOLT", "NeuroBOLT"]

HEAD_ACTIVATIONS = ("gelu", "none")


@dataclass
class NeuroBOLTConfig:
    """Configuration of NeuroBOLT; defaults are the paper's sizes ("base")."""

    labram: LaBraMConfig = field(default_factory=LaBraMConfig)
    spectral: SpectralConfig = field(default_factory=SpectralConfig)
    head_activation: str = "gelu"      # "gelu" (code since Oct 2025) or "none" (first release)
    head_init_scale: float = 1e-3      # head weights scaled so first predictions are about 0

    @property
    def embed_dim(self) -> int:
        return self.labram.embed_dim

    @property
    def n_samples(self) -> int:
        return self.spectral.n_samples


class EEGToBOLT(nn.Module):
    """Shared trunk: both encoders and the channel bookkeeping.

    Parameters
    ----------
    cfg : NeuroBOLTConfig
        Sizes (UnEBOLT passes its own config subclass).
    n_rois : int
        Number of predicted regions.
    ch_names : sequence of str
        EEG channel names in the order of the input rows (10-20 names).
    """

    #: registry name, set by subclasses
    model_name = ""

    def __init__(self, cfg: NeuroBOLTConfig, n_rois: int, ch_names: Sequence[str]) -> None:
        super().__init__()
        names = check_channels(ch_names, n_rois)
        if cfg.labram.embed_dim != cfg.spectral.embed_dim:
            raise ValueError(
                f"the two encoders must have the same width: LaBraM gives {cfg.labram.embed_dim} "
                f"(out_chans={cfg.labram.out_chans} x 25) but spectral.embed_dim="
                f"{cfg.spectral.embed_dim}; set both")
        n, p = cfg.spectral.n_samples, cfg.labram.patch_size
        if n % p or n // p > cfg.labram.n_patches:
            raise ValueError(f"window of {n} samples does not fit the LaBraM encoder "
                             f"({cfg.labram.n_patches} patches of {p})")
        if cfg.head_activation not in HEAD_ACTIVATIONS:
            raise ValueError(f"head_activation must be one of {HEAD_ACTIVATIONS}, "
                             f"got {cfg.head_activation!r}")
        self.cfg = cfg
        self.n_rois = int(n_rois)
        self.ch_names = names
        self.size = "custom"           # the registry records the preset name here
        self.labram = LaBraMEncoder(cfg.labram, names)
        self.mss_module = SpectralEncoder(cfg.spectral, len(names))
        # NeuroBOLT applies LaBraM's init to the whole model, so the spectral branch's linear
        # layers are truncated-normal(0.02) with zero bias too (its channel table keeps N(0, 1)).
        for m in self.mss_module.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def n_samples(self) -> int:
        return self.cfg.n_samples

    def channel_index(self, names: Sequence[str]) -> torch.Tensor:
        """Indices into the model's channel order for a subset of its channels.

        Raises
        ------
        ValueError
            If a name is not one of the model's channels.
        """
        pos = {c: i for i, c in enumerate(self.ch_names)}
        keys = [str(c).strip().upper() for c in names]
        unknown = [c for c in keys if c not in pos]
        if unknown:
            raise ValueError(f"channels {unknown} are not among the model's channels {self.ch_names}")
        return torch.tensor([pos[c] for c in keys], dtype=torch.long,
                            device=self.labram.input_chans.device)

    def encode(self, x: torch.Tensor, ch_index: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both embeddings ``(h_T, h_S)``, each (B, embed_dim)."""
        if x.ndim != 3:
            raise ValueError(f"expected input (batch, channels, samples), got shape {tuple(x.shape)}")
        n_ch = len(self.ch_names) if ch_index is None else int(ch_index.numel())
        if x.shape[1] != n_ch or x.shape[2] != self.n_samples:
            raise ValueError(
                f"expected input (batch, {n_ch}, {self.n_samples}) for channels "
                f"{self.ch_names if ch_index is None else 'of ch_index'}, got {tuple(x.shape)}")
        return self.labram(x, ch_index), self.mss_module(x, ch_index)


class NeuroBOLT(EEGToBOLT):
    """NeuroBOLT: ``y = head(act(h_T + h_S))``; forward (B, C, 3200) -> (B, n_rois)."""

    model_name = "neurobolt"

    def __init__(self, cfg: NeuroBOLTConfig, n_rois: int, ch_names: Sequence[str]) -> None:
        super().__init__(cfg, n_rois, ch_names)
        self.head_act = nn.GELU() if cfg.head_activation == "gelu" else nn.Identity()
        self.head = nn.Linear(cfg.embed_dim, self.n_rois)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            self.head.weight.mul_(cfg.head_init_scale)
            self.head.bias.mul_(cfg.head_init_scale)

    def forward(self, x: torch.Tensor, ch_index: torch.Tensor | None = None) -> torch.Tensor:
        """Predict BOLD.

        Parameters
        ----------
        x : Tensor, shape (B, C, n_samples)
            EEG windows in µV / 100, rows in the model's channel order.
        ch_index : Tensor of int, optional
            For a channel subset: the subset's indices into the model's channels
            (see :meth:`channel_index`).

        Returns
        -------
        Tensor, shape (B, n_rois)
        """
        h_t, h_s = self.encode(x, ch_index)
        return self.head(self.head_act(h_t + h_s))
