"""Semi-synthetic simultaneous EEG-fMRI simulator (``rtbold simulate``).

Python API::

    from rtbold.simulator import SimulatorConfig, simulate_scan, simulate_dataset
    res = simulate_scan(SimulatorConfig(n_volumes=40), subject=0, scan=0)   # arrays in memory
    summary = simulate_dataset("sim_out", SimulatorConfig(n_subjects=2))      # BIDS on disk
"""

from .bids import SIM_DERIVATIVES, SimulationSummary, simulate_dataset
from .bold import BoldSource, load_bold_source
from .config import SimulatorConfig, load_simulator_config, simulator_config
from .core import ScanResult, ScanSimulator, simulate_scan

__all__ = ["SimulatorConfig", "simulator_config", "load_simulator_config", "simulate_scan",
           "simulate_dataset", "SimulationSummary", "ScanResult", "ScanSimulator", "BoldSource",
           "load_bold_source", "SIM_DERIVATIVES"]
