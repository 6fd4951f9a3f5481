"""rtbold: real-time prediction of whole-brain fMRI from scalp EEG."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rtbold")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
