"""TOML configuration loaded into typed dataclasses.

Each part of rtbold declares its settings as a dataclass; :func:`from_dict` fills it from a TOML
table and fails on unknown keys, wrong types and out-of-range values with the key's full path, the
value given and what is expected. Bounds and choices are declared on the field::

    @dataclass
    class TrainConfig:
        epochs: int = field(default=20, metadata={"range": (1, 10_000)})
        protocol: str = field(default="cross_subject",
                              metadata={"choices": ("cross_subject", "intra_scan")})
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, naming the file and the line in the error when it is malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        with path.open("rb") as fid:
            return tomllib.load(fid)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None


def load_config(path: str | Path, cls: type[T], section: str | None = None) -> T:
    """Load ``cls`` from a TOML file (or from one of its tables when ``section`` is given)."""
    data = load_toml(path)
    where = f"{Path(path).name}"
    if section is not None:
        data = data.get(section, {})
        where = f"{where}:{section}"
    return from_dict(cls, data, where)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, validating every key.

    Parameters
    ----------
    cls : dataclass type
        The schema. Nested dataclass fields are filled from nested tables.
    data : dict
        Parsed TOML (or any mapping).
    where : str
        Prefix for key paths in error messages (file name and section).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__} {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
            f"valid keys are {', '.join(sorted(fields))}."
        )
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        path = f"{where}.{name}"
        kwargs[name] = _coerce(value, hints[name], path)
        _check_bounds(kwargs[name], f.metadata, path)
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field without default is missing
        raise ConfigError(f"{where}: {err}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass to plain dict (paths as strings), e.g. to store in a bundle or JSON log."""
    def conv(v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return {k: conv(v) for k, v in dataclasses.asdict(obj).items()}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{path}: {value!r} is not any of "
                          f"{' | '.join(_type_name(a) for a in args)}.")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}.")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}.")
        return dict(value)
    if tp is Any:
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a path string, got {value!r}.")
        return Path(value).expanduser()
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}.")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}.")
        return value
    return value


def _check_bounds(value: Any, meta: typing.Mapping, path: str) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{path}: {value!r} is not one of {list(meta['choices'])}.")
    if "range" in meta:
        lo, hi = meta["range"]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{path}: {value!r} is out of range; expected a value in "
                              f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}].")
