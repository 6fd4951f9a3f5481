"""EEG-to-BOLD models: NeuroBOLT, UnEBOLT, their encoders, losses, bundles and baselines.

This package depends only on numpy, torch and safetensors (no rtbold streaming or GUI code).
"""

from .bandpower import (BandPowerBranch, BandPowerConfig, BandPowerFeatures, RidgeBOLT,
                        RidgeConfig, SessionNormaliser, causal_feature_stats, session_features)
from .baselines import MeanPredictor, RidgeBandPower, band_power_features
from .bundle import BundleMeta, describe_bundle, load_bundle, read_bundle_meta, save_bundle
from .device import select_device
from .labram import LABRAM_CHANNELS, LaBraMConfig, LaBraMEncoder, labram_input_chans
from .labram_import import load_labram_weights
from .losses import mse_loss, unebolt_loss
from .neurobolt import NeuroBOLT, NeuroBOLTConfig
from .optim import lr_at, param_groups, set_lr
from .registry import build_config, config_to_dict, create_model, list_models, list_sizes
from .spectral import SpectralConfig, SpectralEncoder
from .unebolt import UnEBOLT, UnEBOLTConfig

__all__ = [
    "BandPowerBranch", "BandPowerConfig", "BandPowerFeatures", "RidgeBOLT", "RidgeConfig",
    "SessionNormaliser", "causal_feature_stats", "session_features",
    "BundleMeta", "LABRAM_CHANNELS", "LaBraMConfig", "LaBraMEncoder", "MeanPredictor", "NeuroBOLT",
    "NeuroBOLTConfig", "RidgeBandPower", "SpectralConfig", "SpectralEncoder", "UnEBOLT",
    "UnEBOLTConfig", "band_power_features", "build_config", "config_to_dict", "create_model",
    "describe_bundle", "labram_input_chans", "list_models", "list_sizes", "load_bundle",
    "load_labram_weights", "lr_at", "mse_loss", "param_groups", "read_bundle_meta", "save_bundle",
    "select_device", "set_lr", "unebolt_loss",
]
