"""Model bundles: one self-describing file per trained model.

A bundle is a ``.safetensors`` file: the model's weights, plus JSON metadata stored under the key
``"rtbold"`` of the safetensors header. The metadata says how to rebuild the model (name, size, full
config), what input it expects (channel names and order, sampling rate, window, scaling), what it
predicts (ROI names, atlas, TR, target normalisation) and how it was made (training data summary,
metrics, notes). Loading never unpickles: pickled ``.pt``/``.pth`` checkpoints are refused unless
the caller explicitly trusts the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["FORMAT_VERSION", "METADATA_KEY", "PICKLE_SUFFIXES", "BundleMeta", "save_bundle",
           "load_bundle", "read_bundle_meta", "describe_bundle"]

logger = logging.getLogger(__name__)

#: Version of the metadata layout; readers refuse newer versions.
FORMAT_VERSION = 1
#: Key of the safetensors header metadata holding the JSON.
METADATA_KEY = "rtbold"
#: File suffixes treated as pickled torch checkpoints.
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt", ".bin")

# Fields the model itself provides; metadata passed to save_bundle must agree with them.
_FROM_MODEL = ("model_name", "model_size", "model_config", "n_rois", "ch_names")


@dataclass
class BundleMeta:
    """Everything a bundle says about its model besides the weights."""

    model_name: str
    model_size: str
    model_config: dict[str, Any]
    n_rois: int
    ch_names: list[str]
    roi_names: list[str]
    sfreq: float = 200.0
    window_s: float = 16.0
    eeg_scale: float = 100.0            # model input = EEG in µV / eeg_scale
    window_samples: int | None = None
    tr: float | None = None
    atlas: str | None = None
    #: EEG high-pass (Hz) the model was trained with; offline and live preprocessing apply it
    eeg_highpass_hz: float | None = None
    #: fMRI volume marker of the training data (annotation description ends with it)
    marker: str | None = None
    #: registry variant the trainer was given (e.g. ``unebolt_bp``); ``model_name`` is its model
    model_variant: str | None = None
    target_normalisation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    rtbold_version: str = "unknown"
    format_version: int = FORMAT_VERSION
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "metadata") -> BundleMeta:
        """Validate and build from a metadata dict; errors name ``source`` and the key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: metadata must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        required = ["model_name", "model_size", "model_config", "n_rois", "ch_names", "roi_names"]
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"{source}: metadata lacks required key(s) {missing}")
        known = {k: v for k, v in data.items() if k in names and k != "extra"}
        extra = dict(data.get("extra") or {})
        extra.update({k: v for k, v in data.items() if k not in names})
        # bundles written before a key became a field keep it under "extra": lift it
        for key in [k for k in extra if k in names and k != "extra"]:
            known.setdefault(key, extra.pop(key))
        meta = cls(**known, extra=extra)
        meta._validate(source)
        return meta

    def _validate(self, source: str) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{source}: metadata key '{key}' {why}")

        if int(self.format_version) > FORMAT_VERSION:
            raise bad("format_version", f"is {self.format_version}, newer than this rtbold reads "
                                        f"({FORMAT_VERSION}); upgrade rtbold")
        if not isinstance(self.model_config, dict):
            raise bad("model_config", "must be an object")
        if not (isinstance(self.ch_names, list) and self.ch_names
                and all(isinstance(c, str) for c in self.ch_names)):
            raise bad("ch_names", "must be a non-empty list of channel names")
        if not (isinstance(self.roi_names, list) and all(isinstance(r, str) for r in self.roi_names)):
            raise bad("roi_names", "must be a list of region names")
        if not isinstance(self.n_rois, int) or self.n_rois < 1:
            raise bad("n_rois", f"must be a positive integer, got {self.n_rois!r}")
        if len(self.roi_names) != self.n_rois:
            raise bad("roi_names", f"has {len(self.roi_names)} names but the model predicts "
                                   f"{self.n_rois} regions")
        for key in ("sfreq", "window_s", "eeg_scale"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not value > 0:
                raise bad(key, f"must be a positive number, got {value!r}")
        if self.tr is not None and (not isinstance(self.tr, (int, float)) or not self.tr > 0):
            raise bad("tr", f"must be a positive number or null, got {self.tr!r}")
        n_model = ((self.model_config.get("spectral") or {}).get("n_samples")
                   or (self.model_config.get("bandpower") or {}).get("n_samples"))
        if n_model is not None and n_model != self.n_samples:
            raise bad("window_s", f"x sfreq = {self.window_s:g} s x {self.sfreq:g} Hz = "
                                  f"{self.n_samples} samples, but the model takes {n_model}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def get(self, key: str, default: Any = None) -> Any:
        """A field, or a key of ``extra`` (metadata written by other tools), else ``default``."""
        if key in {f.name for f in fields(self)} and key != "extra":
            value = getattr(self, key)
            return default if value is None else value
        return self.extra.get(key, default)

    @property
    def n_samples(self) -> int:
        return int(round(self.sfreq * self.window_s))

    def check_compatible(self, ch_names: list[str] | None = None, sfreq: float | None = None,
                         roi_names: list[str] | None = None) -> None:
        """Raise ``ValueError`` describing every way the given input does not fit this model.

        Parameters
        ----------
        ch_names : list of str, optional
            Channels available (e.g. in the stream after name normalisation). Every model channel
            must be present (case-insensitive); extra channels are fine (they are dropped).
        sfreq : float, optional
            Sampling rate of the data that will be fed to the model (after resampling).
        roi_names : list of str, optional
            Regions expected by the consumer (e.g. the measured BOLD); must equal the model's,
            in order.
        """
        problems = []
        if ch_names is not None:
            have = {str(c).strip().upper() for c in ch_names}
            missing = [c for c in self.ch_names if c.strip().upper() not in have]
            if missing:
                problems.append(f"{len(missing)} of the model's {len(self.ch_names)} channels are "
                                f"missing: {missing} (map or interpolate them, or use a model "
                                f"trained without them)")
        if sfreq is not None and not math.isclose(float(sfreq), self.sfreq, rel_tol=0, abs_tol=1e-6):
            problems.append(f"sampling rate is {float(sfreq):g} Hz but the model expects "
                            f"{self.sfreq:g} Hz (resample first)")
        if roi_names is not None and list(roi_names) != list(self.roi_names):
            given = list(roi_names)
            absent = [r for r in self.roi_names if r not in given]
            unknown = [r for r in given if r not in self.roi_names]
            if absent or unknown:
                detail = (f"model regions not given: {absent[:10]}{' ...' if len(absent) > 10 else ''}; "
                          f"given regions not in the model: {unknown[:10]}"
                          f"{' ...' if len(unknown) > 10 else ''}")
            else:
                detail = "same regions in a different order"
            problems.append(f"regions differ from the model's {len(self.roi_names)} "
                            f"({self.atlas or 'unknown atlas'}): {detail}")
        if problems:
            raise ValueError("model bundle does not fit: " + "; ".join(problems))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")


def _meta_from_model(model: nn.Module, metadata: dict[str, Any]) -> BundleMeta:
    from .registry import config_to_dict

    for attr in ("model_name", "cfg", "n_rois", "ch_names"):
        if not hasattr(model, attr):
            raise TypeError(f"{type(model).__name__} is not an rtbold model (no '{attr}'); build "
                            f"it with rtbold.models.create_model")
    derived = {
        "model_name": model.model_name,
        "model_size": getattr(model, "size", "custom"),
        "model_config": config_to_dict(model.cfg),
        "n_rois": int(model.n_rois),
        "ch_names": list(model.ch_names),
    }
    data = dict(metadata)
    for key in _FROM_MODEL:
        if key in data and key != "model_config":
            given = data[key]
            if key == "ch_names":
                given = [str(c).strip().upper() for c in given]
            if given != derived[key]:
                raise ValueError(f"metadata '{key}' = {data[key]!r} disagrees with the model "
                                 f"({derived[key]!r})")
    data.update(derived)
    data.setdefault("format_version", FORMAT_VERSION)
    data["format_version"] = FORMAT_VERSION
    data.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if "roi_names" not in data:
        raise ValueError("metadata must give 'roi_names' (one per predicted region) so the bundle "
                         "is self-describing")
    data["roi_names"] = [str(r) for r in data["roi_names"]]
    # Round-trip through JSON so what we validate is what gets stored.
    data = json.loads(json.dumps(data, default=_jsonable))
    return BundleMeta.from_dict(data, source="save_bundle")


def save_bundle(path: str | Path, model: nn.Module, metadata: dict[str, Any], *,
                storage_dtype: str | None = None) -> None:
    """Write ``model``'s weights and metadata to one ``.safetensors`` file.

    Parameters
    ----------
    path : path-like
        Output file (``.safetensors`` recommended). Written atomically.
    model : nn.Module
        A model from :func:`rtbold.models.create_model`.
    metadata : dict
        ``roi_names`` (required), and any of ``rtbold_version``, ``tr``, ``atlas``, ``sfreq``,
        ``window_s``, ``eeg_scale``, ``target_normalisation``, ``training``, ``metrics``,
        ``notes``. Model name, size, config, ``n_rois`` and ``ch_names`` are taken from the model.
        Unknown keys are kept under ``extra``. Values must be JSON-serialisable (numpy is
        converted).
    storage_dtype : str | None
        ``"float16"`` or ``"bfloat16"`` stores floating-point weights at half size (e.g. the
        packaged demo model); :func:`load_bundle` restores the model's own dtype. None keeps them.
    """
    from safetensors.torch import save_file

    dtypes = {None: None, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if storage_dtype not in dtypes:
        raise ValueError(f"storage_dtype must be one of {list(dtypes)}, got {storage_dtype!r}")

    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise ValueError(f"{path}: bundles are safetensors files; use a .safetensors suffix")
    meta = _meta_from_model(model, metadata)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if storage_dtype is not None:
        tensors = {k: v.to(dtypes[storage_dtype]) if v.is_floating_point() else v
                   for k, v in tensors.items()}
    header = json.dumps(meta.to_dict(), default=_jsonable)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp), metadata={METADATA_KEY: header})
    os.replace(tmp, path)
    logger.info("saved %s bundle (%s, %d regions, %d channels) to %s", meta.model_name,
                meta.model_size, meta.n_rois, len(meta.ch_names), path)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"model bundle {path} does not exist")
    if not path.is_file():
        raise ValueError(f"model bundle {path} is not a file")


def _read_safetensors_meta(path: Path) -> tuple[BundleMeta, dict[str, tuple[int, ...]]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # safetensors raises its own (Rust) error types
        raise ValueError(f"{path} is not a readable model bundle (safetensors): {err}. The file "
                         f"may be truncated or corrupt; re-export it.") from err
    if METADATA_KEY not in header:
        raise ValueError(f"{path} has no '{METADATA_KEY}' metadata: it is a safetensors file but "
                         f"not an rtbold model bundle")
    try:
        data = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the '{METADATA_KEY}' metadata is not valid JSON ({err})") from err
    return BundleMeta.from_dict(data, source=str(path)), shapes


def read_bundle_meta(path: str | Path) -> BundleMeta:
    """Metadata of a bundle without loading its weights."""
    path = Path(path)
    _check_exists(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise ValueError(_pickle_refusal(path))
    return _read_safetensors_meta(path)[0]


def _pickle_refusal(path: Path) -> str:
    return (f"{path} is a pickled torch checkpoint; loading it can run arbitrary code, so rtbold "
            f"refuses by default. If you trust its origin, convert it once in Python: "
            f"model, meta = rtbold.models.load_bundle({str(path)!r}, trust_pickle=True); "
            f"rtbold.models.save_bundle('model.safetensors', model, meta.to_dict()); then "
            f"give rtbold the .safetensors file (run, evaluate and finetune take bundles only).")


def _load_pickled(path: Path) -> tuple[BundleMeta, dict[str, torch.Tensor]]:
    logger.warning("unpickling trusted checkpoint %s (weights_only=False)", path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict with "
                         f"a state dict and '{METADATA_KEY}' metadata")
    meta = next((ckpt[k] for k in (METADATA_KEY, "metadata") if isinstance(ckpt.get(k), dict)), None)
    state = next((ckpt[k] for k in ("state_dict", "model_state_dict", "model")
                  if isinstance(ckpt.get(k), dict)), None)
    if meta is None or state is None:
        raise ValueError(f"checkpoint {path} needs a state dict ('state_dict' or 'model') and "
                         f"metadata ('{METADATA_KEY}'); found keys {sorted(ckpt)}")
    return BundleMeta.from_dict(meta, source=str(path)), state


def load_bundle(path: str | Path, *, device: str | torch.device = "cpu",
                trust_pickle: bool = False) -> tuple[nn.Module, BundleMeta]:
    """Rebuild a model from a bundle.

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` bundle written by :func:`save_bundle` (or, with ``trust_pickle``, a
        pickled checkpoint dict with ``state_dict`` and ``rtbold`` metadata).
    device : str or torch.device
        Where to put the model (``"auto"`` picks CUDA when available).
    trust_pickle : bool
        Allow unpickling ``.pt``/``.pth`` files. Only for files from a trusted source.

    Returns
    -------
    model : nn.Module
        In eval mode on ``device``.
    meta : BundleMeta
    """
    from safetensors.torch import load_file

    from .device import select_device
    from .registry import create_model

    path = Path(path)
    _check_exists(path)
    if path.suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise ValueError(_pickle_refusal(path))
        meta, state = _load_pickled(path)
    else:
        meta, _ = _read_safetensors_meta(path)
        try:
            state = load_file(str(path), device="cpu")
        except Exception as err:
            raise ValueError(f"{path}: cannot read the weights ({err})") from err
    try:
        model = create_model(meta.model_name, size=meta.model_size, n_rois=meta.n_rois,
                             ch_names=meta.ch_names, **meta.model_config)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: cannot rebuild the model from its metadata ({err})") from err
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: weights do not match the model described by its metadata "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {wrong[:3]}); "
            f"the file was altered or written by another version")
    model.load_state_dict(state, strict=True)
    dev = select_device(device) if isinstance(device, str) else device
    return model.to(dev).eval(), meta


def describe_bundle(path: str | Path) -> str:
    """A human-readable summary of a bundle (for ``rtbold info``), without loading the model."""
    path = Path(path)
    _check_exists(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise ValueError(_pickle_refusal(path))
    meta, shapes = _read_safetensors_meta(path)
    n_params = sum(int(np.prod(s)) for s in shapes.values())
    lines = [
        f"model bundle   {path}",
        f"model          {meta.model_name} ({meta.model_size}), {n_params:,} weights",
        f"input          {len(meta.ch_names)} channels at {meta.sfreq:g} Hz, "
        f"{meta.window_s:g}-s window, EEG in µV / {meta.eeg_scale:g}",
        f"channels       {' '.join(meta.ch_names)}",
        f"output         {meta.n_rois} regions ({meta.atlas or 'atlas not recorded'})"
        + (f", TR {meta.tr:g} s" if meta.tr else ""),
    ]
    if meta.target_normalisation:
        lines.append(f"targets        {_short(meta.target_normalisation)}")
    if meta.training:
        lines.append(f"training       {_short(meta.training)}")
    if meta.metrics:
        lines.append(f"metrics        {_short(meta.metrics)}")
    if meta.notes:
        lines.append(f"notes          {meta.notes}")
    lines.append(f"written by     rtbold {meta.rtbold_version}"
                 + (f" on {meta.created}" if meta.created else "")
                 + f" (bundle format {meta.format_version})")
    return "\n".join(lines)


def _short(d: dict[str, Any], limit: int = 200) -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, (list, dict)) and len(str(v)) > 40:
            v = f"<{type(v).__name__} of {len(v)}>"
        parts.append(f"{k}={v}")
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."
